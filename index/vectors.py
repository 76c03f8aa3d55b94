"""FAISS vectors keyed by chunk row id; searched on GPU when one is present."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError("faiss is missing: pip install faiss-cpu (or faiss-gpu)") from error
    return faiss


class VectorIndex:
    """Exact inner-product search over normalized vectors (cosine similarity).

    The CPU index (``IndexIDMap2`` over ``IndexFlatIP``) is the one that is
    mutated and saved. With a GPU, a copy of its flat part is searched there and
    ids are mapped back on the CPU; the copy is dropped on every change.
    """

    def __init__(self, dimension: int, index: Any | None = None) -> None:
        faiss = _faiss()
        self.dimension = dimension
        self._cpu = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self._gpu: Any | None = None
        self._gpu_ids: np.ndarray | None = None

    @classmethod
    def load(cls, path: Path, dimension: int) -> VectorIndex:
        index = _faiss().read_index(str(path))
        if index.d != dimension:
            raise ValueError(f"{path}: vectors have dimension {index.d}, expected {dimension}")
        return cls(dimension, index)

    def save(self, path: Path) -> None:
        """Write atomically: a temporary file, flushed, then renamed into place."""
        temporary = path.with_name(path.name + ".tmp")
        _faiss().write_index(self._cpu, str(temporary))
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)

    def __len__(self) -> int:
        return int(self._cpu.ntotal)

    def ids(self) -> np.ndarray:
        return _faiss().vector_to_array(self._cpu.id_map).astype(np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape[1] != self.dimension:
            raise ValueError(f"vector dimension {vectors.shape[1]} != index {self.dimension}")
        self._cpu.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
        self._gpu = None

    def remove(self, ids: np.ndarray) -> None:
        if len(ids) == 0:
            return
        removed = self._cpu.remove_ids(np.asarray(ids, dtype=np.int64))
        if removed != len(ids):
            log.warning("asked to remove %d vectors, %d were present", len(ids), removed)
        self._gpu = None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and ids, both shaped (queries, k); missing hits have id -1."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(1, min(k, len(self) or 1))
        gpu = self._gpu_index()
        if gpu is None:
            scores, ids = self._cpu.search(queries, k)
            return scores, ids
        scores, positions = gpu.search(queries, k)
        assert self._gpu_ids is not None
        ids = np.where(positions >= 0, self._gpu_ids[np.maximum(positions, 0)], -1)
        return scores, ids

    def _gpu_index(self) -> Any | None:
        faiss = _faiss()
        if self._gpu is not None or len(self) == 0 or faiss.get_num_gpus() == 0:
            return self._gpu
        try:
            flat = faiss.downcast_index(self._cpu.index)
            self._gpu = faiss.index_cpu_to_all_gpus(flat)
            self._gpu_ids = self.ids()
            log.info("searching %d vectors on %d GPU(s)", len(self), faiss.get_num_gpus())
        except Exception as error:  # noqa: BLE001 - fall back to the CPU, say why
            log.warning("GPU search unavailable, using the CPU: %s", error)
            self._gpu = None
        return self._gpu

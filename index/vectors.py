"""FAISS vectors keyed by chunk row id; searched on GPU when one is present.

The index type follows the collection's size (``kind="auto"``): an exact flat
index while it is small, an inverted file with 8-bit scalar quantization
(IVF-SQ8) above ``FLAT_LIMIT`` vectors. Measurements behind the numbers are in
``bench/search.py`` and its results file.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..files import atomic_path

log = logging.getLogger(__name__)

IndexKind = Literal["auto", "flat", "ivf-sq8"]
KINDS: tuple[IndexKind, ...] = ("auto", "flat", "ivf-sq8")
Batches = Iterable[tuple[np.ndarray, np.ndarray]]
"""(ids, vectors) pairs; ids int64 shaped (n,), vectors float32 shaped (n, dimension)."""
VectorSource = Callable[[], Batches]
"""Streams every vector the index should hold, in batches (e.g. from SQLite)."""

# Exact search costs ~0.11 ms per 1k 384-d vectors on the 2-core target: 50k
# vectors answer in ~5 ms, half the 10 ms budget, with no training and no loss.
FLAT_LIMIT = 50_000
# IVF lists ≈ 2·sqrt(n): at 1M, 2000 lists search in ~0.5 ms (nprobe 32) with the
# same recall as 4000, and build in ~1 min instead of ~2.5 (assigning every
# vector to a list dominates). ~40 training points per list is what k-means
# needs (faiss warns below 39).
LISTS_PER_SQRT = 2
TRAINING_POINTS_PER_LIST = 40
# Lists probed per query. On clustered data recall@10 reaches the SQ8 ceiling
# (~0.97) by 8 lists; 32 leaves margin for less clustered real embeddings and
# still scans ~1.6% of a 1M collection.
NPROBE = 32
TRAINING_SEED = 1234
_BATCH = 16_384


@dataclass(frozen=True)
class Layout:
    """What an index should look like: its type and, for IVF, its list count."""

    kind: Literal["flat", "ivf-sq8"]
    nlist: int = 0

    @property
    def nprobe(self) -> int:
        return min(NPROBE, self.nlist)

    def __str__(self) -> str:
        return (
            self.kind if self.kind == "flat" else f"ivf-sq8 nlist={self.nlist} nprobe={self.nprobe}"
        )

    @property
    def training_size(self) -> int:
        return TRAINING_POINTS_PER_LIST * self.nlist


def plan_layout(count: int, kind: IndexKind = "auto", flat_limit: int = FLAT_LIMIT) -> Layout:
    """The layout kbqa builds for ``count`` vectors."""
    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}; expected one of {KINDS}")
    if kind == "flat" or (kind == "auto" and count <= flat_limit):
        return Layout("flat")
    wanted = round(LISTS_PER_SQRT * math.sqrt(max(count, 1)))
    # Small forced-IVF collections: keep enough points per list to train on.
    return Layout("ivf-sq8", max(1, min(wanted, count // TRAINING_POINTS_PER_LIST)))


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError("faiss is missing: pip install faiss-cpu (or faiss-gpu)") from error
    return faiss


class VectorIndex:
    """Inner-product search over normalized vectors (cosine similarity).

    The CPU index is the one that is mutated and saved: ``IndexIDMap2`` over an
    inner-product ``IndexFlat`` (factory ``"IDMap2,Flat"``, exact), or
    ``IndexIVFScalarQuantizer`` (``"IVF<nlist>,SQ8"``, approximate; holds ids
    itself). With a GPU, a copy is searched there; it is dropped on every
    change.

    Args:
        dimension: vector length.
        kind: ``"auto"`` picks the layout by size and re-trains as the size
            changes; ``"flat"`` / ``"ivf-sq8"`` force a type (benchmarks, tests).
        flat_limit: above this many vectors ``auto`` switches to IVF-SQ8.
        source: streams the exact vectors to re-train from, reflecting the state
            after each ``update``. Without one the index re-trains from its own
            contents (8-bit approximations once it is IVF-SQ8).
        index: an existing faiss index to wrap (``load`` passes one).
    """

    def __init__(
        self,
        dimension: int,
        kind: IndexKind = "auto",
        flat_limit: int = FLAT_LIMIT,
        source: VectorSource | None = None,
        index: Any | None = None,
    ) -> None:
        plan_layout(0, kind)  # validates kind
        self.dimension = dimension
        self.kind: IndexKind = kind
        self.flat_limit = flat_limit
        self.source = source
        # Empty starts flat whatever the kind: IVF cannot train on nothing.
        self._cpu = (
            index if index is not None else _empty_index(Layout("flat"), dimension, _nothing)
        )
        self.layout = _layout_of(self._cpu)
        if self.layout.nlist:  # nprobe is serialized, but the rule, not an old file, decides it
            self._cpu.nprobe = self.layout.nprobe
        self._gpu: Any | None = None
        self._gpu_ids: np.ndarray | None = None

    @classmethod
    def build(
        cls,
        dimension: int,
        count: int,
        batches: VectorSource,
        kind: IndexKind = "auto",
        flat_limit: int = FLAT_LIMIT,
        source: VectorSource | None = None,
    ) -> VectorIndex:
        """An index of the ``count`` vectors that ``batches`` streams, laid out for that size.

        ``batches`` is called twice for IVF (a training sample, then the adds),
        so it never needs all vectors in memory at once.
        """
        index = _built_index(plan_layout(count, kind, flat_limit), dimension, count, batches)
        return cls(dimension, kind, flat_limit, source, index)

    @classmethod
    def load(
        cls,
        path: Path,
        dimension: int,
        kind: IndexKind = "auto",
        flat_limit: int = FLAT_LIMIT,
        source: VectorSource | None = None,
    ) -> VectorIndex:
        index = _faiss().read_index(str(path))
        if index.d != dimension:
            raise ValueError(f"{path}: vectors have dimension {index.d}, expected {dimension}")
        return cls(dimension, kind, flat_limit, source, index)

    def save(self, path: Path) -> None:
        """Write atomically: ``<name>.tmp``, flushed, then renamed into place."""
        with atomic_path(path) as temporary:
            _faiss().write_index(self._cpu, str(temporary))

    def __len__(self) -> int:
        return int(self._cpu.ntotal)

    @property
    def nprobe(self) -> int:
        """Lists searched per query (0 for the flat index)."""
        return int(_faiss().extract_index_ivf(self._cpu).nprobe) if self.layout.nlist else 0

    @property
    def exact(self) -> bool:
        return self.layout.kind == "flat"

    def ids(self) -> np.ndarray:
        faiss = _faiss()
        if self.layout.kind == "flat":
            return faiss.vector_to_array(self._cpu.id_map).astype(np.int64)
        lists = self._cpu.invlists
        parts = [_list_ids(lists, number) for number in range(lists.nlist)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.update(np.zeros(0, dtype=np.int64), ids, vectors)

    def remove(self, ids: np.ndarray) -> None:
        self.update(ids, np.zeros(0, dtype=np.int64), np.zeros((0, self.dimension), "f4"))

    def update(self, remove_ids: np.ndarray, add_ids: np.ndarray, vectors: np.ndarray) -> None:
        """Remove, then add; re-train afterwards if the new size calls for another layout."""
        if len(remove_ids) == 0 and len(add_ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(add_ids) and vectors.shape[1] != self.dimension:
            raise ValueError(f"vector dimension {vectors.shape[1]} != index {self.dimension}")
        if len(remove_ids):
            removed = self._cpu.remove_ids(np.asarray(remove_ids, dtype=np.int64))
            if removed != len(remove_ids):
                log.warning("asked to remove %d vectors, %d were present", len(remove_ids), removed)
        if len(add_ids):
            self._cpu.add_with_ids(vectors, np.asarray(add_ids, dtype=np.int64))
        self._gpu = None
        if self.needs_new_layout():
            self.relayout()

    def needs_new_layout(self) -> bool:
        """True when the size has moved far enough from the trained one to re-train.

        Flat → IVF above ``flat_limit``; IVF → flat below half of it (the gap
        stops flapping); IVF with 2× more lists wanted (4× the trained size).
        """
        count, current = len(self), self.layout
        if self.kind == "flat":
            return current.kind != "flat"
        if self.kind == "auto" and current.kind == "flat":
            return count > self.flat_limit
        if self.kind == "auto" and count < self.flat_limit // 2:
            return True
        return current.kind != "ivf-sq8" or plan_layout(count, "ivf-sq8").nlist >= 2 * current.nlist

    def relayout(self) -> None:
        """Rebuild with the layout planned for the current size."""
        layout = plan_layout(len(self), self.kind, self.flat_limit)
        batches = self.source or self._stored_batches
        log.info("re-building %d vectors as %s", len(self), layout)
        self._cpu = _built_index(layout, self.dimension, len(self), batches)
        self.layout = layout
        self._gpu = None

    def search(
        self, queries: np.ndarray, k: int, among: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores and ids, both shaped (queries, k); missing hits have id -1.

        IVF-SQ8 scores are approximate (8-bit codes); callers needing exact
        cosines re-score from the original vectors. ``among``: search only these
        ids (a scope), on the CPU index (FAISS selectors do not run on a GPU).
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(1, min(k, len(self) or 1))
        if among is not None:
            return self._search_among(queries, k, np.asarray(among, dtype=np.int64))
        gpu = self._gpu_index()
        if gpu is None:
            scores, ids = self._cpu.search(queries, k)
            return scores, ids
        scores, found = gpu.search(queries, k)
        if self._gpu_ids is None:  # IVF on the GPU keeps the ids itself
            return scores, found
        ids = np.where(found >= 0, self._gpu_ids[np.maximum(found, 0)], -1)
        return scores, ids

    def _search_among(
        self, queries: np.ndarray, k: int, among: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Search restricted to ``among`` with a FAISS ID selector.

        Flat: exact. IVF: the lists probed grow with the share of the index outside
        the scope (``nprobe · total / len(among)``, so about as many scope vectors are
        scored as an unscoped search scores), and a query still short of ``k``
        results is searched again over every list.
        """
        faiss = _faiss()
        k = max(1, min(k, len(among)))
        selector = faiss.IDSelectorBatch(among)
        if self.layout.kind == "flat":
            return self._cpu.search(queries, k, params=faiss.SearchParameters(sel=selector))
        nlist = self.layout.nlist
        share = len(self) / max(1, len(among))
        nprobe = min(nlist, max(self.layout.nprobe, math.ceil(self.layout.nprobe * share)))
        params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
        scores, ids = self._cpu.search(queries, k, params=params)
        short = (ids < 0).any(axis=1)
        if short.any() and nprobe < nlist:
            every = faiss.SearchParametersIVF(sel=selector, nprobe=nlist)
            scores[short], ids[short] = self._cpu.search(queries[short], k, params=every)
        return scores, ids

    def _stored_batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The vectors this index holds: exact for flat, decoded 8-bit codes for IVF-SQ8."""
        faiss = _faiss()
        if self.layout.kind == "flat":
            flat = faiss.downcast_index(self._cpu.index)
            ids = self.ids()
            data = faiss.rev_swig_ptr(flat.get_xb(), len(ids) * self.dimension)
            data = data.reshape(len(ids), self.dimension)
            for start in range(0, len(ids), _BATCH):
                yield ids[start : start + _BATCH], data[start : start + _BATCH].copy()
            return
        ivf = self._cpu
        centroids = ivf.quantizer.reconstruct_n(0, ivf.nlist)
        for number in range(ivf.nlist):
            size = ivf.invlists.list_size(number)
            if size == 0:
                continue
            codes = faiss.rev_swig_ptr(ivf.invlists.get_codes(number), size * ivf.code_size)
            decoded = ivf.sq.decode(codes.reshape(size, ivf.code_size))
            if ivf.by_residual:
                decoded += centroids[number]
            yield _list_ids(ivf.invlists, number), decoded

    def _gpu_index(self) -> Any | None:
        faiss = _faiss()
        if self._gpu is not None or len(self) == 0 or faiss.get_num_gpus() == 0:
            return self._gpu
        try:
            if self.layout.kind == "flat":
                flat = faiss.downcast_index(self._cpu.index)
                self._gpu = faiss.index_cpu_to_all_gpus(flat)
                self._gpu_ids = self.ids()
            else:
                self._gpu = faiss.index_cpu_to_all_gpus(self._cpu)
                faiss.GpuParameterSpace().set_index_parameter(
                    self._gpu, "nprobe", self.layout.nprobe
                )
                self._gpu_ids = None
            log.info("searching %d vectors on %d GPU(s)", len(self), faiss.get_num_gpus())
        except Exception as error:  # noqa: BLE001 - fall back to the CPU, say why
            log.warning("GPU search unavailable, using the CPU: %s", error)
            self._gpu = None
        return self._gpu


def _nothing() -> Batches:
    return ()


def _layout_of(index: Any) -> Layout:
    """The layout of a faiss index kbqa made; anything else is refused."""
    faiss = _faiss()
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexIDMap2):
        # IndexFlat with the inner-product metric: the factory's "Flat", or the
        # IndexFlatIP that older kbqa built and that faiss reads files back as.
        inner = faiss.downcast_index(index.index)
        if isinstance(inner, faiss.IndexFlat) and inner.metric_type == faiss.METRIC_INNER_PRODUCT:
            return Layout("flat")
    if (
        isinstance(index, faiss.IndexIVFScalarQuantizer)
        and index.sq.qtype == faiss.ScalarQuantizer.QT_8bit
        and index.metric_type == faiss.METRIC_INNER_PRODUCT
    ):
        return Layout("ivf-sq8", int(index.nlist))
    raise ValueError(f"unexpected faiss index type {type(index).__name__}")


def _list_ids(lists: Any, number: int) -> np.ndarray:
    size = lists.list_size(number)
    if size == 0:
        return np.zeros(0, dtype=np.int64)
    return _faiss().rev_swig_ptr(lists.get_ids(number), size).astype(np.int64)


def _built_index(layout: Layout, dimension: int, count: int, batches: VectorSource) -> Any:
    index = _empty_index(layout, dimension, lambda: _training_sample(batches, count, layout))
    for ids, vectors in batches():
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
    return index


def _empty_index(layout: Layout, dimension: int, sample: Callable[[], Batches]) -> Any:
    """A new index of that layout; IVF is trained on the vectors ``sample`` gives."""
    faiss = _faiss()
    if layout.kind == "flat":
        return faiss.index_factory(dimension, "IDMap2,Flat", faiss.METRIC_INNER_PRODUCT)
    # Already the concrete IndexIVFScalarQuantizer (it owns its coarse quantizer).
    # Do not downcast_index it: that wrapper does not own the index it points at.
    index = faiss.index_factory(dimension, f"IVF{layout.nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = TRAINING_SEED
    training = np.concatenate([vectors for _, vectors in sample()] or [np.zeros((0, dimension))])
    index.train(np.ascontiguousarray(training, dtype=np.float32))
    index.nprobe = layout.nprobe
    return index


def _training_sample(batches: VectorSource, count: int, layout: Layout) -> Batches:
    """A seeded uniform sample of ``layout.training_size`` of the ``count`` streamed vectors."""
    size = min(count, layout.training_size)
    wanted = np.sort(np.random.default_rng(TRAINING_SEED).choice(count, size, replace=False))
    offset = 0
    for ids, vectors in batches():
        lo, hi = np.searchsorted(wanted, [offset, offset + len(ids)])
        if hi > lo:
            rows = wanted[lo:hi] - offset
            yield ids[rows], np.asarray(vectors)[rows]
        offset += len(ids)

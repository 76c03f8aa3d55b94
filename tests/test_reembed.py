"""Moving a knowledge base to another embedding model (fake models; fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fakes import FakeEmbedder, make_kb

from kbqa.errors import KnowledgeBaseError
from kbqa.index.manifest import Manifest
from kbqa.index.reembed import needs_reembedding, reembed
from kbqa.index.store import KnowledgeBaseStore
from kbqa.qa.retrieval import make_retriever


class OtherEmbedder(FakeEmbedder):
    """Another model: another name, another dimension."""

    name = "fake-hash-32"
    dimension = 32

    def embed_passages(self, texts):
        return np.ascontiguousarray(super().embed_passages(texts)[:, :32])


def test_every_chunk_moves_to_the_new_model_and_the_old_folder_goes(tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    kb = make_kb(folder)
    kb.add_texts(
        [("a.txt", "Cats purr when content. " * 30), ("b.txt", "Dogs bark at night. " * 30)]
    )
    (folder / "originals").mkdir()
    (folder / "originals" / "x.pdf").write_bytes(b"%PDF")
    before = {
        r.doc_id: [c.text for c in kb._require_store().chunks_of(r.doc_id)] for r in kb.documents()
    }
    kb.close()

    other = OtherEmbedder()
    assert needs_reembedding(folder, other) and not needs_reembedding(folder, FakeEmbedder())
    steps: list[tuple[int, int]] = []
    count = reembed(
        folder, other, lambda done, total: steps.append((done, total)), carry=("originals",)
    )

    assert count == sum(map(len, before.values())) == steps[-1][0] == steps[-1][1]
    manifest = Manifest.read(folder)
    assert (manifest.embedding_model, manifest.embedding_dimension) == ("fake-hash-32", 32)
    store = KnowledgeBaseStore.open(folder)
    after = {r.doc_id: [c.text for c in store.chunks_of(r.doc_id)] for r in store.documents()}
    assert after == before
    assert store.vector_count() == count
    hits = make_retriever("hybrid", store, other).retrieve(["dogs bark"], 1)[0]
    assert "Dogs" in hits[0].chunk.text
    store.close()
    assert (folder / "originals" / "x.pdf").read_bytes() == b"%PDF"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb"]


def test_a_model_reading_fewer_tokens_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    kb = make_kb(folder)
    kb.add_texts([("a.txt", "Cats purr when content. " * 30)])
    kb.close()
    short = OtherEmbedder()
    short.max_tokens = 20
    with pytest.raises(KnowledgeBaseError, match="ingest the files again"):
        reembed(folder, short)
    assert Manifest.read(folder).embedding_model == FakeEmbedder.name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb"]

"""``KnowledgeBase.as_retriever``: a LangChain retriever, and the LCEL example in docs/api.md."""

from __future__ import annotations

import re
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, sample_pdf
from fakes import ScriptedGenerator, make_kb
from langchain_core.retrievers import BaseRetriever

from kbqa.qa.knowledge_base import KnowledgeBase

MODELS_MD = (
    "# Models\n\nGPT-3 from OpenAI has 175 billion parameters.\n\n"
    "# Other\n\nJurassic-1 from AI21 Labs has 178 billion parameters.\n"
)


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    kb = make_kb(tmp_path / "kb", ScriptedGenerator(["unused"]))
    kb.add_texts([("models.md", MODELS_MD), ("pasta.txt", "Boil the pasta for nine minutes.")])
    return kb


def test_documents_carry_source_page_offsets_and_score(kb: KnowledgeBase) -> None:
    retriever = kb.as_retriever(k=2)
    assert isinstance(retriever, BaseRetriever)
    documents = retriever.invoke("How many parameters does GPT-3 have?")
    assert len(documents) == 2
    best = documents[0]
    assert "GPT-3" in best.page_content
    meta = best.metadata
    assert meta["source"] == "text:models.md" and meta["name"] == "models.md"
    assert meta["page"] is None and MODELS_MD[meta["start"] : meta["end"]] == best.page_content
    assert 0 < meta["score"] <= 1 and meta["document_id"] and meta["chunk_id"] == best.id
    hits = kb.search("How many parameters does GPT-3 have?", 2)
    assert [d.metadata["chunk_id"] for d in documents] == [h.chunk.id for h in hits]
    assert len(kb.as_retriever(k=1).invoke("pasta")) == 1
    assert len(kb.as_retriever().invoke("pasta")) == 3  # the knowledge base's top_k (all 3)


def test_pdf_passages_carry_their_page(tmp_path: Path) -> None:
    kb = make_kb(tmp_path / "kb", ScriptedGenerator(["unused"]))
    kb.add([sample_pdf("text/crazyones.pdf")])
    [document] = kb.as_retriever(k=1).invoke("the crazy ones, the misfits, the rebels")
    assert document.metadata["page"] == 1 and document.metadata["name"] == "crazyones.pdf"
    assert document.metadata["source"].endswith("crazyones.pdf")


def test_empty_knowledge_base_retrieves_nothing(tmp_path: Path) -> None:
    assert make_kb(tmp_path / "empty").as_retriever(k=3).invoke("anything") == []


def test_lcel_example_in_the_docs_runs(kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch) -> None:
    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- example: langchain -->\n```python\n(.*?)\n```", page, re.S)
    assert found, "docs/api.md has no LangChain example"
    # `KnowledgeBase.open()` in the example opens this test's knowledge base.
    monkeypatch.setattr(KnowledgeBase, "open", classmethod(lambda cls, *a, **k: kb))
    printed = StringIO()
    with redirect_stdout(printed):
        exec(compile(found.group(1), "docs/api.md:langchain", "exec"), {})
    text = printed.getvalue()
    assert text.startswith("[1] (models.md, p. None) ")
    assert "175 billion" in text and "[3]" in text
    assert text.rstrip().endswith("Question: How many parameters does GPT-3 have?")


@pytest.mark.slow
def test_real_embedder_ranks_the_answering_passage_first(
    tmp_path: Path, real_embedder: Any
) -> None:
    kb = make_kb(tmp_path / "kb", ScriptedGenerator(["unused"]), embedder=real_embedder)
    kb.add_texts([("models.md", MODELS_MD), ("pasta.txt", "Boil the pasta for nine minutes.")])
    [best] = kb.as_retriever(k=1).invoke("How long should pasta cook?")
    assert best.metadata["name"] == "pasta.txt" and best.metadata["score"] > 0.3

"""Scoped questions: a Scope resolves to documents before retrieval searches their chunks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fakes import make_kb
from test_vector_index import _store_with_chunks

from kbqa.index.scope import MAX_ENTRIES, Scope, ScopeError, resolve, valid_tag
from kbqa.ingest.types import DocumentRecord

TARSIA = "La capital de Freedonia es Tarsia. Tarsia tiene un puerto antiguo."
MOLVANIA = "La capital de Freedonia es Molvania. Molvania está junto a un lago."
QUESTION = "¿Cuál es la capital de Freedonia?"


def _record(doc_id: str, source: str, tags: tuple[str, ...] = ()) -> DocumentRecord:
    name = source.rsplit("/", 1)[-1]
    return DocumentRecord(doc_id, source, name, "text", 1, 1, 1, "now", tags=tags)


RECORDS = [
    _record("a1b2c3d4e5" * 6, "/docs/contrato-2024.pdf", ("legal",)),
    _record("ffee00112233" * 5, "/docs/notas.md", ("Personal",)),
    _record("0123456789" * 6, "/docs/manual.pdf"),
]


@pytest.mark.parametrize(
    "scope",
    [
        lambda: Scope(documents=("x",) * (MAX_ENTRIES + 1)),
        lambda: Scope(documents=("a" * 201,)),
        lambda: Scope(documents=("evil\x1b[2J",)),
        lambda: Scope(documents=("   ",)),
        lambda: Scope(documents="contrato.pdf"),  # type: ignore[arg-type]
        lambda: Scope(tags=("a/b",)),
        lambda: Scope(tags=("t" * 41,)),
    ],
)
def test_scope_entries_have_budgets_and_a_shape(scope) -> None:
    with pytest.raises(ScopeError):
        scope()


def test_tags_are_words_spaces_dots_and_dashes() -> None:
    assert valid_tag("  contratos 2024-Q1.v2 ") == "contratos 2024-Q1.v2"
    assert valid_tag("año") == "año"
    for bad in ("", "-start", "semi;colon", "new\nline", "<b>"):
        with pytest.raises(ScopeError):
            valid_tag(bad)


def test_resolve_by_name_path_id_prefix_glob_and_tag() -> None:
    def names(scope: Scope) -> list[str]:
        return [r.name for r in resolve(scope, RECORDS)]

    assert names(Scope()) == ["contrato-2024.pdf", "notas.md", "manual.pdf"]
    assert names(Scope(documents=("notas.md",))) == ["notas.md"]
    assert names(Scope(documents=("/docs/manual.pdf",))) == ["manual.pdf"]
    assert names(Scope(documents=("a1b2c3",))) == ["contrato-2024.pdf"]
    assert names(Scope(documents=("*.pdf",))) == ["contrato-2024.pdf", "manual.pdf"]
    assert names(Scope(tags=("personal",))) == ["notas.md"]  # tags ignore case
    assert names(Scope(("manual.pdf",), ("legal",))) == ["contrato-2024.pdf", "manual.pdf"]


def test_an_entry_that_matches_nothing_is_named() -> None:
    with pytest.raises(ScopeError, match="contract.pdf"):
        resolve(Scope(documents=("notas.md", "contract.pdf")), RECORDS)
    with pytest.raises(ScopeError, match="finanzas"):
        resolve(Scope(tags=("finanzas",)), RECORDS)
    with pytest.raises(ScopeError):  # a short hex string is not taken for an id
        resolve(Scope(documents=("a1b2",)), RECORDS)


def test_describe_says_what_the_answer_may_use() -> None:
    assert Scope().describe() == "all documents"
    assert Scope(("a.pdf", "b.md"), ("legal",)).describe() == "documents a.pdf, b.md; tag legal"


@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
def test_a_scoped_search_returns_k_passages_of_the_scope_however_far(
    tmp_path: Path, mode: str
) -> None:
    kb = make_kb(tmp_path / "kb", retrieval=mode)
    near = [(f"near{i}.txt", f"capital Freedonia capital number {i}") for i in range(12)]
    far = [(f"far{i}.txt", f"capital de un sitio lejano, parte {i}") for i in range(4)]
    kb.add_texts(near + far)
    everything = kb.search("capital Freedonia", 4)
    assert all(h.chunk.source.startswith("text:near") for h in everything)
    scoped = kb.search("capital Freedonia", 4, scope=Scope(documents=("far*.txt",)))
    assert len(scoped) == 4  # never the global top-k filtered down to nothing
    assert {h.chunk.source for h in scoped} == {f"text:far{i}.txt" for i in range(4)}


def _brute_force(store, query: np.ndarray, doc_ids: set[str], k: int) -> list[str]:
    rows = store._db.execute("SELECT chunk_id, doc_id, vector FROM chunks").fetchall()
    scored = [
        (float(np.frombuffer(v, dtype=np.float32) @ query), r) for r, d, v in rows if d in doc_ids
    ]
    return [r for _, r in sorted(scored, key=lambda item: (-item[0], item[1]))[:k]]


@pytest.mark.parametrize("exact_limit", [20_000, 0])  # stored vectors; FAISS ID selector
def test_scoped_dense_search_on_ivf_matches_brute_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exact_limit: int
) -> None:
    import kbqa.index.store as store_module
    from kbqa.qa.retrieval import dense_search

    monkeypatch.setattr(store_module, "EXACT_SCOPE_ROWS", exact_limit)
    store = _store_with_chunks(tmp_path / "kb", documents=6, per_document=300, flat_limit=1_000)
    try:
        assert not store.vectors_are_exact()
        within = store.rows_of(["doc2", "doc5"])
        assert len(within.row_ids) == 600
        rows = store._db.execute("SELECT vector FROM chunks ORDER BY row_id LIMIT 8").fetchall()
        queries = np.stack([np.frombuffer(r[0], dtype=np.float32) for r in rows])
        found = dense_search(store, queries, 5, within)
        for query, hits in zip(queries, found, strict=True):
            expected = _brute_force(store, query, {"doc2", "doc5"}, 5)
            assert sorted(h.chunk.id for h in hits) == sorted(expected)
    finally:
        store.close()


def test_tags_given_at_ingest_changed_kept_on_update_and_dropped_on_remove(
    tmp_path: Path,
) -> None:
    kb = make_kb(tmp_path / "kb")
    with pytest.raises(ScopeError):
        kb.add([tmp_path], tags=["bad/tag"])  # refused before anything is read
    assert kb.documents() == []
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(TARSIA)
    (folder / "b.txt").write_text(MOLVANIA)
    kb.add([folder / "a.txt"], tags=["legal", "2024"])
    kb.add([folder / "b.txt"])
    assert [r.name for r in kb.documents(tag="LEGAL")] == ["a.txt"]
    kb.tag("b.txt", ["legal"])
    kb.untag("a.txt", ["2024"])
    assert kb.tags() == {"legal": 2}
    (folder / "a.txt").write_text(TARSIA + " Tiene dos ríos.")
    assert kb.add([folder / "a.txt"]).count("updated") == 1
    assert kb.find_document("a.txt").tags == ("legal",)  # the file keeps its tags
    kb.remove("a.txt")
    kb.add([folder / "a.txt"])
    assert kb.find_document("a.txt").tags == ()  # removed means forgotten
    with pytest.raises(ScopeError, match="at most"):
        kb.tag("b.txt", [f"t{i}" for i in range(60)])


def test_a_scoped_question_answers_from_the_chosen_document_only(tmp_path: Path) -> None:
    kb = make_kb(tmp_path / "kb")
    kb.add_texts([("tarsia.txt", TARSIA), ("molvania.txt", MOLVANIA)])
    for name, city, other in (
        ("tarsia.txt", "Tarsia", "Molvania"),
        ("molvania.txt", "Molvania", "Tarsia"),
    ):
        answer = kb.ask(QUESTION, scope=Scope(documents=(name,)))
        assert city in answer.text and other not in answer.text
        assert {p.source for p in answer.passages} == {f"text:{name}"}
    with pytest.raises(ScopeError, match="nowhere.txt"):
        kb.stream(QUESTION, scope=Scope(documents=("nowhere.txt",)))
    retriever = kb.as_retriever(k=2, scope=Scope(documents=("molvania.txt",)))
    assert {d.metadata["name"] for d in retriever.invoke(QUESTION)} == {"molvania.txt"}


@pytest.mark.slow
def test_scoped_questions_with_the_real_embedder(tmp_path: Path, default_embedder) -> None:
    kb = make_kb(tmp_path / "kb", embedder=default_embedder)
    kb.add_texts([("tarsia.txt", TARSIA), ("molvania.txt", MOLVANIA)], scheme="upload")
    kb.tag("molvania.txt", ["atlas"])
    chosen = kb.ask(QUESTION, scope=Scope(documents=("tarsia.txt",)))
    assert not chosen.refused and "Tarsia" in chosen.text and "Molvania" not in chosen.text
    tagged = kb.ask(QUESTION, scope=Scope(tags=("atlas",)))
    assert not tagged.refused and "Molvania" in tagged.text and "Tarsia" not in tagged.text

"""Ingesting into a knowledge base: batches, updates, removal, uploads, persistence."""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, sample_pdf, shared_data
from fakes import FakeEmbedder, make_kb

from kbqa.errors import KbqaError, KnowledgeBaseError
from kbqa.qa.retrieval import dense_search

# Blank pages: OCR reads them and finds nothing (tests/test_ocr.py: without Tesseract).
NO_TEXT = "no text found (blank pages: no text layer, and OCR read none)"

# Every file under ../shared/data/pdfs that cannot be ingested without help, and why
# (tests/data/pdfs keeps a few of them).
EXPECTED_FAILURES = {
    "broken/blank.pdf": NO_TEXT,
    "broken/empty.pdf": "empty file",
    "broken/image-only-git.pdf": NO_TEXT,
    "broken/invalid.pdf": "broken or truncated PDF",
    "broken/no_contents.pdf": NO_TEXT,
    "broken/truncated.pdf": "broken or truncated PDF",
    "encrypted/crazyones-encrypted-256.pdf": "encrypted: password needed",
    "encrypted/encrypted-file.pdf": "encrypted: password needed",
    "encrypted/libreoffice-writer-password.pdf": "encrypted: password needed",
    "encrypted/r6-user-password.pdf": "encrypted: password needed",
}
SHARED_ADDED = {
    "encrypted/r2-empty-password.pdf",
    "scanned/c03-29.pdf",  # scans: read by OCR
    "scanned/francais.pdf",
    "scanned/linn.pdf",
    "scanned/skew.pdf",
    "scanned/linn.txt",
    "scanned/multipage.pdf",
    "text/GeoBase_NHNC1_Data_Model_UML_EN.pdf",
    "text/Seige_of_Vicksburg_Sample_OCR.pdf",
    "text/crazyones.pdf",
    "text/example.pdf",
    "text/multilang.pdf",
    "text/pdflatex-outline.pdf",
    "text/side-by-side-subfig.pdf",
}


class CountingEmbedder(FakeEmbedder):
    """The fake embedder, counting the passages it was asked to embed."""

    def __init__(self) -> None:
        self.calls = 0
        self.passages = 0

    def embed_passages(self, texts):
        self.calls += 1
        self.passages += len(texts)
        return super().embed_passages(texts)


def by_name(report):
    return {Path(o.source).name: o for o in report.outcomes}


def relative(source: str, root: Path) -> str:
    return Path(source).relative_to(root).as_posix()


def sources_found(kb, query: str, k: int = 50) -> set[str]:
    return {hit.chunk.source for hit in kb.search(query, k)}


def assert_index_consistent(kb) -> None:
    store = kb._store
    assert store.vector_count() == store.chunk_count()
    assert store.chunk_count() == sum(d.chunks for d in kb.documents())
    for record in kb.documents():
        assert len(store.chunks_of(record.doc_id)) == record.chunks


def build_docx(text: str) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Docx heading", level=1)
    document.add_paragraph(text)
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text = "cell one"
    table.cell(0, 1).text = "cell two"
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def write_every_format(folder: Path) -> dict[str, str]:
    """One file per format, each with its own distinctive word; returns name -> word."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sample_pdf("text/crazyones.pdf"), folder / "crazyones.pdf")
    (folder / "report.docx").write_bytes(build_docx("The quarterly report mentions wombats."))
    (folder / "page.html").write_text(
        "<html><body><h1>Web page</h1><p>Penguins live in the south.</p>"
        "<script>var x = 'scripttoken';</script></body></html>",
        encoding="utf-8",
    )
    (folder / "notes.md").write_text(
        "# Notes\n\nThe narwhal has a long tusk.\n\n## More\n\nNothing else here.\n",
        encoding="utf-8",
    )
    (folder / "plain.txt").write_text("A capybara is a large rodent.\n", encoding="utf-8")
    return {
        "crazyones.pdf": "misfits",
        "report.docx": "wombats",
        "page.html": "penguins",
        "notes.md": "narwhal",
        "plain.txt": "capybara",
    }


# -- a folder of every format ---------------------------------------------------


def test_folder_with_every_format_is_ingested_and_searchable(tmp_path):
    words = write_every_format(tmp_path / "docs")
    kb = make_kb(tmp_path / "kb")
    report = kb.add([tmp_path / "docs"])

    outcomes = by_name(report)
    assert set(outcomes) == set(words)
    assert {name: o.status for name, o in outcomes.items()} == dict.fromkeys(words, "added")
    assert report.failed == []
    assert report.count("added") == 5

    records = {r.name: r for r in kb.documents()}
    assert set(records) == set(words)
    assert {n: r.format for n, r in records.items()} == {
        "crazyones.pdf": "pdf",
        "report.docx": "docx",
        "page.html": "html",
        "notes.md": "markdown",
        "plain.txt": "text",
    }
    for name, record in records.items():
        assert record.chunks >= 1
        assert record.pages == 1
        assert record.chunks == outcomes[name].chunks
        assert record.source == str((tmp_path / "docs" / name).resolve())
        assert record.doc_id == hashlib.sha256((tmp_path / "docs" / name).read_bytes()).hexdigest()
    assert_index_consistent(kb)

    for name, word in words.items():
        hits = kb.search(word)
        assert hits, word
        assert hits[0].chunk.source.endswith("/" + name), (word, hits[0].chunk.source)
        assert word.lower() in hits[0].chunk.text.lower()
    assert kb.search("crazy ones")[0].chunk.page == 1
    assert all("scripttoken" not in h.chunk.text for h in kb.search("scripttoken", 50))


# -- a real folder of good and bad PDFs -----------------------------------------


@pytest.mark.parametrize("collection", ["kept", "shared"])
def test_batch_over_real_pdf_folder_reports_each_bad_file_and_goes_on(tmp_path, collection):
    """The few PDFs kept in tests/data, and the whole shared collection when it is there."""
    root = FIXTURES / "pdfs" if collection == "kept" else shared_data("pdfs")
    files = sorted(relative(str(p), root) for p in root.rglob("*") if p.is_file())
    if collection == "shared":
        assert set(files) == SHARED_ADDED | set(EXPECTED_FAILURES)
    expected_failures = {f: EXPECTED_FAILURES[f] for f in files if f in EXPECTED_FAILURES}
    expected_added = set(files) - set(expected_failures)
    assert expected_added and expected_failures
    embedder = CountingEmbedder()
    kb = make_kb(tmp_path / "kb", embedder=embedder)
    report = kb.add([root])

    assert sorted(relative(o.source, root) for o in report.outcomes) == files  # one outcome each
    failed = {relative(o.source, root): o.reason for o in report.failed}
    assert set(failed) == set(expected_failures)
    for name, reason in failed.items():
        assert reason is not None and reason.startswith(expected_failures[name]), name
    added = {relative(o.source, root) for o in report.outcomes if o.status == "added"}
    assert added == expected_added
    assert report.count("failed") == len(expected_failures)

    stored = {relative(r.source, root) for r in kb.documents()}
    assert stored == expected_added
    if collection == "shared":
        multipage = by_name(report)["multipage.pdf"]
        assert multipage.pages == 6 and multipage.chunks >= 1 and multipage.warnings == ()
        (record,) = [r for r in kb.documents() if r.name == "multipage.pdf"]
        assert [p.page for p in record.ocr_pages] == [1, 2, 3, 5, 6]  # page 4 has a text layer
    assert embedder.calls > 0
    assert embedder.passages == report.chunks == kb._store.chunk_count()
    assert_index_consistent(kb)
    before = kb.documents()

    embedder.calls = embedder.passages = 0
    again = kb.add([root])
    statuses = {relative(o.source, root): o.status for o in again.outcomes}
    assert {n for n, s in statuses.items() if s == "unchanged"} == expected_added
    assert {n for n, s in statuses.items() if s == "failed"} == set(expected_failures)
    assert again.count("added") == again.count("updated") == 0
    assert embedder.calls == 0 and embedder.passages == 0
    assert again.chunks == 0
    assert kb.documents() == before


def test_password_opens_encrypted_pdf(tmp_path):
    path = sample_pdf("encrypted/encrypted-file.pdf")
    kb = make_kb(tmp_path / "kb")
    refused = kb.add([path])
    assert [(o.status, o.reason) for o in refused.outcomes] == [
        ("failed", "encrypted: password needed")
    ]
    wrong = kb.add([path], password="nope")
    assert [(o.status, o.reason) for o in wrong.outcomes] == [
        ("failed", "encrypted: wrong password")
    ]
    assert kb.documents() == []

    report = kb.add([path], password="test")
    assert [o.status for o in report.outcomes] == ["added"]
    (record,) = kb.documents()
    assert record.name == "encrypted-file.pdf" and record.chunks >= 1
    hit = kb.search("Example")[0]
    assert hit.chunk.source == str(path) and hit.chunk.page == 1


def test_batch_password_does_not_break_pdf_that_needs_none(tmp_path):
    kb = make_kb(tmp_path / "kb")
    report = kb.add([shared_data("pdfs/encrypted")], password="test")
    statuses = {n: o.status for n, o in by_name(report).items()}
    assert statuses["encrypted-file.pdf"] == "added"
    assert statuses["r2-empty-password.pdf"] == "added"


# -- updates and duplicates -----------------------------------------------------


def test_changed_file_is_updated_and_old_chunks_are_gone(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    path = docs / "animals.txt"
    old_text = "The old version talks about flamingos. " * 30
    path.write_text(old_text)
    (docs / "other.txt").write_text("An unrelated file about volcanoes.")
    kb = make_kb(tmp_path / "kb")
    first = by_name(kb.add([docs]))["animals.txt"]
    assert first.status == "added"
    assert first.doc_id == hashlib.sha256(old_text.encode()).hexdigest()
    old_chunks = kb.documents()[0].chunks
    assert old_chunks > 1
    assert str(path) in sources_found(kb, "flamingos")

    new_text = "The new version is about axolotls only."
    path.write_text(new_text)
    report = kb.add([docs])
    outcomes = by_name(report)
    assert outcomes["animals.txt"].status == "updated"
    assert outcomes["other.txt"].status == "unchanged"
    new_id = hashlib.sha256(new_text.encode()).hexdigest()
    assert outcomes["animals.txt"].doc_id == new_id != first.doc_id

    records = {r.name: r for r in kb.documents()}
    assert len(records) == 2
    assert records["animals.txt"].doc_id == new_id
    assert records["animals.txt"].chunks == 1 == outcomes["animals.txt"].chunks
    assert kb._store.document_by_id(first.doc_id) is None
    assert all("flamingos" not in hit.chunk.text for hit in kb.search("flamingos", 50))
    assert kb.search("axolotls")[0].chunk.text == new_text
    assert_index_consistent(kb)


def test_identical_bytes_at_two_paths_are_stored_once(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Shared content about okapis and their stripes.")
    (docs / "b.txt").write_bytes((docs / "a.txt").read_bytes())
    kb = make_kb(tmp_path / "kb")
    outcomes = by_name(kb.add([docs]))
    assert outcomes["a.txt"].status == "added"
    assert outcomes["b.txt"].status == "unchanged"
    assert outcomes["b.txt"].reason == f"same content as {(docs / 'a.txt').resolve()}"
    assert outcomes["b.txt"].doc_id == outcomes["a.txt"].doc_id
    assert [r.name for r in kb.documents()] == ["a.txt"]
    assert len(kb.search("okapis", 50)) == 1
    assert_index_consistent(kb)


def _folder(path: Path, **texts: str) -> Path:
    """A folder holding ``name.txt`` files with the given texts."""
    path.mkdir()
    for name, text in texts.items():
        (path / f"{name}.txt").write_text(text)
    return path


def test_file_rewritten_with_another_files_bytes_drops_its_old_text(tmp_path):
    docs = _folder(
        tmp_path / "docs", a="alpha content about zebras", b="beta content about giraffes"
    )
    kb = make_kb(tmp_path / "kb")
    kb.add([docs])
    (docs / "a.txt").write_text("beta content about giraffes")
    kb.add([docs])
    assert all("zebras" not in hit.chunk.text for hit in kb.search("zebras", 50))


def test_sync_keeps_content_of_a_surviving_duplicate(tmp_path):
    docs = _folder(
        tmp_path / "docs", a="shared content about okapis", b="shared content about okapis"
    )
    kb = make_kb(tmp_path / "kb")
    kb.add([docs], sync=True)
    (docs / "a.txt").unlink()
    kb.add([docs], sync=True)
    assert [r.name for r in kb.documents()] == ["b.txt"]


# -- sync and removal -------------------------------------------------------------


def test_sync_removes_deleted_files_but_not_other_folders(tmp_path):
    one, two = tmp_path / "one", tmp_path / "one-more"  # a name sharing the prefix
    one.mkdir()
    two.mkdir()
    (one / "keep.txt").write_text("Kept file about herons.")
    (one / "gone.md").write_text("# Gone\n\nDeleted file about pelicans.\n")
    (two / "elsewhere.txt").write_text("Another folder about storks.")
    kb = make_kb(tmp_path / "kb")
    assert kb.add([one, two]).count("added") == 3

    (one / "gone.md").unlink()
    (two / "elsewhere.txt").unlink()  # gone too, but its folder is not synced
    report = kb.add([one], sync=True)
    statuses = {Path(o.source).name: (o.status, o.reason) for o in report.outcomes}
    assert statuses == {"keep.txt": ("unchanged", None), "gone.md": ("removed", "file is gone")}
    assert sorted(r.name for r in kb.documents()) == ["elsewhere.txt", "keep.txt"]
    assert all("pelicans" not in h.chunk.text for h in kb.search("pelicans", 50))
    assert_index_consistent(kb)

    without_sync = kb.add([two])
    assert without_sync.count("removed") == 0
    assert "elsewhere.txt" in [r.name for r in kb.documents()]


def test_remove_by_name_and_by_id_prefix(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "herons.txt").write_text("Herons wade in shallow water. " * 20)
    (docs / "owls.md").write_text("# Owls\n\nOwls hunt at night. " * 10)
    (docs / "bats.txt").write_text("Bats use echolocation.")
    kb = make_kb(tmp_path / "kb")
    kb.add([docs])
    assert_index_consistent(kb)
    total = kb._store.chunk_count()
    herons_chunks = next(r.chunks for r in kb.documents() if r.name == "herons.txt")

    removed = kb.remove("herons.txt")
    assert removed.name == "herons.txt"
    assert all("Herons" not in h.chunk.text for h in kb.search("herons wade water", 50))
    assert kb._store.chunk_count() == total - herons_chunks
    assert_index_consistent(kb)

    owls = next(r for r in kb.documents() if r.name == "owls.md")
    assert kb.remove(owls.doc_id[:10]).doc_id == owls.doc_id
    assert [r.name for r in kb.documents()] == ["bats.txt"]
    assert {h.chunk.source for h in kb.search("owls hunt night", 50)} == {str(docs / "bats.txt")}
    assert_index_consistent(kb)

    # Removal persists: a new KnowledgeBase on the folder sees the same.
    kb.close()
    reopened = make_kb(tmp_path / "kb")
    assert [r.name for r in reopened.documents()] == ["bats.txt"]
    assert_index_consistent(reopened)


def test_remove_unknown_document_is_a_clear_error(tmp_path):
    (tmp_path / "a.txt").write_text("Some text.")
    kb = make_kb(tmp_path / "kb")
    kb.add([tmp_path / "a.txt"])
    with pytest.raises(KbqaError, match=r"no document matches 'missing\.pdf'"):
        kb.remove("missing.pdf")
    with pytest.raises(KbqaError, match="no document matches"):
        kb.remove("abc")  # too short to be an id prefix
    assert [r.name for r in kb.documents()] == ["a.txt"]


# -- limits and uploads -----------------------------------------------------------


def test_file_over_size_limit_fails_and_the_rest_is_ingested(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "huge.txt").write_bytes(b"word " * (6 * 1024 * 1024 // 5 + 1))
    (docs / "small.txt").write_text("A small file about lemurs.")
    embedder = CountingEmbedder()
    kb = make_kb(tmp_path / "kb", embedder=embedder)
    outcomes = by_name(kb.add([docs]))
    assert outcomes["huge.txt"].status == "failed"
    assert outcomes["huge.txt"].reason.startswith("file too large")
    assert "5 MB" in outcomes["huge.txt"].reason
    assert outcomes["small.txt"].status == "added"
    assert [r.name for r in kb.documents()] == ["small.txt"]
    assert embedder.passages == 1


def test_upload_name_is_sanitised_and_nothing_is_written_outside_the_kb(tmp_path, monkeypatch):
    workdir = tmp_path / "work" / "dir"
    workdir.mkdir(parents=True)
    monkeypatch.chdir(workdir)
    kb_folder = tmp_path / "kb"
    kb = make_kb(kb_folder)
    before = {p for p in tmp_path.rglob("*")}

    outcome = kb.add_bytes("../../etc/passwd.txt", b"uploaded text about marmots")
    assert outcome.status == "added"
    assert outcome.source == "upload:passwd.txt"
    (record,) = kb.documents()
    assert record.source == "upload:passwd.txt"
    assert record.name == "passwd.txt"
    assert kb.search("marmots")[0].chunk.source == "upload:passwd.txt"

    created = {p for p in tmp_path.rglob("*")} - before
    assert created and all(p.is_relative_to(kb_folder) for p in created)
    assert not (tmp_path / "etc").exists()
    assert not Path("../../etc/passwd.txt").exists()

    assert kb.add_bytes("C:\\Users\\x\\..\\secret.md", b"# Hi\n\nwindows path").source == (
        "upload:secret.md"
    )
    assert kb.remove("upload:passwd.txt").name == "passwd.txt"


# -- persistence ------------------------------------------------------------------


def test_reopening_the_folder_gives_same_documents_and_results(tmp_path):
    write_every_format(tmp_path / "docs")
    kb = make_kb(tmp_path / "kb")
    kb.add([tmp_path / "docs"])
    queries = ["misfits", "wombats", "penguins south", "narwhal tusk", "capybara rodent"]
    documents = kb.documents()
    results = [[(h.chunk.id, round(h.score, 5)) for h in kb.search(q, 5)] for q in queries]
    kb.close()

    reopened = make_kb(tmp_path / "kb")
    assert reopened.documents() == documents
    assert [
        [(h.chunk.id, round(h.score, 5)) for h in reopened.search(q, 5)] for q in queries
    ] == results
    assert_index_consistent(reopened)
    # Still usable for writing after the round trip.
    assert by_name(reopened.add([tmp_path / "docs"]))["plain.txt"].status == "unchanged"


def test_opening_with_another_embedding_model_is_refused(tmp_path):
    (tmp_path / "a.txt").write_text("Some text.")
    kb = make_kb(tmp_path / "kb")
    kb.add([tmp_path / "a.txt"])
    kb.close()

    class OtherEmbedder(FakeEmbedder):
        name = "other-model-64"

    with pytest.raises(KnowledgeBaseError) as caught:
        make_kb(tmp_path / "kb", embedder=OtherEmbedder())
    message = str(caught.value)
    assert "fake-hash-64" in message and "other-model-64" in message


# -- exact vector search ----------------------------------------------------------


def _normalized(rng: np.random.Generator, n: int, dimension: int) -> np.ndarray:
    vectors = rng.standard_normal((n, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_vector_index_matches_brute_force_cosine(tmp_path):
    from kbqa.index.vectors import VectorIndex

    rng = np.random.default_rng(1234)
    dimension, k = 48, 10
    ids = rng.choice(10**9, size=600, replace=False).astype(np.int64)
    vectors = _normalized(rng, len(ids), dimension)
    index = VectorIndex(dimension)
    index.add(ids, vectors)
    removed = rng.choice(ids, size=150, replace=False)
    index.remove(removed)
    keep = ~np.isin(ids, removed)
    assert len(index) == int(keep.sum()) == 450
    assert set(index.ids().tolist()) == set(ids[keep].tolist())

    queries = _normalized(rng, 20, dimension)
    expected_scores = queries @ vectors[keep].T
    order = np.argsort(-expected_scores, axis=1)[:, :k]

    for candidate in (index, _round_trip(index, tmp_path / "v.faiss", dimension)):
        scores, found = candidate.search(queries, k)
        assert found.shape == (20, k)
        np.testing.assert_array_equal(found, ids[keep][order])
        np.testing.assert_allclose(
            scores, np.take_along_axis(expected_scores, order, axis=1), atol=1e-5
        )
        assert not np.isin(found, removed).any()


def _round_trip(index, path: Path, dimension: int):
    from kbqa.index.vectors import VectorIndex

    index.save(path)
    return VectorIndex.load(path, dimension)


def test_store_dense_search_matches_brute_force_over_stored_chunks(tmp_path):
    rng = np.random.default_rng(7)
    words = "river mountain forest desert ocean valley glacier canyon meadow island".split()
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(8):
        text = " ".join(rng.choice(words, size=200)) + f" unique{n}"
        (docs / f"doc{n}.txt").write_text(text)
    embedder = FakeEmbedder()
    kb = make_kb(tmp_path / "kb", embedder=embedder)
    kb.add([docs])
    kb.remove("doc3.txt")
    kb.remove("doc6.txt")
    store = kb._store
    assert_index_consistent(kb)

    chunks = [c for r in kb.documents() for c in store.chunks_of(r.doc_id)]
    assert not any(c.source.endswith(("doc3.txt", "doc6.txt")) for c in chunks)
    matrix = embedder.embed_passages([c.text for c in chunks])
    queries = _normalized(rng, 10, embedder.dimension)
    k = 7
    for query, results in zip(queries, dense_search(store, queries, k), strict=True):
        expected = np.sort(matrix @ query)[::-1][:k]
        got = np.array([hit.score for hit in results])
        np.testing.assert_allclose(got, expected, atol=1e-5)
        for hit in results:
            index = next(i for i, c in enumerate(chunks) if c.id == hit.chunk.id)
            assert abs(float(matrix[index] @ query) - hit.score) < 1e-5


# -- the real embedding model -----------------------------------------------------


@pytest.mark.slow
def test_real_embedder_finds_the_crazy_ones(tmp_path, request):
    texts = shared_data("pdfs/text")  # seven real PDFs; skips before loading the model
    real_embedder = request.getfixturevalue("real_embedder")
    kb = make_kb(tmp_path / "kb", embedder=real_embedder)
    report = kb.add([texts])
    assert report.failed == []
    assert report.count("added") == len(list(texts.glob("*.pdf")))
    assert_index_consistent(kb)
    hits = kb.search("Here's to the crazy ones, the misfits")
    assert hits[0].chunk.source == str(texts / "crazyones.pdf")
    assert hits[0].chunk.page == 1
    assert hits[0].score > 0.5


def test_a_chunk_made_only_of_overlap_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """langchain's splitter can emit a piece of the previous chunk's tail alone."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from kbqa.ingest.chunking import ChunkerSettings, chunk_document
    from kbqa.ingest.types import ParsedDocument, Section

    text = "alpha beta gamma. delta epsilon."
    pieces = ["alpha beta gamma.", "beta gamma.", "gamma. delta epsilon."]
    monkeypatch.setattr(RecursiveCharacterTextSplitter, "split_text", lambda self, t: pieces)
    document = ParsedDocument("x.txt", "text", 1, (Section(text, 1, 0, None),))
    chunks = chunk_document("d" * 64, document, lambda t: len(t.split()), ChunkerSettings())
    assert [c.text for c in chunks] == [pieces[0], pieces[2]]
    assert all(text[c.start : c.end] == c.text for c in chunks)
    assert [c.ordinal for c in chunks] == [0, 1]


def test_an_unexpected_chunking_error_fails_that_file_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kbqa.ingest.local as local

    real_chunk = local.chunk_document

    def flaky(doc_id, document, *args, **kwargs):
        if document.source.endswith("bad.txt"):
            raise RuntimeError("boom")
        return real_chunk(doc_id, document, *args, **kwargs)

    monkeypatch.setattr(local, "chunk_document", flaky)
    kb = make_kb(tmp_path / "kb")
    report = kb.add_texts([("bad.txt", "one two three"), ("good.txt", "four five six")])
    failed = [o for o in report.outcomes if o.status == "failed"]
    found = [(o.source.rsplit(":", 1)[-1], "RuntimeError: boom" in str(o.reason)) for o in failed]
    assert found == [("bad.txt", True)]
    assert [d.name for d in kb.documents()] == ["good.txt"]


def test_an_unexpected_reader_error_is_a_reply_of_the_reading_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Readers run in the reading process (ingest/reader_child.py): a reader's bug becomes a
    failed reply for that file, and the process goes on to the next request."""
    from kbqa.ingest import reader_child, readers

    def broken(source, data, password, limits):
        raise RuntimeError("boom")

    monkeypatch.setattr(readers, "_reader", lambda fmt: broken)
    request = {"op": "read", "source": "upload:bad.txt", "hint": "text"}
    reply, out = reader_child.handle(request, b"x y")
    assert (reply["ok"], reply["kind"], out) == (False, "unexpected", b"")
    assert reply["reason"].startswith("unexpected error (RuntimeError: boom)")
    assert "RuntimeError" in reply["traceback"] and reply["rss"] > 0

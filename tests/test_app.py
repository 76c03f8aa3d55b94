"""The web app's flows, driven with Streamlit's AppTest.

Fast tests cover follow-up rewriting (scripted LLM), the kept PDFs, the page
pictures, and creating and switching knowledge bases (no model is loaded for
empty knowledge bases). Tests marked ``slow`` run the real small models:
all-MiniLM-L6-v2 and SmolLM2-135M, loaded once for the whole session.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import CORPORA, ROOT, sample_pdf
from fakes import ScriptedGenerator

from kbqa.qa.followup import Rewrite, Turn, rewrite_followup

APP = str(ROOT / "app" / "web" / "main.py")
RUN_TIMEOUT_S = 240  # the first answer of the session loads the models


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    monkeypatch.setenv("KBQA_HOME", str(folder))
    monkeypatch.setenv("KBQA_LLM_MODEL", "smollm2-135m-instruct")
    monkeypatch.setenv("KBQA_EMBEDDING_MODEL", "all-MiniLM-L6-v2")
    monkeypatch.delenv("KBQA_KB", raising=False)
    return folder


def start():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=RUN_TIMEOUT_S)
    at.run()
    assert not at.exception, at.exception
    return at


def texts(at) -> str:
    """Everything written as Markdown or captions, sidebar included."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    return "\n".join(parts)


def sidebar_texts(at) -> str:
    return "\n".join(m.value for m in at.sidebar.markdown)


def current_kb(at) -> Path:
    return Path(at.session_state["kb"])


def upload(at, files: list[tuple[str, bytes]]):
    """Drop files on the uploader and wait for the background ingest to finish."""
    dropped = [(name, data, "application/octet-stream") for name, data in files]
    at.file_uploader[0].set_value(dropped)
    at.run()
    assert not at.exception, at.exception
    return wait_for_uploads(at)


def wait_for_uploads(at, timeout_s: float = 180):
    from kbqa.app.web import state

    deadline = time.monotonic() + timeout_s
    while state.ingest_queue().busy(current_kb(at)):
        assert time.monotonic() < deadline, "uploads did not finish"
        at.run()  # what the page's live panel does every POLL_S
        time.sleep(0.3)
    at.run()
    assert not at.exception, at.exception
    return at


def ask(at, question: str):
    at.chat_input[0].set_value(question).run()
    assert not at.exception, at.exception
    exchange = at.session_state["chats"][str(current_kb(at))][-1]
    assert exchange.question == question and exchange.error is None, exchange.error
    assert exchange.answer is not None
    return exchange


def file_bytes(path: Path) -> tuple[str, bytes]:
    return path.name, path.read_bytes()


# -- follow-up rewriting (scripted LLM) ----------------------------------------


def test_no_history_means_no_llm_call() -> None:
    generator = ScriptedGenerator(["should not be used"])
    question = "¿Cuántos parámetros tiene GPT-3?"
    rewrite = rewrite_followup(question, [], generator)
    assert rewrite == Rewrite(question, question)
    assert not rewrite.rewritten and generator.calls == []


def test_follow_up_is_rewritten_by_the_llm_from_the_history() -> None:
    generator = ScriptedGenerator(["Rewritten: ¿Quién creó GPT-3?\nextra"])
    history = [Turn("¿Cuántos parámetros tiene GPT-3?", "GPT-3 tiene 175 000 millones [1].")]
    rewrite = rewrite_followup("¿y quién lo creó?", history, generator)
    assert rewrite.standalone == "¿Quién creó GPT-3?" and rewrite.rewritten
    (messages,) = generator.calls
    prompt = messages[-1]["content"]
    assert "User: ¿Cuántos parámetros tiene GPT-3?" in prompt
    assert "GPT-3 tiene 175 000 millones." in prompt  # citation markers stripped
    assert "Last question: ¿y quién lo creó?" in prompt


@pytest.mark.parametrize(
    ("previous", "follow_up", "standalone"),
    [
        ("¿Cuántos parámetros tiene GPT-3?", "¿y cuántos tiene Jurassic-1?",
         "¿Cuántos parámetros tiene Jurassic-1?"),
        ("How many parameters does GPT-3 have?", "and Jurassic-1?",
         "How many parameters does Jurassic-1 have?"),
        ("How many layers does GPT-2 have?", "What about BERT", "How many layers does BERT have?"),
    ],
)  # fmt: skip
def test_elliptical_follow_up_swaps_the_subject_without_the_llm(
    previous: str, follow_up: str, standalone: str
) -> None:
    generator = ScriptedGenerator(["unused"])
    rewrite = rewrite_followup(follow_up, [Turn(previous, "...")], generator)
    assert rewrite.standalone == standalone and generator.calls == []


def test_follow_up_asking_something_new_goes_to_the_llm() -> None:
    generator = ScriptedGenerator(["¿Quién creó Jurassic-1?"])
    history = [Turn("¿Cuántos parámetros tiene GPT-3?", "GPT-3 tiene 175 000 millones.")]
    rewrite = rewrite_followup("¿y quién creó Jurassic-1?", history, generator)
    assert len(generator.calls) == 1 and rewrite.standalone == "¿Quién creó Jurassic-1?"


@pytest.mark.parametrize(
    "reply",
    [
        "Graham-1",  # lost the follow-up's subject
        "What is fine-tuning?",  # repeated an earlier question
        "Who created Jurassic-1? It has 178 billion parameters and a 250,000 word vocabulary.",
        "¿Quién creó Jurassic-1?",  # switched language
        "Where does Jurassic-1 come from?",  # words from nowhere
        "",
    ],
)
def test_bad_rewrites_leave_the_question_as_typed(reply: str) -> None:
    history = [Turn("How many parameters does GPT-3 have?", "GPT-3 has 175 billion [1].")]
    rewrite = rewrite_followup("and who created Jurassic-1?", history, ScriptedGenerator([reply]))
    assert rewrite.standalone == "and who created Jurassic-1?" and not rewrite.rewritten


def test_unresolvable_follow_up_is_kept_as_typed() -> None:
    history = [Turn("Compare GPT-3 and BLOOM", "...")]
    rewrite = rewrite_followup("and why?", history, ScriptedGenerator(["Graham-1"]))
    assert rewrite.standalone == "and why?" and not rewrite.rewritten


def test_only_recent_turns_reach_the_prompt() -> None:
    generator = ScriptedGenerator(["What is turn 5 about?"])
    history = [Turn(f"Question {n}?", f"Answer {n}.") for n in range(6)]
    rewrite_followup("What is it about?", history, generator)
    prompt = generator.calls[0][-1]["content"]
    assert "Question 5?" in prompt and "Question 3?" in prompt and "Question 2?" not in prompt


# -- the background ingest queue (a fake knowledge base) ---------------------------


class GatedKB:
    """Stands in for KnowledgeBase.add_bytes; holds each file until the test lets it go."""

    def __init__(self, folder: Path) -> None:
        import threading

        self.folder = folder
        self.gate = threading.Event()
        self.seen: list[tuple[str, str | None]] = []

    def add_bytes(self, name: str, data: bytes, password: str | None = None):
        from kbqa.ingest.local import FileOutcome

        assert self.gate.wait(30)
        self.seen.append((name, password))
        if data.startswith(b"LOCKED") and password != "s3cret":
            reason = "encrypted: wrong password" if password else "encrypted: password needed"
            return FileOutcome(f"upload:{name}", "failed", reason)
        return FileOutcome(f"upload:{name}", "added", None, "ab" * 32, 1, 3)

    def close(self) -> None:
        pass


def test_uploads_are_ingested_in_the_background(tmp_path: Path) -> None:
    from kbqa.app.web.jobs import IngestQueue

    kb: Any = GatedKB(tmp_path)  # stands in for a KnowledgeBase
    queue = IngestQueue()
    started = time.monotonic()
    files = [("a.txt", b"alpha"), ("../b.md", b"beta"), ("big.txt", b"x" * 2048)]
    queue.submit(tmp_path, files, lambda folder: kb, max_mb=1 / 1024)  # 1 KB limit
    assert time.monotonic() - started < 1  # the page is not held up
    tasks = queue.tasks(tmp_path)
    assert [t.name for t in tasks] == ["a.txt", "b.md", "big.txt"]
    assert queue.busy(tmp_path)
    assert tasks[2].state == "failed" and tasks[2].reason == (
        "file too large (2.0 KB; the limit is 1.0 KB per file)"
    )
    deadline = time.monotonic() + 5
    while queue.tasks(tmp_path)[0].state != "working":  # one file at a time
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert queue.tasks(tmp_path)[1].state == "queued"
    kb.gate.set()
    assert queue.wait(tmp_path, 10)
    done = queue.tasks(tmp_path)
    assert [(t.state, t.pages, t.chunks) for t in done[:2]] == [("added", 1, 3)] * 2
    assert kb.seen == [("a.txt", None), ("b.md", None)]  # big.txt never reached the KB


def test_a_locked_file_waits_for_its_password(tmp_path: Path) -> None:
    from kbqa.app.web.jobs import IngestQueue

    kb: Any = GatedKB(tmp_path)  # stands in for a KnowledgeBase
    kb.gate.set()
    queue = IngestQueue()
    queue.submit(tmp_path, [("secret.pdf", b"LOCKED pdf"), ("ok.txt", b"fine")], lambda f: kb)
    assert queue.wait(tmp_path, 10)
    locked, ok = queue.tasks(tmp_path)
    assert locked.needs_password and not ok.needs_password
    assert queue.retry(locked.id, "nope", lambda f: kb) and queue.wait(tmp_path, 10)
    assert queue.tasks(tmp_path)[0].reason == "encrypted: wrong password"
    # A new upload clears finished files but keeps the one still asking for a password.
    queue.submit(tmp_path, [("more.txt", b"more")], lambda f: kb)
    assert queue.wait(tmp_path, 10)
    assert [t.name for t in queue.tasks(tmp_path)] == ["secret.pdf", "more.txt"]
    assert queue.retry(locked.id, "s3cret", lambda f: kb) and queue.wait(tmp_path, 10)
    assert queue.tasks(tmp_path)[0].state == "added"
    assert not queue.retry(locked.id, "again", lambda f: kb)  # nothing left to unlock
    queue.clear_finished(tmp_path)
    assert queue.tasks(tmp_path) == []


def test_a_knowledge_base_that_cannot_open_fails_its_files(tmp_path: Path) -> None:
    from kbqa.app.web.jobs import IngestQueue
    from kbqa.errors import KnowledgeBaseError

    def broken(folder: Path):
        raise KnowledgeBaseError("built with another embedding model")

    queue = IngestQueue()
    queue.submit(tmp_path, [("a.txt", b"a")], broken)
    assert queue.wait(tmp_path, 10)
    (task,) = queue.tasks(tmp_path)
    assert task.state == "failed" and task.reason == "built with another embedding model"


# -- pieces behind the sources (no models) ---------------------------------------


def test_page_picture_marks_the_passage() -> None:
    from PIL import Image

    from kbqa.app.web.pdfpage import Mark, render_page

    pdf = sample_pdf("text/crazyones.pdf")
    import pypdfium2 as pdfium

    text = pdfium.PdfDocument(str(pdf))[0].get_textpage().get_text_range()
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    start = text.index("The round pegs")
    passage = text[start : start + 60]
    marked = render_page(pdf, 1, passage, [Mark(start, start + 60, cited=True)], width_px=600)
    plain = render_page(pdf, 1, passage, [], width_px=600)
    assert marked.marked and marked.png.startswith(b"\x89PNG")
    # The marked picture differs from the page only in a band around the passage.
    a = Image.open(__import__("io").BytesIO(marked.png)).convert("RGB")
    b = Image.open(__import__("io").BytesIO(plain.png)).convert("RGB")
    assert a.size == b.size
    from PIL import ImageChops

    box = ImageChops.difference(a, b).getbbox()
    assert box is not None and box[3] - box[1] < a.height * 0.1
    # Offsets that do not match the page text: the passage is found by its words.
    moved = render_page(pdf, 1, passage, [Mark(0, 60)], width_px=600)
    assert moved.marked
    with pytest.raises(ValueError):
        render_page(pdf, 9, passage, [])


def test_kept_pdfs_are_named_by_content_and_pruned(tmp_path: Path) -> None:
    import hashlib

    from kbqa.app.web import originals

    data = sample_pdf("encrypted/encrypted-file.pdf").read_bytes()
    doc_id = hashlib.sha256(data).hexdigest()
    kept = originals.keep_pdf(tmp_path, doc_id, data, password="test")
    assert kept == tmp_path / "originals" / f"{doc_id}.pdf"
    import pypdfium2 as pdfium

    assert len(pdfium.PdfDocument(str(kept))) == 1  # kept decrypted: no password needed
    assert originals.find_pdf(tmp_path, "upload:x.pdf", doc_id) == kept
    with pytest.raises(ValueError):
        originals.kept_path(tmp_path, "../../etc/passwd")
    assert originals.find_pdf(tmp_path, "upload:x.pdf", "../x") is None
    # A source file on disk is used while its bytes are the document's.
    source = sample_pdf("text/crazyones.pdf")
    source_id = hashlib.sha256(source.read_bytes()).hexdigest()
    assert originals.find_pdf(tmp_path, str(source), source_id) == source
    assert originals.find_pdf(tmp_path, str(source), doc_id[::-1]) is None
    assert originals.prune(tmp_path, {source_id}) == 1 and not kept.exists()


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="Tesseract is not installed")
def test_an_ocrd_image_is_kept_and_drawn_with_the_passage_marked(tmp_path: Path) -> None:
    import hashlib
    import io

    from PIL import Image, ImageChops, ImageDraw, ImageFont

    from kbqa.app.web import originals
    from kbqa.app.web.chat import page_picture
    from kbqa.app.web.pdfpage import Mark, render_page
    from kbqa.ingest.readers import read_document
    from kbqa.qa.answer import Citation

    picture = Image.new("L", (900, 330), 255)
    draw = ImageDraw.Draw(picture)
    lines = ["Invoice 4711 from Tarsia", "Total due: 380 euros", "Paid by bank transfer"]
    for n, line in enumerate(lines):
        draw.text((30, 30 + 90 * n), line, font=ImageFont.load_default(34), fill=0)
    png = io.BytesIO()
    picture.save(png, format="PNG")
    data = png.getvalue()
    doc_id = hashlib.sha256(data).hexdigest()
    text = read_document("invoice.png", data).sections[0].text  # as ingest reads it
    start = text.index("Total due")
    passage = text[start : start + len("Total due: 380 euros")]

    # Kept by content, whatever the upload was called; found again for the citation.
    kept = originals.keep_original(tmp_path, doc_id, data)
    assert kept == tmp_path / "originals" / f"{doc_id}.image"
    assert originals.keep_original(tmp_path, "f" * 64, b"plain text") is None
    assert originals.find_original(tmp_path, "upload:invoice.png", doc_id) == kept

    marked = render_page(kept, 1, passage, [Mark(start, start + len(passage), cited=True)])
    plain = render_page(kept, 1, "", [])  # nothing to mark
    assert marked.marked and not plain.marked and (marked.width, marked.height) == (900, 330)
    box = ImageChops.difference(
        Image.open(io.BytesIO(marked.png)).convert("RGB"),
        Image.open(io.BytesIO(plain.png)).convert("RGB"),
    ).getbbox()
    assert box is not None and 90 < box[1] and box[3] < 240  # the second line, only
    with pytest.raises(ValueError, match="picture 2 not in an image of 1"):
        render_page(kept, 2, passage, [])

    # The app's source card gets the cropped picture of the image, as for a PDF page.
    cited = Citation(1, "c1", doc_id, "upload:invoice.png", 1, start, start + len(passage),
                     passage, 0.8)  # fmt: skip
    shown = page_picture(str(tmp_path), cited, [(0, len(passage))])
    assert shown is not None and shown.startswith(b"\x89PNG")
    assert originals.prune(tmp_path, set()) == 1 and not kept.exists()


def test_an_image_over_the_pixel_limit_gets_no_picture(tmp_path: Path) -> None:
    import io

    from PIL import Image

    from kbqa.app.web.pdfpage import render_page
    from kbqa.ingest.limits import ParseLimits

    png = io.BytesIO()
    Image.new("1", (3000, 3000)).save(png, format="PNG")  # 9 M pixels in a few kB
    bomb = tmp_path / "bomb.image"
    bomb.write_bytes(png.getvalue())
    with pytest.raises(ValueError, match="1,000,000-pixel page picture limit"):
        render_page(bomb, 1, "", [], limits=ParseLimits(max_page_pixels=1_000_000))


def test_cited_span_is_the_sentence_the_answer_uses() -> None:
    from kbqa.app.web.highlight import cited_spans, passage_html, sentences_citing

    passage = "Jurassic-1 has 178 billion parameters. It can hold conversations.\nBLOOM is open."
    claims = sentences_citing("Jurassic-1 has 178 billion parameters [2]. Other [1].", 2)
    assert claims == ["Jurassic-1 has 178 billion parameters."]
    spans = cited_spans(passage, claims, "How many parameters does Jurassic-1 have?")
    assert [passage[s:e] for s, e in spans] == ["Jurassic-1 has 178 billion parameters."]
    prefix = "<b>a</b> & $5\n"
    shown = passage_html(prefix + passage, [(len(prefix) + s, len(prefix) + e) for s, e in spans])
    assert "&lt;b&gt;a&lt;/b&gt; &amp; &#36;5 " in shown
    assert '<mark class="kbqa-cited">Jurassic-1 has 178 billion parameters.</mark>' in shown


# -- knowledge bases (empty ones load no model) ------------------------------------


def test_create_and_switch_knowledge_bases(home: Path) -> None:
    at = start()
    assert current_kb(at) == home / "default"
    assert "This knowledge base is empty." in texts(at)
    assert at.chat_input[0].disabled  # nothing to ask yet

    create_kb(at, "../escape")
    assert "use 1-48 letters" in "\n".join(e.value.replace("\\", "") for e in at.error)
    assert not (home.parent / "escape").exists()

    create_kb(at, "papers")
    assert not at.exception, at.exception
    assert [t.value for t in at.toast] == ["Created the knowledge base “papers”."]
    assert current_kb(at) == home / "papers" and (home / "papers").is_dir()
    picker = at.selectbox(key="kb_picker")
    assert picker.value == str(home / "papers")
    assert set(picker.options) == {"default", "papers"}  # labels; values are folders
    assert '<div class="kbqa-title">papers</div>' in texts(at)

    picker.set_value(str(home / "default")).run()
    assert current_kb(at) == home / "default"
    assert '<div class="kbqa-title">default</div>' in texts(at)
    create_kb(at, "papers")
    assert "already exists" in "\n".join(e.value for e in at.error)


def create_kb(at, name: str) -> None:
    """Fill the "New knowledge base" form and submit it (one run, as a browser does)."""
    next(t for t in at.text_input if t.label == "Name").set_value(name)
    next(b for b in at.button if b.label == "Create").click()
    at.run()


def test_models_are_shared_by_reruns_and_sessions(home: Path) -> None:
    from kbqa.app.web import state

    first = start()
    start()  # a second session
    first.run()  # and a rerun
    config = state.settings()
    assert state.models(config) is state.models(config)
    assert state.open_kb(home / "default", config).embedder is state.models(config).embedder
    assert not state.models(config)._started  # an empty knowledge base loads no model


def test_the_answer_style_is_a_sidebar_option_defaulting_to_the_settings(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = start()
    style = at.sidebar.radio(key="answer_style")
    assert style.value == "evidence" and style.options == [
        "Evidence sentences",
        "Short answer",
        "One sentence",
    ]
    style.set_value("short").run()
    assert not at.exception and at.session_state["answer_style"] == "short"
    monkeypatch.setenv("KBQA_ANSWER_STYLE", "sentence")
    assert start().sidebar.radio(key="answer_style").value == "sentence"


def test_the_conversation_is_the_history_the_engine_reads_follow_ups_in() -> None:
    from dataclasses import replace

    from kbqa.app.web.chat import Exchange, history
    from kbqa.qa.answer import Answer, Timings

    asked = Answer("¿Cuántos tiene?", "175 000 millones [1]", (), False, Timings(0, 0, 0, 0), "es")
    first = Exchange("¿Cuántos parámetros tiene GPT-3?", "kb", answer=asked)
    follow = Exchange(
        "¿y Jurassic-1?",
        "kb",
        answer=replace(asked, standalone="¿Cuántos parámetros tiene Jurassic-1?"),
    )
    pending = Exchange("¿y BLOOM?", "kb")
    assert history([first, follow, pending]) == [
        Turn("¿Cuántos parámetros tiene GPT-3?", "175 000 millones [1]"),
        Turn("¿Cuántos parámetros tiene Jurassic-1?", "175 000 millones [1]"),
    ]
    assert follow.rewritten and not first.rewritten


def test_kbqa_kb_opens_the_given_folder(home: Path, tmp_path: Path, monkeypatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("KBQA_KB", str(elsewhere))
    at = start()
    assert current_kb(at) == elsewhere
    assert str(elsewhere) in at.selectbox(key="kb_picker").options


# -- kept conversations (no model: an empty knowledge base) -----------------------------

FREEDONIA = "La capital de Freedonia es Molvania. Tiene un puerto en el sur."


def _empty_kb(folder: Path) -> None:
    """A knowledge base built for the app's embedder, with no document: nothing loads."""
    from kbqa.index.manifest import Manifest
    from kbqa.index.store import KnowledgeBaseStore
    from kbqa.ingest.chunking import ChunkerSettings

    manifest = Manifest("all-MiniLM-L6-v2", 384, ChunkerSettings())
    KnowledgeBaseStore.create(folder, manifest).close()


def _kept_turn(question: str, doc_id: str = "b" * 64, **changes: Any):
    from kbqa.index.conversations import CitedPassage, ConversationTurn

    name = "freedonia-b.txt"
    cited = CitedPassage(
        1, name, f"upload:{name}", doc_id, None, f"{doc_id[:8]}-1", FREEDONIA, ((0, 36),)
    )
    fields = {
        "question": question,
        "answer": "La capital de Freedonia es Molvania. [1]",
        "citations": (cited,),
        "documents": (doc_id,),
        "scope_label": "document freedonia-b.txt",
        "language": "es",
    }
    return ConversationTurn(**{**fields, **changes})


def test_kept_conversations_are_listed_opened_renamed_exported_and_deleted(home: Path) -> None:
    from kbqa.index.conversations import ConversationStore

    kb = home / "default"
    _empty_kb(kb)
    store = ConversationStore(kb / "chunks.sqlite")
    older = store.create("Older")
    store.append_turn(older.id, _kept_turn("¿Dónde está el puerto?"))
    freedonia = store.create("Freedonia [x](http://evil.example) <b>")
    store.append_turn(freedonia.id, _kept_turn("¿Cuál es la capital de Freedonia?"))
    follow_up = _kept_turn(
        "¿y el puerto?", "c" * 64, documents=(), scope_label="", standalone="¿Dónde está el puerto?"
    )
    store.append_turn(freedonia.id, follow_up)
    store.mark_document_removed("c" * 64)

    at = start()
    assert "**Conversations** · 2" in sidebar_texts(at)
    listed = [b.label for b in at.sidebar.button if b.key and b.key.startswith("conversation-")]
    # Newest first; a title is text in a Markdown label: its link and tag are escaped.
    assert listed == ["Freedonia \\[x\\]\\(http\\://evil.example\\) \\<b\\>", "Older"]

    at.button(key=f"conversation-{freedonia.id}").click().run()
    assert not at.exception, at.exception
    exchanges = at.session_state["chats"][str(kb)]
    assert [e.question for e in exchanges] == ["¿Cuál es la capital de Freedonia?", "¿y el puerto?"]
    assert at.session_state["open_conversation"][str(kb)] == freedonia.id
    shown = texts(at)
    assert '<div class="kbqa-answer">La capital de Freedonia es Molvania. <sup' in shown
    assert '<mark class="kbqa-cited">La capital de Freedonia es Molvania.</mark>' in shown
    assert shown.count("<b>freedonia-b.txt</b>") == 2
    assert shown.count('<span class="kbqa-removed">(document removed)</span>') == 1
    assert "within document freedonia\\-b.txt" in shown  # the scope it was asked in
    assert "read as “¿Dónde está el puerto?”" in shown
    assert len(at.chat_message) == 4
    # The reopened answers are the history a follow-up is read in.
    from kbqa.app.web.chat import history

    assert [t.question for t in history(exchanges)] == [
        "¿Cuál es la capital de Freedonia?",
        "¿Dónde está el puerto?",
    ]

    # Rename: the title is cleaned (one line, no control characters).
    title = next(t for t in at.text_input if t.label == "Title")
    title.set_value("Capital\x00 de\nFreedonia")
    next(b for b in at.button if b.label == "Rename").click()
    at.run()
    assert store.get(freedonia.id).title == "Capital de Freedonia"
    assert at.button(key=f"conversation-{freedonia.id}").label == "Capital de Freedonia"

    # Export: a download of the Markdown, named from the title, never a path.
    (download,) = at.get("download_button")
    assert download.proto.id.endswith(f"export-{freedonia.id}")
    from kbqa.app.web.conversations import export_name

    assert export_name("Capital de Freedonia") == "Capital-de-Freedonia"
    assert export_name("¿Cuál es la capital?") == "Cual-es-la-capital"
    assert export_name("../../etc/passwd") == "etc-passwd" and export_name("¿?") == "conversation"

    # Delete, after a confirmation: gone from the list, the page starts over.
    at.button(key=f"delete-conversation-{freedonia.id}").click().run()
    at.button(key=f"really-delete-conversation-{freedonia.id}").click().run()
    assert not at.exception, at.exception
    assert [c.id for c in store.list()] == [older.id]
    assert "**Conversations** · 1" in sidebar_texts(at) and len(at.chat_message) == 0
    assert at.session_state["open_conversation"][str(kb)] is None


def test_an_answer_kept_and_reopened_shows_the_same_citations_and_marks() -> None:
    from kbqa.app.web.chat import Exchange
    from kbqa.app.web.conversations import exchange_of, turn_of
    from kbqa.app.web.highlight import highlight_spans
    from kbqa.index.scope import Scope
    from kbqa.qa.answer import Answer, Citation, Quote, Timings

    cited = Citation(2, "b1", "b" * 64, "upload:b.txt", 3, 100, 100 + len(FREEDONIA),
                     FREEDONIA, 0.7, "Capital")  # fmt: skip
    quote = Quote(2, "b1", FREEDONIA[:36], 0, 36, 100, 136, 0, "La capital es Molvania.")
    answer = Answer("¿Capital?", "Molvania [2].", (cited,), False, Timings(0.1, 0, None, 0.2),
                    "es", (cited,), quotes=(quote,), style="short")  # fmt: skip
    scope = Scope(documents=("b" * 64,))
    asked = Exchange("¿Capital?", "kb", answer=answer, scope=scope, scope_label="document b.txt")
    turn = turn_of(asked)
    assert turn.citations[0].quotes == ((0, 36),) and turn.documents == ("b" * 64,)
    again = exchange_of(turn, Path("kb"))
    assert again.answer is not None and again.answer.citations == (cited,)
    assert again.answer.text == "Molvania [2]." and again.answer.style == "short"
    assert highlight_spans(again.answer, cited) == highlight_spans(answer, cited) == [(0, 36)]
    assert again.scope_label == "document b.txt" and again.asked_at == ""  # set when stored


# -- the flows with the real small models ---------------------------------------------


@pytest.mark.slow
def test_upload_ask_sources_follow_up_and_delete(home: Path) -> None:
    at = start()
    upload(at, [file_bytes(sample_pdf("text/crazyones.pdf"))])
    assert "**Documents** · 1" in sidebar_texts(at)
    assert "added · 1 page · 2 passages" in sidebar_texts(at)

    # A question: a cited answer, the passage with its span marked, the page picture.
    first = ask(at, "Who are the crazy ones?")
    assert not first.answer.refused and first.searched == first.question and not first.rewritten
    assert first.answer.style == "evidence"  # the sidebar's default: the settings' style
    assert [c.name for c in first.answer.citations] == ["crazyones.pdf"]
    shown = texts(at)
    assert '<sup class="kbqa-ref">[1]</sup>' in shown
    assert "<b>crazyones.pdf</b> · page 1" in shown
    assert '<mark class="kbqa-cited">' in shown
    assert len(at.image) == 1  # the page picture
    assert any(e.label == "Sources · 1" for e in at.expander)

    # More documents while the conversation goes on.
    upload(at, [file_bytes(CORPORA / "introduccion-a-los-llm.pdf")])
    side = sidebar_texts(at)
    assert "**Documents** · 2" in side and "introduccion" in side
    kb = current_kb(at)
    assert len(list((kb / "originals").glob("*.pdf"))) == 2  # kept for page pictures
    assert "Answers may use: **all 2 documents**" in texts(at)

    # Asked within one document: the header says so, and only its passages are used.
    crazy = next(r for r in _documents(kb) if r.name == "crazyones.pdf")
    within = at.multiselect(key=f"scope_documents::{kb}")
    assert within.options == ["crazyones.pdf", "introduccion-a-los-llm.pdf"]  # labels; values: ids
    within.set_value([crazy.doc_id]).run()
    assert "Answers may use: **document crazyones.pdf**" in texts(at)
    scoped = ask(at, "¿Cuántos parámetros tiene GPT-3?")
    assert scoped.answer.passages and {p.name for p in scoped.answer.passages} == {"crazyones.pdf"}
    assert scoped.answer.refused  # the chosen document does not say
    at.multiselect(key=f"scope_documents::{kb}").set_value([]).run()
    assert "Answers may use: **all 2 documents**" in texts(at)
    # ... or within a tag (tags show once a document has one).
    from kbqa.app.web import state

    state.open_kb(kb, state.settings()).tag("introduccion-a-los-llm.pdf", ["llm"])
    at.run()
    at.multiselect(key=f"scope_tags::{kb}").set_value(["llm"]).run()
    assert "Answers may use: **tag llm**" in texts(at)
    tagged = ask(at, "Who are the crazy ones?")
    assert {p.name for p in tagged.answer.passages} == {"introduccion-a-los-llm.pdf"}
    at.multiselect(key=f"scope_tags::{kb}").set_value([]).run()

    # Spanish question, then a follow-up that only makes sense with the history.
    ask(at, "¿Cuántos parámetros tiene GPT-3?")
    follow = ask(at, "¿y cuántos tiene Jurassic-1?")
    assert follow.rewritten  # by the engine, from the conversation (kb.stream(history=))
    assert follow.searched == follow.answer.standalone
    assert "Jurassic-1" in follow.searched and "GPT-3" not in follow.searched
    assert follow.answer.language == "es"
    assert "Jurassic-1" in follow.answer.passages[0].text
    assert at.main.expander[-1].label.endswith("· follow-up rewritten")
    assert f"Follow-up read as:</b> {follow.searched}" in texts(at)
    assert len(at.chat_message) == 10  # the whole conversation is shown
    # ... and kept in the knowledge base: every question, the scope it was asked in.
    (kept,) = _conversations(kb).list()
    assert kept.title == "Who are the crazy ones?" and kept.turn_count == 5
    turns = _conversations(kb).get(kept.id).turns
    assert turns[1].documents == (crazy.doc_id,) and turns[1].tags == ()
    assert turns[1].scope_label == "document crazyones.pdf"
    assert turns[2].documents == () and turns[2].tags == ("llm",) and turns[3].documents == ()
    assert turns[4].standalone == follow.searched

    # Delete crazyones.pdf: gone from the list, from the kept files and from answers.
    record = next(r for r in _documents(kb) if r.name == "crazyones.pdf")
    at.button(key=f"delete-{record.doc_id}").click().run()
    at.button(key=f"really-delete-{record.doc_id}").click().run()
    assert not at.exception, at.exception
    side = sidebar_texts(at)
    assert "**Documents** · 1" in side and "crazyones.pdf" not in side.split("Documents")[-1]
    assert not (kb / "originals" / f"{record.doc_id}.pdf").exists()
    first_turn = _conversations(kb).get(kept.id).turns[0]
    assert [c.removed for c in first_turn.citations] == [True]  # shown "(document removed)"
    again = ask(at, "Who are the crazy ones?")
    assert all(p.name != "crazyones.pdf" for p in again.answer.passages)

    # An answer cut short (Stop, or a click mid-answer) says so and can be asked again.
    from kbqa.app.web.chat import Exchange

    cut = Exchange("What is the capital of Peru?", str(kb), started=True)
    at.session_state["chats"][str(kb)].append(cut)
    at.run()
    assert "Stopped before the answer was complete." in texts(at)
    at.button(key=f"again-{cut.id}").click().run()
    assert cut.answer is not None and cut.answer.refused  # not in these documents
    assert "The documents do not contain the answer." in texts(at)
    assert any(e.label == "Closest passages found · 3" for e in at.main.expander)

    # The conversation starts over on demand; the next question starts a new kept one.
    next(b for b in at.button if b.label == "New conversation").click().run()
    assert len(at.chat_message) == 0
    ask(at, "¿Cuántos parámetros tiene GPT-3?")
    assert [c.turn_count for c in _conversations(kb).list()] == [1, 7]


@pytest.mark.slow
def test_upload_bad_files_then_unlock_with_a_password(home: Path, monkeypatch) -> None:
    monkeypatch.setenv("KBQA_MAX_FILE_MB", "0.1")  # 100 KB: big.pdf is 200 KB
    at = start()
    upload(
        at,
        [
            file_bytes(sample_pdf("broken/invalid.pdf")),
            file_bytes(sample_pdf("encrypted/encrypted-file.pdf")),
            ("big.pdf", b"%PDF-1.4\n" + b"%" * (200 * 1024 - 9)),
            ("../../notes (v2).txt", b"Plain notes about the quarterly budget review."),
            ("setup.exe", b"MZ\x90\x00"),
        ],
    )
    side = sidebar_texts(at)
    assert any(e.label == "Last upload · 1 added, 4 failed" for e in at.sidebar.expander)
    assert "failed\\: broken or truncated PDF" in side
    assert "failed\\: encrypted\\: password needed" in side
    assert "failed\\: file too large \\(200 KB; the limit is 102 KB per file\\)" in side
    assert "failed\\: unsupported file type .exe" in side
    # The uploaded name is a label only: sanitised, and never a path.
    kb = current_kb(at)
    assert [r.name for r in _documents(kb)] == ["notes (v2).txt"]
    assert not list(home.parent.rglob("notes*")) and not list(home.parent.rglob("*.exe"))

    # The encrypted file asks for its password; a wrong one says so; the right one adds it.
    (task,) = [t for t in _tasks(kb) if t.needs_password]
    at.text_input(key=f"pw-{task.id}").set_value("nope")
    next(b for b in at.button if b.label == "Unlock and add").click().run()
    wait_for_uploads(at)
    assert "failed\\: encrypted\\: wrong password" in sidebar_texts(at)
    at.text_input(key=f"pw-{task.id}").set_value("test")
    next(b for b in at.button if b.label == "Unlock and add").click().run()
    wait_for_uploads(at)
    assert "encrypted-file.pdf" in [r.name for r in _documents(kb)]
    assert len(list((kb / "originals").glob("*.pdf"))) == 1

    # Dismissing the report clears it; the documents stay.
    next(b for b in at.button if b.label == "Dismiss").click().run()
    assert not any(e.label.startswith("Last upload") for e in at.sidebar.expander)
    assert "**Documents** · 2" in sidebar_texts(at)


def _documents(kb: Path):
    from kbqa.index.store import KnowledgeBaseStore

    store = KnowledgeBaseStore.open(kb)
    try:
        return store.documents()
    finally:
        store.close()


def _conversations(kb: Path):
    from kbqa.index.conversations import ConversationStore

    return ConversationStore(kb / "chunks.sqlite")


def _tasks(kb: Path):
    from kbqa.app.web import state

    return state.ingest_queue().tasks(kb)

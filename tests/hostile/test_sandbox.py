"""The reading process holds no rights (issue 21): what a parser exploit could try, refused.

The escapes run inside the real reading process through its test-only hook:
``--test-hook FILE`` on its command line, which only the code that starts it
sets (here, a ``ParseWorker`` subclass); no file being read, nor any request,
can reach the command line, and the hook runs before the first request is
read. Each escape is also tried with the sandbox off, where it succeeds, so
these tests can fail.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, sample_pdf, shared_data
from fakes import make_kb

from kbqa.errors import IngestError
from kbqa.ingest import reader_process
from kbqa.ingest.limits import ParseLimits
from kbqa.ingest.reader_process import ParseWorker
from kbqa.ingest.readers import read_document
from kbqa.ingest.types import OCR, ParsedDocument

SECRET = "sk-kbqa-test-secret-4711"
PASSWORDS = {  # ../shared/data/README.md
    "encrypted-file.pdf": "test",
    "crazyones-encrypted-256.pdf": "password",
    "r6-user-password.pdf": "asdfzxcv",
    "libreoffice-writer-password.pdf": "openpassword",
    "r2-empty-password.pdf": "",
}
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="no Tesseract")

HOOK = """
import json, os, socket, subprocess, sys

results = {}

def attempt(name, action):
    try:
        results[name] = ["done", repr(action())[:100]]
    except BaseException as error:
        results[name] = ["refused", type(error).__name__]

attempt("socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
attempt("unix socket", lambda: socket.socket(socket.AF_UNIX).close())
attempt("connect", lambda: socket.create_connection(("127.0.0.1", PORT), timeout=5).close())
attempt("write home", lambda: open(os.path.join(HOME, "owned.txt"), "w").write("owned"))
attempt("create in home", lambda: os.open(os.path.join(HOME, "made"), os.O_RDONLY | os.O_CREAT))
attempt("mkdir in home", lambda: os.mkdir(os.path.join(HOME, "folder")))
attempt("secret", lambda: os.environ["KBQA_API_KEY"])
attempt("token", lambda: os.environ["GITHUB_TOKEN"])
attempt("subprocess", lambda: subprocess.run(["/bin/true"], check=True))
attempt("read a file", lambda: len(open(os.path.join(HOME, "diary.txt")).read()))
if EXEC:
    attempt("execv", lambda: os.execv("/bin/true", ["/bin/true"]))
sys.stderr.write("HOOK " + json.dumps(results) + "\\n")
sys.stderr.flush()
"""
ESCAPES = (
    "socket",
    "unix socket",
    "connect",
    "write home",
    "create in home",
    "mkdir in home",
    "secret",
    "token",
    "subprocess",
)


class HookedWorker(ParseWorker):
    """A reading process that runs ``hook`` (a file of Python) once its sandbox is on."""

    def __init__(self, hook: Path, limits: ParseLimits | None = None) -> None:
        super().__init__(limits)
        self.hook = hook

    def _command(self) -> list[str]:
        return [*super()._command(), "--test-hook", str(self.hook)]


def _ping(worker: ParseWorker) -> None:
    worker._exchange({"op": "ping"}, b"", 30.0)


def _hook_results(worker: ParseWorker) -> dict[str, list[str]]:
    tail = worker._stderr_tail()
    line = next((x for x in tail.splitlines() if x.startswith("HOOK ")), None)
    assert line is not None, tail
    return json.loads(line[5:])


@pytest.fixture
def attacked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A home folder with a private file, secrets in the environment, a listening port."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "diary.txt").write_text("private", encoding="utf-8")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KBQA_API_KEY", SECRET)
    monkeypatch.setenv("GITHUB_TOKEN", SECRET)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.5)
    yield home, listener
    listener.close()


def _hook_file(tmp_path: Path, home: Path, port: int, execv: bool) -> Path:
    hook = tmp_path / "hook.py"
    values = f"HOME = {str(home)!r}\nPORT = {port}\nEXEC = {execv}\n"
    hook.write_text(values + HOOK, encoding="utf-8")
    return hook


def test_in_the_reading_process_no_escape_works(tmp_path: Path, attacked) -> None:
    home, listener = attacked
    hook = _hook_file(tmp_path, home, listener.getsockname()[1], execv=True)
    with HookedWorker(hook) as worker:
        _ping(worker)  # the hook ran before the first request; execv did not end the process
        results = _hook_results(worker)
        document = worker.read("crazyones.pdf", sample_pdf("text/crazyones.pdf").read_bytes())
    for name in (*ESCAPES, "execv"):
        assert results[name][0] == "refused", (name, results[name])
    assert results["socket"][1] == "PermissionError"
    assert results["write home"][1] == "PermissionError"
    assert results["secret"][1] == "KeyError"
    assert results["execv"][1] == "PermissionError"
    assert sorted(p.name for p in home.iterdir()) == ["diary.txt"]  # nothing written
    with pytest.raises(TimeoutError):
        listener.accept()  # no connection ever arrived
    assert "crazy ones" in " ".join(s.text for s in document.sections).lower()
    # Reading is allowed (seccomp cannot tell paths apart): docs/security.md says so.
    assert results["read a file"] == ["done", "7"]


def test_without_the_sandbox_the_same_escapes_work(
    tmp_path: Path, attacked, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the hook's escapes are real ones (KBQA_READER_SANDBOX=0 is for bench/)."""
    home, listener = attacked
    monkeypatch.setenv("KBQA_READER_SANDBOX", "0")
    hook = _hook_file(tmp_path, home, listener.getsockname()[1], execv=False)
    with HookedWorker(hook) as worker:
        _ping(worker)
        results = _hook_results(worker)
    for name in ESCAPES:
        assert results[name][0] == "done", (name, results[name])
    assert (home / "owned.txt").read_text(encoding="utf-8") == "owned"
    listener.accept()[0].close()


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as status:
        pairs = (line.split(":", 1) for line in status if ":" in line)
        return {key: value.strip() for key, value in pairs}


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(x) for x in (task / "children").read_text().split()]
    return found


def test_while_a_large_file_is_read_the_kernel_shows_the_sandbox(monkeypatch) -> None:
    """/proc/<pid>/status of the reading process and of its OCR helper, sampled mid-read."""
    monkeypatch.setenv("KBQA_API_KEY", SECRET)
    path = shared_data("debian-reference-es/debian-reference.es.pdf")
    seen: list[dict[str, str]] = []
    with ParseWorker() as worker:
        _ping(worker)
        assert worker._process is not None
        pid = worker._process.pid
        done = threading.Event()

        def read() -> None:
            try:
                worker.read(path.name, path.read_bytes(), "pdf")
            finally:
                done.set()

        thread = threading.Thread(target=read)
        thread.start()
        while not done.is_set():
            seen.append(_status(pid))
            time.sleep(0.02)
        thread.join()
        helpers = _children(pid)
        environment = Path(f"/proc/{pid}/environ").read_bytes()
        helper_status = [_status(helper) for helper in helpers]
        descriptors = sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))
    assert seen, "the read ended before a sample"
    assert all(s["Seccomp"] == "2" and s["NoNewPrivs"] == "1" for s in seen)
    assert SECRET.encode() not in environment and b"KBQA_API_KEY" not in environment
    if shutil.which("tesseract"):
        assert len(helper_status) == 1  # the OCR helper, sandboxed as well
        assert helper_status[0]["Seccomp"] == "2" and helper_status[0]["NoNewPrivs"] == "1"
    assert len(descriptors) <= 8, descriptors  # pipes and the log, nothing inherited


def _same_outcome(path: Path, password: str | None, worker: ParseWorker) -> str:
    """Read ``path`` in the sandbox and here; the text (or the reason) must be the same."""
    data = path.read_bytes()
    try:
        here: ParsedDocument | str = read_document(path.name, data, None, password)
    except IngestError as error:
        here = error.reason
    try:
        there: ParsedDocument | str = worker.read(path.name, data, None, password)
    except IngestError as error:
        there = error.reason
    if isinstance(here, str) or isinstance(there, str):
        assert here == there, path
        return "failed"
    assert [s.text for s in there.sections] == [s.text for s in here.sections], path
    assert there.warnings == here.warnings, path
    return "read"


def test_every_shared_pdf_reads_the_same_in_the_sandbox() -> None:
    pdfs = shared_data("pdfs")
    outcomes = {}
    with ParseWorker() as worker:
        for folder in ("text", "encrypted", "broken"):
            for path in sorted((pdfs / folder).glob("*.pdf")):
                password = PASSWORDS.get(path.name) if folder == "encrypted" else None
                outcomes[path.name] = _same_outcome(path, password, worker)
    assert outcomes["GeoBase_NHNC1_Data_Model_UML_EN.pdf"] == "read"
    assert all(outcomes[name] == "read" for name in PASSWORDS), outcomes
    assert outcomes["truncated.pdf"] == "failed" and outcomes["empty.pdf"] == "failed"


@needs_tesseract
@pytest.mark.timeout(300)
def test_scanned_pdfs_are_ocrd_in_the_sandbox() -> None:
    """Tesseract runs from the sandboxed process's OCR helper: every scan gets its text.

    All but multipage.pdf (six pages of the same kind, half a minute of OCR on
    2 cores; bench/ocr.py reads it), to keep the suite's time.
    """
    scans = sorted(shared_data("pdfs/scanned").glob("*.pdf"))
    scans = [path for path in scans if path.name != "multipage.pdf"]
    with ParseWorker() as worker:
        for path in scans:
            document = worker.read(path.name, path.read_bytes(), "pdf")
            ocrd = {s.page for s in document.sections if s.text_source == OCR}
            assert ocrd and ocrd == {p.page for p in document.ocr_pages}, path.name
            assert sum(len(s.text) for s in document.sections) > 100, path.name


# -- nothing is parsed in the serving processes ----------------------------------------


@pytest.fixture
def parsers_refused_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """The readers and PDFium raise when called in this process (the API's, the app's)."""
    import pypdfium2

    import kbqa.ingest.readers as readers

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a file was parsed in the serving process")

    monkeypatch.setattr(readers, "read_document", refuse)
    monkeypatch.setattr(readers, "_reader", refuse)
    monkeypatch.setattr(pypdfium2, "PdfDocument", refuse)


def test_uploads_through_the_api_are_read_by_the_child(tmp_path: Path, parsers_refused_here):
    from fastapi.testclient import TestClient

    from kbqa.app.api.catalog import Catalog
    from kbqa.app.api.http import create_app

    home = tmp_path / "home"
    catalog = Catalog(home / "default", home, lambda folder: make_kb(folder))
    pdf = sample_pdf("text/crazyones.pdf").read_bytes()
    files = [
        ("files", ("crazyones.pdf", pdf, "application/pdf")),
        ("files", ("notes.md", b"# Herons\n\nGrey herons wade in shallow water.", "text/x")),
    ]
    with TestClient(create_app(catalog)) as client:
        response = client.post("/v1/knowledge-bases/default/documents", files=files)
    assert response.status_code == 200, response.text
    outcomes = response.json()["data"]
    assert [o["status"] for o in outcomes] == ["added", "added"], outcomes
    assert all(o["chunks"] >= 1 for o in outcomes)


def test_the_apps_ingest_path_reads_in_the_child(tmp_path: Path, parsers_refused_here):
    """The app's upload queue calls ``KnowledgeBase.add_bytes`` (app/web/jobs.py)."""
    kb = make_kb(tmp_path / "kb")
    outcome = kb.add_bytes("crazyones.pdf", sample_pdf("text/crazyones.pdf").read_bytes())
    assert outcome.status == "added" and outcome.chunks >= 1, outcome
    kb.close()


def test_the_benchmark_switch_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KBQA_READER_SANDBOX", raising=False)
    assert reader_process.sandboxed()
    assert "--no-sandbox" not in ParseWorker()._command()
    monkeypatch.setenv("KBQA_READER_SANDBOX", "0")
    assert "--no-sandbox" in ParseWorker()._command()


@pytest.mark.slow  # the whole-ingest row loads the small embedder
def test_bench_sandbox_smoke(tmp_path: Path) -> None:
    import subprocess

    out = tmp_path / "sandbox.json"
    command = [sys.executable, "-P", str(ROOT / "bench" / "sandbox.py"), "--smoke"]
    done = subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, timeout=240, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    rows = {row["input"]: row for row in result["rows"]}
    assert set(rows) == {"start", "pdf", "scifact", "scifact-whole-ingest"}
    for row in rows.values():
        assert row["runs"] >= 1 and row["sandbox_median_s"] > 0 and row["plain_median_s"] > 0
        assert row["overhead_percent"] == pytest.approx(
            100 * (row["sandbox_median_s"] / row["plain_median_s"] - 1), abs=0.2
        )


def test_doctor_shows_each_protection_and_what_is_missing(monkeypatch) -> None:
    import io

    from kbqa.app.doctor import run_doctor
    from kbqa.settings import load_settings

    out = io.StringIO()
    assert run_doctor(load_settings(), out) == 0, out.getvalue()
    table = out.getvalue()
    for name in ("seccomp", "no_new_privs", "environment", "descriptors", "memory_limit"):
        assert any(line.split()[:2] == [name, "yes"] for line in table.splitlines()), table
    monkeypatch.setenv("KBQA_READER_SANDBOX", "0")
    out = io.StringIO()
    assert run_doctor(load_settings(), out) == 1
    assert "NOT sandboxed" in out.getvalue() and "seccomp       NO" in out.getvalue()


def test_without_libseccomp_the_report_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from kbqa.ingest import sandbox

    def missing(*args: object) -> list[str]:
        raise ImportError("No module named 'pyseccomp'")

    monkeypatch.setattr(sandbox, "_load_filter", missing)
    notes = sandbox._filter_notes(sandbox.PROGRAMS, arguments=False)
    assert [(n.name, n.active) for n in notes] == [("seccomp", False)]
    report = sandbox._report(notes)
    assert "pyseccomp" in next(p.detail for p in report.missing if p.name == "seccomp")


def test_a_missing_protection_is_logged_once_by_the_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """As a child on a kernel without seccomp would say it: in every reply."""
    hook = tmp_path / "hook.py"
    hook.write_text(
        "import sys\nsys.modules['__main__']._unsandboxed.append('seccomp: test kernel')\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(reader_process, "_told_unsandboxed", set())
    with caplog.at_level("WARNING", logger="kbqa.ingest.reader_process"):
        with HookedWorker(hook) as worker:
            _ping(worker)
            _ping(worker)
            worker.read("notes.md", b"# Notes\n\nStill read under the limits.")
    said = [r.getMessage() for r in caplog.records if "not sandboxed" in r.getMessage()]
    assert said == ["the reading process is not sandboxed: seccomp: test kernel"]

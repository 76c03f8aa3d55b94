"""How ``tesseract`` runs, and the OCR helper: the one process of a reading process
that may start a program.

``run_here`` starts ``tesseract`` from the calling process (outside the
sandbox: tests, ``bench/ocr.py``); ``runner()`` is the helper's ``run`` in a
reading process that forked one.

The sandboxed reading process (``ingest.reader_child``) may not ``execve``,
yet OCR runs ``tesseract``. Before it reads a byte, the reading process
applies its seccomp filter in two parts: the first refuses all but ``execve``;
then it forks this helper (``start``), which keeps that filter alone; then it
refuses ``execve`` to itself with a second filter (filters stack, and a fork
inherits those loaded before it). The helper serves requests on a pair of
pipes. A request names languages, a dpi and a time limit
and carries a PNG; the helper builds ``tesseract``'s command line itself
(``readers.ocr.tesseract_arguments``, which refuses anything that is not a
language list or a number), runs the program found when it started, killed
past the time limit, and sends back what it wrote. It takes no program name
and no argument text, so a reading process taken over by a hostile file can
make it run ``tesseract`` on a picture, and nothing else.

Why ``execve`` is not limited to "once" by the filter: seccomp cannot compare
a path, and a filter allowing one ``execve`` would have to be loaded by the
program itself. It does not need to: the filter and NO_NEW_PRIVS survive
``execve`` and are inherited by every process started, so a ``tesseract`` taken
over by a hostile picture, or anything it starts, still has no network, no
file to write, no other process to trace, and no way to gain privileges.
What it reads is the picture the reading process drew (PDFium's pixels
re-encoded by Pillow), a narrow surface compared with the file itself.

Protocol (one JSON line, then ``size`` bytes), both ways, with an ``id`` that
pairs replies with requests, so that several pages are read at once:
  {"id", "languages", "dpi", "seconds", "size"} + PNG
      → {"id", "returncode", "timed_out", "stderr", "size"} + stdout
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

MAX_HEADER_BYTES = 64 * 1024
MAX_PICTURE_BYTES = 512 * 1024 * 1024  # a 16 M-pixel page is 16 MB raw, far less as PNG
MAX_REPLY_BYTES = 256 * 1024 * 1024  # a page's word table is kilobytes
MAX_AT_ONCE = 64  # tesseract processes running for one reading process


@dataclass(frozen=True)
class TesseractJob:
    """One run of ``tesseract``: list its languages (``languages`` None) or read a picture."""

    languages: str | None
    seconds: float
    dpi: int | None = None
    picture: bytes = b""  # PNG, given on stdin


@dataclass(frozen=True)
class TesseractRun:
    returncode: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


Runner = Callable[[str, TesseractJob], TesseractRun]  # (program, job) -> what it did
_LANGUAGES_PATTERN = re.compile(r"[A-Za-z0-9_]{1,32}(\+[A-Za-z0-9_]{1,32}){0,7}")
MAX_DPI = 2400


def tesseract_command() -> str:
    """The program: pytesseract's ``tesseract_cmd`` once something set it, else ``tesseract``.

    pytesseract is not imported for it (it imports pandas: 0.3 s).
    """
    module = sys.modules.get("pytesseract.pytesseract")
    return str(getattr(module, "tesseract_cmd", "tesseract"))


def tesseract_arguments(program: str, job: TesseractJob) -> list[str]:
    """The command line of a job; refuses values that are not a language list or a dpi."""
    if job.languages is None:
        return [program, "--list-langs"]
    if not _LANGUAGES_PATTERN.fullmatch(job.languages):
        raise ValueError(f"not a Tesseract language list: {job.languages!r}")
    command = [program, "stdin", "stdout", "-l", job.languages]
    if job.dpi is not None:
        if not isinstance(job.dpi, int) or not 1 <= job.dpi <= MAX_DPI:
            raise ValueError(f"not a resolution: {job.dpi!r}")
        command += ["--dpi", str(job.dpi)]
    return [*command, "tsv"]


def run_here(program: str, job: TesseractJob) -> TesseractRun:
    """Start ``tesseract`` from this process; it is killed past ``job.seconds``.

    Pipes only: ``/dev/null`` cannot be opened for writing in the sandbox.
    """
    import subprocess

    try:
        done = subprocess.run(
            tesseract_arguments(program, job),
            input=job.picture,
            capture_output=True,
            timeout=job.seconds,
            close_fds=True,
        )
    except subprocess.TimeoutExpired:
        return TesseractRun(-9, b"", b"", timed_out=True)
    return TesseractRun(done.returncode, done.stdout, done.stderr)


_broker: OcrBroker | None = None  # this process's helper, once ``start`` forked it


def runner() -> Runner:
    """How ``tesseract`` runs here: through the helper where there is one, else directly."""
    return _broker.run if _broker is not None else run_here


class OcrBroker:
    """The reading process's end: ``run`` is an ``ocr.Runner``; thread-safe."""

    def __init__(self, pid: int, requests: IO[bytes], replies: IO[bytes]) -> None:
        self.pid = pid
        self._requests = requests
        self._replies = replies
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[threading.Event, list[TesseractRun]]] = {}
        self._next = 0
        self._gone = ""
        self._listener: threading.Thread | None = None

    def run(self, program: str, job: TesseractJob) -> TesseractRun:
        """``job`` run by the helper (``program`` is the helper's own, fixed at its start)."""
        tesseract_arguments(program, job)  # refuses bad values here, with the reason
        done = threading.Event()
        answer: list[TesseractRun] = []
        with self._lock:
            if self._gone:
                raise RuntimeError(f"the OCR helper is gone ({self._gone})")
            self._next += 1
            key = self._next
            self._waiting[key] = (done, answer)
            if self._listener is None:
                self._listener = threading.Thread(target=self._listen, name="ocr-helper")
                self._listener.daemon = True
                self._listener.start()
            header: dict[str, Any] = {"id": key, "languages": job.languages, "dpi": job.dpi}
            header["seconds"] = job.seconds
            _send(self._requests, header, job.picture)
        done.wait()
        if not answer:
            raise RuntimeError(f"the OCR helper is gone ({self._gone})")
        return answer[0]

    def _listen(self) -> None:
        reason = "it closed its pipe"
        try:
            while True:
                message = _receive(self._replies, MAX_REPLY_BYTES)
                if message is None:
                    break
                header, stdout = message
                with self._lock:
                    done, answer = self._waiting.pop(int(header["id"]), (None, []))
                if done is not None:
                    stderr = str(header.get("stderr", "")).encode()
                    returncode = int(header["returncode"])
                    timed_out = bool(header.get("timed_out"))
                    answer.append(TesseractRun(returncode, stdout, stderr, timed_out))
                    done.set()
        except (OSError, ValueError, KeyError) as error:
            reason = f"{type(error).__name__}: {error}"
        with self._lock:
            self._gone = reason
            waiting, self._waiting = self._waiting, {}
        for done, _answer in waiting.values():
            done.set()


def start() -> OcrBroker | None:
    """Fork the helper and use it from now on (``runner``); None where Tesseract is not
    installed (OCR then says how to install it).

    Call early, while this process is small (the fork's pages are shared until
    written) and has one thread (a fork keeps only the calling thread).
    """
    global _broker
    import shutil

    program = shutil.which(tesseract_command())
    if program is None:
        return None
    to_helper_read, to_helper_write = os.pipe()
    from_helper_read, from_helper_write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the helper: its own pipes and stderr, nothing else
        code = 1
        try:
            keep = {to_helper_read, from_helper_write, 2}
            for fd in _descriptors():
                if fd not in keep:
                    try:
                        os.close(fd)
                    except OSError:  # the listing's own, already closed
                        pass
            code = serve(program, to_helper_read, from_helper_write)
        finally:
            os._exit(code)
    os.close(to_helper_read)
    os.close(from_helper_write)
    requests = os.fdopen(to_helper_write, "wb")
    replies = os.fdopen(from_helper_read, "rb")
    _broker = OcrBroker(pid, requests, replies)
    return _broker


def serve(program: str, requests_fd: int, replies_fd: int) -> int:
    """The helper's life (under the filter it was forked with): run jobs until EOF."""
    requests = os.fdopen(requests_fd, "rb")
    replies = os.fdopen(replies_fd, "wb")
    lock = threading.Lock()
    slots = threading.BoundedSemaphore(MAX_AT_ONCE)

    def work(key: Any, job: TesseractJob) -> None:
        try:
            done = run_here(program, job)
            reply = {"id": key, "returncode": done.returncode, "timed_out": done.timed_out}
            reply["stderr"] = done.stderr.decode("utf-8", "replace")[-4000:]
            out = done.stdout
        except (OSError, ValueError) as error:
            reply = {"id": key, "returncode": -1, "stderr": f"{type(error).__name__}: {error}"}
            out = b""
        finally:
            slots.release()
        with lock:
            _send(replies, reply, out)

    while True:
        message = _receive(requests, MAX_PICTURE_BYTES)
        if message is None:
            return 0
        header, picture = message
        languages = header.get("languages")
        dpi = header.get("dpi")
        job = TesseractJob(
            None if languages is None else str(languages),
            min(float(header.get("seconds", 60.0)), 24 * 3600.0),
            None if dpi is None else int(dpi),
            picture,
        )
        slots.acquire()
        threading.Thread(target=work, args=(header.get("id"), job), daemon=True).start()


def _send(stream: IO[bytes], header: dict[str, Any], payload: bytes) -> None:
    stream.write(json.dumps({**header, "size": len(payload)}).encode() + b"\n")
    stream.write(payload)
    stream.flush()


def _receive(stream: IO[bytes], limit: int) -> tuple[dict[str, Any], bytes] | None:
    """One message, or None at the end of the stream; ValueError when malformed."""
    line = stream.readline(MAX_HEADER_BYTES)
    if not line:
        return None
    header = json.loads(line)
    size = int(header.get("size", 0))
    if not 0 <= size <= limit:
        raise ValueError(f"a message of {size:,} bytes")
    payload = stream.read(size) if size else b""
    if len(payload) != size:
        return None
    return header, payload


def _descriptors() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 256))

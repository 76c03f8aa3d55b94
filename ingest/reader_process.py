"""Reading files in a child process, so that no file can take the caller down.

``ParseWorker`` keeps one long-lived reading process (``ingest.reader_child``; a
fresh one costs about 0.1 s plus the parsers' imports) and sends it one file
at a time. The child caps its own address space at ``limits.memory_bytes``;
this side enforces ``limits.seconds`` by killing it, and starts a new one for
the next file when it was killed, died, or kept a large heap. Whatever
happens, the caller gets a ``ParsedDocument`` or an ``IngestError`` whose
reason names the limit and its setting.

The child is started with ``subprocess`` (fork and exec, never a bare fork:
the parent may hold threads and torch) and ``python -P``, so a folder named
``kbqa`` in the working directory cannot stand in for the package. It runs in
a session of its own; killing it kills its process group, so the ``tesseract``
processes it runs for OCR go with it. Its environment holds only locale and
path variables (``sandbox.child_environment``: no ``KBQA_API_KEY``, no token),
and it sandboxes itself before reading (``ingest.sandbox``); a protection it
could not apply is logged here once. ``KBQA_READER_SANDBOX=0`` starts it
without the sandbox and with this process's environment, as before: for
``bench/sandbox.py`` to measure the sandbox's cost, not for use.

OCR time: ``limits.seconds`` is for reading a file; when the child announces
that N pages need OCR, read by W Tesseract processes at once, the file's
deadline grows by ceil(N / W) × ``limits.ocr_seconds_per_page``, the most
those pages may take, since each page's process is killed at that limit.
"""

from __future__ import annotations

import json
import logging
import math
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any

from ..errors import IngestError
from ..text import printable
from .limits import ParseLimits
from .reader_child import MAX_HEADER_BYTES, document_from_json
from .sandbox import child_environment
from .types import ParsedDocument

log = logging.getLogger(__name__)
_told_unsandboxed: set[str] = set()  # what was logged, so that each is said once

_CHUNK = 1024 * 1024
# A worker whose resident memory stays above this share of its limit after a
# file is replaced before the next one (Python rarely returns its heap).
_RESTART_SHARE = 0.25
# Signals that mean the child ran out of memory or crashed in native code.
_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGKILL, signal.SIGILL}
_MEMORY_WORDS = ("MemoryError", "out of memory", "bad_alloc", "Cannot allocate memory")

# (source, pages OCR'd so far, pages to OCR), while a file's scanned pages are read.
PageProgress = Callable[[str, int, int], None]


class WorkerFailure(Exception):
    """A request did not get an answer: over time, the child died, or it rejected it."""

    def __init__(self, reason: str, kind: str = "failed") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


class ParseWorker:
    """One reading process at a time, started on first use; thread-safe.

    Use as a context manager (or call ``close``) to end the process.
    ``on_progress`` hears of the pages OCR'd while a file is read.
    """

    def __init__(
        self, limits: ParseLimits | None = None, on_progress: PageProgress | None = None
    ) -> None:
        self.limits = limits or ParseLimits()
        self.on_progress = on_progress
        self.peak_rss = 0  # the largest peak resident memory a child reported, in bytes
        self.started = 0  # how many processes were started
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> ParseWorker:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    # -- requests --------------------------------------------------------------

    def read(
        self, source: str, data: bytes, hint: str | None = None, password: str | None = None
    ) -> ParsedDocument:
        """``readers.read_document`` in the child: the document, or an ``IngestError``."""
        header = {
            "op": "read",
            "source": source,
            "hint": hint,
            "password": password,
            "limits": self.limits.to_dict(),
        }
        progress = self.on_progress

        def pages(done: int, total: int) -> None:
            if progress is not None:
                progress(source, done, total)

        try:
            _reply, payload = self._exchange(header, data, self.limits.seconds, pages)
        except WorkerFailure as failure:
            raise IngestError(source, failure.reason) from None
        return document_from_json(payload)

    def call(
        self,
        target: str,
        args: dict[str, Any],
        payload: bytes = b"",
        seconds: float | None = None,
    ) -> tuple[Any, bytes]:
        """``target(args, payload, limits)`` in the child (``"kbqa.module:function"``).

        Raises:
            WorkerFailure: over time, the child died, or the function raised.
        """
        header = {"op": "call", "target": target, "args": args, "limits": self.limits.to_dict()}
        reply, out = self._exchange(header, payload, seconds or self.limits.seconds)
        return reply.get("result"), out

    def close(self) -> None:
        with self._lock:
            self._stop(kill=False)

    # -- the process -------------------------------------------------------------

    def _command(self) -> list[str]:
        command = [sys.executable, "-P", "-m", "kbqa.ingest.reader_child"]
        command += ["--memory-bytes", str(int(self.limits.memory_bytes))]
        if not sandboxed():
            command.append("--no-sandbox")
        return command

    def _start(self) -> subprocess.Popen[bytes]:
        self._stderr = tempfile.TemporaryFile(prefix="kbqa-reader-")
        process = subprocess.Popen(
            self._command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            close_fds=True,  # only the pipes and the log: no socket, no file of the caller's
            start_new_session=True,  # a terminal's Ctrl-C goes to the parent, which decides
            env=child_environment(os.environ) if sandboxed() else None,
        )
        assert process.stdin is not None and process.stdout is not None
        os.set_blocking(process.stdin.fileno(), False)
        os.set_blocking(process.stdout.fileno(), False)
        self._process = process
        self.started += 1
        return process

    def _stop(self, kill: bool) -> None:
        process, self._process = self._process, None
        if process is not None:
            if kill:
                _kill_group(process)
            else:
                try:
                    assert process.stdin is not None
                    process.stdin.close()  # the child's cue to exit
                    process.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    process.kill()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not wait
                log.warning("reading process %s did not end after SIGKILL", process.pid)
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - 4000))
            return self._stderr.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    # -- one exchange --------------------------------------------------------------

    def _exchange(
        self,
        header: dict[str, Any],
        payload: bytes,
        seconds: float,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> tuple[dict[str, Any], bytes]:
        with self._lock:
            deadline = time.monotonic() + seconds
            process = self._process or self._start()
            request = json.dumps({**header, "size": len(payload)}).encode() + b"\n"
            try:
                reply, out = self._transfer(process, [request, payload], deadline, on_progress)
            except _TimedOut:
                self._stop(kill=True)
                raise WorkerFailure(self.limits.over("seconds"), "timeout") from None
            except _Died as died:
                if died.kill:
                    _kill_group(process)
                raise WorkerFailure(self._death_reason(process, died.detail), "died") from None
            except BaseException:  # Ctrl-C or a bug here: the child may be mid-request
                self._stop(kill=True)
                raise
            self.peak_rss = max(self.peak_rss, int(reply.get("peak_rss", 0)))
            for missing in list(reply.get("unsandboxed") or ())[:16]:
                said = printable(str(missing))[:300]  # from the child: data, escaped
                if said not in _told_unsandboxed and len(_told_unsandboxed) < 64:
                    _told_unsandboxed.add(said)
                    log.warning("the reading process is not sandboxed: %s", said)
            heavy = int(reply.get("rss", 0)) > _RESTART_SHARE * self.limits.memory_bytes
            if reply.get("restart") or heavy:
                self._stop(kill=False)
            if not reply.get("ok"):
                kind = str(reply.get("kind", "failed"))
                if kind == "memory":
                    reason = self.limits.over("memory_bytes")
                else:
                    reason = str(reply.get("reason") or "could not be read")
                if kind == "unexpected":
                    log.error("reader error: %s\n%s", reason, reply.get("traceback", ""))
                raise WorkerFailure(reason, kind)
            return reply, out

    def _death_reason(self, process: subprocess.Popen[bytes], detail: str) -> str:
        try:
            code = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            code = process.wait()
        tail = self._stderr_tail()
        self._stop(kill=True)
        if tail:
            log.warning("reading process ended (%s, %s); its last words:\n%s", code, detail, tail)
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        memory = self.limits.over("memory_bytes")
        if any(word in tail for word in _MEMORY_WORDS):
            return f"{memory} (the reading process died: {how})"
        if code < 0 and -code in _CRASH_SIGNALS:
            return f"the reading process crashed ({how}, {detail}): a parser bug, or {memory}"
        return f"the reading process ended unexpectedly ({how}, {detail})"

    def _transfer(
        self,
        process: subprocess.Popen[bytes],
        parts: list[bytes],
        deadline: float,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> tuple[dict[str, Any], bytes]:
        """Write the request while reading the reply, until it is whole or time is up.

        Progress lines before the reply go to ``on_progress``; one that
        announces pages to OCR moves the deadline by the time they may take.
        """
        assert process.stdin is not None and process.stdout is not None
        views = [memoryview(part) for part in parts if part]
        received = bytearray()
        header: dict[str, Any] | None = None
        needed = -1
        limit = self._reply_limit()
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            if views:
                selector.register(process.stdin, selectors.EVENT_WRITE)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _TimedOut
                for key, _events in selector.select(min(left, 1.0)):
                    if key.fileobj is process.stdin:
                        try:
                            written = os.write(process.stdin.fileno(), views[0][:_CHUNK])
                        except BlockingIOError:
                            continue
                        except (BrokenPipeError, ConnectionResetError):
                            selector.unregister(process.stdin)
                            views = []
                            continue
                        views[0] = views[0][written:]
                        if not views[0]:
                            views.pop(0)
                        if not views:
                            selector.unregister(process.stdin)
                        continue
                    try:
                        data = os.read(process.stdout.fileno(), _CHUNK)
                    except BlockingIOError:
                        continue
                    if not data:
                        raise _Died("no reply" if header is None else "reply cut short")
                    received += data
                    while header is None:
                        end = received.find(b"\n")
                        if end < 0:
                            if len(received) > MAX_HEADER_BYTES:
                                raise _Died("malformed reply", kill=True)
                            break
                        try:
                            header = json.loads(bytes(received[:end]))
                            needed = int(header.get("size", 0))
                        except (ValueError, AttributeError):
                            raise _Died("malformed reply", kill=True) from None
                        del received[: end + 1]
                        if needed > limit:
                            raise _Died(f"a reply of {needed:,} bytes", kill=True)
                        if header.get("progress"):
                            deadline += self._progress(header, on_progress)
                            header = None
                    if header is not None and len(received) >= needed:
                        return header, bytes(received[:needed])

    def _progress(
        self, header: dict[str, Any], on_progress: Callable[[int, int], None] | None
    ) -> float:
        """Pass a progress line on; the seconds its newly announced OCR pages may take."""
        try:
            done, total = int(header["done"]), int(header["total"])
            workers = max(1, int(header.get("workers", 1)))
        except (KeyError, TypeError, ValueError):
            raise _Died("malformed progress line", kill=True) from None
        if on_progress is not None:
            on_progress(done, total)
        if done != 0:
            return 0.0
        return math.ceil(total / workers) * self.limits.ocr_seconds_per_page

    def _reply_limit(self) -> int:
        """The most a reply may hold: the text limit as UTF-8 JSON, or a page picture."""
        return max(16 * self.limits.max_chars, 8 * self.limits.max_page_pixels) + (16 << 20)


def sandboxed() -> bool:
    """Whether reading processes sandbox themselves (all but ``KBQA_READER_SANDBOX=0``)."""
    return os.environ.get("KBQA_READER_SANDBOX", "1").strip() != "0"


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the reading process and whatever it started (its tesseract processes)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: its group id is its pid
    except (ProcessLookupError, PermissionError, OSError):
        pass
    process.kill()


class _TimedOut(Exception):
    pass


class _Died(Exception):
    def __init__(self, detail: str, kill: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.kill = kill

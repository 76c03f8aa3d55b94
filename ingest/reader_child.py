"""The reading process: sniffs and parses files for its parent, within limits.

Started by ``ingest.reader_process.ParseWorker`` as ``python -P -m kbqa.ingest.reader_child
--memory-bytes N``, with an environment cleared of secrets and only its pipes
open; it caps its own address space (RLIMIT_AS) before reading anything, so
a bomb ends in a MemoryError here, or at worst this process dies; the parent
enforces the wall-clock limit by killing it. Then, still before reading, it
applies its sandbox (``ingest.sandbox``: no network, no programs, no file
opened for writing), forking its OCR helper (``ingest.ocr_broker``) on the way;
``--no-sandbox`` (``KBQA_READER_SANDBOX=0`` in the parent) skips both, for
measuring what they cost.

``--test-hook FILE`` is for tests only (tests/hostile/test_sandbox.py): the
Python in FILE, read before the sandbox, runs once after it, so a test can try
what a parser exploit would. It is a command-line argument, which only the
code that starts this process sets; nothing a file or a request carries can
reach it (requests are read after it ran, and name no file to execute).

Protocol (stdin → requests, stdout → replies, one at a time): a message is one
line of JSON, the header, then exactly ``header["size"]`` raw bytes, the
payload. No pickle: headers are plain JSON, payloads are file bytes, a parsed
document as UTF-8 JSON, or a picture.

Requests:
  {"op": "read", "source", "hint", "password", "limits", "size"} + the file's bytes
      → {"ok": true, "size"} + the ParsedDocument as JSON (``document_from_json``)
      → first, while pages are OCR'd: {"progress": true, "done", "total", "workers",
        "size": 0} lines (``total`` pages, read by ``workers`` Tesseract processes at
        once: the parent grants the time they may take, ``ingest.reader_process``)
  {"op": "call", "target": "kbqa.module:function", "args", "limits", "size"} + bytes
      → {"ok": true, "result", "size"} + bytes: ``function(args, payload, limits)``
        returns ``(result, bytes)``; only functions under ``kbqa.`` are called
  {"op": "ping"} → {"ok": true}
Failures: {"ok": false, "kind": "rejected" | "memory" | "unexpected", "reason"}.
Every reply carries "rss" and "peak_rss" (bytes) so the parent can restart a
worker that kept a large heap, and, when a protection of the sandbox is
missing, "unsandboxed": what and why. After a MemoryError the worker replies
and exits. The OCR helper and its Tesseract processes run in this process's
group (a session of its own), so the parent ends them all at once.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import IO, Any

from ..errors import IngestError
from .limits import ParseLimits
from .types import TEXT_LAYER, PageOcr, ParsedDocument, Section

MAX_HEADER_BYTES = 1024 * 1024
_unsandboxed: list[str] = []  # the sandbox's missing protections, told with every reply
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def send(stream: IO[bytes], header: dict[str, Any], payload: bytes = b"") -> None:
    header = {**header, "size": len(payload)}
    stream.write(json.dumps(header).encode() + b"\n")
    if payload:
        stream.write(payload)
    stream.flush()


def document_to_json(document: ParsedDocument) -> bytes:
    data = {
        "source": document.source,
        "format": document.format,
        "pages": document.pages,
        "title": document.title,
        "warnings": list(document.warnings),
        "sections": [
            [s.text, s.page, s.offset, s.heading, s.text_source] for s in document.sections
        ],
        "ocr_pages": [[p.page, p.confidence] for p in document.ocr_pages],
    }
    # PDF text may hold lone surrogates; they travel as they are.
    return json.dumps(data, ensure_ascii=False).encode("utf-8", "surrogatepass")


def document_from_json(payload: bytes) -> ParsedDocument:
    data = json.loads(payload.decode("utf-8", "surrogatepass"))
    return ParsedDocument(
        source=data["source"],
        format=data["format"],
        pages=data["pages"],
        sections=tuple(
            Section(f[0], f[1], f[2], f[3], f[4] if len(f) > 4 else TEXT_LAYER)
            for f in data["sections"]
        ),
        title=data["title"],
        warnings=tuple(data["warnings"]),
        ocr_pages=tuple(PageOcr(int(n), float(c)) for n, c in data.get("ocr_pages", [])),
    )


def progress_header(done: int, total: int) -> dict[str, Any]:
    """A progress line: ``done`` of ``total`` pages OCR'd, by how many processes at once."""
    from .readers.ocr import workers_for

    return {"progress": True, "done": done, "total": total, "workers": workers_for(total)}


def handle(
    header: dict[str, Any],
    payload: bytes,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Any], bytes]:
    """One request's reply; every failure becomes a reply, never an exception.

    ``on_progress(done, total)`` is told of the pages OCR'd while a file is read.
    """
    started = time.perf_counter()
    try:
        limits = ParseLimits.from_dict(header.get("limits") or {})
        op = header.get("op")
        if op == "ping":
            reply: dict[str, Any] = {"ok": True}
            out = b""
        elif op == "read":
            from .readers import read_document

            document = read_document(
                header["source"],
                payload,
                header.get("hint"),
                header.get("password"),
                limits,
                on_progress,
            )
            del payload
            reply, out = {"ok": True}, document_to_json(document)
        elif op == "call":
            target = str(header["target"])
            if not target.startswith("kbqa.") or ":" not in target:
                raise ValueError(f"not a kbqa function: {target!r}")
            module, name = target.split(":", 1)
            function = getattr(importlib.import_module(module), name)
            result, out = function(header.get("args") or {}, payload, limits)
            reply = {"ok": True, "result": result}
        else:
            raise ValueError(f"unknown request {op!r}")
    except IngestError as error:
        reply, out = {"ok": False, "kind": "rejected", "reason": error.reason}, b""
    except MemoryError:
        reply, out = {"ok": False, "kind": "memory", "restart": True}, b""
    except RecursionError:
        reason = "nested too deeply to read (Python's recursion limit)"
        reply, out = {"ok": False, "kind": "rejected", "reason": reason}, b""
    except Exception as error:  # noqa: BLE001 - a parser's bug fails one file, not the worker
        reply = {
            "ok": False,
            "kind": "unexpected",
            "reason": f"unexpected error ({type(error).__name__}: {error}); please report it",
            "traceback": traceback.format_exc(limit=20)[-4000:],
        }
        out = b""
    reply["seconds"] = round(time.perf_counter() - started, 4)
    reply.update(memory_use())
    if _unsandboxed:
        reply["unsandboxed"] = _unsandboxed
    return reply, out


def memory_use() -> dict[str, int]:
    """This process's resident memory now and at its peak, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    try:
        with open("/proc/self/statm") as statm:
            rss = int(statm.read().split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        rss = peak
    return {"rss": rss, "peak_rss": peak}


def _limit_memory(memory_bytes: int) -> None:
    if memory_bytes > 0:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            memory_bytes = min(memory_bytes, hard)
        try:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, hard))
        except (ValueError, OSError) as error:  # not every system enforces RLIMIT_AS
            print(f"kbqa reader: no memory limit ({error}); time still is", file=sys.stderr)


def _exit_with_parent() -> None:
    """End this process when its parent is gone (the parent may be killed mid-read)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                try:  # this process's group: itself and its tesseract processes
                    os.killpg(os.getpgid(0), signal.SIGKILL)
                finally:
                    os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _sandbox() -> None:
    """The sandbox, with the OCR helper forked between its two filters.

    The first filter refuses all but starting programs; the helper, forked
    then, keeps it alone, so it can start ``tesseract``; the second, on this
    process only, refuses ``execve``. What is missing is said once, here and
    by the parent.
    """
    from . import ocr_broker, sandbox

    report = sandbox.apply(allow_programs=True)
    try:
        ocr_broker.start()  # forked now, while this process is small and has one thread
    except OSError as error:  # no process to spare: OCR fails, reading goes on
        _unsandboxed.append(f"ocr_helper: not started ({error}); OCR will fail")
    report = sandbox.forbid_programs(report)
    for protection in report.missing:
        _unsandboxed.append(f"{protection.name}: {protection.detail}")
    for line in _unsandboxed:
        print(f"kbqa reader: not sandboxed: {line}", file=sys.stderr)


def _read_hook(path: str | None) -> Any:
    if path is None:
        return None
    with open(path, encoding="utf-8") as source:
        return compile(source.read(), path, "exec")


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kbqa-reader", description=__doc__)
    parser.add_argument("--memory-bytes", type=int, default=ParseLimits().memory_bytes)
    parser.add_argument("--no-sandbox", action="store_true", help="for measuring its cost")
    parser.add_argument("--test-hook", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # The protocol owns the real stdout; anything a library prints goes to stderr.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    requests = sys.stdin.buffer
    _limit_memory(args.memory_bytes)
    # Tesseract processes run side by side, one per core: one thread each, or
    # OpenMP's threads fight over the same cores (measured slower, docs/quality.md).
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    hook = _read_hook(args.test_hook)
    if not args.no_sandbox:
        _sandbox()
    _exit_with_parent()
    if hook is not None:
        exec(hook, {"__name__": "kbqa_test_hook"})  # noqa: S102 - tests only, see above

    def progress(done: int, total: int) -> None:
        send(replies, progress_header(done, total))

    while True:
        line = requests.readline(MAX_HEADER_BYTES)
        if not line:  # the parent closed the pipe: done, and nothing is left to tidy
            sys.stderr.flush()
            os._exit(0)  # (a full interpreter shutdown costs the parent's close 15-30 ms)
        header = json.loads(line)
        payload = _read_exactly(requests, int(header.get("size", 0)))
        if payload is None:
            return 1
        reply, out = handle(header, payload, progress)
        del payload
        send(replies, reply, out)
        del out
        if reply.get("restart"):
            return 0


if __name__ == "__main__":
    sys.exit(main())

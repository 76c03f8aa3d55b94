"""Uploads are ingested by one background thread, so the page stays responsive.

A Streamlit script run blocks its session, and any click while it runs would
stop it half way through a batch. Instead the page hands the uploaded bytes
to ``IngestQueue`` and shows each file's state until the queue is idle. One
worker is enough: a knowledge base has one writer at a time anyway.

The worker opens its own ``KnowledgeBase`` for each batch (its own SQLite
connection), so questions keep being answered from the page's instance
while a long file is embedded.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from ...errors import KbqaError
from ...qa.knowledge_base import KnowledgeBase, safe_upload_name
from . import originals

log = logging.getLogger(__name__)

State = Literal["queued", "working", "added", "updated", "unchanged", "failed"]
DONE: frozenset[str] = frozenset({"added", "updated", "unchanged", "failed"})


@dataclass(frozen=True)
class FileTask:
    """One uploaded file on its way into a knowledge base."""

    id: str
    kb: str  # the knowledge-base folder
    name: str  # sanitised display name
    size: int
    state: State = "queued"
    reason: str | None = None
    pages: int = 0
    chunks: int = 0
    warnings: tuple[str, ...] = ()
    doc_id: str | None = None
    started: float | None = None
    finished: float | None = None

    @property
    def done(self) -> bool:
        return self.state in DONE

    @property
    def needs_password(self) -> bool:
        return self.state == "failed" and (self.reason or "").startswith("encrypted")

    @property
    def seconds(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started


Opener = Callable[[Path], KnowledgeBase]


def human_size(size: float) -> str:
    """``812 bytes``, ``2.0 KB``, ``193 KB``, ``1.5 MB``."""
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale or unit == "KB" and size >= 1000:
            value = size / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{size:.0f} bytes"


class IngestQueue:
    """Files wait here for the worker; the page reads snapshots of their state."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, FileTask] = {}
        self._data: dict[str, bytes] = {}  # kept until done; failed encrypted files keep theirs
        self._passwords: dict[str, str] = {}
        self._openers: dict[str, Opener] = {}
        self._pending: queue.Queue[str] = queue.Queue()
        self._worker: threading.Thread | None = None

    # -- the page's side --------------------------------------------------

    def submit(
        self,
        kb: Path,
        files: Sequence[tuple[str, bytes]],
        opener: Opener,
        max_mb: float | None = None,
    ) -> list[str]:
        """Queue uploaded ``(name, bytes)`` files for ``kb``; the new tasks' ids.

        A file over ``max_mb`` fails at once, without waiting in the queue.
        Finished tasks of that knowledge base are cleared first, except files
        still waiting for a password.
        """
        folder = str(kb)
        ids, queued = [], []
        now = time.monotonic()
        with self._lock:
            self.clear_finished(kb, keep_password_requests=True, locked=True)
            self._openers[folder] = opener
            for name, data in files:
                task = FileTask(uuid.uuid4().hex, folder, safe_upload_name(name), len(data))
                ids.append(task.id)
                if max_mb is not None and len(data) > max_mb * 1024 * 1024:
                    size, limit = human_size(len(data)), human_size(max_mb * 1024 * 1024)
                    reason = f"file too large ({size}; the limit is {limit} per file)"
                    task = replace(task, state="failed", reason=reason, started=now, finished=now)
                else:
                    self._data[task.id] = data
                    queued.append(task.id)
                self._tasks[task.id] = task
        for task_id in queued:
            self._pending.put(task_id)
        self._ensure_worker()
        return ids

    def retry(self, task_id: str, password: str, opener: Opener) -> bool:
        """Queue a file that needs a password again, with ``password``."""
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or task_id not in self._data or not task.needs_password:
                return False
            self._tasks[task_id] = replace(task, state="queued", reason=None, finished=None)
            self._passwords[task_id] = password
            self._openers[task.kb] = opener
        self._pending.put(task_id)
        self._ensure_worker()
        return True

    def tasks(self, kb: Path) -> list[FileTask]:
        """The tasks of a knowledge base, in upload order."""
        with self._lock:
            return [t for t in self._tasks.values() if t.kb == str(kb)]

    def busy(self, kb: Path) -> bool:
        return any(not t.done for t in self.tasks(kb))

    def clear_finished(
        self, kb: Path, keep_password_requests: bool = False, locked: bool = False
    ) -> None:
        if not locked:
            with self._lock:
                self.clear_finished(kb, keep_password_requests, locked=True)
            return
        for task in list(self._tasks.values()):
            if task.kb == str(kb) and task.done:
                if keep_password_requests and task.needs_password:
                    continue
                del self._tasks[task.id]
                self._data.pop(task.id, None)
                self._passwords.pop(task.id, None)

    def wait(self, kb: Path, timeout_s: float) -> bool:
        """Block until ``kb`` has no unfinished task (for tests and scripts)."""
        deadline = time.monotonic() + timeout_s
        while self.busy(kb):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    # -- the worker's side -----------------------------------------------

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="kbqa-ingest", daemon=True)
                self._worker.start()

    def _run(self) -> None:
        while True:
            task_id = self._pending.get()
            batch = [task_id]
            while True:  # take what else is queued, to open each knowledge base once
                try:
                    batch.append(self._pending.get_nowait())
                except queue.Empty:
                    break
            by_kb: dict[str, list[str]] = {}
            for task_id in batch:
                task = self._tasks.get(task_id)
                if task is not None:
                    by_kb.setdefault(task.kb, []).append(task_id)
            for folder, task_ids in by_kb.items():
                self._ingest(folder, task_ids)

    def _ingest(self, folder: str, task_ids: list[str]) -> None:
        try:
            kb = self._openers[folder](Path(folder))
        except KbqaError as error:
            for task_id in task_ids:
                self._finish(task_id, state="failed", reason=str(error))
            return
        try:
            for task_id in task_ids:
                self._ingest_one(kb, task_id)
        finally:
            kb.close()

    def _ingest_one(self, kb: KnowledgeBase, task_id: str) -> None:
        with self._lock:
            task = self._tasks.get(task_id)
            data = self._data.get(task_id)
            password = self._passwords.pop(task_id, None)
            if task is None or data is None:
                return
            self._tasks[task_id] = replace(task, state="working", started=time.monotonic())
        try:
            outcome = kb.add_bytes(task.name, data, password=password)
        except (KbqaError, OSError) as error:  # a locked or broken KB fails the file, not the app
            log.warning("ingesting %s failed: %s", task.name, error)
            self._finish(task_id, state="failed", reason=str(error))
            return
        except Exception as error:  # noqa: BLE001 - the worker must outlive any one file
            log.exception("ingesting %s failed", task.name)
            self._finish(task_id, state="failed", reason=f"{type(error).__name__}: {error}")
            return
        if outcome.status != "failed" and outcome.doc_id:  # PDFs and images, for page pictures
            originals.keep_original(kb.folder, outcome.doc_id, data, password)
        state: State = outcome.status if outcome.status in DONE else "failed"  # type: ignore[assignment]
        self._finish(
            task_id,
            state=state,
            reason=outcome.reason,
            pages=outcome.pages,
            chunks=outcome.chunks,
            warnings=outcome.warnings,
            doc_id=outcome.doc_id,
        )

    def _finish(self, task_id: str, **changes: object) -> None:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return
            done = replace(task, finished=time.monotonic(), **changes)  # type: ignore[arg-type]
            if done.started is None:
                done = replace(done, started=done.finished)
            self._tasks[task_id] = done
            if not done.needs_password:
                self._data.pop(task_id, None)

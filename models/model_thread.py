"""One thread runs every model computation of the process (loading, embedding, decoding).

Why: torch's CPU kernels run on OpenMP (libgomp), which keeps a pool of worker
threads for each thread that calls into it. Once two pools exist (a web request
embedding a question, a generation thread decoding), there are more OpenMP threads
than cores on a small machine and libgomp makes every pool sleep between parallel
regions instead of spinning, paying a wake-up in each of the ~170 regions of a
decoding step: 60 tokens of the 0.5B took 5.0 s on the first thread to compute and
6.2 s once a second had computed anything (3.9 s instead of 2.8 s with the int8
decode weights; 2 cores, docs/performance.md).

Short tasks (embedding a question) do not wait for a long generation to end: the
generation runs them between two tokens (``run_short_tasks``), still on this thread.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

THREAD_NAME = "kbqa-models"


class _Task:
    def __init__(self, function: Callable[[], Any]) -> None:
        self.function = function
        self.future: Future[Any] = Future()

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            self.future.set_result(self.function())
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            self.future.set_exception(error)


class ModelThread:
    """A single worker thread with two queues: short tasks first, then long ones."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._short: deque[_Task] = deque()
        self._long: deque[_Task] = deque()
        self._thread: threading.Thread | None = None

    def on_this_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def call(self, function: Callable[[], T]) -> T:
        """Run a short task on the model thread and wait for its result (inline when
        called from the model thread itself, so nested calls cannot deadlock)."""
        if self.on_this_thread():
            return function()
        return self._put(self._short, function).result()

    def start_long(self, function: Callable[[], T]) -> Future[T]:
        """Queue a long task (a generation); its future says when it ended."""
        if self.on_this_thread():  # a generation started from a task: runs to the end here
            task = _Task(function)
            task.run()
            return task.future
        return self._put(self._long, function)

    def run_short_tasks(self) -> None:
        """Called by a long task between steps: runs the short tasks waiting."""
        while True:
            with self._ready:
                if not self._short:
                    return
                task = self._short.popleft()
            task.run()

    def _put(self, queue: deque[_Task], function: Callable[[], Any]) -> Future[Any]:
        task = _Task(function)
        with self._ready:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=THREAD_NAME, daemon=True)
                self._thread.start()
            queue.append(task)
            self._ready.notify()
        return task.future

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._short and not self._long:
                    self._ready.wait()
                task = self._short.popleft() if self._short else self._long.popleft()
            task.run()

    def _forget_after_fork(self) -> None:
        """A forked child has no copy of the thread: it starts its own when needed."""
        self._ready = threading.Condition()
        self._short.clear()
        self._long.clear()
        self._thread = None


MODEL_THREAD = ModelThread()
os.register_at_fork(after_in_child=MODEL_THREAD._forget_after_fork)

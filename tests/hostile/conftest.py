"""Fixtures for the hostile-input tests: a knowledge base with the fake embedder and
the real 50 MB file limit, and a watch on this (the parent) process's memory."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakes import make_kb

from kbqa.ingest.limits import ParseLimits
from kbqa.ingest.local import FileOutcome
from kbqa.qa.knowledge_base import KnowledgeBase

MB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")
# What a hostile file may cost this process and the wall clock, whatever it holds.
PARENT_GROWTH_LIMIT = 150 * MB
SECONDS_LIMIT = 10.0
GOOD_TEXT = "A good file about grey herons, which wade in shallow water."


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


class PeakRss:
    """The most this process's resident memory grew while inside the block (sampled)."""

    def __init__(self) -> None:
        self.growth = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakRss:
        self._base = rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.growth = max(self.growth, rss() - self._base)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.growth = max(self.growth, rss() - self._base)


def hostile_kb(folder: Path, limits: ParseLimits | None = None) -> KnowledgeBase:
    """The fakes with the real 50 MB file limit."""
    return make_kb(folder, max_file_bytes=50 * MB, limits=limits)


@dataclass
class Batch:
    """One ``kb.add`` of a folder holding the hostile file and a good one."""

    kb: KnowledgeBase
    outcomes: dict[str, FileOutcome]
    seconds: float
    parent_growth: int

    def reason(self, name: str) -> str:
        outcome = self.outcomes[name]
        assert outcome.status == "failed", (name, outcome)
        return str(outcome.reason)

    def assert_bounded_and_good_file_added(self) -> None:
        assert self.outcomes["good.txt"].status == "added"
        assert "good.txt" in [d.name for d in self.kb.documents()]
        assert self.seconds < SECONDS_LIMIT, self.seconds
        assert self.parent_growth < PARENT_GROWTH_LIMIT, self.parent_growth / MB


@pytest.fixture
def ingest_beside_good(tmp_path: Path) -> Iterator:
    """``ingest_beside_good({"bad.pdf": bytes}, limits=None)`` → ``Batch``."""
    kbs: list[KnowledgeBase] = []

    def run(files: dict[str, bytes], limits: ParseLimits | None = None) -> Batch:
        docs = tmp_path / "docs"
        docs.mkdir(exist_ok=True)
        (docs / "good.txt").write_text(GOOD_TEXT)
        for name, data in files.items():
            (docs / name).write_bytes(data)
        kb = hostile_kb(tmp_path / "kb", limits)
        kbs.append(kb)
        with PeakRss() as peak:
            started = time.perf_counter()
            report = kb.add([docs])
            seconds = time.perf_counter() - started
        outcomes = {Path(o.source).name: o for o in report.outcomes}
        return Batch(kb, outcomes, seconds, peak.growth)

    yield run
    for kb in kbs:
        kb.close()

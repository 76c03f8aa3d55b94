"""Crash safety: a real ``kbqa ingest`` process is SIGKILLed at many moments.

The requirement: whenever an ingest dies, the folder still opens, every
document is in its old or its new state (never a mixture), and the FAISS index
agrees with the chunk table. The kills come from two sources:

* timing: a kill at a seeded random moment of start-up and model loading, kills
  right after the first commit of a run is seen (ingest embeds a batch of files,
  then writes them one transaction each, so these land in that burst of
  writes), and one at a random moment around it;
* exact points, no timing luck: a small wrapper around the real CLI SIGKILLs
  its own process in the middle of one document's SQLite transaction (old chunks
  deleted, new ones half inserted) and in the middle of writing the FAISS
  snapshot.

A fast test hand-writes torn and garbage snapshot files and a stray temporary.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from fakes import make_kb

ROOT = Path(__file__).resolve().parents[1]
SEED = 20240611
_KEPT = ("KBQA_HOME", "KBQA_CACHE_DIR")  # a real user's defaults, but the tests' own folders

# Plain, common words, so that paragraph lengths in embedder tokens are predictable.
VOCABULARY = """
river mountain copper lantern orbit meadow quartz harbor forest signal engine
bridge winter summer garden market letter window candle thunder silver garnet
valley island desert planet rocket velvet marble castle tunnel compass anchor
pepper ginger walnut cedar maple willow falcon badger otter salmon heron
violin trumpet piano cello drum flute guitar canvas pencil paper ink chalk
""".split()


# -- the corpus ------------------------------------------------------------


def _document_text(index: int, version: str, paragraphs: int, extra_word: str | None) -> str:
    """Text whose every sentence carries ``doc<index>-<version>``: any chunk names its version."""
    rng = random.Random(f"{index}-{version}")
    tag = f"doc{index:02d}-{version}"
    markdown = index % 3 == 0
    lines = [f"# {tag} notes on {rng.choice(VOCABULARY)}\n" if markdown else f"{tag} notes\n"]
    for number in range(paragraphs):
        if markdown and number % 6 == 5:
            lines.append(f"## {tag} part {number // 6}\n")
        sentences = []
        for _ in range(4):
            words = [rng.choice(VOCABULARY) for _ in range(rng.randint(9, 14))]
            if extra_word and rng.random() < 0.3:
                words.insert(rng.randrange(len(words)), extra_word)
            sentences.append(f"In {tag} the " + " ".join(words) + ".")
        lines.append(" ".join(sentences) + "\n")
    return "\n".join(lines)


@dataclass
class Corpus:
    folder: Path
    kb: Path
    v1: dict[str, bytes] = field(default_factory=dict)  # source -> first version's bytes
    v2: dict[str, bytes] = field(default_factory=dict)  # source -> bytes after the edit
    search_word: str = ""
    search_source: str = ""

    def allowed(self, source: str) -> dict[str, bytes]:
        """The versions a document may be stored in: its old and its new bytes."""
        versions = {}
        if source in self.v1:
            versions["v1"] = self.v1[source]
        if source in self.v2:
            versions["v2"] = self.v2[source]
        return versions

    def final(self) -> dict[str, bytes]:
        return {**self.v1, **self.v2}


LONG = {3, 11, 18, 26, 33, 37, 42}  # 6 to 8 chunks each; the rest have 1 to 3
MODIFIED = set(range(0, 40, 2)) | {3, 33}  # 22 of the 40 first-version files change
ADDED = range(40, 45)


def _write_corpus(folder: Path) -> Corpus:
    corpus = Corpus(folder / "corpus", folder / "kb")
    corpus.folder.mkdir()
    rng = random.Random(SEED)
    for index in range(40):
        length = rng.randint(11, 15) if index in LONG else rng.randint(1, 4)
        path = corpus.folder / f"doc{index:02d}.{'md' if index % 3 == 0 else 'txt'}"
        data = _document_text(index, "v1", length, None).encode()
        path.write_bytes(data)
        corpus.v1[str(path.resolve())] = data
    for index in sorted(MODIFIED):
        path = next(corpus.folder.glob(f"doc{index:02d}.*"))
        # A different length, so that the chunk count changes too.
        length = rng.randint(11, 15) if index in LONG else rng.randint(1, 4)
        word = f"quillfeather{index:02d}" if index == 26 else None
        corpus.v2[str(path.resolve())] = _document_text(index, "v2", length, word).encode()
        if word:
            corpus.search_word, corpus.search_source = word, str(path.resolve())
    for index in ADDED:
        path = corpus.folder / f"doc{index:02d}.{'md' if index % 3 == 0 else 'txt'}"
        length = rng.randint(11, 15) if index in LONG else rng.randint(1, 4)
        corpus.v2[str(path.resolve())] = _document_text(index, "v2", length, None).encode()
    return corpus


def _apply_second_version(corpus: Corpus) -> None:
    for source, data in corpus.v2.items():
        Path(source).write_bytes(data)


# -- running the real CLI --------------------------------------------------


def _env(home: Path) -> dict[str, str]:
    # The default settings, but the tests' own model cache.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KBQA_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               KBQA_HOME=str(home), KBQA_CACHE_DIR=os.environ["KBQA_CACHE_DIR"])  # fmt: skip
    return env


def _ingest_command(corpus: Corpus) -> list[str]:
    return [sys.executable, "-m", "kbqa.app.cli", "ingest", str(corpus.folder),
            "--kb", str(corpus.kb), "--no-progress"]  # fmt: skip


@contextmanager
def _started(command: list[str], home: Path, stderr: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess in its own process group, killed whatever happens to the test."""
    with open(stderr, "wb") as sink:
        process = subprocess.Popen(command, cwd=ROOT, env=_env(home), stdout=subprocess.PIPE,
                                   stderr=sink, start_new_session=True)  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        assert process.stdout is not None
        process.stdout.close()


def _run_to_end(corpus: Corpus, home: Path, name: str) -> tuple[str, float | None]:
    """Run the ingest to its end: its summary line, and when it first committed."""
    database, first_commit_s = corpus.kb / "chunks.sqlite", None
    before = _generation(database) or 0
    stderr = home / f"{name}.stderr"
    with _started(_ingest_command(corpus), home, stderr) as process:
        started = time.monotonic()
        while process.poll() is None and time.monotonic() - started < 240:
            if first_commit_s is None and (_generation(database) or 0) > before:
                first_commit_s = time.monotonic() - started
            time.sleep(0.01)
        code = process.wait(timeout=30)
        assert process.stdout is not None
        out = process.stdout.read().decode()
    assert code == 0, f"{name}: ingest failed ({code}):\n{stderr.read_text()[-3000:]}"
    return out, first_commit_s


def _generation(database: Path) -> int | None:
    """The committed generation, read by a short-lived read-only connection."""
    try:
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=0.2)
        try:
            row = connection.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
            return int(row[0]) if row else None  # None: the folder is being created
        finally:
            connection.close()
    except sqlite3.Error:
        return None


@dataclass
class Kill:
    name: str
    generation_before: int
    seconds: float = 0.0  # from start to kill
    generation_after: int = 0
    finished_first: bool = False
    first_commit_s: float | None = None

    @property
    def mid_write(self) -> bool:
        """Killed while still running, after it had committed part of its work."""
        return not self.finished_first and self.generation_after > self.generation_before


def _killed_ingest(
    corpus: Corpus, home: Path, name: str, *, delay: float | None = None,
    after_commit: float | None = None,
) -> Kill:  # fmt: skip
    """Run the real ingest and SIGKILL it ``delay`` s after its start, or ``after_commit`` s
    after its first commit is seen (the generation grows)."""
    database = corpus.kb / "chunks.sqlite"
    before = _generation(database)
    assert before is not None
    kill = Kill(name, before)
    stderr = home / f"{name}.stderr"
    with _started(_ingest_command(corpus), home, stderr) as process:
        started = time.monotonic()
        if after_commit is not None:
            while process.poll() is None and time.monotonic() - started < 240:
                generation = _generation(database)
                if generation is not None and generation > before:
                    kill.first_commit_s = time.monotonic() - started
                    break
                time.sleep(0.003)
            assert kill.first_commit_s is not None, (
                f"{name}: ingest committed nothing before it ended:\n{stderr.read_text()[-3000:]}"
            )
            time.sleep(after_commit)
        else:
            assert delay is not None
            time.sleep(max(0.0, delay - (time.monotonic() - started)))
        kill.seconds = time.monotonic() - started
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        code = process.wait(timeout=30)
    kill.finished_first = code == 0  # it ended by itself before the kill
    assert code in (0, -signal.SIGKILL), f"{name}: exit {code}:\n{stderr.read_text()[-3000:]}"
    kill.generation_after = _generation(database) or 0
    return kill


# Wraps the real CLI; SIGKILLs its own process at an exact point of the write path.
KILLER = textwrap.dedent(
    """
    import os, signal, sys

    mode, marker, arguments = sys.argv[1], sys.argv[2], sys.argv[3:]

    def die(note):
        with open(marker, "w") as handle:
            handle.write(note)
            handle.flush()
            os.fsync(handle.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

    if mode == "mid-transaction":
        # Die after the 5th chunk insert of one document's transaction: its old
        # chunks are already deleted there, the new ones half inserted.
        import kbqa.index.store as store_module

        class KillingConnection:
            def __init__(self, db):
                self._db, self._inserted, self._source = db, 0, None

            def __getattr__(self, name):
                return getattr(self._db, name)

            def __enter__(self):
                self._inserted = 0
                return self._db.__enter__()

            def __exit__(self, *exc):
                return self._db.__exit__(*exc)

            def execute(self, sql, *params):
                cursor = self._db.execute(sql, *params)
                if sql.startswith("INSERT INTO documents"):
                    self._source = params[0][1]
                elif sql.startswith("INSERT INTO chunks_fts"):
                    self._inserted += 1
                    if self._inserted == 5:
                        die(self._source)
                return cursor

        original_init = store_module.KnowledgeBaseStore.__init__

        def init(self, *args, **kwargs):
            original_init(self, *args, **kwargs)
            self._db = KillingConnection(self._db)

        store_module.KnowledgeBaseStore.__init__ = init
    elif mode == "mid-snapshot":
        # Die with a third of the snapshot's temporary file written.
        import faiss

        real_write_index = faiss.write_index

        def torn_write_index(index, path):
            real_write_index(index, path)
            with open(path, "r+b") as handle:
                handle.truncate(os.path.getsize(path) // 3)
                handle.flush()
                os.fsync(handle.fileno())
            die(path)

        faiss.write_index = torn_write_index

        # The snapshot is saved even when the batch fails: say how the batch ended.
        import traceback

        import kbqa.qa.knowledge_base as knowledge_base

        real_ingest_files = knowledge_base.ingest_files

        def reporting_ingest_files(*args, **kwargs):
            try:
                report = real_ingest_files(*args, **kwargs)
            except BaseException:
                ending = traceback.format_exc()
                raise
            else:
                ending = report.summary()
                return report
            finally:
                with open(marker + ".report", "w") as handle:
                    handle.write(ending)

        knowledge_base.ingest_files = reporting_ingest_files
    else:
        raise SystemExit(f"unknown mode {mode}")

    from kbqa.app.cli import main

    sys.exit(main(arguments))
    """
)


def _self_killed_ingest(corpus: Corpus, home: Path, mode: str) -> tuple[Kill, str]:
    """Run the CLI through ``KILLER``: it SIGKILLs itself at the exact point ``mode``."""
    script, marker = home / "killer.py", home / f"{mode}.marker"
    script.write_text(KILLER)
    before = _generation(corpus.kb / "chunks.sqlite")
    assert before is not None
    kill = Kill(mode, before)
    command = [sys.executable, str(script), mode, str(marker), *_ingest_command(corpus)[3:]]
    stderr = home / f"{mode}.stderr"
    with _started(command, home, stderr) as process:
        started = time.monotonic()
        code = process.wait(timeout=240)
        kill.seconds = time.monotonic() - started
    assert code == -signal.SIGKILL and marker.is_file(), (
        f"{mode}: the wrapper did not reach its kill point ({code}):\n{stderr.read_text()[-3000:]}"
    )
    kill.generation_after = _generation(corpus.kb / "chunks.sqlite") or 0
    return kill, marker.read_text()


# -- what must hold after every kill ---------------------------------------


def _check_folder(corpus: Corpus) -> tuple[int, dict[str, str]]:
    """Open the folder and check it thoroughly; (generation, source -> stored version)."""
    from kbqa.index.manifest import Manifest
    from kbqa.index.store import KnowledgeBaseStore
    from kbqa.index.vectors import VectorIndex

    # The snapshot left on disk (before opening, which may rebuild and save one):
    # one named after the database's generation must hold exactly its chunks.
    generation = _generation(corpus.kb / "chunks.sqlite")
    snapshot = corpus.kb / f"vectors.{generation}.faiss"
    dimension = Manifest.read(corpus.kb).embedding_dimension
    on_disk = VectorIndex.load(snapshot, dimension).ids() if snapshot.is_file() else None

    store = KnowledgeBaseStore.open(corpus.kb)
    try:
        db = store._db
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []

        # FAISS and the chunk table agree, id for id.
        row_ids = sorted(r[0] for r in db.execute("SELECT row_id FROM chunks"))
        assert store.vector_count() == store.chunk_count() == len(row_ids)
        assert sorted(store._vectors.ids().tolist()) == row_ids
        assert store.generation() == generation
        if on_disk is not None:
            assert sorted(on_disk.tolist()) == row_ids, f"{snapshot.name} disagrees"
        # So does the keyword index (same transactions).
        assert sorted(r[0] for r in db.execute("SELECT rowid FROM chunks_fts")) == row_ids

        # Chunks only of stored documents.
        orphans = db.execute(
            "SELECT COUNT(*) FROM chunks WHERE doc_id NOT IN (SELECT doc_id FROM documents)"
        ).fetchone()[0]
        assert orphans == 0

        stored: dict[str, str] = {}
        for record in store.documents():
            versions = corpus.allowed(record.source)
            assert versions, f"unexpected document {record.source}"
            matching = [v for v, data in versions.items()
                        if hashlib.sha256(data).hexdigest() == record.doc_id]  # fmt: skip
            assert matching, f"{record.name}: doc_id {record.doc_id[:12]} is no version of it"
            version = matching[0]
            data = versions[version]
            text = data.decode()
            tag = f"{Path(record.source).stem}-{version}"
            other = f"{Path(record.source).stem}-{'v2' if version == 'v1' else 'v1'}"

            chunks = store.chunks_of(record.doc_id)
            assert len(chunks) == record.chunks > 0, record.name
            assert record.size_bytes == len(data)
            assert [c.ordinal for c in chunks] == list(range(len(chunks)))
            position = 0
            for chunk in chunks:
                # Every chunk is a piece of this version's text, tagged as such.
                assert chunk.doc_id == record.doc_id
                assert text[chunk.start : chunk.end] == chunk.text, (record.name, chunk.ordinal)
                assert tag in chunk.text and other not in chunk.text, (record.name, chunk.ordinal)
                # ... and together they cover it, in order, with nothing missing.
                assert not text[position : chunk.start].strip(), (record.name, chunk.ordinal)
                position = max(position, chunk.end)
            assert not text[position:].strip(), f"{record.name}: chunks stop at {position}"
            stored[record.source] = version

        # Documents of the first version are never lost; new files are absent or whole.
        assert set(corpus.v1) <= set(stored)
        for source in set(corpus.v1) - set(corpus.v2):
            assert stored[source] == "v1"
        return store.generation(), stored
    finally:
        store.close()


# -- the tests -------------------------------------------------------------


@pytest.mark.slow
def test_killed_ingest_leaves_each_document_old_or_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    home = tmp_path / "home"
    home.mkdir()
    corpus = _write_corpus(tmp_path)
    _, first_commit_s = _run_to_end(corpus, home, "first-version")
    assert first_commit_s is not None
    generation, stored = _check_folder(corpus)
    assert set(stored.values()) == {"v1"} and len(stored) == len(corpus.v1)
    first_version_s = time.monotonic() - started

    _apply_second_version(corpus)
    rng = random.Random(SEED)
    kills: list[Kill] = []
    history: list[dict[str, str]] = [stored]

    def check_after(kill: Kill) -> None:
        generation, stored = _check_folder(corpus)
        assert generation == kill.generation_after
        # A document once stored in its new version never goes back.
        for source, version in history[-1].items():
            if version == "v2":
                assert stored[source] == "v2", source
        # Each committed document bumped the generation once: nothing else was half-done.
        changed = sum(history[-1].get(source) != version for source, version in stored.items())
        assert changed == kill.generation_after - kill.generation_before, kill
        history.append(stored)
        kills.append(kill)

    # 1. During interpreter start-up, opening the folder and model loading.
    delay = first_commit_s * rng.uniform(0.2, 0.7)
    check_after(_killed_ingest(corpus, home, "start-up", delay=delay))

    # 2. Exactly mid-transaction: the document being written keeps its old state.
    # (Documents before it in the batch may be committed; the kill comes with the
    # 5th chunk insert of one transaction, after it deleted that document's old chunks.)
    kill, source = _self_killed_ingest(corpus, home, "mid-transaction")
    check_after(kill)
    assert source in corpus.v2 and history[-1][source] == history[-2][source] == "v1"

    # 3.-4. Right after the first commit of a run is seen: amid the burst of writes.
    check_after(_killed_ingest(corpus, home, "first-commit", after_commit=0.0))
    kill = _killed_ingest(corpus, home, "first-commit-2", after_commit=rng.uniform(0.0, 0.01))
    check_after(kill)

    # 5. At a random moment around the first commit: loading, embedding or writing.
    # It may also finish first, which is fine: the late file below leaves work.
    assert kill.first_commit_s is not None
    delay = kill.first_commit_s * rng.uniform(0.6, 1.05)
    check_after(_killed_ingest(corpus, home, "random", delay=delay))

    # 6. A late file guarantees work; the run finishes the batch and dies writing the snapshot.
    late = corpus.folder / "doc45.txt"
    corpus.v2[str(late.resolve())] = _document_text(45, "v2", 3, None).encode()
    late.write_bytes(corpus.v2[str(late.resolve())])
    kill, torn = _self_killed_ingest(corpus, home, "mid-snapshot")
    report = Path(f"{home / 'mid-snapshot.marker'}.report")
    assert report.is_file(), "the snapshot write that died was not the batch's"
    batch = report.read_text()
    assert " 0 failed;" in batch, batch  # the batch ended normally, then the snapshot tore
    assert Path(torn).name == f"vectors.{kill.generation_after}.faiss.tmp"
    assert Path(torn).is_file()
    assert not (corpus.kb / f"vectors.{kill.generation_after}.faiss").exists()
    check_after(kill)
    expected = {source: "v2" for source in corpus.v2} | {
        source: "v1" for source in set(corpus.v1) - set(corpus.v2)
    }
    assert history[-1] == expected

    # 7. Nothing left to do: every file unchanged, no leftovers.
    out, _ = _run_to_end(corpus, home, "final")
    total = len(corpus.final())
    assert out.startswith(f"0 added, 0 updated, {total} unchanged, 0 removed, 0 failed"), out
    generation, stored = _check_folder(corpus)
    assert generation == kill.generation_after and stored == expected
    assert sorted(p.name for p in corpus.kb.glob("vectors.*")) == [f"vectors.{generation}.faiss"]
    assert not list(corpus.kb.glob("*.tmp")) and not list(corpus.kb.glob(".*.tmp"))

    # Search finds a modified file's new text.
    from kbqa.qa.knowledge_base import KnowledgeBase
    from kbqa.settings import load_settings

    for variable in [k for k in os.environ if k.startswith("KBQA_") and k not in _KEPT]:
        monkeypatch.delenv(variable)
    kb = KnowledgeBase.open(corpus.kb, settings=load_settings(), create=False)
    try:
        hits = kb.search(f"{corpus.search_word} notes", k=3)
        assert hits and hits[0].chunk.source == corpus.search_source
        assert corpus.search_word in hits[0].chunk.text and "doc26-v2" in hits[0].chunk.text
        assert hits[0].chunk.doc_id == hashlib.sha256(corpus.v2[corpus.search_source]).hexdigest()
    finally:
        kb.close()

    mid_write = [k.name for k in kills if k.mid_write]
    summary = ", ".join(
        f"{k.name}@{k.seconds:.1f}s gen {k.generation_before}->{k.generation_after}"
        + (" (finished first)" if k.finished_first else "")
        for k in kills
    )
    print(f"\n{len(kills)} kills, {len(mid_write)} mid-write ({summary}); first version "
          f"{first_version_s:.1f} s (first commit at {first_commit_s:.1f} s), "
          f"all {time.monotonic() - started:.1f} s")  # fmt: skip
    # The first-commit kills and the snapshot kill land mid-write by construction.
    assert {"first-commit", "first-commit-2", "mid-snapshot"} <= set(mid_write)
    assert all(not k.finished_first for k in kills if k.name != "random")
    assert kills[0].generation_after == kills[0].generation_before  # before any write


def _ingest_and_check(folder: Path, corpus: Path) -> int:
    """Ingest ``corpus`` with the fake embedder; check the folder; its generation."""
    kb = make_kb(folder)
    kb.add([corpus])
    kb.close()
    store = _check_vectors(folder)
    generation = store.generation()
    store.close()
    return generation


def test_torn_or_garbage_vector_snapshot_is_rebuilt_from_sqlite(tmp_path: Path) -> None:
    """A torn or garbage snapshot (as a kill mid-save could leave) is never trusted."""
    folder, corpus = tmp_path / "kb", tmp_path / "corpus"
    corpus.mkdir()
    for index in range(6):
        (corpus / f"doc{index}.txt").write_text(_document_text(index, "v1", 4 + index, None))
    generation = _ingest_and_check(folder, corpus)
    snapshot = folder / f"vectors.{generation}.faiss"
    good = snapshot.read_bytes()
    stray = folder / f"vectors.{generation}.faiss.tmp"
    for garbage in _torn_versions(good).values():
        snapshot.unlink()
        snapshot.write_bytes(garbage)
        stray.write_bytes(good[: len(good) // 3])  # a half-written temporary beside it
        _check_vectors(folder).close()  # rebuilt from SQLite, whatever the file holds
        _check_vectors(folder).close()  # and again: nothing left behind breaks an open

    # A stray temporary of a later generation (killed before its rename) is ignored...
    later = folder / f"vectors.{generation + 1}.faiss.tmp"
    later.write_bytes(good[: len(good) // 2])
    _check_vectors(folder).close()

    # ... and the next write that changes something leaves one whole snapshot, nothing else.
    (corpus / "doc9.txt").write_text(_document_text(9, "v1", 3, None))
    generation = _ingest_and_check(folder, corpus)
    assert sorted(p.name for p in folder.glob("vectors.*")) == [f"vectors.{generation}.faiss"]
    _assert_whole_snapshot(folder, generation)

    # A write that changes nothing cleans stray temporaries too.
    stray = folder / f"vectors.{generation}.faiss.tmp"
    stray.write_bytes(good[:100])
    kb = make_kb(folder)
    kb.add([corpus])
    kb.close()
    assert sorted(p.name for p in folder.glob("vectors.*")) == [f"vectors.{generation}.faiss"]
    _check_vectors(folder).close()


def test_garbage_snapshot_is_replaced_by_the_rebuild(tmp_path: Path) -> None:
    """After one open rebuilt the vectors, the snapshot on disk is whole again."""
    folder, corpus = tmp_path / "kb", tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "doc1.txt").write_text(_document_text(1, "v1", 6, None))
    generation = _ingest_and_check(folder, corpus)
    snapshot = folder / f"vectors.{generation}.faiss"
    snapshot.write_bytes(snapshot.read_bytes()[:-8])  # torn: the last id is lost
    _check_vectors(folder).close()  # rebuilds, and means to keep the rebuild for next time
    _assert_whole_snapshot(folder, generation)


def _torn_versions(good: bytes) -> dict[str, bytes]:
    rng = random.Random(SEED)
    return {
        "empty": b"",
        "header only": good[:40],
        "half": good[: len(good) // 2],
        "last byte lost": good[:-1],
        "last id lost": good[:-8],
        "zeros": bytes(len(good)),
        "noise": bytes(rng.getrandbits(8) for _ in range(len(good))),
        "header then noise": good[:64] + bytes(rng.getrandbits(8) for _ in range(4096)),
    }


def _check_vectors(folder: Path):
    """Open the folder; its vectors must be exactly the stored ones, id for id."""
    from kbqa.index.store import KnowledgeBaseStore

    store = KnowledgeBaseStore.open(folder)
    row_ids = sorted(r[0] for r in store._db.execute("SELECT row_id FROM chunks"))
    assert store.vector_count() == store.chunk_count() == len(row_ids) > 0
    assert sorted(store._vectors.ids().tolist()) == row_ids
    # The vectors themselves are the stored ones: each chunk finds itself first.
    for row_id in row_ids[:: max(1, len(row_ids) // 5)]:
        (blob,) = store._db.execute(
            "SELECT vector FROM chunks WHERE row_id = ?", (row_id,)
        ).fetchone()
        _, ids = store._vectors.search(np.frombuffer(blob, dtype=np.float32)[None, :], 1)
        assert int(ids[0][0]) == row_id
    return store


def _assert_whole_snapshot(folder: Path, generation: int) -> None:
    from kbqa.index.store import KnowledgeBaseStore
    from kbqa.index.vectors import VectorIndex

    store = KnowledgeBaseStore.open(folder)
    try:
        row_ids = sorted(r[0] for r in store._db.execute("SELECT row_id FROM chunks"))
        dimension = store.manifest.embedding_dimension
    finally:
        store.close()
    try:
        loaded = VectorIndex.load(folder / f"vectors.{generation}.faiss", dimension)
    except RuntimeError as error:
        pytest.fail(f"vectors.{generation}.faiss is still unreadable: {str(error)[:200]}")
    assert sorted(loaded.ids().tolist()) == row_ids

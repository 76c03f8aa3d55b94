"""Ingestion and batch answering on Ray (``ingest/distributed.py``, ``app/batch.py``).

First the driver's side with the pipeline run in this process (fakes, fast); then a
real two-node cluster started on this machine once for the module (``ray start
--head`` and ``ray start --address``, 1 CPU and a 200 MB object store each, token
authentication with a token of its own), compared with the local engine.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import FakeEmbedder, ScriptedGenerator, make_kb

pytest.importorskip("ray.data", reason="needs the ray extra: pip install 'kbqa[ray]'")

from kbqa.ingest import distributed, ray_cluster  # noqa: E402
from kbqa.ingest.distributed import (  # noqa: E402
    EmbedChunks,
    EmbedderSpec,
    RayIngest,
    RayOptions,
    ReadAndChunk,
    input_rows,
)
from kbqa.ingest.local import IngestOptions, ToRead  # noqa: E402

MODEL = "all-MiniLM-L6-v2"
CONNECT = distributed.connect
MB = 1024 * 1024
TOPICS = {
    "okapi.md": "# Okapi\n\nThe okapi lives in the Ituri rainforest of the Democratic Republic "
    "of the Congo. It eats leaves, grasses and fungi.\n",
    "volcano.txt": "Mount Etna is an active volcano on the east coast of Sicily. "
    "It is about 3,300 metres high and erupts often.\n",
    "notes.md": "# Tea\n\nGreen tea is steeped at 80 degrees for two minutes.\n\n"
    "# Bread\n\nSourdough bread rises for twelve hours before baking.\n",
}


def _ledger() -> str:
    """A longer document (about 30 chunks of 200 tokens): its embedding takes seconds."""
    fruits = ("apples", "pears", "figs", "dates", "plums")
    cities = ("Valencia", "Porto", "Genoa", "Tunis", "Marseille")
    return "\n\n".join(
        f"Entry {i}: the harbour ledger records that shipment {i} of {fruits[i % 5]} left "
        f"{cities[i % 5]} on day {i % 28 + 1} with {i * 7 % 90 + 10} crates aboard."
        for i in range(250)
    )


def _folder(root: Path) -> Path:
    root.mkdir()
    for name, text in TOPICS.items():
        (root / name).write_text(text, encoding="utf-8")
    (root / "okapi-copy.md").write_text(TOPICS["okapi.md"], encoding="utf-8")  # a twin
    (root / "ledger.txt").write_text(_ledger(), encoding="utf-8")
    (root / "broken.pdf").write_bytes(b"%PDF-1.4\nnot really a PDF\n")
    return root


def _summary(kb: Any) -> dict[str, tuple[Any, ...]]:
    """Each stored document and its chunks, as the store holds them."""
    store = kb._store
    return {
        record.source: (
            record.doc_id, record.name, record.format, record.pages, record.chunks, record.title,
            record.size_bytes, record.ocr_pages,
            tuple((c.id, c.text, c.page, c.start, c.end, c.heading, c.ordinal, c.text_source)
                  for c in store.chunks_of(record.doc_id)),
        )
        for record in kb.documents()
    }  # fmt: skip


def _vectors(kb: Any) -> dict[str, np.ndarray]:
    rows = kb._store._db.execute("SELECT chunk_id, vector FROM chunks").fetchall()
    return {chunk_id: np.frombuffer(blob, dtype=np.float32) for chunk_id, blob in rows}


def _assert_same_knowledge_base(kb: Any, reference: Any, min_cosine: float = 0.999) -> None:
    assert _summary(kb) == _summary(reference)
    vectors, expected = _vectors(kb), _vectors(reference)
    assert vectors.keys() == expected.keys()
    worst = min(float(np.dot(vectors[key], expected[key])) for key in expected)
    assert worst >= min_cosine
    assert kb._store.vector_count() == kb._store.chunk_count() == len(expected)


def _statuses(report: Any) -> dict[str, str]:
    return {Path(o.source).name: o.status for o in report.outcomes}


# -- the driver's side, the pipeline run here ------------------------------------------


class InProcess:
    """Stands in for the Ray Data pipeline: the same actor classes, called in this process."""

    def __init__(self, engine: RayIngest, window: list[ToRead], options: IngestOptions) -> None:
        self.engine, self.window, self.options = engine, window, options

    def iter_rows(self) -> Iterator[dict[str, Any]]:
        reader = ReadAndChunk(**self.engine.reader_arguments(self.options))
        embedder = EmbedChunks({"name": MODEL, "cache_dir": ""})
        try:
            for row in input_rows(self.window):
                read = reader(row)
                batch = {key: np.array([value], dtype=object) for key, value in read.items()}
                out = embedder(batch)
                yield {key: values[0] for key, values in out.items()}
        finally:
            reader._worker.close()

    def stats(self) -> str:
        return "in process"


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch) -> list[list[ToRead]]:
    """RayIngest without Ray: fake embedder, pipeline in this process; returns its windows."""
    windows: list[list[ToRead]] = []

    def pipeline(self: RayIngest, window: list[ToRead], options: IngestOptions) -> InProcess:
        windows.append(window)
        return InProcess(self, window, options)

    monkeypatch.setattr(EmbedderSpec, "load", lambda self: FakeEmbedder())
    monkeypatch.setattr(RayIngest, "_pipeline", pipeline)
    monkeypatch.setattr(distributed, "connect", lambda address, cpus=None: _nothing())
    return windows


def _nothing() -> Any:
    from contextlib import nullcontext

    return nullcontext()


def _engine(**options: Any) -> RayIngest:
    return RayIngest(EmbedderSpec(FakeEmbedder.name, ""), RayOptions(**options))


def test_the_engine_stores_what_the_local_engine_stores(
    tmp_path: Path, in_process, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _folder(tmp_path / "docs")
    local, remote = make_kb(tmp_path / "local"), make_kb(tmp_path / "remote")
    expected = local.add([folder])
    report = remote.add([folder], engine=_engine(window_bytes=1))
    assert _statuses(report) == _statuses(expected)
    assert _statuses(report) == {"broken.pdf": "failed", "ledger.txt": "added",
                                 "notes.md": "added", "okapi-copy.md": "added",
                                 "okapi.md": "unchanged", "volcano.txt": "added"}  # fmt: skip
    failed = {o.source: o.reason for o in report.failed}
    assert failed == {o.source: o.reason for o in expected.failed}
    _assert_same_knowledge_base(remote, local, min_cosine=0.99999)
    assert [len(window) for window in in_process] == [1, 1, 1, 1, 1]  # a window per file here

    # Unchanged files are never shipped: no window, and no cluster needed at all (a failed
    # file would be read again, as the local engine does).
    (folder / "broken.pdf").unlink()
    monkeypatch.setattr(distributed, "connect", CONNECT)
    again = remote.add([folder], engine=_engine(address="127.0.0.1:1"))
    assert again.count("unchanged") == 5 and len(again.outcomes) == 5
    assert len(in_process) == 5


def test_a_failed_pipeline_reports_the_documents_it_did_not_store(
    tmp_path: Path, in_process, monkeypatch: pytest.MonkeyPatch
) -> None:
    def dies_after_one(self: InProcess) -> Iterator[dict[str, Any]]:
        rows = original(self)
        yield next(rows)  # broken.pdf, failed
        yield next(rows)  # ledger.txt
        raise RuntimeError("ray.exceptions.ActorDiedError: the actor died\nmore detail")

    original = InProcess.iter_rows
    monkeypatch.setattr(InProcess, "iter_rows", dies_after_one)
    folder = _folder(tmp_path / "docs")
    kb = make_kb(tmp_path / "kb")
    report = kb.add([folder], engine=_engine())
    statuses = _statuses(report)
    assert statuses["broken.pdf"] == "failed" and statuses["okapi.md"] == "unchanged"
    stored = [name for name, status in statuses.items() if status == "added"]
    lost = [o for o in report.failed if not o.source.endswith("broken.pdf")]
    assert len(stored) == 1 and len(lost) == 3
    assert all("not stored: the Ray pipeline failed (RuntimeError: ray.exceptions." in str(o.reason)
               for o in lost)  # fmt: skip
    assert {Path(r.source).name for r in kb.documents()} == set(stored)
    record = kb.documents()[0]
    assert len(kb._require_store().chunks_of(record.doc_id)) == record.chunks  # whole, never half


def test_a_failure_to_store_is_raised_not_blamed_on_ray(
    tmp_path: Path, in_process, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    def full_disk(*args: Any) -> Any:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(distributed, "store_prepared", full_disk)
    kb = make_kb(tmp_path / "kb")
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        kb.add([_folder(tmp_path / "docs")], engine=_engine())


def test_an_interrupted_driver_leaves_whole_documents(
    tmp_path: Path, in_process, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: InProcess) -> Iterator[dict[str, Any]]:
        rows = original(self)
        for _ in range(3):  # broken.pdf (failed), ledger.txt, notes.md
            yield next(rows)
        raise KeyboardInterrupt

    original = InProcess.iter_rows
    monkeypatch.setattr(InProcess, "iter_rows", interrupted)
    kb = make_kb(tmp_path / "kb")
    with pytest.raises(KeyboardInterrupt):
        kb.add([_folder(tmp_path / "docs")], engine=_engine())
    kb.close()
    reopened = make_kb(tmp_path / "kb")
    records = reopened.documents()
    assert len(records) == 2
    for record in records:
        assert len(reopened._require_store().chunks_of(record.doc_id)) == record.chunks
    store = reopened._require_store()
    assert store.vector_count() == store.chunk_count()


def test_a_malformed_worker_result_fails_that_file_only(
    tmp_path: Path, in_process, monkeypatch: pytest.MonkeyPatch
) -> None:
    def short_vectors(self: InProcess) -> Iterator[dict[str, Any]]:
        for row in original(self):
            if row["document"] and "Etna" in row["document"]:
                row = {**row, "vectors": row["vectors"][:-4]}
            yield row

    original = InProcess.iter_rows
    monkeypatch.setattr(InProcess, "iter_rows", short_vectors)
    kb = make_kb(tmp_path / "kb")
    report = kb.add([_folder(tmp_path / "docs")], engine=_engine())
    reasons = {Path(o.source).name: str(o.reason) for o in report.failed}
    assert "malformed result from a Ray worker" in reasons["volcano.txt"]
    assert report.count("added") == 3


def test_a_documents_ocr_pages_survive_the_trip(
    tmp_path: Path, in_process, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from kbqa.ingest.types import PageOcr

    def as_if_scanned(*args: Any) -> Any:
        prepared = read_and_chunk(*args)
        record = replace(prepared.record, ocr_pages=(PageOcr(1, 87.5),))
        return replace(prepared, record=record)

    read_and_chunk = distributed.read_and_chunk
    monkeypatch.setattr(distributed, "read_and_chunk", as_if_scanned)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "scan.txt").write_text(TOPICS["volcano.txt"])
    kb = make_kb(tmp_path / "kb")
    assert kb.add([folder], engine=_engine()).count("added") == 1
    record = kb.documents()[0]
    assert record.ocr_pages == (PageOcr(1, 87.5),)


def test_a_refused_token_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    def refused(**kwargs: Any) -> None:
        try:
            raise RuntimeError("RPC error: InvalidAuthToken: Authentication token is missing")
        except RuntimeError as cause:
            raise ConnectionError("Failed to connect to Ray cluster at h:1") from cause

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refused)
    with pytest.raises(ray_cluster.RayUnavailable, match="set RAY_AUTH_MODE=token"):
        with CONNECT("h:1"):
            pass


def test_pools_never_ask_for_more_cpus_than_the_cluster_has() -> None:
    engine = _engine()
    assert engine._pool_sizes(2, 0, 10) == (1, 1, 1.0)
    assert engine._pool_sizes(16, 0, 100) == (8, 8, 1.0)
    assert engine._pool_sizes(16, 0, 3) == (3, 3, 1.0)  # no more actors than documents
    assert engine._pool_sizes(16, 4, 100) == (12, 4, 1.0)  # one embedder per GPU
    readers, embedders, each = engine._pool_sizes(1, 0, 10)
    assert (readers + embedders) * each <= 1


def test_the_embedder_must_be_the_knowledge_bases(tmp_path: Path) -> None:
    from kbqa.errors import KbqaError

    kb = make_kb(tmp_path / "kb")
    with pytest.raises(KbqaError, match="would embed with 'all-MiniLM-L6-v2'"):
        kb.add([_folder(tmp_path / "docs")], engine=RayIngest(EmbedderSpec(MODEL, "")))


# -- a real two-node cluster ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalCluster:
    """A head and a worker node started with ``ray start --block``, each in its own process
    group, so stopping kills exactly this cluster's processes (``ray stop`` would kill
    every Ray process on the machine)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        ray = str(Path(sys.executable).parent / "ray")
        common = ["--num-cpus", "1", "--memory", str(400 * MB),
                  "--object-store-memory", str(200 * MB), "--temp-dir", str(self.root),
                  "--node-ip-address", "127.0.0.1", "--disable-usage-stats", "--block"]  # fmt: skip
        self._start([ray, "start", "--head", "--port", str(self.port),
                     "--include-dashboard=false", *common], "head")  # fmt: skip
        deadline = time.monotonic() + 60
        while not self._port_open():
            assert time.monotonic() < deadline, self._logs()
            assert self.nodes[0].poll() is None, self._logs()
            time.sleep(0.2)
        self._start([ray, "start", "--address", self.address, *common], "worker")

    def _start(self, command: list[str], name: str) -> None:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the node
        self.nodes.append(
            subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )

    def _port_open(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def wait_for_nodes(self, count: int) -> None:
        import ray

        ray.init(address=self.address, log_to_driver=False)
        try:
            deadline = time.monotonic() + 90
            while sum(node["Alive"] for node in ray.nodes()) < count:
                assert time.monotonic() < deadline, self._logs()
                time.sleep(0.2)
        finally:
            ray.shutdown()

    def owns(self, pid: int) -> bool:
        """A process of this cluster: in a node's group, or a worker a node's raylet forked
        (workers start sessions of their own)."""
        groups = {node.pid for node in self.nodes}
        try:
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            return os.getpgid(pid) in groups or os.getpgid(parent) in groups
        except (OSError, ValueError, IndexError):
            return False

    def processes(self, marker: str) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    command = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if marker.encode() in command and self.owns(int(entry.name)):
                    found.append(int(entry.name))
        return found

    def stop(self) -> None:
        workers = self.processes("ray::")
        for node in self.nodes:
            try:
                os.killpg(node.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for node in self.nodes:
            node.wait(timeout=30)

    def _logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-2000:] for p in self.root.glob("*.log"))


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    # A short root: Ray's socket paths must stay under 108 characters.
    root = Path(tempfile.mkdtemp(prefix="kbqa-ray-", dir="/tmp"))
    token = root / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    # Ray reads its authentication settings once per process; its own tests reload them
    # like this after changing the environment.
    from ray._private.authentication_test_utils import reset_auth_token_state

    cluster = LocalCluster(root)
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("RAY_USAGE_STATS_ENABLED", "0")
            env.setenv("RAY_AUTH_MODE", "token")
            env.setenv("RAY_AUTH_TOKEN_PATH", str(token))
            reset_auth_token_state()
            try:
                cluster.start()
                cluster.wait_for_nodes(2)
                yield cluster
            finally:
                import ray

                ray.shutdown()
                cluster.stop()
    finally:
        reset_auth_token_state()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _folder(tmp_path_factory.mktemp("ray-docs") / "docs")


def _settings(precision: str = "float32"):
    """Float32 for the ingest comparisons: in bfloat16 (``auto`` on CPUs with AMX) a
    chunk's vector depends on the batch it was embedded with (cosine 0.9965 between
    one-by-one and together, here), in either engine."""
    from kbqa.settings import load_settings

    return load_settings(
        embedding_model=MODEL, llm_model="smollm2-135m-instruct", precision=precision
    )


@pytest.fixture(scope="module")
def embedder32():
    from kbqa.models.embedder import SentenceTransformerEmbedder

    settings = _settings()
    return SentenceTransformerEmbedder(MODEL, settings.cache_dir, precision="float32")


@pytest.fixture(scope="module")
def reference(docs: Path, embedder32, tmp_path_factory: pytest.TempPathFactory):
    """The same folder ingested by the local engine."""
    from kbqa.qa.knowledge_base import KnowledgeBase

    folder = tmp_path_factory.mktemp("reference") / "kb"
    kb = KnowledgeBase.open(folder, settings=_settings(), embedder=embedder32,
                            generator=ScriptedGenerator())  # fmt: skip
    report = kb.add([docs])
    assert report.count("added") == 4 and report.count("failed") == 1
    return kb


@pytest.mark.slow
def test_cli_ingest_on_a_two_node_cluster_equals_the_local_engine(
    cluster: LocalCluster,
    docs: Path,
    reference,
    embedder32,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from kbqa.app import cli
    from kbqa.qa.knowledge_base import KnowledgeBase

    monkeypatch.setenv("KBQA_EMBEDDING_MODEL", MODEL)
    monkeypatch.setenv("KBQA_PRECISION", "float32")
    command = ["ingest", str(docs), "--kb", str(tmp_path / "kb"), "--no-progress",
               "--engine", "ray", "--ray-address", cluster.address]  # fmt: skip
    assert cli.main(command) == cli.EXIT_PARTIAL  # broken.pdf
    captured = capsys.readouterr()
    assert "4 added, 0 updated, 1 unchanged, 0 removed, 1 failed" in captured.out
    assert "failed: " in captured.err and "broken.pdf" in captured.err
    kb = KnowledgeBase.open(tmp_path / "kb", settings=_settings(), embedder=embedder32,
                            generator=ScriptedGenerator())  # fmt: skip
    _assert_same_knowledge_base(kb, reference)


@pytest.mark.slow
def test_a_killed_embedding_actor_is_restarted_and_its_documents_retried(
    cluster: LocalCluster,
    docs: Path,
    reference,
    embedder32,
    tmp_path: Path,
) -> None:
    from kbqa.qa.knowledge_base import KnowledgeBase

    kb = KnowledgeBase.open(tmp_path / "kb", settings=_settings(), embedder=embedder32,
                            generator=ScriptedGenerator())  # fmt: skip
    spec = EmbedderSpec(MODEL, os.environ["KBQA_CACHE_DIR"], precision="float32")
    engine = RayIngest(spec, RayOptions(address=cluster.address))
    result: dict[str, Any] = {}
    ingest = threading.Thread(target=lambda: result.update(report=kb.add([docs], engine=engine)))
    ingest.start()
    # Ray titles a worker process after the task it runs: this one is embedding a batch.
    killed: list[int] = []
    deadline = time.monotonic() + 180
    while ingest.is_alive() and not killed and time.monotonic() < deadline:
        for pid in cluster.processes("MapBatches(EmbedChunks)).submit"):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        time.sleep(0.02)
    ingest.join(timeout=240)
    assert killed, "the embedding actor was never seen at work"
    report = result["report"]
    assert _statuses(report)["broken.pdf"] == "failed"
    assert report.count("added") == 4, [(o.source, o.reason) for o in report.failed]
    _assert_same_knowledge_base(kb, reference)


@pytest.mark.slow
def test_batch_answers_on_the_cluster_equal_the_local_ones(
    cluster: LocalCluster,
    reference,
    real_embedder,
    small_llm,
    tmp_path: Path,
) -> None:
    from kbqa.app import batch, batch_ray
    from kbqa.qa.knowledge_base import KnowledgeBase

    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        json.dumps({"question": "Where does the okapi live?", "id": "okapi"}) + "\n"
        + "{broken\n"
        + json.dumps({"question": "Who painted the Mona Lisa?", "id": "far"}) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    items = batch.read_questions(questions)
    # The models as the actors load them: ``auto`` precision, like the session fixtures.
    settings = _settings("auto")
    local = KnowledgeBase.open(reference.folder, settings=settings, embedder=real_embedder,
                               generator=small_llm, create=False)  # fmt: skip
    expected = list(batch.answer_locally(local, items))
    rows = list(batch_ray.answer_on_ray(reference.folder, settings, items, cluster.address))
    assert [row["line"] for row in rows] == [1, 2, 3]
    assert not rows[0]["refused"] and "Ituri rainforest" in rows[0]["answer"]
    assert "not JSON" in rows[1]["error"]
    assert rows[2]["refused"] and rows[2]["citations"] == []
    for row, wanted in zip(rows, expected, strict=True):
        assert row.keys() == wanted.keys()
        assert {k: v for k, v in row.items() if k != "citations"} == {
            k: v for k, v in wanted.items() if k != "citations"
        }
        cited = [(c["chunk_id"], c["number"]) for c in row.get("citations", [])]
        assert cited == [(c["chunk_id"], c["number"]) for c in wanted.get("citations", [])]

"""Shared fixtures: the fakes (tests/fakes.py) first, the small real models loaded once."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeEmbedder

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# ranx scores with numba: compiling its metrics took ~40 s per fresh venv, while the
# tests score a handful of queries; interpreted, they take milliseconds.
os.environ.setdefault("NUMBA_DISABLE_JIT", "1")

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT / "corpora"
# Small files kept in the repository (a few PDFs, ~110 KB; see tests/data/README.md).
FIXTURES = ROOT / "tests" / "data"
# The large public sets (XQuAD, SQuAD-es, BEIR, all the test PDFs, the 272-page Debian
# reference) live in ../shared/data beside the repository. A clone without them still
# runs: the tests that need them skip, through shared_data().
DATA = ROOT.parent / "shared" / "data"


def shared_data(relative: str | Path) -> Path:
    """``../shared/data/<relative>``; skips the calling test (or fixture) when it is absent."""
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"needs ../shared/data/{Path(relative).as_posix()} (the shared data sets)")
    return path


def sample_pdf(relative: str) -> Path:
    """A test PDF by its path under pdfs/: the copy in tests/data/pdfs/ when the repository
    keeps one, else the shared set's (skipping the test when that is absent)."""
    kept = FIXTURES / "pdfs" / relative
    return kept if kept.exists() else shared_data(f"pdfs/{relative}")


def pytest_configure(config: pytest.Config) -> None:
    """Converted models go to pytest's own cache folder (kept between runs), never ~/.cache."""
    if "KBQA_CACHE_DIR" not in os.environ:
        cache = config.cache.mkdir("kbqa-models") if getattr(config, "cache", None) else None
        os.environ["KBQA_CACHE_DIR"] = str(cache or ROOT / ".pytest_cache" / "kbqa-models")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """No test writes into the user's knowledge bases or the working directory."""
    monkeypatch.setenv("KBQA_HOME", str(tmp_path_factory.mktemp("kbqa-home")))


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def real_embedder():
    from kbqa.models.embedder import SentenceTransformerEmbedder
    from kbqa.settings import load_settings

    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2", load_settings().cache_dir)
    embedder.embed_passages(["warm up"])
    return embedder


@pytest.fixture(scope="session")
def default_embedder():
    """The embedder a plain install uses (multilingual-e5-small, converted once)."""
    from kbqa.models.embedder import SentenceTransformerEmbedder
    from kbqa.settings import load_settings

    settings = load_settings()
    embedder = SentenceTransformerEmbedder(settings.embedding_model, settings.cache_dir)
    embedder.embed_passages(["warm up"])
    return embedder


@pytest.fixture(scope="session")
def small_llm():
    from kbqa.models.generator import TransformersGenerator
    from kbqa.settings import load_settings

    generator = TransformersGenerator("smollm2-135m-instruct", load_settings().cache_dir)
    generator.load()
    return generator


@pytest.fixture(scope="session")
def default_llm():
    from kbqa.models.generator import TransformersGenerator
    from kbqa.models.registry import choose_generator
    from kbqa.settings import load_settings

    settings = load_settings()
    generator = TransformersGenerator(choose_generator(settings.llm_model), settings.cache_dir)
    generator.load()
    return generator


def stored_vector(store, chunk_id: str) -> np.ndarray:
    """A chunk's float32 vector as the knowledge base stored it (the source of truth)."""
    row = store._db.execute("SELECT vector FROM chunks WHERE chunk_id = ?", (chunk_id,)).fetchone()
    return np.frombuffer(row[0], dtype=np.float32)

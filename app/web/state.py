"""Process-wide resources: models loaded once, knowledge bases, the ingest queue.

Everything here is cached with ``st.cache_resource``, so a rerun (every
click) reuses the loaded embedder and LLM. Settings are read on every run
(cheap), and the caches are keyed by the values that matter.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from ...errors import KbqaError
from ...models.embedder import Embedder
from ...models.generator import Generator
from ...qa.knowledge_base import KnowledgeBase, load_models
from ...settings import Settings, load_settings
from .jobs import IngestQueue

log = logging.getLogger(__name__)

KB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,47}")


@dataclass
class Models:
    """The embedder and the LLM every knowledge base and session shares."""

    embedder: Embedder
    generator: Generator
    llm_lock: threading.Lock = field(default_factory=threading.Lock)
    ready: threading.Event = field(default_factory=threading.Event)
    error: str | None = None
    _started: bool = False
    _start_lock: threading.Lock = field(default_factory=threading.Lock)

    def warm_up(self) -> None:
        """Load both models in the background (once); ``ready`` is set when done."""
        with self._start_lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._load, name="kbqa-warm-up", daemon=True).start()

    def _load(self) -> None:
        try:
            self.embedder.embed_queries(["warm up"])
            load = getattr(self.generator, "load", None)
            if load is not None:
                load()
        except KbqaError as error:
            self.error = str(error)
            log.error("models failed to load: %s", error)
        except Exception as error:  # noqa: BLE001 - shown on the page instead of a dead thread
            self.error = f"{type(error).__name__}: {error}"
            log.exception("models failed to load")
        finally:
            self.ready.set()


def settings() -> Settings:
    """Fresh settings (env ``KBQA_*`` and ``KBQA_CONFIG``) on every run."""
    return load_settings()


def models(config: Settings) -> Models:
    """The shared models for these settings (only the model settings matter)."""
    return _models(config.models_key(), config.model_dump_json())


@st.cache_resource(show_spinner=False)
def _models(key: str, _config_json: str) -> Models:
    """Cached by ``key``; ``_config_json`` (not hashed) supplies the rest."""
    config = Settings.model_validate_json(_config_json)
    embedder, generator = load_models(config)
    return Models(embedder, generator)


def open_kb(folder: Path, config: Settings) -> KnowledgeBase:
    """The page's instance for ``folder``: shared by sessions, reopened once it exists."""
    from ...index.store import KnowledgeBaseStore

    exists = KnowledgeBaseStore.exists(folder)
    return _open_kb(str(folder), exists, config.model_dump_json())


@st.cache_resource(show_spinner=False, max_entries=16)
def _open_kb(folder: str, exists: bool, config_json: str) -> KnowledgeBase:
    config = Settings.model_validate_json(config_json)
    return new_kb(Path(folder), config)


def new_kb(folder: Path, config: Settings) -> KnowledgeBase:
    """A fresh instance with the shared models (the ingest worker opens its own)."""
    shared = models(config)
    return KnowledgeBase.open(
        folder, settings=config, embedder=shared.embedder, generator=shared.generator
    )


@st.cache_resource(show_spinner=False)
def ingest_queue() -> IngestQueue:
    return IngestQueue()


# -- knowledge-base folders ---------------------------------------------


def initial_kb(config: Settings) -> Path:
    """``KBQA_KB`` (set by ``kbqa serve --kb``) or the default knowledge base."""
    return config.kb.expanduser().resolve() if config.kb else config.default_kb


def list_kbs(config: Settings, *also: Path) -> list[Path]:
    """Knowledge-base folders: the default, every folder under the home, and ``also``."""
    found = {config.default_kb}
    if config.home.is_dir():
        found.update(p for p in config.home.iterdir() if p.is_dir() and not p.name.startswith("."))
    found.update(also)
    return sorted(found, key=lambda p: (p != config.default_kb, p.name.lower(), str(p)))


def create_kb(config: Settings, name: str) -> Path:
    """Make the folder for a new knowledge base named ``name`` under the home.

    Raises:
        ValueError: the name is not a plain folder name, or it is taken.
    """
    name = name.strip()
    if not KB_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(
            "use 1-48 letters, digits, spaces, dots, dashes or underscores, "
            "starting with a letter or digit"
        )
    folder = config.home / name
    if folder.exists():
        raise ValueError(f"a knowledge base named {name!r} already exists")
    folder.mkdir(parents=True)
    return folder


def kb_label(folder: Path, config: Settings) -> str:
    if folder.parent == config.home:
        return folder.name
    return str(folder)

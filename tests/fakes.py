"""Deterministic stand-ins for the models, shared by the tests (no model is loaded).

- ``FakeEmbedder``: a bag of hashed words; same text, same vector.
- ``ScriptedGenerator``: replies with scripted texts, word by word; records prompts.
- ``make_kb``: a ``KnowledgeBase`` over them, small chunks, no refusal floor.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from kbqa.ingest.limits import ParseLimits
    from kbqa.models.embedder import Embedder
    from kbqa.models.generator import Generator
    from kbqa.qa.knowledge_base import KnowledgeBase

MB = 1024 * 1024


class FakeEmbedder:
    """Bag of hashed words: same text, same vector; shared words, nearby vectors."""

    name = "fake-hash-64"
    dimension = 64
    max_tokens = 128

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()):
            digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
            vector[int.from_bytes(digest, "little") % self.dimension] += 1.0
        norm = np.linalg.norm(vector)
        return vector / norm if norm else vector

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, 64), "f4")

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_passages(texts)


class ScriptedGenerator:
    """Replies with the next scripted text, word by word; records what it was asked."""

    name = "scripted"

    def __init__(self, replies: Sequence[str] = ("",)) -> None:
        self.replies = list(replies)
        self.calls: list[list[dict[str, str]]] = []

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        return sum(len(m["content"].split()) for m in messages) + 4

    def stream(self, messages: list[dict[str, str]], max_new_tokens: int) -> Iterator[str]:
        self.calls.append(messages)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        for index, word in enumerate(reply.split(" ")):
            yield word if index == 0 else " " + word


def make_kb(
    folder: Path,
    generator: Generator | Any | None = None,
    embedder: Embedder | Any | None = None,
    *,
    max_file_bytes: int = 5 * MB,
    limits: ParseLimits | None = None,
    **answer_options: Any,
) -> KnowledgeBase:
    """A knowledge base over the fakes (or the models given): 60-token chunks, no refusal
    floor unless ``min_score`` says otherwise; ``answer_options`` override the rest."""
    from kbqa.ingest.chunking import ChunkerSettings
    from kbqa.qa.knowledge_base import AnswerOptions, KnowledgeBase

    options = {"min_score": 0.0, **answer_options}
    return KnowledgeBase(
        folder,
        embedder or FakeEmbedder(),
        generator or ScriptedGenerator(),
        AnswerOptions(**options),
        ChunkerSettings(chunk_tokens=60, overlap_tokens=10),
        max_file_bytes=max_file_bytes,
        limits=limits,
    )

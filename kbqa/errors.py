"""Every exception kbqa raises on purpose.

They live in the bottom layer (``ingest``) so that ``index`` and ``qa`` can raise
and catch them without import cycles.
"""

from __future__ import annotations

from pathlib import Path


class KbqaError(Exception):
    """Base class: an error a user can act on, with a message that says how."""


class IngestError(KbqaError):
    """One input file could not be ingested; the batch goes on without it."""

    def __init__(self, source: str | Path, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = str(source)
        self.reason = reason


class KnowledgeBaseError(KbqaError):
    """The knowledge-base folder is missing, locked, or incompatible."""


class ModelError(KbqaError):
    """A model could not be located, verified or loaded."""

"""``manifest.json``: what a knowledge-base folder was built with."""

from __future__ import annotations

import importlib.metadata
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import KnowledgeBaseError
from ..files import write_atomically
from ..ingest.chunking import ChunkerSettings

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
_LIBRARIES = (
    "kbqa",
    "faiss-gpu",
    "faiss-cpu",
    "sentence-transformers",
    "transformers",
    "torch",
    "pypdfium2",
    "pypdf",
    "langchain-text-splitters",
)


@dataclass(frozen=True)
class Manifest:
    embedding_model: str
    embedding_dimension: int
    chunker: ChunkerSettings
    format_version: int = FORMAT_VERSION
    index_type: str = "inner product, normalized vectors: exact up to 50k, IVF-SQ8 above"
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    libraries: dict[str, str] = field(default_factory=lambda: _library_versions())

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, where: Path) -> Manifest:
        try:
            data = json.loads(text)
            version = int(data["format_version"])
            if version > FORMAT_VERSION:
                raise KnowledgeBaseError(
                    f"{where}: knowledge-base format {version} is newer than this kbqa "
                    f"understands ({FORMAT_VERSION}); upgrade kbqa"
                )
            return cls(
                embedding_model=str(data["embedding_model"]),
                embedding_dimension=int(data["embedding_dimension"]),
                chunker=ChunkerSettings(**data["chunker"]),
                format_version=version,
                index_type=str(data.get("index_type", "")),
                created_at=str(data.get("created_at", "")),
                libraries=dict(data.get("libraries", {})),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise KnowledgeBaseError(f"{where}: unreadable manifest ({error})") from error

    def write(self, folder: Path) -> None:
        write_atomically(folder / MANIFEST_NAME, self.to_json().encode())

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST_NAME
        return cls.from_json(path.read_text(encoding="utf-8"), path)


def _library_versions() -> dict[str, str]:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions

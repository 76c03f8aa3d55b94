"""Typed settings for the CLI and the app: env ``KBQA_*`` or a TOML file.

Library code never reads these; it takes plain arguments.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "kbqa"


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kbqa"


class Settings(BaseSettings):
    """Every knob a user may turn. ``KBQA_CONFIG`` names an optional TOML file."""

    model_config = SettingsConfigDict(env_prefix="KBQA_", extra="ignore")

    home: Path = Field(default_factory=_data_home, description="where knowledge bases live")
    kb: Path | None = Field(default=None, description="the knowledge base the web app opens first")
    cache_dir: Path = Field(default_factory=_cache_home, description="converted model copies")
    embedding_model: str = "multilingual-e5-small"
    llm_model: str = Field(
        default="auto",
        description="auto: the 1.5B where a GPU is present and installed, else the 0.5B "
        "(models/registry.py choose_generator)",
    )
    device: str = "auto"
    precision: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="auto: bfloat16 where the CPU or GPU computes it natively"
    )
    top_k: int = Field(default=5, ge=1, le=100)
    retrieval: Literal["hybrid", "dense", "keyword"] = "hybrid"
    answer_style: Literal["sentence", "short"] = Field(
        default="sentence", description="short: only the answering words (for SQuAD-style F1)"
    )

    answerability: bool = Field(
        default=True,
        description="refuse when the passages do not answer this question about this entity "
        "(qa/answerability.py); off: still measured, never acted on (for calibration)",
    )
    context_tokens: int = Field(default=1500, ge=64, description="token budget for passages")
    max_new_tokens: int = Field(default=256, ge=1)
    min_score: float | None = Field(
        default=None,
        description="below this best retrieval score, refuse without asking the LLM "
        "(default: the embedding model's own floor, ingest/embedder.py)",
    )
    chunk_tokens: int = Field(default=200, ge=16)
    chunk_overlap: int = Field(default=32, ge=0)
    max_file_mb: float = Field(default=50.0, gt=0)
    # Budgets for reading one file (ingest/limits.py says why these defaults).
    max_decompressed_mb: float = Field(
        default=200.0, gt=0, description="what a DOCX's or PDF's compressed parts may inflate to"
    )
    max_chars: int = Field(default=5_000_000, ge=1, description="characters of text per file")
    max_page_chars: int = Field(default=1_000_000, ge=1, description="characters per PDF page")
    parse_seconds: float = Field(default=120.0, gt=0, description="time to read one file")
    parse_memory_mb: float = Field(
        default=2048.0, ge=256, description="address space of the process that reads files"
    )
    max_page_pixels: int = Field(
        default=16_000_000, ge=100_000, description="largest page picture in the app"
    )
    ocr_seconds_per_page: float = Field(
        default=60.0, gt=0, description="OCR of one scanned page (its tesseract run)"
    )
    # `kbqa api` (qa/serve/http.py, docs/api.md).
    api_key: SecretStr | None = Field(
        default=None, description="with it, every API request needs `Authorization: Bearer KEY`"
    )
    api_max_body_mb: float = Field(default=1.0, gt=0, description="largest JSON request body")
    api_max_upload_mb: float = Field(
        default=100.0, gt=0, description="largest upload request (each file also max_file_mb)"
    )
    api_queue_size: int = Field(
        default=8, ge=0, description="answers that may wait for the LLM before 429"
    )
    api_cors_origins: list[str] = Field(
        default_factory=list, description="browser origins allowed to call the API (none: CORS off)"
    )

    @property
    def default_kb(self) -> Path:
        return self.home / "default"

    def models_key(self) -> str:
        """The settings that decide which models load and how: equal keys, shareable models."""
        return self.model_dump_json(include=set(MODEL_FIELDS))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = os.environ.get("KBQA_CONFIG")
        if config:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config)))
        return tuple(sources)


# What ``load_models`` reads: processes (the app) may share models across equal values.
MODEL_FIELDS = ("embedding_model", "llm_model", "device", "precision", "cache_dir")


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and ``KBQA_CONFIG``; ``overrides`` win."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})

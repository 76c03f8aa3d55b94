"""Typed settings for the front doors (CLI, API, MCP, web app): env ``KBQA_*`` or a TOML file.

Only the front doors call ``load_settings()`` (which reads the environment); library
code takes plain arguments or the typed views built here: ``answer_options()`` for
``qa``, ``parse_limits()`` for ``ingest``, ``api_options()`` for ``kbqa api``. Each
default is declared once: the read limits in ``ingest.limits.ParseLimits``, the API's
in ``ApiOptions`` below, everything else on ``Settings``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .ingest.limits import MB, ParseLimits
from .qa.options import AnswerOptions, Retrieval, Style


@dataclass(frozen=True)
class ApiOptions:
    """What ``kbqa api`` accepts (``app/api/http.py``); from ``Settings.api_options()``."""

    api_key: str | None = None
    max_body_bytes: int = 1 * MB  # JSON requests
    max_upload_bytes: int = 100 * MB  # one upload request, all its files
    queue_size: int = 8
    cors_origins: tuple[str, ...] = ()
    # Where an answer's sources go: a Markdown block at the end of `content` (what any chat
    # app shows), kbqa's structured `citations` field, or both (app/api/sources.py).
    sources: Literal["footer", "field", "both"] = "both"
    # The address people's browsers reach this server at, for source links; "" : the one
    # each request came in by (wrong when a chat app reaches kbqa by a private name).
    public_url: str = ""


_LIMITS = ParseLimits()  # the defaults of the read limits, declared there
_ANSWER = AnswerOptions()  # and of answering
_API = ApiOptions()


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
    llm_int8_decode: bool = Field(
        default=True,
        description="on a CPU, the LLM's one-token decoding steps read an int8 copy of its "
        "weights: 1.8x the tokens/s, +1 byte per weight of memory; prompts keep the model's "
        "own weights (models/int8_decode.py)",
    )
    top_k: int = Field(default=_ANSWER.top_k, ge=1, le=100)
    retrieval: Retrieval = _ANSWER.retrieval
    answer_style: Style = Field(
        default=_ANSWER.answer_style,
        description="evidence: the sentences that answer, verbatim, no LLM; short: only the "
        "answering words, copied from them by the LLM; sentence: one sentence the LLM phrases "
        "from them (qa/compose.py)",
    )
    instruction_filter: bool = Field(
        default=_ANSWER.instruction_filter,
        description="sentences of a document addressed to an AI model are never evidence "
        "(qa/injection.py); off only to measure the pipeline without it",
    )

    answerability: bool = Field(
        default=_ANSWER.answerability,
        description="refuse when the passages do not answer this question about this entity "
        "(qa/answerability.py); off: still measured, never acted on (for calibration)",
    )
    max_new_tokens: int = Field(default=_ANSWER.max_new_tokens, ge=1)
    min_score: float | None = Field(
        default=None,
        description="below this best retrieval score, refuse without asking the LLM "
        "(default: the embedding model's own floor, ingest/embedder.py)",
    )
    chunk_tokens: int = Field(default=200, ge=16)
    chunk_overlap: int = Field(default=32, ge=0)
    max_file_mb: float = Field(default=50.0, gt=0)
    # Budgets for reading one file (ingest/limits.py declares the defaults and says why).
    max_decompressed_mb: float = Field(
        default=_LIMITS.max_decompressed_bytes / MB,
        gt=0,
        description="what a DOCX's or PDF's compressed parts may inflate to",
    )
    max_chars: int = Field(
        default=_LIMITS.max_chars, ge=1, description="characters of text per file"
    )
    max_page_chars: int = Field(
        default=_LIMITS.max_page_chars, ge=1, description="characters per PDF page"
    )
    parse_seconds: float = Field(default=_LIMITS.seconds, gt=0, description="time to read one file")
    parse_memory_mb: float = Field(
        default=_LIMITS.memory_bytes / MB,
        ge=256,
        description="address space of the process that reads files",
    )
    max_page_pixels: int = Field(
        default=_LIMITS.max_page_pixels, ge=100_000, description="largest page picture in the app"
    )
    ocr_seconds_per_page: float = Field(
        default=_LIMITS.ocr_seconds_per_page,
        gt=0,
        description="OCR of one scanned page (its tesseract run)",
    )
    # `kbqa api` (app/api/http.py, docs/api.md); defaults declared in ApiOptions.
    api_key: SecretStr | None = Field(
        default=None, description="with it, every API request needs `Authorization: Bearer KEY`"
    )
    api_max_body_mb: float = Field(
        default=_API.max_body_bytes / MB, gt=0, description="largest JSON request body"
    )
    api_max_upload_mb: float = Field(
        default=_API.max_upload_bytes / MB,
        gt=0,
        description="largest upload request (each file also max_file_mb)",
    )
    api_queue_size: int = Field(
        default=_API.queue_size, ge=0, description="answers that may wait for the LLM before 429"
    )
    api_cors_origins: list[str] = Field(
        default_factory=lambda: list(_API.cors_origins),
        description="browser origins allowed to call the API (none: CORS off)",
    )
    api_sources: Literal["footer", "field", "both"] = Field(
        default=_API.sources,
        description="footer: a Markdown sources block ends each answer's content; field: "
        "the structured `citations` only; both",
    )
    api_public_url: str = Field(
        default=_API.public_url,
        pattern=r"^(https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~\-/]*)?)?$",
        max_length=300,
        description="the address browsers reach `kbqa api` at, for source links "
        "(e.g. http://localhost:8000); empty: the address each request came in by",
    )

    @property
    def default_kb(self) -> Path:
        return self.home / "default"

    @classmethod
    def defaults(cls) -> Settings:
        """The settings with every default, ignoring ``KBQA_*`` and ``KBQA_CONFIG``: what
        library code uses when given none (the home and cache folders still follow
        ``XDG_DATA_HOME`` / ``XDG_CACHE_HOME`` and the user's home, as any program's do)."""
        return cls.model_construct()

    def answer_options(self, embedding_model: str | None = None) -> AnswerOptions:
        """How ``qa`` answers; ``min_score`` unset is the embedding model's own refusal
        floor (``embedding_model``: the one actually used, default the configured one)."""
        from .models.registry import refusal_floor

        floor = refusal_floor(embedding_model or self.embedding_model)
        return AnswerOptions(
            top_k=self.top_k,
            max_new_tokens=self.max_new_tokens,
            min_score=floor if self.min_score is None else self.min_score,
            retrieval=self.retrieval,
            answer_style=self.answer_style,
            answerability=self.answerability,
            instruction_filter=self.instruction_filter,
        )

    def parse_limits(self) -> ParseLimits:
        """What reading one file may cost (``ingest``)."""
        return ParseLimits(
            max_decompressed_bytes=int(self.max_decompressed_mb * MB),
            max_chars=int(self.max_chars),
            max_page_chars=int(self.max_page_chars),
            seconds=float(self.parse_seconds),
            memory_bytes=int(self.parse_memory_mb * MB),
            max_page_pixels=int(self.max_page_pixels),
            ocr_seconds_per_page=float(self.ocr_seconds_per_page),
        )

    def api_options(self) -> ApiOptions:
        """What ``kbqa api`` accepts."""
        key = self.api_key.get_secret_value() if self.api_key else ""
        return ApiOptions(
            key or None,
            int(self.api_max_body_mb * MB),
            int(self.api_max_upload_mb * MB),
            self.api_queue_size,
            tuple(self.api_cors_origins),
            self.api_sources,
            self.api_public_url.rstrip("/"),
        )

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
MODEL_FIELDS = (
    "embedding_model",
    "llm_model",
    "device",
    "precision",
    "llm_int8_decode",
    "cache_dir",
)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and ``KBQA_CONFIG``; ``overrides`` win."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})

"""``kbqa api``: an OpenAI-compatible HTTP API over knowledge bases (docs/api.md).

Over 450 lines because it is the whole OpenAI surface in one place (routes, the
streamed and plain reply shapes); checks and limits live in ``middleware.py``.

- ``GET /v1/models``: each knowledge base is a model (``catalog.py`` says how they are named).
- ``POST /v1/chat/completions``: OpenAI's format, plain or streamed (server-sent events
  ending with ``data: [DONE]``). The last user message is the question; earlier turns
  are the conversation the engine reads a follow-up in (``KnowledgeBase.stream(...,
  history=)``); system messages are ignored (kbqa answers from the documents with its
  own prompt). An optional ``"kbqa": {"answer_style": "evidence" | "short" |
  "sentence"}`` in the body picks the answer style (plain OpenAI clients never send
  it; default: the settings'). The reply carries ``[n]`` markers, and the message also
  carries ``citations`` (document, page, offsets, score, the exact quotes),
  ``refused``, ``style``, ``shown`` and the ``answerability`` verdict. Only the checked
  answer reaches ``content``: a model draft the evidence does not state is sent, when
  streamed, as ``reasoning_content`` only, and the evidence is the answer.
- Documents: upload (multipart), list, delete; search (passages, no LLM).

One answer at a time per process (``queue.AnswerGate``); a client that goes away
stops its generation at the next token. With an API key, every request needs
``Authorization: Bearer <key>``; without one the server only listens on loopback.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...errors import KbqaError
from ...ingest.types import FileOutcome
from ...qa.answer import Answer
from ...qa.followup import Turn
from ...qa.knowledge_base import AnswerStream, KnowledgeBase
from ...qa.options import Style
from ...settings import ApiOptions, Settings
from .catalog import (
    Catalog,
    UnknownKnowledgeBase,
    citation_json,
    document_json,
    hit_json,
    outcome_json,
    shown_json,
)
from .middleware import (
    ApiError,
    LimitBody,
    RequireKey,
    check_exposure,
    error_body,
    error_response,
)
from .queue import AnswerGate, QueueFull, Ticket

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 4000
MAX_FILES_PER_UPLOAD = 100


# -- request bodies -------------------------------------------------------


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class KbqaOptions(BaseModel):
    """kbqa's own options of a chat completion (the body's ``kbqa`` object)."""

    model_config = ConfigDict(extra="forbid")

    answer_style: Style | None = Field(
        default=None,
        description="evidence: the sentences that answer, verbatim; short: only the "
        "answering words; sentence: one sentence phrased from them",
    )


class ChatRequest(BaseModel):
    """OpenAI's chat-completion request; sampling options are accepted and ignored
    (answers are greedy and checked against the passages). ``kbqa`` carries kbqa's own
    options, which OpenAI clients send as ``extra_body={"kbqa": {...}}``."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = False
    kbqa: KbqaOptions | None = None


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    k: int | None = Field(default=None, ge=1, le=100)


# -- the app -------------------------------------------------------------------


def create_app(catalog: Catalog, options: ApiOptions | None = None) -> FastAPI:
    """The API over ``catalog``'s knowledge bases (closed when the app shuts down)."""
    options = options or ApiOptions()
    gate = AnswerGate(options.queue_size)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        catalog.close()

    app = FastAPI(
        title="kbqa",
        summary="Cited answers from your own documents (OpenAI-compatible).",
        docs_url=None,  # the interactive pages load scripts from a CDN; kbqa stays offline
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.gate = gate
    app.state.catalog = catalog

    # Added innermost first: CORS (when enabled) answers preflights before the key check.
    app.add_middleware(
        LimitBody, json_limit=options.max_body_bytes, upload_limit=options.max_upload_bytes
    )
    if options.api_key:
        app.add_middleware(RequireKey, key=options.api_key)
    if options.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(options.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}"
            for e in error.errors()
        )
        return JSONResponse(error_body(problems, "invalid_request_error", None), 400)

    @app.exception_handler(UnknownKnowledgeBase)
    async def unknown_kb(request: Request, error: UnknownKnowledgeBase) -> JSONResponse:
        message = f"The model `{error.name}` does not exist (models are knowledge bases)"
        return JSONResponse(error_body(message, "invalid_request_error", "model_not_found"), 404)

    @app.exception_handler(KbqaError)
    async def kbqa_error(request: Request, error: KbqaError) -> JSONResponse:
        log.error("%s %s: %s", request.method, request.url.path, error)
        return JSONResponse(error_body(str(error), "server_error", None), 500)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "answering": gate.held > 0, "queued": max(0, gate.held - 1)}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        names = await anyio.to_thread.run_sync(catalog.names)
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "kbqa"} for n in names]
        return {"object": "list", "data": data}

    @app.get("/v1/models/{name}")
    async def model(name: str) -> dict[str, Any]:
        await anyio.to_thread.run_sync(catalog.folder, name)
        return {"id": name, "object": "model", "created": 0, "owned_by": "kbqa"}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(
        body: ChatRequest, request: Request
    ) -> dict[str, Any] | EventSourceResponse | Response:
        kb = await anyio.to_thread.run_sync(catalog.reader, body.model)
        question, turns = conversation(body.messages)
        ask = Asking(question, turns, body.kbqa.answer_style if body.kbqa else None)
        try:
            ticket = gate.reserve()
        except QueueFull as full:
            headers = {"Retry-After": str(full.retry_after_s)}
            raise ApiError(429, str(full), "rate_limit_exceeded", "requests", headers) from None
        reply = Reply(body.model)
        if body.stream:
            events = _stream_events(reply, kb, ask, ticket)
            # The ticket is given back when the events end, and again (harmlessly) after
            # the response, in case the client left before the events even started.
            return EventSourceResponse(events, ping=15, background=BackgroundTask(ticket.release))
        try:
            async with ticket:
                answer = await _answer_while_connected(kb, ask, request)
        finally:
            ticket.release()
        if answer is None:
            log.info("client left before the answer was finished; generation stopped")
            return Response(status_code=499)
        return reply.completion(answer)

    @app.get("/v1/knowledge-bases/{kb}/documents")
    async def list_documents(kb: str) -> dict[str, Any]:
        base = await anyio.to_thread.run_sync(catalog.reader, kb)
        records = await anyio.to_thread.run_sync(base.documents)
        return {"object": "list", "data": [document_json(r) for r in records]}

    @app.post("/v1/knowledge-bases/{kb}/documents")
    async def upload_documents(kb: str, request: Request) -> dict[str, Any]:
        writer, lock = await anyio.to_thread.run_sync(catalog.writer, kb)
        form = await request.form(max_files=MAX_FILES_PER_UPLOAD)
        try:
            files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
            password = form.get("password")
            if not files:
                raise ApiError(
                    400, "no files: send multipart/form-data with one or more `files` parts"
                )
            results = []
            for upload in files:
                name = upload.filename or "upload"
                data = await upload.read()
                outcome = await anyio.to_thread.run_sync(
                    _add, writer, lock, name, data, password if isinstance(password, str) else None
                )
                results.append(outcome_json(name, outcome))
        finally:
            await form.close()
        failed = sum(r["status"] == "failed" for r in results)
        return {"object": "list", "data": results, "failed": failed}

    @app.delete("/v1/knowledge-bases/{kb}/documents/{document_id}")
    async def delete_document(kb: str, document_id: str) -> dict[str, Any]:
        writer, lock = await anyio.to_thread.run_sync(catalog.writer, kb)
        record = await anyio.to_thread.run_sync(_remove, writer, lock, document_id)
        return {"id": record.doc_id, "object": "document", "name": record.name, "deleted": True}

    @app.post("/v1/knowledge-bases/{kb}/search")
    async def search(kb: str, body: SearchRequest) -> dict[str, Any]:
        base = await anyio.to_thread.run_sync(catalog.reader, kb)
        hits = await anyio.to_thread.run_sync(base.search, body.query, body.k)
        return {"object": "list", "data": [hit_json(n, h) for n, h in enumerate(hits, 1)]}

    return app


def _add(
    kb: KnowledgeBase, lock: threading.Lock, name: str, data: bytes, password: str | None
) -> FileOutcome:
    with lock:
        return kb.add_bytes(name, data, password=password)


def _remove(kb: KnowledgeBase, lock: threading.Lock, document_id: str) -> Any:
    with lock:
        if not any(r.doc_id == document_id for r in kb.documents()):
            raise ApiError(404, f"no document with id {document_id!r}", "document_not_found")
        return kb.remove(document_id)


# -- chat completions ------------------------------------------------------------


def conversation(messages: Sequence[ChatMessage]) -> tuple[str, list[Turn]]:
    """The question (the last user message) and the earlier question-answer turns."""
    said = [(m.role, _text(m.content)) for m in messages if m.role in ("user", "assistant")]
    if not said or said[-1][0] != "user" or not said[-1][1].strip():
        raise ApiError(400, "the last message must be the user's question", param="messages")
    question = said[-1][1].strip()
    if len(question) > MAX_QUESTION_CHARS:
        raise ApiError(400, f"the question is longer than {MAX_QUESTION_CHARS} characters")
    turns: list[Turn] = []
    asked: str | None = None
    for role, text in said[:-1]:
        if role == "user":
            asked = text
        elif asked is not None:
            turns.append(Turn(asked, text))
            asked = None
    return question, turns


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise ApiError(400, "only text message content is supported", param="messages")
        parts.append(part["text"])
    return "\n".join(parts)


@dataclass(frozen=True)
class Asking:
    """One question of a chat completion: the question, the conversation, the style."""

    question: str
    turns: list[Turn]
    style: Style | None = None


def _start(kb: KnowledgeBase, ask: Asking) -> AnswerStream:
    return kb.stream(ask.question, style=ask.style, history=ask.turns)


async def _answer_steps(kb: KnowledgeBase, ask: Asking) -> AsyncGenerator[str | Answer, None]:
    """The answer's text as soon as it is known, then the finished ``Answer``.

    Each step runs in a worker thread. Closing this iterator (a client that left)
    stops iterating the answer stream, which stops the generation.
    """
    stream = await anyio.to_thread.run_sync(_start, kb, ask)
    pieces = iter(stream)
    try:
        while (piece := await anyio.to_thread.run_sync(next, pieces, None)) is not None:
            yield piece
        yield stream.answer
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(close)


async def _answer_while_connected(
    kb: KnowledgeBase, ask: Asking, request: Request
) -> Answer | None:
    async with aclosing(_answer_steps(kb, ask)) as steps:
        async for step in steps:
            if isinstance(step, Answer):
                return step
            if await request.is_disconnected():
                return None
    raise AssertionError("the answer stream ended without an answer")


class Reply:
    """The OpenAI-shaped objects of one completion."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def completion(self, answer: Answer) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text, **_extras(answer)},
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(answer),
        }

    def chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        body = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            **extra,
        }
        return json.dumps(body, ensure_ascii=False)


def _extras(answer: Answer) -> dict[str, Any]:
    extras = shown_json(answer)  # style, shown, not_shown_because, standalone, answerability
    return {
        "refused": answer.refused,
        "citations": [citation_json(c, answer) for c in answer.citations],
        "question": extras["standalone"],  # what was searched: the follow-up made standalone
        **extras,
    }


def _usage(answer: Answer) -> dict[str, int]:
    # Completion "tokens" are the pieces the model streamed (about one token each).
    prompt, completion = answer.timings.prompt_tokens, answer.timings.generated_pieces
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


async def _stream_events(
    reply: Reply, kb: KnowledgeBase, ask: Asking, ticket: Ticket
) -> AsyncIterator[str]:
    try:
        yield reply.chunk({"role": "assistant", "content": ""})
        async with ticket:
            answer: Answer | None = None
            async with aclosing(_answer_steps(kb, ask)) as steps:
                async for step in steps:
                    if isinstance(step, Answer):
                        answer = step
                        break
        assert answer is not None
        if answer.reply and answer.shown != "draft":
            # The model's draft the evidence does not state: shown aside, never as content.
            yield reply.chunk({"reasoning_content": answer.reply})
        yield reply.chunk({"content": answer.text, **_extras(answer)})
        yield reply.chunk({}, "stop", usage=_usage(answer))
    except KbqaError as error:
        log.error("chat completion failed: %s", error)
        yield json.dumps(error_body(str(error), "server_error", None))
    finally:
        ticket.release()
    yield "[DONE]"


# -- running it ----------------------------------------------------------------


def run(
    settings: Settings,
    kb: Path | None = None,
    kb_root: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> None:
    """Serve until interrupted; the models load in the background at start."""
    import uvicorn

    options = settings.api_options()
    check_exposure(host, options.api_key)
    catalog = Catalog.from_settings(settings, kb, kb_root)
    app = create_app(catalog, options)
    threading.Thread(target=_warm_up, args=(catalog,), name="kbqa-warm-up", daemon=True).start()
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)


def _warm_up(catalog: Catalog) -> None:
    try:
        kb = catalog.reader("default")
        kb.embedder.embed_queries(["warm up"])
        load = getattr(kb.generator, "load", None)
        if load is not None:
            load()
        log.info("models loaded")
    except Exception:  # noqa: BLE001 - the first request reports the same error
        log.exception("loading the models failed")

"""``kbqa api``: an OpenAI-compatible HTTP API over knowledge bases (docs/api.md).

- ``GET /v1/models``: each knowledge base is a model (``catalog.py`` says how they are named).
- ``POST /v1/chat/completions``: OpenAI's format, plain or streamed (server-sent events
  ending with ``data: [DONE]``); ``completions.py`` says what the reply holds and when
  each part is streamed. An optional ``"kbqa": {"answer_style": ..., "documents": [...],
  "tags": [...]}`` in the body picks the answer style and the scope (plain OpenAI
  clients never send it); a scope entry that matches nothing is a 400 naming it.
- ``GET /v1/sources/{kb}/{doc_id}/{chunk_id}``: the page a source link opens
  (``sources.py``), the cited page's picture with the passage marked.
- Documents: upload (multipart), list, delete; search (passages, no LLM), with the
  scope as repeatable ``documents=`` / ``tags=`` query parameters.

One answer at a time per process (``queue.AnswerGate``); a client that goes away
stops its generation at the next token. With an API key, every request needs
``Authorization: Bearer <key>`` (a source link carries its own signature instead);
without one the server only listens on loopback.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...errors import KbqaError
from ...index.scope import (
    MAX_ENTRIES,
    MAX_ENTRY_CHARS,
    MAX_TAGS_PER_DOCUMENT,
    Scope,
    ScopeError,
    valid_tag,
)
from ...ingest.types import FileOutcome
from ...qa.knowledge_base import KnowledgeBase
from ...settings import ApiOptions, Settings
from . import sources
from .catalog import Catalog, UnknownKnowledgeBase, document_json, hit_json, outcome_json
from .completions import (
    MAX_QUESTION_CHARS,
    Asking,
    ChatRequest,
    Reply,
    answer_while_connected,
    conversation,
    stream_events,
)
from .middleware import (
    ApiError,
    LimitBody,
    RequireKey,
    check_exposure,
    error_body,
    error_response,
)
from .queue import AnswerGate, QueueFull

log = logging.getLogger(__name__)

MAX_FILES_PER_UPLOAD = 100


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
        app.add_middleware(RequireKey, key=options.api_key, signed=sources.SOURCE_PATH)
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

    @app.exception_handler(ScopeError)
    async def bad_scope(request: Request, error: ScopeError) -> JSONResponse:
        return JSONResponse(error_body(str(error), "invalid_request_error", "invalid_scope"), 400)

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
        extra = body.kbqa
        scope = extra.scope() if extra else None
        if scope is not None:  # a bad entry is a 400 before anything is streamed
            await anyio.to_thread.run_sync(kb.resolve_scope, scope)
        ask = Asking(question, turns, extra.answer_style if extra else None, scope)
        try:
            ticket = gate.reserve()
        except QueueFull as full:
            headers = {"Retry-After": str(full.retry_after_s)}
            raise ApiError(429, str(full), "rate_limit_exceeded", "requests", headers) from None
        base = options.public_url or sources.base_url(request)
        reply = Reply(body.model, base, options.sources, options.api_key)
        if body.stream:
            events = stream_events(reply, kb, ask, ticket)
            # The ticket is given back when the events end, and again (harmlessly) after
            # the response, in case the client left before the events even started.
            return EventSourceResponse(events, ping=15, background=BackgroundTask(ticket.release))
        try:
            async with ticket:
                answered = await answer_while_connected(kb, ask, request)
        finally:
            ticket.release()
        if answered is None:
            log.info("client left before the answer was finished; generation stopped")
            return Response(status_code=499)
        return reply.completion(*answered)

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
            tags = _upload_tags(form.getlist("tags"))
            if not files:
                raise ApiError(
                    400, "no files: send multipart/form-data with one or more `files` parts"
                )
            results = []
            for upload in files:
                name = upload.filename or "upload"
                data = await upload.read()
                secret = password if isinstance(password, str) else None
                outcome = await anyio.to_thread.run_sync(
                    _add, writer, lock, name, data, secret, tags
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
    async def search(
        kb: str, body: SearchRequest, documents: ScopeEntries = None, tags: ScopeEntries = None
    ) -> dict[str, Any]:
        base = await anyio.to_thread.run_sync(catalog.reader, kb)
        scope = Scope.of(documents, tags) if documents or tags else None
        hits = await anyio.to_thread.run_sync(_search, base, body.query, body.k, scope)
        return {"object": "list", "data": [hit_json(n, h) for n, h in enumerate(hits, 1)]}

    app.include_router(sources.router(catalog, options.api_key))
    return app


# Repeatable query parameters naming a scope: ?documents=a.pdf&documents=notes/*.md&tags=legal
ScopeEntries = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=MAX_ENTRY_CHARS)]] | None,
    Query(max_length=MAX_ENTRIES),
]


def _search(kb: KnowledgeBase, query: str, k: int | None, scope: Scope | None) -> Any:
    return kb.search(query, k, scope=scope)


def _upload_tags(values: list[Any]) -> list[str]:
    if len(values) > MAX_TAGS_PER_DOCUMENT:
        raise ApiError(400, f"at most {MAX_TAGS_PER_DOCUMENT} tags per upload", param="tags")
    return [valid_tag(v) for v in values if isinstance(v, str)]


def _add(
    kb: KnowledgeBase,
    lock: threading.Lock,
    name: str,
    data: bytes,
    password: str | None,
    tags: list[str],
) -> FileOutcome:
    from ..web.originals import keep_pdf

    with lock:
        outcome = kb.add_bytes(name, data, password=password, tags=tags)
    # Kept for its pages' pictures. Not an encrypted one: decrypting a copy would parse
    # the upload in this process (the web app does; its passages are shown as text here).
    pdf = data[:1024].find(b"%PDF-") >= 0
    if outcome.doc_id and outcome.status != "failed" and pdf and not password:
        keep_pdf(kb.folder, outcome.doc_id, data)
    return outcome


def _remove(kb: KnowledgeBase, lock: threading.Lock, document_id: str) -> Any:
    from ..web.originals import kept_path

    with lock:
        if not any(r.doc_id == document_id for r in kb.documents()):
            raise ApiError(404, f"no document with id {document_id!r}", "document_not_found")
        record = kb.remove(document_id)
        kept_path(kb.folder, record.doc_id).unlink(missing_ok=True)
        return record


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

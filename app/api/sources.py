"""The page a source link opens: the cited page's picture with the passage marked.

``GET /v1/sources/{kb}/{doc_id}/{chunk_id}?q=START-END&sig=…``. Everything in the
link is an id or a number: the knowledge base is looked up by name in the catalog,
the document by its id among the stored ones, the passage by its id among that
document's chunks, and ``q`` marks spans of the passage (the answer's quotes). The
PDF drawn is the one the knowledge base keeps or the unchanged source file
(``app/web/originals.py`` ``find_pdf``), drawn by the web app's renderer in the
bounded reading process (``app/web/pdfpage.py``); a document without a page picture
(Markdown, text, a PDF no longer at hand) shows the passage with its quotes marked.

With an API key, a browser following the link cannot send ``Authorization``, so the
link carries ``sig``: an HMAC of what it shows under the key. Only a holder of the
key (the server, when it answers) can make one, and one opens only that passage;
changing the key closes every link given before. Without a key the server is on
loopback and links need no signature.

Links are absolute, built from the request: ``X-Forwarded-Proto``/``-Host``/
``-Prefix`` when a reverse proxy sets them, else the scheme and ``Host`` header
the client used (the address a chat app's server reached kbqa at; docs/integrations.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from ...ingest.limits import ParseLimits
from ...ingest.types import Chunk, display_name
from ...qa.answer import Answer, Citation
from ...qa.knowledge_base import KnowledgeBase
from .catalog import Catalog
from .middleware import ApiError

SOURCE_PATH = re.compile(r"/v1/sources/[^/]+/[0-9a-f]{64}/[0-9a-f]{24}")
MAX_MARKS = 16
MAX_PENDING_PICTURES = 4  # pictures drawn or waiting to be; more is 429
PAGE_WIDTH_PX = 1000
_MARK = re.compile(r"(\d{1,7})-(\d{1,7})")
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")
_PREFIX = re.compile(r"(/[A-Za-z0-9._~\-]+)*")
_PAGE_HEADERS = {
    # No scripts, nothing fetched: the picture is inline, the passage escaped text.
    "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "private, max-age=300",
}


# -- links ------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceLink:
    """What one link shows: a passage of a knowledge base and the spans to mark in it."""

    kb: str
    doc_id: str
    chunk_id: str
    marks: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, kb: str, citation: Citation, answer: Answer) -> SourceLink:
        spans = sorted({(q.start, q.end) for q in answer.quotes if q.chunk_id == citation.chunk_id})
        return cls(kb, citation.doc_id, citation.chunk_id, tuple(spans[:MAX_MARKS]))

    def signature(self, key: str) -> str:
        marks = ",".join(f"{start}-{end}" for start, end in self.marks)
        message = f"{self.kb}\n{self.doc_id}\n{self.chunk_id}\n{marks}".encode()
        return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()[:32]

    def url(self, base: str, key: str | None) -> str:
        path = f"/v1/sources/{quote(self.kb, safe='')}/{self.doc_id}/{self.chunk_id}"
        query = [("q", f"{start}-{end}") for start, end in self.marks]
        if key:
            query.append(("sig", self.signature(key)))
        return base + path + (f"?{urlencode(query)}" if query else "")


def base_url(request: Request) -> str:
    """Where the client reached this server: ``scheme://host[/prefix]``, no trailing slash."""
    headers = request.headers
    scheme = _first(headers.get("x-forwarded-proto")) or request.url.scheme
    host = _first(headers.get("x-forwarded-host")) or headers.get("host", "")
    prefix = _first(headers.get("x-forwarded-prefix")).rstrip("/")
    if scheme not in ("http", "https") or not _HOST.fullmatch(host):
        scheme, host = request.url.scheme, request.url.netloc
    if not _PREFIX.fullmatch(prefix):
        prefix = ""
    return f"{scheme}://{host}{prefix}"


def _first(value: str | None) -> str:
    return (value or "").split(",")[0].strip()


# -- the page -------------------------------------------------------------------------


def router(catalog: Catalog, api_key: str | None) -> APIRouter:
    """The source pages (``RequireKey`` lets them through; the signature is checked here)."""
    routes = APIRouter()
    pending = _Pending(MAX_PENDING_PICTURES)

    @routes.get("/v1/sources/{kb}/{doc_id}/{chunk_id}", response_class=HTMLResponse)
    async def source_page(
        kb: str,
        doc_id: str,
        chunk_id: str,
        request: Request,
        q: list[str] = Query(default=[], max_length=MAX_MARKS),  # noqa: B008 - FastAPI's way
        sig: str = Query(default="", max_length=64),
    ) -> HTMLResponse:
        marks = tuple(_parse_mark(m) for m in q)
        link = SourceLink(kb, doc_id, chunk_id, marks)
        if api_key and not _authorized(link, sig, api_key, request):
            raise ApiError(403, "this link is not signed by this server's key", "bad_signature")
        base = await run_in_threadpool(catalog.reader, kb)
        with pending.place():
            page = await run_in_threadpool(_page_html, base, link)
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    return routes


def _authorized(link: SourceLink, sig: str, key: str, request: Request) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode()):
        return True
    return hmac.compare_digest(sig.encode(), link.signature(key).encode())


def _parse_mark(text: str) -> tuple[int, int]:
    found = _MARK.fullmatch(text)
    if not found or int(found.group(1)) >= int(found.group(2)):
        raise ApiError(400, f"q must be START-END with START < END, not {text[:20]!r}", param="q")
    return int(found.group(1)), int(found.group(2))


class _Pending:
    """Counts the pages being drawn or waiting; past the limit, 429 at once."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._count = 0
        self._lock = threading.Lock()

    @contextmanager
    def place(self) -> Iterator[None]:
        with self._lock:
            if self._count >= self._limit:
                raise ApiError(
                    429, "too many source pages are being drawn; retry", "rate_limit_exceeded",
                    headers={"Retry-After": "2"},
                )  # fmt: skip
            self._count += 1
        try:
            yield
        finally:
            with self._lock:
                self._count -= 1


def stored_chunk(kb: KnowledgeBase, doc_id: str, chunk_id: str) -> Chunk:
    """The passage ``chunk_id`` of document ``doc_id`` (ids only: never a path)."""
    chunk = next((c for c in kb.chunks(doc_id) if c.id == chunk_id), None)
    if chunk is None:
        raise ApiError(404, "no such passage in this knowledge base", "source_not_found")
    return chunk


def _page_html(kb: KnowledgeBase, link: SourceLink) -> str:
    chunk = stored_chunk(kb, link.doc_id, link.chunk_id)
    spans = [(s, e) for s, e in link.marks if e <= len(chunk.text)]
    picture, note = _picture(kb, chunk, spans)
    name = display_name(chunk.source)
    where = f"p. {chunk.page}" if chunk.page is not None else ""
    heading = " · ".join(part for part in (where, chunk.heading or "") if part)
    title = f"{name}, {where}" if where else name
    body = [f"<h1>{html.escape(name)}</h1>"]
    if heading:
        body.append(f'<p class="where">{html.escape(heading)}</p>')
    if picture is not None:
        png, width, height, marked = picture
        alt = f"{title}, the cited passage marked"
        body.append(
            f'<img id="page" src="data:image/png;base64,{base64.b64encode(png).decode()}" '
            f'width="{width}" height="{height}" alt="{html.escape(alt)}">'
        )
        if not marked:
            note = "The passage could not be located on the page picture."
    if note:
        body.append(f'<p class="note">{html.escape(note)}</p>')
    body.append(f'<blockquote id="passage">{_passage_html(chunk.text, spans)}</blockquote>')
    return _PAGE.format(title=html.escape(title), body="\n".join(body))


def _picture(
    kb: KnowledgeBase, chunk: Chunk, spans: list[tuple[int, int]]
) -> tuple[tuple[bytes, int, int, bool] | None, str]:
    """The page picture (png, width, height, marked), or None and why not."""
    if chunk.page is None:
        return None, ""
    from ..web.originals import find_pdf
    from ..web.pdfpage import PageRenderError

    pdf = find_pdf(kb.folder, chunk.source, chunk.doc_id)
    if pdf is None:
        return None, "The original file is not kept on this server: the passage as stored."
    marks = ((chunk.start, chunk.end, False),) + tuple(
        (chunk.start + start, chunk.start + end, True) for start, end in spans
    )
    try:
        picture = _drawn(str(pdf), pdf.stat().st_mtime_ns, chunk.page, chunk.text, marks,
                         kb.limits)  # fmt: skip
    except (PageRenderError, OSError) as error:
        return None, f"No picture of this page: {error}"
    return picture, ""


@lru_cache(maxsize=32)
def _drawn(
    pdf: str,
    mtime_ns: int,
    page: int,
    passage: str,
    marks: tuple[tuple[int, int, bool], ...],
    limits: ParseLimits,
) -> tuple[bytes, int, int, bool]:
    from ..web.pdfpage import Mark, render_page

    drawn = render_page(
        Path(pdf), page, passage, [Mark(*m) for m in marks], width_px=PAGE_WIDTH_PX,
        limits=limits,
    )  # fmt: skip
    return drawn.png, drawn.width, drawn.height, drawn.marked


def _passage_html(text: str, spans: list[tuple[int, int]]) -> str:
    from ..web.highlight import passage_html

    return passage_html(text, spans)


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title} — kbqa</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 1040px; margin: 1.5em auto;
  padding: 0 1em; color: #1b1b1b; }}
h1 {{ font-size: 1.3em; margin: 0; overflow-wrap: anywhere; }}
.where, .note {{ color: #555; margin: .2em 0 1em; }}
img {{ max-width: 100%; height: auto; border: 1px solid #ccc; }}
blockquote {{ border-left: 4px solid #f0b400; margin: 1em 0; padding: .2em 1em; }}
mark {{ background: #ffd60a; }}
</style></head>
<body>
{body}
</body></html>
"""

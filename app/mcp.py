"""``kbqa mcp``: a knowledge base as an MCP server over stdio (docs/api.md).

Tools: ``search`` (passages with their sources, no LLM), ``ask`` (a cited answer,
or ``refused`` when the documents do not hold one) and ``list_documents``. Each
returns structured content (and the same as JSON text). ``search`` and ``ask`` take
a scope: ``documents`` (names, paths, id prefixes or globs) and ``tags``; an entry
that matches nothing is a tool error naming it. The MCP SDK runs each call in a
worker thread; answers take turns on the one LLM.

Run it as ``kbqa mcp --kb DIR`` or ``python -m kbqa.app.mcp --kb DIR``; either front door
parses its arguments and settings and calls ``run`` (this module never imports the CLI).
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import KbqaError
from ..index.scope import Scope
from ..qa.knowledge_base import KnowledgeBase
from ..qa.options import STYLES
from ..settings import Settings
from .api.catalog import answer_json, document_json, hit_json

try:  # mcp 2.x
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError:  # mcp 1.x called it FastMCP
    from mcp.server.fastmcp import FastMCP as MCPServer  # type: ignore[no-redef,attr-defined]
    from mcp.server.fastmcp.exceptions import ToolError  # type: ignore[no-redef]

INSTRUCTIONS = (
    "Answers come only from the user's documents. Use `ask` for a cited answer "
    "([n] markers point at `citations`); when `refused` is true the documents do not "
    "hold the answer: say so rather than guessing. Use `search` to read passages."
)
MAX_QUERY_CHARS = 4000


def create_server(kb: KnowledgeBase) -> MCPServer:
    """An MCP server whose tools read ``kb``."""
    server = MCPServer(name="kbqa", instructions=INSTRUCTIONS)
    llm_turn = threading.Lock()  # one answer at a time: the LLM is one model

    @server.tool()
    def search(
        query: str, k: int = 5, documents: list[str] | None = None, tags: list[str] | None = None
    ) -> dict[str, Any]:
        """The passages of the documents nearest to `query` (1-100 of them), best first,
        each with its document, page, character offsets and score. No LLM is used.
        `documents` (names, paths, id prefixes or globs) and `tags`: search only those
        documents (see `list_documents`)."""
        _check(query, "query")
        if not 1 <= k <= 100:
            raise ToolError(f"k must be between 1 and 100, not {k}")
        scope = _scope(documents, tags)
        hits = _guarded(partial(kb.search, scope=scope), query, k)
        return {"passages": [hit_json(n, hit) for n, hit in enumerate(hits, start=1)]}

    @server.tool()
    def ask(
        question: str,
        answer_style: str | None = None,
        documents: list[str] | None = None,
        tags: list[str] | None = None,
    ) -> dict[str, Any]:
        """Answer `question` from the documents. The answer cites passages as [n];
        `citations` gives each one's document, page, exact quotes and score.
        `refused` is true when the documents do not contain the answer (`answerability`
        says why). `answer_style`: "evidence" (the sentences that answer, verbatim),
        "short" (only the answering words) or "sentence" (one sentence phrased from
        them); default: the server's setting. `shown` says whether the evidence or the
        model's checked wording is the answer. `documents` (names, paths, id prefixes
        or globs) and `tags`: answer from those documents only."""
        _check(question, "question")
        if answer_style is not None and answer_style not in STYLES:
            raise ToolError(
                f"answer_style must be one of {', '.join(STYLES)}, not {answer_style!r}"
            )
        scope = _scope(documents, tags)
        with llm_turn:
            answer = _guarded(partial(kb.ask, style=answer_style, scope=scope), question)
        return answer_json(answer)

    @server.tool()
    def list_documents() -> dict[str, Any]:
        """The documents in the knowledge base: id, name, pages, chunks, tags, when added."""
        return {"documents": [document_json(r) for r in _guarded(kb.documents)]}

    return server


def _check(text: str, name: str) -> None:
    if not text.strip():
        raise ToolError(f"{name} is empty")
    if len(text) > MAX_QUERY_CHARS:
        raise ToolError(f"{name} is longer than {MAX_QUERY_CHARS} characters")


def _scope(documents: list[str] | None, tags: list[str] | None) -> Scope | None:
    """The scope asked for, its budgets checked before the engine (None: everything)."""
    if not documents and not tags:
        return None
    scope: Scope = _guarded(Scope.of, documents, tags)
    return scope


def _guarded(function: Any, *args: Any) -> Any:
    """kbqa's own errors reach the client with their message (others only as a failure)."""
    try:
        return function(*args)
    except KbqaError as error:
        raise ToolError(str(error)) from error


def run(settings: Settings, kb: Path | None = None) -> None:
    """Serve over stdin/stdout until the client closes them."""
    knowledge_base = KnowledgeBase.open(kb, settings=settings)
    try:
        create_server(knowledge_base).run("stdio")
    finally:
        knowledge_base.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kbqa.app.mcp``: the same as ``kbqa mcp``."""
    from ..settings import load_settings
    from .runtime import configure_runtime

    parser = argparse.ArgumentParser(prog="python -m kbqa.app.mcp")
    parser.add_argument("--kb", type=Path, help="knowledge-base folder")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    configure_runtime(args.verbose)
    try:
        run(load_settings(), args.kb)
    except KbqaError as error:
        print(f"kbqa mcp: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

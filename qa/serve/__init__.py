"""Serving a knowledge base to other programs (``docs/api.md``).

- ``http``: ``kbqa api``, an OpenAI-compatible HTTP API (FastAPI + uvicorn).
- ``mcp_server``: ``kbqa mcp``, an MCP server over stdio (the ``mcp`` SDK).
- ``catalog``: knowledge bases by name, and the JSON shapes both share.
- ``queue``: one answer at a time per process, a bounded line for the rest.

Nothing here is imported by ``kbqa`` itself: FastAPI and the MCP SDK load only
when a server starts.
"""

"""``kbqa api``: serving knowledge bases over HTTP to other programs (``docs/api.md``).

- ``http``: the OpenAI-compatible HTTP API (FastAPI + uvicorn).
- ``middleware``: the API key, body limits and OpenAI-format errors every request meets.
- ``catalog``: knowledge bases by name, and the JSON shapes the API and MCP share.
- ``queue``: one answer at a time per process, a bounded line for the rest.

The MCP server (``kbqa mcp``) is ``app/mcp.py``. Nothing here is imported by ``kbqa``
itself: FastAPI loads only when a server starts.
"""

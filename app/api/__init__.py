"""``kbqa api``: serving knowledge bases over HTTP to other programs (``docs/api.md``).

- ``http``: the OpenAI-compatible HTTP API (FastAPI + uvicorn): its routes.
- ``completions``: chat completions, plain and streamed: what is sent, and when.
- ``markdown``: an answer's ``content`` as chat apps show it, with its sources block.
- ``sources``: source links and the page each opens (the cited page, passage marked).
- ``middleware``: the API key, body limits and OpenAI-format errors every request meets.
- ``catalog``: knowledge bases by name, and the JSON shapes the API and MCP share.
- ``queue``: one answer at a time per process, a bounded line for the rest.

The MCP server (``kbqa mcp``) is ``app/mcp.py``. Nothing here is imported by ``kbqa``
itself: FastAPI loads only when a server starts.
"""

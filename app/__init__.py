"""The front doors: everything that turns a request into engine calls (``kbqa.qa``) and
the results into its own format; no answering logic lives here.

- ``cli``: the ``kbqa`` command (``cli_eval``: ``kbqa eval``; ``terminal``: what it prints;
  ``runtime``: the offline switches and logging every front door sets).
- ``api/``: ``kbqa api``, the OpenAI-compatible HTTP API.
- ``mcp``: ``kbqa mcp``, the MCP server over stdio.
- ``batch`` and ``batch_ray``: ``kbqa ask --batch``, JSON Lines answered here or on Ray.
- ``web/``: ``kbqa serve``, the Streamlit app.
"""

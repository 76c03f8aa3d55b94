"""docs/integrations.md, run: each example against a real ``kbqa api`` (fakes for the
models) or, for MCP, the documented tool call against the server in process. Open
WebUI itself runs in a real browser in ``bench/open_webui.py`` (a 7 GB install, not
part of ``make test``); here the requests it makes with the documented settings."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from conftest import ROOT
from fakes import ScriptedGenerator, make_kb
from mcp import Client
from openai import OpenAI
from test_api import KeywordGenerator, make_catalog, serving

from kbqa.app.mcp import create_server
from kbqa.qa.knowledge_base import KnowledgeBase

PAGE = ROOT / "docs" / "integrations.md"
FREEDONIA = [
    ("freedonia-tarsia.md", "# Freedonia\n\nLa capital de Freedonia es Tarsia.\n"),
    ("freedonia-molvania.md", "# Freedonia\n\nLa capital de Freedonia es Molvania.\n"),
]


def example(name: str) -> str:
    page = PAGE.read_text(encoding="utf-8")
    found = re.search(rf"<!-- example: {re.escape(name)} -->\n```\w*\n(.*?)\n```", page, re.S)
    assert found, f"docs/integrations.md has no example {name!r}"
    return found.group(1)


def freedonia_kb(folder: Path, generator: Any = None) -> KnowledgeBase:
    kb = make_kb(folder, generator)
    kb.add_texts(FREEDONIA, scheme="upload")
    kb.tag("freedonia-molvania.md", ["contracts"])
    return kb


@pytest.fixture
def url(tmp_path: Path) -> Any:
    home = tmp_path / "home"
    freedonia_kb(home / "default")
    with serving(make_catalog(home, KeywordGenerator())) as base:
        yield base


def test_open_webui_settings_as_documented(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What Open WebUI does with the documented settings: list the models, then stream."""
    block = example("open-webui")
    settings = dict(re.findall(r"\b([A-Z_]+)=(\S+)", block))
    assert settings["WEBUI_AUTH"] == "False" and "kbqa api" in block
    base = settings["OPENAI_API_BASE_URL"].replace("http://127.0.0.1:8000", url)
    client = OpenAI(base_url=base, api_key=settings["OPENAI_API_KEY"], max_retries=0)
    assert [m.id for m in client.models.list()] == ["default"]
    stream = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "¿Cuál es la capital de Freedonia?"}],
        stream=True,
    )
    content = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "\n\n**Fuentes**\n- [1] [freedonia-" in content
    # bench/open_webui.py starts Open WebUI with these same switches.
    monkeypatch.syspath_prepend(str(ROOT))
    bench = importlib.import_module("bench.open_webui")
    assert bench.documented_settings() == settings


def test_librechat_endpoint_as_documented(url: str) -> None:
    """The request LibreChat's custom endpoint makes: its base URL, model, addParams."""
    [endpoint] = yaml.safe_load(example("librechat"))["endpoints"]["custom"]
    base = endpoint["baseURL"].replace("http://127.0.0.1:8000", url)
    client = OpenAI(base_url=base, api_key=endpoint["apiKey"], max_retries=0)
    assert endpoint["models"]["default"][0] in [m.id for m in client.models.list()]
    reply = client.chat.completions.create(
        model=endpoint["models"]["default"][0],
        messages=[{"role": "user", "content": "¿Cuál es la capital de Freedonia?"}],
        stream=True,
        extra_body=endpoint["addParams"],
    )
    content = "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
    assert content.startswith("La capital de Freedonia es Molvania [1].")  # tags: contracts
    assert "[freedonia-molvania.md](" in content and "Tarsia" not in content


def test_mcp_config_and_scoped_call_as_documented(tmp_path: Path) -> None:
    config = json.loads(example("mcp-config"))
    api_page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    # The same block as docs/api.md's, which tests/test_mcp.py starts over stdio.
    blocks = re.findall(r"<!-- example: mcp-config -->\n```json\n(.*?)\n```", api_page, re.S)
    assert config in [json.loads(block) for block in blocks]
    entry = config["mcpServers"]["kbqa"]
    kbqa = Path(sys.executable).with_name(entry["command"])
    help_text = subprocess.run(
        [str(kbqa), *entry["args"][:1], "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    assert "--kb" in help_text  # the documented arguments are the command's own

    call = json.loads(example("mcp-call"))
    server = create_server(freedonia_kb(tmp_path / "kb", ScriptedGenerator(["x"])))

    async def go() -> Any:
        async with Client(server) as client:
            return await client.call_tool(call["name"], call["arguments"])

    result = anyio.run(go).structured_content
    assert result["answer"] == "La capital de Freedonia es Molvania [1]."
    assert [c["document"] for c in result["citations"]] == ["freedonia-molvania.md"]


def test_langchain_scope_as_documented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kb = freedonia_kb(tmp_path / "kb")
    monkeypatch.setattr(KnowledgeBase, "open", classmethod(lambda cls, *a, **k: kb))
    exec(compile(example("langchain-scope"), "docs/integrations.md:langchain-scope", "exec"), {})
    assert capsys.readouterr().out.splitlines() == [
        "freedonia-tarsia.md | La capital de Freedonia es Tarsia."
    ]


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl, jq")
def test_curl_with_a_scope_as_documented(url: str, tmp_path: Path) -> None:
    script = example("curl-scope").replace("http://127.0.0.1:8000", url)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    answer, rest = done.stdout.split("\n\n**Fuentes**\n")
    assert answer == "La capital de Freedonia es Molvania [1]."
    source, passage, error = rest.strip().splitlines()
    assert source.startswith("- [1] [freedonia-molvania.md](" + url + "/v1/sources/default/")
    assert json.loads(passage)["document"] == "freedonia-tarsia.md"
    assert json.loads(error) == {
        "code": "invalid_scope",
        "message": "no document matches 'contrato.pdf'",
    }

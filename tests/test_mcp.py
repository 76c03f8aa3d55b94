"""``kbqa mcp``: the MCP tools with fakes in process, then the documented client
configuration over stdio with the SDK's own client and the small real models."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import ROOT
from fakes import ScriptedGenerator, make_kb
from mcp import Client, ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from kbqa.app.mcp import create_server

MODELS_MD = (
    "# Models\n\nGPT-3 from OpenAI has 175 billion parameters.\n\n"
    "# Other\n\nJurassic-1 from AI21 Labs has 178 billion parameters.\n"
)


def mcp_config_example() -> dict[str, Any]:
    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- example: mcp-config -->\n```json\n(.*?)\n```", page, re.S)
    assert found, "docs/api.md has no MCP client configuration"
    config: dict[str, Any] = json.loads(found.group(1))
    return config


def call(server: Any, tool: str, arguments: dict[str, Any]) -> Any:
    async def go() -> Any:
        async with Client(server) as client:
            return await client.call_tool(tool, arguments)

    return anyio.run(go)


@pytest.fixture
def server(tmp_path: Path) -> Any:
    kb = make_kb(tmp_path / "kb", ScriptedGenerator(["175 billion"]))
    kb.add_texts([("models.md", MODELS_MD)], scheme="upload")
    return create_server(kb)


def test_tools_are_listed_with_descriptions(server: Any) -> None:
    async def go() -> Any:
        async with Client(server) as client:
            return await client.list_tools()

    tools = {tool.name: tool for tool in anyio.run(go).tools}
    assert set(tools) == {"search", "ask", "list_documents"}
    assert "refused" in (tools["ask"].description or "")
    assert set(tools["search"].input_schema["properties"]) == {"query", "k", "documents", "tags"}
    assert set(tools["ask"].input_schema["properties"]) == {
        "question",
        "answer_style",
        "documents",
        "tags",
    }
    assert tools["ask"].input_schema["required"] == ["question"]


def test_ask_returns_a_cited_answer(server: Any) -> None:
    result = call(server, "ask", {"question": "How many parameters does GPT-3 have?"})
    assert not result.is_error
    answer = result.structured_content
    assert answer["answer"] == "GPT-3 from OpenAI has 175 billion parameters [1]."
    assert answer["refused"] is False and answer["language"] == "en"
    [citation] = answer["citations"]
    assert citation["document"] == "models.md" and citation["score"] > 0
    assert citation["quotes"][0]["text"] == "GPT-3 from OpenAI has 175 billion parameters."
    assert json.loads(result.content[0].text) == answer  # the same, as text
    assert answer["style"] == answer["shown"] == "evidence"  # the server's style: no model
    assert answer["answerability"]["answerable"] is True and answer["answerability"]["check"] == ""


def test_ask_in_another_style(server: Any) -> None:
    question = "How many parameters does GPT-3 have?"
    answer = call(server, "ask", {"question": question, "answer_style": "short"})
    assert answer.structured_content["answer"] == "175 billion [1]"
    assert answer.structured_content["style"] == "short"
    assert answer.structured_content["shown"] == "draft"


def test_ask_refuses_what_the_documents_do_not_say(tmp_path: Path) -> None:
    kb = make_kb(tmp_path / "kb", ScriptedGenerator(["Spain won it in 2010."]))
    kb.add_texts([("models.md", MODELS_MD)], scheme="upload")
    answer = call(create_server(kb), "ask", {"question": "Who won the 2010 World Cup?"})
    assert answer.structured_content["refused"] is True
    assert answer.structured_content["citations"] == []
    verdict = answer.structured_content["answerability"]
    assert verdict["check"] == "names" and verdict["missing_terms"] == ["world cup"]


def test_search_and_list_documents(server: Any) -> None:
    found = call(server, "search", {"query": "Jurassic-1 parameters", "k": 1})
    [passage] = found.structured_content["passages"]
    assert passage["document"] == "models.md" and "Jurassic-1" in passage["text"]
    assert passage["rank"] == 1 and passage["end"] > passage["start"]
    listed = call(server, "list_documents", {}).structured_content["documents"]
    assert [d["name"] for d in listed] == ["models.md"] and listed[0]["chunks"] >= 1


FREEDONIA = [
    ("freedonia-tarsia.md", "# Freedonia\n\nLa capital de Freedonia es Tarsia.\n"),
    ("freedonia-molvania.md", "# Freedonia\n\nLa capital de Freedonia es Molvania.\n"),
]


@pytest.fixture
def freedonia(tmp_path: Path) -> Any:
    kb = make_kb(tmp_path / "kb", ScriptedGenerator(["Tarsia"]))
    kb.add_texts(FREEDONIA, scheme="upload")
    kb.tag("freedonia-molvania.md", ["atlas"])
    return create_server(kb)


def test_a_scoped_ask_answers_from_the_chosen_document_only(freedonia: Any) -> None:
    question = "¿Cuál es la capital de Freedonia?"
    for scope, capital, chosen in (
        ({"documents": ["freedonia-tarsia.md"]}, "Tarsia", "freedonia-tarsia.md"),
        ({"documents": ["*molvania*"]}, "Molvania", "freedonia-molvania.md"),
        ({"tags": ["atlas"]}, "Molvania", "freedonia-molvania.md"),
    ):
        result = call(freedonia, "ask", {"question": question, **scope})
        answer = result.structured_content
        assert answer["answer"] == f"La capital de Freedonia es {capital} [1].", scope
        assert {c["document"] for c in answer["citations"]} == {chosen}
    found = call(freedonia, "search", {"query": "capital", "documents": ["freedonia-tarsia.md"]})
    assert {p["document"] for p in found.structured_content["passages"]} == {"freedonia-tarsia.md"}
    listed = call(freedonia, "list_documents", {}).structured_content["documents"]
    assert {d["name"]: d["tags"] for d in listed}["freedonia-molvania.md"] == ["atlas"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"documents": ["nope.md"]}, "no document matches 'nope.md'"),
        ({"tags": ["unknown"]}, "no document is tagged 'unknown'"),
        ({"tags": ["a/b"]}, "invalid tag"),
        ({"documents": ["x"] * 101}, "at most 100"),
        ({"documents": ["x" * 201]}, "longer than 200 characters"),
    ],
)
def test_a_bad_scope_is_a_tool_error_naming_it(
    freedonia: Any, arguments: dict[str, Any], message: str
) -> None:
    for tool, asked in (("ask", {"question": "capital?"}), ("search", {"query": "capital"})):
        result = call(freedonia, tool, {**asked, **arguments})
        assert result.is_error and message in result.content[0].text, result.content


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("ask", {"question": "  "}, "question is empty"),
        ("ask", {"question": "x", "answer_style": "long"}, "answer_style must be one of"),
        ("search", {"query": "x", "k": 0}, "k must be between 1 and 100"),
        ("search", {"query": "x" * 5000}, "longer than 4000"),
    ],
)
def test_bad_arguments_are_tool_errors_with_the_reason(
    server: Any, tool: str, arguments: dict[str, Any], message: str
) -> None:
    result = call(server, tool, arguments)
    assert result.is_error and message in result.content[0].text


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_documented_config_over_stdio_with_real_models(tmp_path: Path, real_embedder: Any) -> None:
    """The client configuration in docs/api.md starts the server; the SDK's stdio client
    talks to it. The child loads the small real models itself."""
    from kbqa.qa.knowledge_base import KnowledgeBase
    from kbqa.settings import load_settings

    folder = tmp_path / "kb"
    settings = load_settings(home=tmp_path, embedding_model=real_embedder.name)
    kb = KnowledgeBase.open(folder, settings=settings, embedder=real_embedder, generator=None)
    kb.add_texts([("models.md", MODELS_MD)], scheme="upload")
    kb.close()

    entry = mcp_config_example()["mcpServers"]["kbqa"]
    command = Path(sys.executable).with_name(entry["command"])  # the venv's kbqa script
    args = list(entry["args"])
    args[args.index("--kb") + 1] = str(folder)
    env = {
        **entry.get("env", {}),
        "KBQA_EMBEDDING_MODEL": real_embedder.name,
        "KBQA_LLM_MODEL": "smollm2-135m-instruct",
        "KBQA_CACHE_DIR": os.environ["KBQA_CACHE_DIR"],
        "KBQA_HOME": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    parameters = StdioServerParameters(command=str(command), args=args, env=env)

    async def session() -> tuple[Any, Any, Any]:
        async with stdio_client(parameters) as (read, write):
            async with ClientSession(read, write) as client:
                await client.initialize()
                tools = await client.list_tools()
                documents = await client.call_tool("list_documents", {})
                answer = await client.call_tool(
                    "ask", {"question": "How many parameters does GPT-3 have?"}
                )
                return tools, documents, answer

    tools, documents, answer = anyio.run(session)
    assert {t.name for t in tools.tools} == {"search", "ask", "list_documents"}
    assert documents.structured_content["documents"][0]["name"] == "models.md"
    assert not answer.is_error, answer.content
    result = answer.structured_content
    assert isinstance(result["refused"], bool) and result["answer"]
    if not result["refused"]:  # a 135M model may not manage it; then it must say so
        assert "[1]" in result["answer"] and result["citations"][0]["document"] == "models.md"

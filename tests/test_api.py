"""``kbqa api``: the OpenAI-compatible HTTP API (app/api/http.py) and the examples in
docs/api.md, against a real uvicorn server with fake models (one slow test with the
small real ones)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from io import StringIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ROOT
from fakes import ScriptedGenerator, make_kb

from kbqa.app.api.catalog import Catalog
from kbqa.app.api.http import ApiOptions, check_exposure, create_app
from kbqa.errors import KbqaError
from kbqa.qa.knowledge_base import KnowledgeBase

DOCS_PAGE = ROOT / "docs" / "api.md"
MODELS_MD = (
    "# Models\n\nGPT-3 from OpenAI has 175 billion parameters.\n\n"
    "# Other\n\nJurassic-1 from AI21 Labs has 178 billion parameters.\n"
)
QUESTION = "How many parameters does GPT-3 have?"


class KeywordGenerator(ScriptedGenerator):
    """Answers from what the prompt's question asks about, word by word, optionally slowly."""

    def __init__(self, delay_s: float = 0.0, words: int = 0) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.padding = " Indeed." * words  # a longer reply, to be interrupted
        self.yielded = 0
        self.started = threading.Event()
        self.finished = threading.Event()

    def stream(self, messages: list[dict[str, str]], max_new_tokens: int) -> Iterator[str]:
        self.calls.append(messages)
        lines = messages[-1]["content"].rstrip().splitlines()
        # The evidence prompt's "Question: ..." line; else (follow-up rewriting) the last.
        asked = next((line for line in lines if line.startswith("Question:")), lines[-1])
        short = "Copy from the evidence only" in messages[-1]["content"]
        if "Jurassic" in asked:
            reply = "178 billion" if short else "Jurassic-1 has 178 billion parameters."
        elif "GPT-3" in asked:
            reply = ("175 billion" if short else "GPT-3 has 175 billion parameters.") + self.padding
        else:
            reply = "The documents do not contain the answer."
        self.started.set()
        try:
            for index, word in enumerate(reply.split(" ")):
                time.sleep(self.delay_s)
                self.yielded += 1
                yield word if index == 0 else " " + word
        finally:
            self.finished.set()


@pytest.fixture(scope="module")
def built_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("api") / "home"
    generator = ScriptedGenerator()
    make_kb(home / "default", generator).add_texts([("models.md", MODELS_MD)], scheme="upload")
    make_kb(home / "papers", generator).add_texts(
        [("cooking.txt", "Boil the pasta for nine minutes.")], scheme="upload"
    )
    (home / "not a kb").mkdir()  # no manifest: not offered
    return home


@pytest.fixture
def home(built_home: Path, tmp_path: Path) -> Path:
    """A KBQA_HOME with ``default`` (models.md) and ``papers`` (cooking.txt), a fresh copy."""
    return Path(shutil.copytree(built_home, tmp_path / "home"))


def make_catalog(home: Path, generator: Any, max_file_bytes: int = 5 * 1024 * 1024) -> Catalog:
    def opener(folder: Path) -> KnowledgeBase:
        return make_kb(folder, generator, max_file_bytes=max_file_bytes)

    return Catalog(home / "default", home, opener)


@contextmanager
def serving(catalog: Catalog, options: ApiOptions | None = None) -> Iterator[str]:
    """A real uvicorn server on a free loopback port, in a thread; yields its base URL."""
    import uvicorn

    app = create_app(catalog, options)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def server(home: Path) -> Iterator[tuple[str, KeywordGenerator]]:
    generator = KeywordGenerator()
    with serving(make_catalog(home, generator)) as url:
        yield url, generator


def example(name: str) -> str:
    """The code block after ``<!-- example: name -->`` in docs/api.md."""
    page = DOCS_PAGE.read_text(encoding="utf-8")
    found = re.search(rf"<!-- example: {re.escape(name)} -->\n```\w*\n(.*?)\n```", page, re.S)
    assert found, f"docs/api.md has no example {name!r}"
    return found.group(1)


def run_python_example(names: list[str], base_url: str) -> str:
    namespace: dict[str, Any] = {}
    output = StringIO()
    with redirect_stdout(output):
        for name in names:
            code = example(name).replace("http://127.0.0.1:8000", base_url)
            exec(compile(code, f"docs/api.md:{name}", "exec"), namespace)
    return output.getvalue()


def chat(question: str = QUESTION, **extra: Any) -> dict[str, Any]:
    return {"model": "default", "messages": [{"role": "user", "content": question}], **extra}


def sse_events(text: str) -> list[str]:
    return [line[len("data:") :].strip() for line in text.splitlines() if line.startswith("data:")]


# -- the documented examples, against a real server ------------------------------


def test_openai_client_plain_and_streamed_as_documented(
    server: tuple[str, KeywordGenerator],
) -> None:
    url, _ = server
    printed = run_python_example(["openai", "openai-stream"], url)
    # Plain, in the server's style (evidence): the sentence that answers, verbatim, then
    # the sources block that chat apps show (app/api/markdown.py).
    link = re.escape(url) + r"/v1/sources/default/[0-9a-f]{64}/[0-9a-f]{24}\?q=10-55"
    source = rf"- \[1\] \[models\.md\]\({link}\) — “GPT-3 from OpenAI has 175 billion parameters\.”"
    lines = printed.splitlines()
    assert re.fullmatch(source, lines.pop(3)), printed
    assert lines == [
        "GPT-3 from OpenAI has 175 billion parameters [1].",
        "",
        "**Sources**",
        "refused: False",
        "[1] models.md p. None: 'GPT-3 from OpenAI has 175 billion parameters.'",
        # Streamed follow-up in the short style: the words the evidence states, checked.
        "answer: 178 billion [1]",
        "shown: draft | style: short",
        "searched for: How many parameters does Jurassic-1 have?",
        "cited: ['models.md']",
    ]


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl, jq")
def test_curl_session_as_documented(server: tuple[str, KeywordGenerator], tmp_path: Path) -> None:
    url, _ = server
    (tmp_path / "notes.md").write_text("Llamas hum when they are curious.", encoding="utf-8")
    (tmp_path / "todo.txt").write_text("Buy oat milk on Friday.", encoding="utf-8")
    script = example("curl").replace("http://127.0.0.1:8000", url)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith('{"status":"ok"')
    assert "default\npapers\n" in out
    assert '{"filename":"notes.md","status":"added","reason":null}' in out
    assert '"name":"todo.txt"' in out
    assert (
        '"content": "GPT-3 from OpenAI has 175 billion parameters [1].\\n\\n**Sources**\\n' in out
    )
    assert '"refused": false' in out and '"document": "models.md"' in out
    assert "data: [DONE]" in out
    assert json.loads(out.rstrip().splitlines()[-1])["deleted"] is True


def test_chat_front_end_settings_as_documented(home: Path) -> None:
    """What an OpenAI-protocol front-end does with the documented URL and key."""
    from openai import AuthenticationError, OpenAI

    block = example("open-webui")
    key = re.search(r"KBQA_API_KEY=(\S+) kbqa api --host 0\.0\.0\.0", block)
    base = re.search(r"OPENAI_API_BASE_URL=(\S+)", block)
    front_end_key = re.search(r"OPENAI_API_KEY=(\S+)", block)
    assert key and base and front_end_key and key.group(1) == front_end_key.group(1)
    check_exposure("0.0.0.0", key.group(1))  # the documented command starts
    with serving(make_catalog(home, KeywordGenerator()), ApiOptions(api_key=key.group(1))) as url:
        base_url = base.group(1).replace("http://host.docker.internal:8000", url)
        client = OpenAI(base_url=base_url, api_key=front_end_key.group(1), max_retries=0)
        assert [m.id for m in client.models.list()] == ["default", "papers"]
        stream = client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
        content = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert content.startswith("GPT-3 from OpenAI has 175 billion parameters [1].\n\n")
        assert "&sig=" in content  # a signed link: a browser can open it without the key
        with pytest.raises(AuthenticationError):
            OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()


# -- chat completions ---------------------------------------------------------------


def test_plain_completion_carries_citations_quotes_and_usage(
    server: tuple[str, KeywordGenerator],
) -> None:
    url, generator = server
    request = chat(kbqa={"answer_style": "sentence"})
    body = httpx.post(f"{url}/v1/chat/completions", json=request, timeout=30).json()
    assert body["object"] == "chat.completion" and body["model"] == "default"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop"
    message = choice["message"]
    assert message["role"] == "assistant" and message["refused"] is False
    assert message["answer"] == "GPT-3 has 175 billion parameters [1]."
    # The content: the evidence quoted, the checked sentence, the sources (markdown.py).
    assert message["content"].startswith(
        "> GPT-3 from OpenAI has 175 billion parameters [1].\n\n"
        "GPT-3 has 175 billion parameters [1].\n\n**Sources**\n- [1] [models.md]("
    )
    assert message["style"] == "sentence" and message["shown"] == "draft"
    assert message["answerability"]["answerable"] is True
    assert message["answerability"]["check"] == "" and message["not_shown_because"] == ""
    assert len(generator.calls) == 1
    [citation] = message["citations"]
    assert citation["number"] == 1 and citation["document"] == "models.md"
    assert citation["score"] > 0 and citation["page"] is None
    [quote] = citation["quotes"]
    assert quote["text"] == "GPT-3 from OpenAI has 175 billion parameters."
    assert citation["text"][quote["start"] : quote["end"]] == quote["text"]
    assert MODELS_MD[quote["doc_start"] : quote["doc_end"]] == quote["text"]
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["completion_tokens"] == 5


def test_the_server_style_needs_no_model_and_an_unknown_style_is_400(
    server: tuple[str, KeywordGenerator],
) -> None:
    url, generator = server
    body = httpx.post(f"{url}/v1/chat/completions", json=chat(), timeout=30).json()
    message = body["choices"][0]["message"]
    assert message["answer"] == "GPT-3 from OpenAI has 175 billion parameters [1]."
    assert message["content"].startswith(message["answer"] + "\n\n**Sources**\n")
    assert message["style"] == message["shown"] == "evidence" and generator.calls == []
    assert body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for options, problem in [
        ({"answer_style": "long"}, "kbqa.answer_style: Input should be 'evidence', 'short' or"),
        ({"style": "short"}, "kbqa.style: Extra inputs are not permitted"),
    ]:
        response = httpx.post(f"{url}/v1/chat/completions", json=chat(kbqa=options))
        assert response.status_code == 400, options
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and problem in error["message"]
    assert generator.calls == []


def test_refusal_is_flagged_and_cites_nothing(server: tuple[str, KeywordGenerator]) -> None:
    url, _ = server
    body = httpx.post(f"{url}/v1/chat/completions", json=chat("Who won the 2010 World Cup?"))
    message = body.json()["choices"][0]["message"]
    assert message["refused"] is True and message["citations"] == []
    assert message["content"] == "The documents do not contain the answer."
    verdict = message["answerability"]
    assert verdict["answerable"] is False and verdict["check"] == "names"
    assert verdict["missing_terms"] == ["world cup"] and "world cup" in verdict["reason"]


def streamed_deltas(url: str, body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Any]]:
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["usage"]
    assert len({c["id"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    return deltas, chunks


def test_stream_sends_the_evidence_then_the_checked_answer_then_done(
    server: tuple[str, KeywordGenerator],
) -> None:
    url, _ = server
    deltas, _ = streamed_deltas(url, chat(stream=True, kbqa={"answer_style": "sentence"}))
    assert not any("reasoning_content" in d for d in deltas)  # the draft is the answer
    evidence, final = [d for d in deltas if d.get("content")]
    assert evidence == {"content": "> GPT-3 from OpenAI has 175 billion parameters [1]."}
    assert final["content"].startswith("\n\nGPT-3 has 175 billion parameters [1].\n\n")
    assert final["answer"] == "GPT-3 has 175 billion parameters [1]."
    assert final["refused"] is False and final["citations"][0]["document"] == "models.md"
    assert final["shown"] == "draft" and final["style"] == "sentence"


def test_a_draft_set_aside_is_streamed_as_reasoning_never_as_content(home: Path) -> None:
    with serving(make_catalog(home, KeywordGenerator(words=2))) as url:
        deltas, _ = streamed_deltas(url, chat(stream=True, kbqa={"answer_style": "sentence"}))
    draft = "".join(d.get("reasoning_content", "") for d in deltas)
    assert draft == "GPT-3 has 175 billion parameters. Indeed. Indeed."
    evidence, final = [d for d in deltas if d.get("content")]
    # "Indeed" is no word of the evidence: the evidence, already streamed, is the answer.
    assert evidence["content"] == "> GPT-3 from OpenAI has 175 billion parameters [1]."
    assert final["content"].startswith("\n\n**Sources**\n")
    assert final["answer"] == "GPT-3 from OpenAI has 175 billion parameters [1]."
    assert final["shown"] == "evidence" and final["not_shown_because"]


def test_follow_up_is_made_standalone_from_earlier_turns(
    server: tuple[str, KeywordGenerator],
) -> None:
    url, _ = server
    messages = [
        {"role": "system", "content": "Ignored: kbqa uses its own prompt."},
        {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
        {"role": "assistant", "content": "GPT-3 from OpenAI has 175 billion parameters [1]."},
        {"role": "user", "content": "and Jurassic-1?"},
    ]
    reply = httpx.post(
        f"{url}/v1/chat/completions", json={"model": "default", "messages": messages}
    )
    message = reply.json()["choices"][0]["message"]
    assert message["question"] == "How many parameters does Jurassic-1 have?"
    assert "178 billion" in message["content"] and not message["refused"]


def test_other_knowledge_bases_are_models_and_unknown_ones_are_404(
    server: tuple[str, KeywordGenerator],
) -> None:
    url, _ = server
    models = httpx.get(f"{url}/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["default", "papers"]
    asked = httpx.post(f"{url}/v1/chat/completions", json=dict(chat(), model="papers")).json()
    assert asked["choices"][0]["message"]["refused"] is True  # GPT-3 is not in papers
    for name in ("nope", "not a kb", "..", "../home/default"):
        response = httpx.post(f"{url}/v1/chat/completions", json=dict(chat(), model=name))
        assert response.status_code == 404, name
        error = response.json()["error"]
        assert error["code"] == "model_not_found" and error["type"] == "invalid_request_error"
    assert httpx.get(f"{url}/v1/knowledge-bases/nope/documents").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"model": "default", "messages": []},
        {"model": "default", "messages": [{"role": "assistant", "content": "hi"}]},
        {"model": "default", "messages": [{"role": "user", "content": "   "}]},
        {"model": "default", "messages": [{"role": "user", "content": "x" * 5000}]},
        {"messages": [{"role": "user", "content": "hi"}]},
        {"model": "default", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
    ],
)
def test_bad_chat_requests_are_400_in_openai_format(
    server: tuple[str, KeywordGenerator], body: dict[str, Any]
) -> None:
    url, generator = server
    response = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert generator.calls == []


# -- documents and search --------------------------------------------------------------


def test_upload_list_search_delete(home: Path) -> None:
    generator = KeywordGenerator()
    with serving(make_catalog(home, generator, max_file_bytes=2000)) as url:
        files = [
            ("files", ("../../etc/llamas.md", b"# Llamas\n\nLlamas hum when curious.", "text/x")),
            ("files", ("big.txt", b"word " * 1000, "text/plain")),
            ("files", ("tool.exe", b"MZ\x90\x00\x03\x00\x00\x00" * 10, "application/x")),
        ]
        response = httpx.post(f"{url}/v1/knowledge-bases/default/documents", files=files)
        assert response.status_code == 200
        outcomes = response.json()
        assert outcomes["failed"] == 2
        added, big, tool = outcomes["data"]
        assert added["status"] == "added" and added["document"] == "llamas.md"
        assert added["filename"] == "../../etc/llamas.md" and added["chunks"] >= 1
        assert big["status"] == "failed" and big["reason"].startswith("file too large")
        assert tool["status"] == "failed" and tool["reason"]

        listed = httpx.get(f"{url}/v1/knowledge-bases/default/documents").json()["data"]
        assert sorted(d["name"] for d in listed) == ["llamas.md", "models.md"]
        hits = httpx.post(
            f"{url}/v1/knowledge-bases/default/search", json={"query": "llamas hum", "k": 1}
        ).json()["data"]
        assert hits[0]["document"] == "llamas.md" and hits[0]["rank"] == 1
        assert "Llamas hum" in hits[0]["text"] and generator.calls == []

        doc = f"{url}/v1/knowledge-bases/default/documents/{added['document_id']}"
        assert httpx.delete(doc).json() == {
            "id": added["document_id"],
            "object": "document",
            "name": "llamas.md",
            "deleted": True,
        }
        assert httpx.delete(doc).status_code == 404
        hits = httpx.post(
            f"{url}/v1/knowledge-bases/default/search", json={"query": "llamas hum", "k": 5}
        ).json()["data"]
        assert all(h["document"] != "llamas.md" for h in hits)
        none = httpx.post(f"{url}/v1/knowledge-bases/default/documents", data={"x": "1"})
        assert none.status_code == 400


def test_upload_creates_an_empty_default_and_answers_see_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with serving(make_catalog(home, KeywordGenerator())) as url:
        assert httpx.get(f"{url}/v1/knowledge-bases/default/documents").json()["data"] == []
        refused = httpx.post(f"{url}/v1/chat/completions", json=chat()).json()
        assert refused["choices"][0]["message"]["refused"] is True
        files = {"files": ("models.md", MODELS_MD.encode(), "text/markdown")}
        httpx.post(f"{url}/v1/knowledge-bases/default/documents", files=files)
        answered = httpx.post(f"{url}/v1/chat/completions", json=chat()).json()
        assert answered["choices"][0]["message"]["refused"] is False


# -- security and limits -------------------------------------------------------------


def test_api_key_is_required_on_every_request(home: Path) -> None:
    options = ApiOptions(api_key="s3cret-key")
    with serving(make_catalog(home, KeywordGenerator()), options) as url:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-key"}):
            for method, path in (("GET", "/healthz"), ("GET", "/v1/models"), ("POST", "/nope")):
                response = httpx.request(method, url + path, headers=headers)
                assert response.status_code == 401, (headers, path)
                assert response.headers["www-authenticate"] == "Bearer"
                assert response.json()["error"]["code"] == "invalid_api_key"
        good = {"Authorization": "Bearer s3cret-key"}
        assert httpx.get(f"{url}/v1/models", headers=good).status_code == 200
        assert httpx.get(f"{url}/healthz", headers=good).json()["status"] == "ok"
        # CORS is off: no Access-Control headers for any origin.
        response = httpx.get(f"{url}/v1/models", headers={**good, "Origin": "http://evil.test"})
        assert "access-control-allow-origin" not in response.headers


def test_cors_only_for_configured_origins(home: Path) -> None:
    options = ApiOptions(api_key="k", cors_origins=("http://localhost:3000",))
    with serving(make_catalog(home, KeywordGenerator()), options) as url:
        preflight = {
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        allowed = httpx.options(f"{url}/v1/chat/completions", headers=preflight)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
        other = httpx.options(
            f"{url}/v1/chat/completions", headers={**preflight, "Origin": "http://evil.test"}
        )
        assert "access-control-allow-origin" not in other.headers


def test_listening_beyond_loopback_needs_a_key() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_exposure(host, None)
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.org"):
        with pytest.raises(KbqaError, match="KBQA_API_KEY"):
            check_exposure(host, None)
        check_exposure(host, "a-key")


def test_bodies_over_the_limits_are_413(home: Path) -> None:
    options = ApiOptions(max_body_bytes=2000, max_upload_bytes=5000)
    with serving(make_catalog(home, KeywordGenerator()), options) as url:
        big_chat = chat("x" * 3000)
        response = httpx.post(f"{url}/v1/chat/completions", json=big_chat)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"

        def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield json.dumps(big_chat).encode()

        response = httpx.post(
            f"{url}/v1/chat/completions",
            content=chunked(),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 413
        files = {"files": ("a.txt", b"a " * 4000, "text/plain")}
        upload = httpx.post(f"{url}/v1/knowledge-bases/default/documents", files=files)
        assert upload.status_code == 413
        small = {"files": ("a.txt", b"alpaca " * 400, "text/plain")}  # 2,800 bytes: over
        upload = httpx.post(f"{url}/v1/knowledge-bases/default/documents", files=small)
        assert upload.status_code == 200  # the JSON limit, under the upload limit


# -- load: one answer at a time, a bounded line, disconnects ---------------------------


SENTENCE = {"answer_style": "sentence"}  # the model runs (the server's style is evidence)


@contextmanager
def streaming_while_generating(
    url: str, generator: KeywordGenerator, question: str = QUESTION
) -> Iterator[httpx.Response]:
    """A streamed request that holds the LLM: yields once the model has started on it."""
    request = chat(question, stream=True, kbqa=SENTENCE)
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", f"{url}/v1/chat/completions", json=request) as response:
            lines = response.iter_lines()  # kept: a dropped iterator closes the connection
            assert next(lines).startswith("data:")  # the role chunk: the request is in
            assert generator.started.wait(5)
            yield response


def test_full_queue_is_429_with_retry_after_and_nothing_is_lost(home: Path) -> None:
    generator = KeywordGenerator(delay_s=0.05, words=30)
    with serving(make_catalog(home, generator), ApiOptions(queue_size=1)) as url:
        results: list[int] = []
        with streaming_while_generating(url, generator):
            waiting = threading.Thread(
                target=lambda: results.append(
                    httpx.post(
                        f"{url}/v1/chat/completions", json=chat(kbqa=SENTENCE), timeout=30
                    ).status_code
                )
            )
            waiting.start()
            deadline = time.monotonic() + 5
            while httpx.get(f"{url}/healthz").json()["queued"] < 1:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            turned_away = httpx.post(f"{url}/v1/chat/completions", json=chat())
            assert turned_away.status_code == 429
            assert int(turned_away.headers["retry-after"]) >= 1
            assert turned_away.json()["error"]["code"] == "rate_limit_exceeded"
            # Search does not wait for the LLM.
            search = httpx.post(f"{url}/v1/knowledge-bases/default/search", json={"query": "GPT"})
            assert search.status_code == 200
        waiting.join(30)
        assert results == [200]  # the one in line was answered


def _wait_until_given_back(url: str) -> None:
    deadline = time.monotonic() + 10
    while httpx.get(f"{url}/healthz").json()["answering"]:
        assert time.monotonic() < deadline, "the LLM was not given back"
        time.sleep(0.02)


def test_a_client_that_leaves_frees_the_llm(home: Path) -> None:
    generator = KeywordGenerator(delay_s=0.05, words=60)
    with serving(make_catalog(home, generator), ApiOptions(queue_size=0)) as url:
        with streaming_while_generating(url, generator):
            pass  # the client leaves while the model writes its draft
        assert generator.finished.wait(10)
        _wait_until_given_back(url)
        # Non-streamed too: a client that times out gives the LLM back.
        generator.finished.clear()
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/chat/completions", json=chat(kbqa=SENTENCE), timeout=0.5)
        assert generator.finished.wait(10)
        _wait_until_given_back(url)
        assert httpx.post(f"{url}/v1/chat/completions", json=chat("Who?")).status_code == 200


def test_a_client_that_leaves_stops_the_generation_at_the_next_token(home: Path) -> None:
    generator = KeywordGenerator(delay_s=0.05, words=60)
    with serving(make_catalog(home, generator), ApiOptions(queue_size=0)) as url:
        with streaming_while_generating(url, generator):
            time.sleep(0.2)  # a few pieces in, the client leaves
        assert generator.finished.wait(10)
        assert generator.yielded < 30  # stopped, not generated to the end (67 pieces)


# -- the real small models, end to end ------------------------------------------------------


@pytest.mark.slow
def test_real_models_end_to_end_over_http(
    tmp_path: Path, real_embedder: Any, small_llm: Any
) -> None:
    from openai import OpenAI

    from kbqa.settings import load_settings

    settings = load_settings(home=tmp_path / "home", min_score=0.3)

    def opener(folder: Path) -> KnowledgeBase:
        return KnowledgeBase.open(
            folder, settings=settings, embedder=real_embedder, generator=small_llm
        )

    catalog = Catalog(settings.default_kb, settings.home, opener)
    with serving(catalog) as url:
        files = {"files": ("models.md", MODELS_MD.encode(), "text/markdown")}
        uploaded = httpx.post(f"{url}/v1/knowledge-bases/default/documents", files=files)
        assert uploaded.json()["data"][0]["status"] == "added"
        client = OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        reply = client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": QUESTION}]
        )
        message: Any = reply.choices[0].message  # kbqa's extra fields: refused, citations
        assert isinstance(message.content, str) and message.content
        if not message.refused:  # a 135M model may not manage it; then it must say so
            assert "[1]" in message.content and "175" in message.content
            assert message.citations[0]["document"] == "models.md"
        else:
            assert message.citations == []
        off_topic = client.chat.completions.create(
            model="default",
            messages=[{"role": "user", "content": "Who painted the Mona Lisa?"}],
            stream=True,
        )
        deltas: list[Any] = [c.choices[0].delta for c in off_topic if c.choices]
        content = "".join(d.content or "" for d in deltas)
        [final] = [d for d in deltas if getattr(d, "refused", None) is not None]
        assert final.refused is True and final.citations == []
        assert content == final.answer and "**Sources**" not in content

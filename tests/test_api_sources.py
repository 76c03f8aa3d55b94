"""``kbqa api`` for clients that know nothing of kbqa: the sources block in ``content``
(Markdown, each entry linking to the cited page's picture), what is streamed before
the model writes, and scoped questions (issue 20) over HTTP with the official
``openai`` client. Fakes throughout, one slow test with the small real models."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ROOT, sample_pdf
from fakes import make_kb
from markdown_it import MarkdownIt
from openai import OpenAI
from test_api import QUESTION, KeywordGenerator, chat, make_catalog, serving

from kbqa.app.api.markdown import inert, plain_turn
from kbqa.app.api.sources import MAX_MARKS
from kbqa.qa.knowledge_base import KnowledgeBase
from kbqa.settings import ApiOptions, Settings

MODELS_MD = (
    "# Models\n\nGPT-3 from OpenAI has 175 billion parameters.\n\n"
    "# Other\n\nJurassic-1 from AI21 Labs has 178 billion parameters.\n"
)
FREEDONIA = {
    "freedonia-tarsia.md": "# Freedonia\n\nLa capital de Freedonia es Tarsia.\n",
    "freedonia-molvania.md": "# Freedonia\n\nLa capital de Freedonia es Molvania.\n",
}
CAPITAL = "¿Cuál es la capital de Freedonia?"
LINK = re.compile(r"\]\((http://127\.0\.0\.1:\d+/v1/sources/[^)\s]+)\)")


@pytest.fixture(scope="module")
def built_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("sources") / "home"
    kb = make_kb(home / "default")
    kb.add_texts([("models.md", MODELS_MD)], scheme="upload")
    kb.add([str(sample_pdf("text/crazyones.pdf"))])
    kb.add_texts(list(FREEDONIA.items()), scheme="upload")
    kb.tag("freedonia-molvania.md", ["atlas"])
    return home


@pytest.fixture
def home(built_home: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built_home, tmp_path / "home"))


@pytest.fixture
def url(home: Path) -> Any:
    with serving(make_catalog(home, KeywordGenerator())) as base:
        yield base


def link_in(content: str) -> str:
    found = LINK.search(content)
    assert found, content
    return found.group(1)


def message_of(url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200, response.text
    message: dict[str, Any] = response.json()["choices"][0]["message"]
    return message


# -- the sources block -------------------------------------------------------------------


def test_openai_client_sees_the_sources_block_in_content_and_the_field(url: str) -> None:
    client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": QUESTION}]
    )
    message: Any = reply.choices[0].message
    answer, _, footer = message.content.partition("\n\n**Sources**\n")
    assert answer == "GPT-3 from OpenAI has 175 billion parameters [1]."
    [entry] = footer.splitlines()
    assert entry.startswith("- [1] [models.md](http://127.0.0.1:")
    assert entry.endswith(") — “GPT-3 from OpenAI has 175 billion parameters.”")
    assert message.citations[0]["document"] == "models.md"  # the structured field too
    assert message.answer == answer
    # Rendered as Markdown (what Open WebUI and LibreChat do): a heading and a link.
    rendered = MarkdownIt("commonmark").render(message.content)
    assert "<strong>Sources</strong>" in rendered
    assert re.search(r'<li>\[1\] <a href="http://127\.0\.0\.1:\d+/v1/sources/default/', rendered)
    # Following the link shows the passage, the quote marked.
    page = httpx.get(link_in(message.content))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert '<mark class="kbqa-cited">GPT-3 from OpenAI has 175 billion parameters.</mark>' in (
        page.text
    )


def test_a_pdf_source_link_shows_the_page_picture_with_the_passage_marked(url: str) -> None:
    message = message_of(url, chat("Who are the crazy ones?"))
    assert "crazyones.pdf, p. 1](" in message["content"]
    page = httpx.get(link_in(message["content"]), timeout=60)
    assert page.status_code == 200
    found = re.search(
        r'<img id="page" src="data:image/png;base64,([^"]+)" width="(\d+)"', page.text
    )
    assert found and int(found.group(2)) == 1000
    assert base64.b64decode(found.group(1)).startswith(b"\x89PNG")
    assert "could not be located" not in page.text  # the passage was found and marked
    assert '<mark class="kbqa-cited">' in page.text


def test_sources_setting_footer_or_field(home: Path) -> None:
    generator = KeywordGenerator()
    with serving(make_catalog(home, generator), ApiOptions(sources="footer")) as base:
        message = message_of(base, chat())
        assert "**Sources**" in message["content"] and "citations" not in message
    with serving(make_catalog(home, generator), ApiOptions(sources="field")) as base:
        message = message_of(base, chat())
        assert message["content"] == "GPT-3 from OpenAI has 175 billion parameters [1]."
        assert message["citations"][0]["document"] == "models.md"


def test_a_refusal_has_no_sources_block(url: str) -> None:
    message = message_of(url, chat("Who won the 2010 World Cup?"))
    assert message["refused"] is True
    assert message["content"] == "The documents do not contain the answer."


def test_document_text_cannot_inject_markdown(tmp_path: Path) -> None:
    home = tmp_path / "home"
    hostile = (
        "GPT-3 has 175 billion parameters ![x](http://evil.test/t.png) <img src=x> "
        "[click](http://evil.test) `code`.\n\n[1]: http://evil.test/definition\n"
    )
    make_kb(home / "default").add_texts([("a_b [x](y).md", hostile)], scheme="upload")
    with serving(make_catalog(home, KeywordGenerator())) as base:
        message = message_of(base, chat())
    rendered = MarkdownIt("commonmark").render(message["content"])
    assert "<img" not in rendered and 'href="http://evil.test' not in rendered
    assert rendered.count("<a href=") == 1  # the source link, nothing from the document
    assert "a_b [x](y).md" not in message["content"]  # the name is escaped in the footer


def test_inert_and_plain_turn() -> None:
    assert inert("a ![b](c) [d](e) <f> [1]: g") == "a !\\[b]\\(c) [d]\\(e) \\<f> [1]\\: g"
    assert inert("GPT-3 has 175 billion parameters [1].") == "GPT-3 has 175 billion parameters [1]."
    footer = "\n\n**Sources**\n- [1] [a.md](http://x/v1/sources/d/e/f) — “q”"
    assert plain_turn("The answer [1]." + footer) == "The answer [1]."
    assert plain_turn("> The evidence [1].\n\n175 [1]" + footer) == "175 [1]"
    assert plain_turn("> The evidence [1]." + footer) == "The evidence [1]."
    assert plain_turn("**Fuentes**\n- x") == ""  # only kbqa's own block goes


def test_a_follow_up_reads_the_earlier_answer_without_its_sources(url: str) -> None:
    first = message_of(url, chat())
    messages = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": first["content"]},
        {"role": "user", "content": "and Jurassic-1?"},
    ]
    second = message_of(url, {"model": "default", "messages": messages})
    assert second["question"] == "How many parameters does Jurassic-1 have?"


# -- source pages: ids only, signed links, budgets --------------------------------------


def test_source_links_are_signed_when_the_server_has_a_key(home: Path) -> None:
    with serving(make_catalog(home, KeywordGenerator()), ApiOptions(api_key="k3y")) as base:
        headers = {"Authorization": "Bearer k3y"}
        message = httpx.post(
            f"{base}/v1/chat/completions", json=chat(), headers=headers, timeout=30
        ).json()["choices"][0]["message"]
        link = link_in(message["content"])
        assert "&sig=" in link
        assert httpx.get(link).status_code == 200  # a browser sends no key: the link is enough
        unsigned = link.split("&sig=")[0]
        assert httpx.get(unsigned).status_code == 403
        assert httpx.get(unsigned, headers=headers).status_code == 200
        widened = link.replace("?q=", "?q=0-5&q=")  # other marks: not what was signed
        assert httpx.get(widened).status_code == 403
        other = re.sub(r"/[0-9a-f]{24}\?", "/" + "0" * 24 + "?", link)
        assert httpx.get(other).status_code == 403
        assert httpx.get(f"{base}/v1/models").status_code == 401  # the rest still needs it


@pytest.mark.parametrize(
    ("change", "status"),
    [
        (lambda link: link.replace("/default/", "/..%2F..%2Fetc/"), 404),
        (lambda link: link.replace("/default/", "/nope/"), 404),
        (lambda link: re.sub(r"/[0-9a-f]{64}/", "/" + "a" * 64 + "/", link), 404),
        (lambda link: re.sub(r"/[0-9a-f]{24}\?", "/" + "b" * 24 + "?", link), 404),
        (lambda link: link + "&q=9-3", 400),
        (lambda link: link + "&q=../../etc/passwd", 400),
        (lambda link: link + "&q=1-2" * MAX_MARKS, 400),
        (lambda link: link + "&q=1-99999999", 400),
    ],
)
def test_source_pages_take_ids_and_bounded_marks_only(url: str, change: Any, status: int) -> None:
    message = message_of(url, chat())
    link = link_in(message["content"])
    response = httpx.get(change(link))
    assert response.status_code == status, response.text
    if status != 404 or "/v1/sources/default/" in change(link):
        assert "error" in response.json()


def test_link_base_follows_the_reverse_proxy_headers(url: str) -> None:
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "kb.example.org",
               "X-Forwarded-Prefix": "/kbqa"}  # fmt: skip
    response = httpx.post(f"{url}/v1/chat/completions", json=chat(), headers=proxied)
    content = response.json()["choices"][0]["message"]["content"]
    assert "](https://kb.example.org/kbqa/v1/sources/default/" in content
    bad = {"X-Forwarded-Host": "evil.test/<script>", "X-Forwarded-Prefix": "/a b"}
    response = httpx.post(f"{url}/v1/chat/completions", json=chat(), headers=bad)
    content = response.json()["choices"][0]["message"]["content"]
    assert "](http://127.0.0.1:" in content and "evil" not in content


def test_a_public_url_setting_is_the_link_base(home: Path) -> None:
    options = ApiOptions(public_url="http://localhost:8000/kb")
    with serving(make_catalog(home, KeywordGenerator()), options) as base:
        content = message_of(base, chat())["content"]
    assert "](http://localhost:8000/kb/v1/sources/default/" in content
    with pytest.raises(ValueError):
        Settings(api_public_url="javascript:alert(1)")


# -- streaming what is known -----------------------------------------------------------------


def streamed_content(base: str, body: dict[str, Any]) -> list[tuple[float, dict[str, Any]]]:
    """Each delta with the seconds since the request, until [DONE]."""
    started = time.perf_counter()
    deltas = []
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=30) as response:
        for line in response.iter_lines():
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                delta = json.loads(line[5:])["choices"][0]["delta"]
                deltas.append((time.perf_counter() - started, delta))
    return deltas


def test_evidence_style_streams_the_answer_first_then_its_sources(url: str) -> None:
    deltas = [d for _, d in streamed_content(url, chat(stream=True)) if d.get("content")]
    first, last = deltas
    assert first == {"content": "GPT-3 from OpenAI has 175 billion parameters [1]."}
    assert last["content"].startswith("\n\n**Sources**\n- [1] [models.md](")
    assert last["citations"][0]["document"] == "models.md" and last["refused"] is False


def test_short_style_streams_the_evidence_before_the_model_is_done(home: Path) -> None:
    generator = KeywordGenerator(delay_s=0.3)
    with serving(make_catalog(home, generator)) as base:
        body = chat(stream=True, kbqa={"answer_style": "short"})
        timed = [(t, d) for t, d in streamed_content(base, body) if d.get("content")]
        plain = message_of(base, chat(kbqa={"answer_style": "short"}))
    (lead_s, lead), (done_s, rest) = timed
    assert lead == {"content": "> GPT-3 from OpenAI has 175 billion parameters [1]."}
    assert rest["content"].startswith("\n\n175 billion [1]\n\n**Sources**\n")
    assert lead_s < 0.3  # the evidence went out before the model's first word
    assert done_s - lead_s > 0.25  # the model was still writing (0.3 s a word)
    assert plain["content"] == lead["content"] + rest["content"]  # same as a plain reply
    assert plain["answer"] == "175 billion [1]"


def test_a_set_aside_draft_leaves_the_quoted_evidence_as_the_answer(home: Path) -> None:
    with serving(make_catalog(home, KeywordGenerator(words=2))) as base:
        message = message_of(base, chat(kbqa={"answer_style": "sentence"}))
    assert message["shown"] == "evidence"
    assert message["content"].startswith(
        "> GPT-3 from OpenAI has 175 billion parameters [1].\n\n**Sources**\n"
    )


# -- scope (issue 20) -----------------------------------------------------------------------


def test_a_scoped_question_answers_from_the_chosen_document_only(url: str) -> None:
    client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    for chosen, capital in (
        ("freedonia-tarsia.md", "Tarsia"),
        ("freedonia-molvania.md", "Molvania"),
    ):
        for scope in ({"documents": [chosen]}, {"documents": [chosen.replace(".md", "*")]}):
            reply = client.chat.completions.create(
                model="default",
                messages=[{"role": "user", "content": CAPITAL}],
                extra_body={"kbqa": scope},
            )
            message: Any = reply.choices[0].message
            assert message.answer == f"La capital de Freedonia es {capital} [1].", scope
            assert {c["document"] for c in message.citations} == {chosen}
    tagged = message_of(url, chat(CAPITAL, kbqa={"tags": ["atlas"]}))
    assert "Molvania" in tagged["answer"]


def test_search_takes_the_scope_as_query_parameters(url: str) -> None:
    search = f"{url}/v1/knowledge-bases/default/search"
    hits = httpx.post(
        search, params={"documents": ["freedonia-tarsia.md"]}, json={"query": "capital", "k": 5}
    ).json()["data"]
    assert hits and {h["document"] for h in hits} == {"freedonia-tarsia.md"}
    both = httpx.post(
        search,
        params=[("documents", "freedonia-tarsia.md"), ("tags", "atlas")],
        json={"query": "capital de Freedonia", "k": 5},
    ).json()["data"]
    assert {h["document"] for h in both} == set(FREEDONIA)


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ({"documents": ["nope.md"]}, "no document matches 'nope.md'"),
        ({"tags": ["unknown"]}, "no document is tagged 'unknown'"),
        ({"tags": ["bad/tag"]}, "invalid tag"),
        ({"documents": ["x"] * 101}, "at most 100 items"),
        ({"documents": ["x" * 201]}, "at most 200 characters"),
        ({"documents": "models.md"}, "Input should be a valid list"),
    ],
)
def test_a_bad_scope_is_a_400_naming_it_before_the_engine(
    home: Path, scope: dict[str, Any], message: str
) -> None:
    generator = KeywordGenerator()
    with serving(make_catalog(home, generator)) as base:
        for stream in (False, True):
            body = chat(stream=stream, kbqa={**scope, "answer_style": "short"})
            response = httpx.post(f"{base}/v1/chat/completions", json=body)
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert error["type"] == "invalid_request_error" and message in error["message"]
        search = httpx.post(
            f"{base}/v1/knowledge-bases/default/search",
            params={k: v for k, v in scope.items() if isinstance(v, list)},
            json={"query": "capital"},
        )
        if isinstance(scope.get("documents", []), list):
            assert search.status_code == 400 and message in search.json()["error"]["message"]
    assert generator.calls == []


def test_upload_with_tags_and_a_kept_pdf(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pdf = sample_pdf("text/crazyones.pdf").read_bytes()
    with serving(make_catalog(home, KeywordGenerator())) as base:
        documents = f"{base}/v1/knowledge-bases/default/documents"
        bad = httpx.post(documents, files={"files": ("a.txt", b"x")}, data={"tags": "a/b"})
        assert bad.status_code == 400 and "invalid tag" in bad.json()["error"]["message"]
        files = {"files": ("upload.pdf", pdf, "application/pdf")}
        added = httpx.post(documents, files=files, data={"tags": ["poems"]}).json()["data"][0]
        assert added["status"] == "added"
        [listed] = httpx.get(documents).json()["data"]
        assert listed["tags"] == ["poems"]
        message = message_of(base, chat("Who are the crazy ones?", kbqa={"tags": ["poems"]}))
        page = httpx.get(link_in(message["content"]), timeout=60)
        assert '<img id="page"' in page.text  # the upload was kept for its pictures
        assert httpx.delete(f"{documents}/{added['document_id']}").status_code == 200
        assert not list((home / "default" / "originals").glob("*.pdf"))


# -- the small real models ----------------------------------------------------------------


@pytest.mark.slow
def test_real_models_scoped_question_over_http(tmp_path: Path, real_embedder: Any) -> None:
    from kbqa.settings import load_settings

    settings = load_settings(home=tmp_path / "home", embedding_model=real_embedder.name)

    def opener(folder: Path) -> KnowledgeBase:
        return KnowledgeBase.open(folder, settings=settings, embedder=real_embedder, generator=None)

    from kbqa.app.api.catalog import Catalog

    catalog = Catalog(settings.default_kb, settings.home, opener)
    opener(settings.default_kb).add_texts(list(FREEDONIA.items()), scheme="upload")
    with serving(catalog) as base:
        client = OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
        for chosen, capital, other in (
            ("freedonia-tarsia.md", "Tarsia", "Molvania"),
            ("freedonia-molvania.md", "Molvania", "Tarsia"),
        ):
            stream = client.chat.completions.create(
                model="default",
                messages=[{"role": "user", "content": CAPITAL}],
                stream=True,
                extra_body={"kbqa": {"documents": [chosen], "answer_style": "evidence"}},
            )
            chunks = [c.choices[0].delta for c in stream if c.choices]
            content = "".join(d.content or "" for d in chunks)
            assert capital in content and other not in content
            cited: Any = [d for d in chunks if getattr(d, "citations", None)]
            assert {c["document"] for c in cited[-1].citations} == {chosen}
            assert f"[{chosen}](" in content.replace("\\", "")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_first_content_benchmark_smoke(tmp_path: Path) -> None:
    """``bench/first_content.py --smoke``: a real ``kbqa api`` and the openai client."""
    out = tmp_path / "first_content.json"
    script = ROOT / "bench" / "first_content.py"
    done = subprocess.run(
        [sys.executable, "-P", str(script), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["smoke"] is True and result["commit"] and result["machine"]
    evidence = result["summary"]["evidence"]
    assert evidence["questions"] == 2 and evidence["with_sources_block"] == 2 - evidence["refused"]
    assert evidence["first_content_median_s"] is not None

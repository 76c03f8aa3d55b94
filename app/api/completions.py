"""Chat completions: the request body, the conversation, and the reply, plain or streamed.

The last user message is the question; earlier user and assistant turns are the
conversation the engine reads a follow-up in (an assistant turn stripped of the
quoted evidence and sources block kbqa added, ``markdown.plain_turn``); system
messages are ignored (kbqa answers from the documents with its own prompt).

``content`` is Markdown for chat apps (``markdown.py``): the answer with ``[n]``
markers and, unless ``KBQA_API_SOURCES=field``, a sources block linking each
passage's page. Streamed, what is known goes out at once: in the ``evidence`` style
the answer itself (no model runs); in ``short``/``sentence`` the evidence as a quote
as soon as it is chosen and judged answerable, then the checked words when the model
is done. The message also carries ``answer`` (the checked answer alone) and, unless
``KBQA_API_SOURCES=footer``, ``citations`` (document, page, offsets, score, quotes);
always ``refused``, ``style``, ``shown`` and the ``answerability`` verdict. A model
draft the evidence does not state is streamed as ``reasoning_content`` only.
A plain request's ``content`` is exactly what a stream's pieces add up to.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import anyio
import anyio.to_thread
from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ...errors import KbqaError
from ...index.scope import MAX_ENTRIES, MAX_ENTRY_CHARS, Scope
from ...qa.answer import Answer, Citation
from ...qa.followup import Turn
from ...qa.knowledge_base import AnswerStream, KnowledgeBase
from ...qa.options import Style
from .catalog import citation_json, shown_json
from .markdown import content, inert, lead_for, plain_turn, sources_block
from .middleware import ApiError, error_body
from .queue import Ticket
from .sources import SourceLink

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 4000
Entry = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ENTRY_CHARS)]


# -- the request ------------------------------------------------------------------


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class KbqaOptions(BaseModel):
    """kbqa's own options of a chat completion (the body's ``kbqa`` object)."""

    model_config = ConfigDict(extra="forbid")

    answer_style: Style | None = Field(
        default=None,
        description="evidence: the sentences that answer, verbatim; short: only the "
        "answering words; sentence: one sentence phrased from them",
    )
    documents: list[Entry] | None = Field(
        default=None,
        max_length=MAX_ENTRIES,
        description="answer from these documents only: names, source paths, id prefixes "
        "(6+ hex characters) or globs",
    )
    tags: list[Entry] | None = Field(
        default=None, max_length=MAX_ENTRIES, description="answer from documents with these tags"
    )

    def scope(self) -> Scope | None:
        """The scope asked for (ScopeError: an invalid entry), None for everything."""
        if not self.documents and not self.tags:
            return None
        return Scope.of(self.documents, self.tags)


class ChatRequest(BaseModel):
    """OpenAI's chat-completion request; sampling options are accepted and ignored
    (answers are greedy and checked against the passages). ``kbqa`` carries kbqa's own
    options, which OpenAI clients send as ``extra_body={"kbqa": {...}}``."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = False
    kbqa: KbqaOptions | None = None


def conversation(messages: Sequence[ChatMessage]) -> tuple[str, list[Turn]]:
    """The question (the last user message) and the earlier question-answer turns."""
    said = [(m.role, _text(m.content)) for m in messages if m.role in ("user", "assistant")]
    if not said or said[-1][0] != "user" or not said[-1][1].strip():
        raise ApiError(400, "the last message must be the user's question", param="messages")
    question = said[-1][1].strip()
    if len(question) > MAX_QUESTION_CHARS:
        raise ApiError(400, f"the question is longer than {MAX_QUESTION_CHARS} characters")
    turns: list[Turn] = []
    asked: str | None = None
    for role, text in said[:-1]:
        if role == "user":
            asked = text
        elif asked is not None:
            turns.append(Turn(asked, plain_turn(text)))
            asked = None
    return question, turns


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise ApiError(400, "only text message content is supported", param="messages")
        parts.append(part["text"])
    return "\n".join(parts)


@dataclass(frozen=True)
class Asking:
    """One question of a chat completion: the question, the conversation, style and scope."""

    question: str
    turns: list[Turn]
    style: Style | None = None
    scope: Scope | None = None


# -- the engine, step by step ----------------------------------------------------------


@dataclass(frozen=True)
class EvidenceKnown:
    """The evidence is chosen and judged answerable: its text, before any model runs."""

    text: str


def _start(kb: KnowledgeBase, ask: Asking) -> AnswerStream:
    return kb.stream(ask.question, style=ask.style, history=ask.turns, scope=ask.scope)


async def answer_steps(
    kb: KnowledgeBase, ask: Asking
) -> AsyncGenerator[EvidenceKnown | str | Answer, None]:
    """The evidence once known, the answer's text pieces, then the finished ``Answer``.

    Each step runs in a worker thread. Closing this iterator (a client that left)
    stops iterating the answer stream, which stops the generation.
    """
    stream = await anyio.to_thread.run_sync(_start, kb, ask)
    pieces = iter(stream)
    told = False
    try:
        while (piece := await anyio.to_thread.run_sync(next, pieces, None)) is not None:
            evidence = stream.evidence_text
            if evidence and not told:
                told = True
                yield EvidenceKnown(evidence)
            if piece:
                yield piece
        yield stream.answer
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(close)


async def answer_while_connected(
    kb: KnowledgeBase, ask: Asking, request: Request
) -> tuple[Answer, str | None] | None:
    """The answer and its evidence text; None when the client left first."""
    evidence = None
    async with aclosing(answer_steps(kb, ask)) as steps:
        async for step in steps:
            if isinstance(step, Answer):
                return step, evidence
            if isinstance(step, EvidenceKnown):
                evidence = step.text
            if await request.is_disconnected():
                return None
    raise AssertionError("the answer stream ended without an answer")


# -- the reply ------------------------------------------------------------------------


@dataclass
class Reply:
    """The OpenAI-shaped objects of one completion; ``sources`` says where sources go."""

    model: str
    link_base: str  # scheme://host[/prefix] of the source links
    sources: Literal["footer", "field", "both"] = "both"
    key: str | None = None  # signs the source links
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    def link(self, answer: Answer) -> Callable[[Citation], str]:
        def url(citation: Citation) -> str:
            return SourceLink.of(self.model, citation, answer).url(self.link_base, self.key)

        return url

    def footer(self, answer: Answer) -> str:
        return "" if self.sources == "field" else sources_block(answer, self.link(answer))

    def extras(self, answer: Answer) -> dict[str, Any]:
        extras = shown_json(answer)  # style, shown, not_shown_because, standalone, answerability
        cited = {}
        if self.sources != "footer":
            cited = {"citations": [citation_json(c, answer) for c in answer.citations]}
        return {
            "answer": answer.text,
            "refused": answer.refused,
            **cited,
            "question": extras["standalone"],  # what was searched: the follow-up made standalone
            **extras,
        }

    def completion(self, answer: Answer, evidence: str | None) -> dict[str, Any]:
        lead, rest = content(answer, evidence, self.footer(answer))
        message = {"role": "assistant", "content": lead + rest, **self.extras(answer)}
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": _usage(answer),
        }

    def chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        body = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            **extra,
        }
        return json.dumps(body, ensure_ascii=False)


def _usage(answer: Answer) -> dict[str, int]:
    # Completion "tokens" are the pieces the model streamed (about one token each).
    prompt, completion = answer.timings.prompt_tokens, answer.timings.generated_pieces
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


async def stream_events(
    reply: Reply, kb: KnowledgeBase, ask: Asking, ticket: Ticket
) -> AsyncIterator[str]:
    """Server-sent events: the role, what is known as soon as it is, the rest, [DONE]."""
    try:
        yield reply.chunk({"role": "assistant", "content": ""})
        sent = ""  # content already streamed: the lead, or the evidence-style answer
        evidence: str | None = None
        answer: Answer | None = None
        style = ask.style or kb.answer_options.answer_style
        async with ticket:
            async with aclosing(answer_steps(kb, ask)) as steps:
                async for step in steps:
                    if isinstance(step, Answer):
                        answer = step
                        break
                    if isinstance(step, EvidenceKnown):
                        evidence = step.text
                        lead = lead_for(style, evidence)
                        if lead and not sent:
                            sent = lead
                            yield reply.chunk({"content": lead})
                    elif style == "evidence" and not sent:
                        # No model runs: the first piece is the whole answer.
                        sent = inert(step)
                        yield reply.chunk({"content": sent})
        assert answer is not None
        if answer.reply and answer.shown != "draft":
            # The model's draft the evidence does not state: shown aside, never as content.
            yield reply.chunk({"reasoning_content": answer.reply})
        lead, rest = content(answer, evidence, reply.footer(answer))
        whole = lead + rest
        if not whole.startswith(sent):  # cannot happen with the pipeline's pieces; say so
            log.warning("streamed content is not a prefix of the answer's content")
            whole = sent + "\n\n" + whole
        yield reply.chunk({"content": whole[len(sent) :], **reply.extras(answer)})
        yield reply.chunk({}, "stop", usage=_usage(answer))
    except KbqaError as error:
        log.error("chat completion failed: %s", error)
        yield json.dumps(error_body(str(error), "server_error", None))
    finally:
        ticket.release()
    yield "[DONE]"

"""Markdown: one section per heading, found by a real Markdown parser."""

from __future__ import annotations

from markdown_it import MarkdownIt

from ..limits import CharBudget, ParseLimits
from ..types import ParsedDocument, Section
from .text import decode_text


def read_markdown(
    source: str, data: bytes, password: str | None = None, limits: ParseLimits | None = None
) -> ParsedDocument:
    text = decode_text(source, data)
    CharBudget(source, limits or ParseLimits()).add(len(text))
    lines = text.splitlines(keepends=True)
    line_offsets = [0]
    for line in lines:
        line_offsets.append(line_offsets[-1] + len(line))

    # (first line, heading text) for every heading; markdown-it skips code fences.
    tokens = MarkdownIt("commonmark").parse(text)
    headings: list[tuple[int, str]] = []
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.map:
            headings.append((token.map[0], tokens[i + 1].content.strip()))

    sections: list[Section] = []
    bounds = [(0, None)] + [(line, title) for line, title in headings]
    for index, (first_line, title) in enumerate(bounds):
        last_line = bounds[index + 1][0] if index + 1 < len(bounds) else len(lines)
        start, end = line_offsets[first_line], line_offsets[last_line]
        if text[start:end].strip():
            sections.append(Section(text[start:end], None, start, title))
    doc_title = headings[0][1] if headings else None
    return ParsedDocument(source, "markdown", 1, tuple(sections), doc_title)

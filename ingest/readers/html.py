"""HTML: visible text, one section per heading (h1-h6)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator

from bs4 import BeautifulSoup, NavigableString, PageElement, Tag, XMLParsedAsHTMLWarning

from ..limits import CharBudget, ParseLimits
from ..types import ParsedDocument, Section

_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_INVISIBLE = {"script", "style", "noscript", "template", "svg", "head"}
_BLOCKS = {
    "p",
    "div",
    "li",
    "tr",
    "br",
    "pre",
    "table",
    "section",
    "article",
    "dt",
    "dd",
    "blockquote",
    "ul",
    "ol",
    "dl",
    "header",
    "footer",
    "td",
    "th",
    "caption",
}


def read_html(
    source: str, data: bytes, password: str | None = None, limits: ParseLimits | None = None
) -> ParsedDocument:
    budget = CharBudget(source, limits or ParseLimits())
    # BeautifulSoup detects the encoding from the meta tag or the bytes themselves.
    with warnings.catch_warnings():
        # XHTML pages parse fine as HTML; the warning would only alarm users.
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(data, "lxml")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    body = soup.body or soup

    # One pass, each node visited once: a heading's text is gathered while inside
    # it (a heading nested in a heading adds its words once, to the outer one).
    # Asking each string for its heading ancestors, and each heading for all of
    # its text, cost time and output quadratic in the nesting depth.
    parts: list[tuple[str | None, list[str]]] = [(None, [])]
    heading: list[str] | None = None  # the words of the heading being read
    heading_depth = 0
    for event, node in _walk(body):
        if event == "text":
            text = str(node)
            budget.add(len(text))
            if heading is not None:
                heading.append(text)
            else:
                parts[-1][1].append(text)
        elif node.name in _HEADINGS:
            if event == "start":
                heading_depth += 1
                heading = [] if heading is None else heading
            else:
                heading_depth -= 1
                if heading_depth == 0 and heading is not None:
                    parts.append((" ".join(w for t in heading if (w := t.strip())), []))
                    heading = None
        elif event == "start" and node.name in _BLOCKS and heading is None:
            parts[-1][1].append("\n")

    sections: list[Section] = []
    offset = 0
    for heading_text, pieces in parts:
        text = _tidy("".join(pieces))
        if heading_text:
            text = f"{heading_text}\n{text}" if text else heading_text
        if not text.strip():
            continue
        sections.append(Section(text, None, offset, heading_text))
        offset += len(text) + 2  # sections are joined by a blank line
    return ParsedDocument(source, "html", 1, tuple(sections), title)


def _walk(root: Tag) -> Iterator[tuple[str, Tag | NavigableString]]:
    """("start", tag), ("text", string), ("end", tag) in document order, without
    recursion; invisible tags (scripts, styles...) are skipped whole."""
    stack: list[tuple[Tag, Iterator[PageElement]]] = [(root, iter(root.contents))]
    while stack:
        tag, children = stack[-1]
        for child in children:
            if isinstance(child, Tag):
                if child.name in _INVISIBLE:
                    continue
                yield "start", child
                stack.append((child, iter(child.contents)))
                break
            if type(child) is NavigableString:  # not a Comment, Doctype, CData...
                yield "text", child
        else:
            stack.pop()
            if stack:
                yield "end", tag


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t\r\f\v\u00a0]+", " ", text)
    text = re.sub(r" *\n[ \n]*", "\n", text)
    return text.strip()

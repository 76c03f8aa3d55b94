"""HTML: visible text, one section per heading (h1-h6)."""

from __future__ import annotations

import re
import warnings

from bs4 import BeautifulSoup, NavigableString, Tag, XMLParsedAsHTMLWarning

from ..types import ParsedDocument, Section

_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_INVISIBLE = ["script", "style", "noscript", "template", "svg", "head"]
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


def read_html(source: str, data: bytes, password: str | None = None) -> ParsedDocument:
    # BeautifulSoup detects the encoding from the meta tag or the bytes themselves.
    with warnings.catch_warnings():
        # XHTML pages parse fine as HTML; the warning would only alarm users.
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(data, "lxml")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    for tag in soup(_INVISIBLE):
        tag.decompose()
    body = soup.body or soup

    parts: list[tuple[str | None, list[str]]] = [(None, [])]
    for node in body.descendants:
        if isinstance(node, Tag) and node.name in _HEADINGS:
            parts.append((node.get_text(" ", strip=True), []))
        elif type(node) is NavigableString:  # not a Comment, Doctype, CData...
            if node.find_parent(list(_HEADINGS)) is not None:
                continue
            parts[-1][1].append(str(node))
        elif isinstance(node, Tag) and node.name in _BLOCKS:
            parts[-1][1].append("\n")

    sections: list[Section] = []
    offset = 0
    for heading, pieces in parts:
        text = _tidy("".join(pieces))
        if heading:
            text = f"{heading}\n{text}" if text else heading
        if not text.strip():
            continue
        sections.append(Section(text, None, offset, heading))
        offset += len(text) + 2  # sections are joined by a blank line
    return ParsedDocument(source, "html", 1, tuple(sections), title)


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t\r\f\v\u00a0]+", " ", text)
    text = re.sub(r" *\n[ \n]*", "\n", text)
    return text.strip()

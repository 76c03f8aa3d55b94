"""Rebuild ``corpora/introduccion-a-los-llm.pdf`` from its Markdown source.

Maintainer tool, not part of the kbqa package and not needed to run kbqa.
It needs fpdf2, which is deliberately not a project dependency; install it in a
throwaway environment, for example::

    python3 -m venv /tmp/pdfvenv
    /tmp/pdfvenv/bin/pip install fpdf2
    /tmp/pdfvenv/bin/python tools/corpus_pdf/build_pdf.py

By default it reads ``introduccion-a-los-llm.md`` next to this script and
writes ``corpora/introduccion-a-los-llm.pdf`` at the repository root.

Only a small Markdown subset is understood: ``#`` (title), ``##`` (section),
``###`` (subsection), ``- `` list items and plain paragraphs separated by blank
lines. No inline markup.

The PDF uses the core Helvetica font (latin-1: covers á é í ó ú ñ ü ¿ ¡ « »),
so the text layer extracts correctly and the build does not depend on fonts
installed on the machine. The creation date is fixed so that rebuilding an
unchanged source gives the same bytes (kbqa identifies documents by the
SHA-256 of their bytes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_SOURCE = HERE / "introduccion-a-los-llm.md"
DEFAULT_OUTPUT = REPO / "corpora" / "introduccion-a-los-llm.pdf"

FONT = "Helvetica"
BODY_SIZE = 11
LINE_H = 5.8
FIXED_DATE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def parse(text: str) -> list[tuple[str, str]]:
    """Split the Markdown subset into (kind, text) blocks."""
    blocks: list[tuple[str, str]] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(("p", " ".join(para)))
            para.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            flush()
        elif line.startswith("### "):
            flush()
            blocks.append(("h3", line[4:].strip()))
        elif line.startswith("## "):
            flush()
            blocks.append(("h2", line[3:].strip()))
        elif line.startswith("# "):
            flush()
            blocks.append(("h1", line[2:].strip()))
        elif line.startswith("- "):
            flush()
            blocks.append(("li", line[2:].strip()))
        else:
            para.append(line)
    flush()
    return blocks


def check_charset(blocks: list[tuple[str, str]]) -> None:
    """Fail early on characters the core font cannot encode or that break search."""
    problems = []
    for _kind, text in blocks:
        for ch in text:
            if ch in "\u00a0\u202f\u2009":
                problems.append(f"non-plain space U+{ord(ch):04X} in: {text[:60]!r}")
            else:
                try:
                    ch.encode("latin-1")
                except UnicodeEncodeError:
                    problems.append(f"non latin-1 {ch!r} in: {text[:60]!r}")
    if problems:
        sys.exit("cannot build PDF:\n  " + "\n  ".join(problems))


# Spaces inside numbers such as "175 000" must stay plain spaces (so the text
# layer reads "175 000 millones" verbatim) but must never become line breaks.
_GLUED_NUMBER = re.compile(r"(?<=\d) (?=\d{3}\b)")
_GLUE = "\x00"


def wrap(pdf: FPDF, text: str, width: float) -> list[str]:
    """Greedy word wrap that never breaks inside a number like "50 000"."""
    words = _GLUED_NUMBER.sub(_GLUE, text).split(" ")
    lines: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}" if current else word
        if current and pdf.get_string_width(candidate.replace(_GLUE, " ")) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return [line.replace(_GLUE, " ") for line in lines]


# kind -> (font style, size, line height, space before, space after, indent)
STYLES = {
    "h1": ("B", 17, 8.0, 0.0, 4.0, 0.0),
    "h2": ("B", 14, 7.0, 3.0, 1.5, 0.0),
    "h3": ("B", 12, 6.5, 1.5, 1.0, 0.0),
    "li": ("", BODY_SIZE, LINE_H, 0.0, 1.2, 7.0),
    "p": ("", BODY_SIZE, LINE_H, 0.0, 2.5, 0.0),
}


def build(blocks: list[tuple[str, str]], output: Path) -> int:
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_margins(22, 20, 22)
    pdf.set_auto_page_break(auto=False)
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_lang("es")
    title = next((t for k, t in blocks if k == "h1"), "Documento")
    pdf.set_title(title)
    pdf.set_author("kbqa")
    pdf.set_creator("kbqa tools/corpus_pdf/build_pdf.py")
    pdf.add_page()
    bottom = pdf.h - pdf.b_margin

    # Lay out every block first so that page breaks can be chosen by block:
    # a paragraph is never split across pages, and a heading always stays
    # with the block that follows it.
    laid = []
    for kind, text in blocks:
        style, size, line_h, before, after, indent = STYLES[kind]
        pdf.set_font(FONT, style, size)
        lines = wrap(pdf, text, pdf.epw - indent)
        height = before + line_h * len(lines) + after
        laid.append((kind, lines, height))

    def keep_together(i: int) -> float:
        """Height of block i plus the blocks it must share a page with."""
        needed = 0.0
        j = i
        in_list = False
        while j < len(laid):
            kind, lines, height = laid[j]
            if kind == "li" and not in_list and j > i:
                break
            needed += height
            nxt = laid[j + 1][0] if j + 1 < len(laid) else None
            if kind in ("h1", "h2", "h3"):
                j += 1  # a heading stays with what follows it
            elif kind == "p" and lines[-1].endswith(":") and nxt == "li":
                in_list = True  # an introductory "...:" stays with its list
                j += 1
            elif kind == "li" and in_list and nxt == "li":
                j += 1
            else:
                break
        return needed

    for i, (kind, lines, height) in enumerate(laid):
        style, size, line_h, before, after, indent = STYLES[kind]
        needed = height if kind == "li" else keep_together(i)
        if pdf.get_y() + needed > bottom and pdf.get_y() > pdf.t_margin + 1:
            pdf.add_page()
        elif pdf.get_y() > pdf.t_margin + 1:
            pdf.ln(before)
        pdf.set_font(FONT, style, size)
        for n, line in enumerate(lines):
            if kind == "li" and n == 0:
                pdf.set_x(pdf.l_margin + 3)
                pdf.cell(indent - 3, line_h, "-")
            pdf.set_x(pdf.l_margin + indent)
            pdf.cell(pdf.epw - indent, line_h, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(after)

    output.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(output))
    return pdf.pages_count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = ap.parse_args(argv)

    blocks = parse(args.source.read_text(encoding="utf-8"))
    check_charset(blocks)
    pages = build(blocks, args.output)
    print(f"wrote {args.output} ({pages} pages)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

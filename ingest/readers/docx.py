"""Word (.docx): paragraphs and tables in order, sections by heading style."""

from __future__ import annotations

import io
import zipfile

from ...errors import IngestError
from ..types import ParsedDocument, Section


def read_docx(source: str, data: bytes, password: str | None = None) -> ParsedDocument:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise IngestError(source, f"not a valid .docx file ({error})") from error

    parts: list[tuple[str | None, list[str]]] = [(None, [])]
    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            style = (block.style.name or "") if block.style is not None else ""
            text = block.text.strip()
            if style.lower().startswith(("heading", "title")) and text:
                parts.append((text, []))
            elif text:
                parts[-1][1].append(text)
        elif isinstance(block, Table):
            for row in block.rows:
                cells = [cell.text.strip() for cell in row.cells]
                parts[-1][1].append(" | ".join(cells))

    sections: list[Section] = []
    offset = 0
    for heading, lines in parts:
        body = "\n".join(lines)
        text = f"{heading}\n{body}".strip() if heading else body
        if text.strip():
            sections.append(Section(text, None, offset, heading))
            offset += len(text) + 2
    title = document.core_properties.title or next((h for h, _ in parts if h), None)
    return ParsedDocument(source, "docx", 1, tuple(sections), title)

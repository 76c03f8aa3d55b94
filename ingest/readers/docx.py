"""Word (.docx): paragraphs and tables in order, sections by heading style.

A DOCX is a ZIP of XML parts, and python-docx inflates and parses every part.
So before python-docx sees the file, ``check_package`` checks each member's
declared size and then inflates every member once, counting the bytes that
actually come out, against the decompressed limit: a 3.6 MB zip bomb holding
1 GB of XML took over 8 GB before this. The same pass refuses XML parts with a
document type declaration (``<!DOCTYPE``, where entities are declared): Word
never writes one, and entity expansion ("billion laughs") is how a small XML
part becomes gigabytes of text.
"""

from __future__ import annotations

import io
import zipfile
import zlib

from ...errors import IngestError
from ..limits import MB, CharBudget, LimitExceeded, ParseLimits
from ..types import ParsedDocument, Section

_READ_STEP = 1024 * 1024
_XML_SUFFIXES = (".xml", ".rels", ".vml")
_DOCTYPE = b"<!DOCTYPE"


def check_package(source: str, data: bytes, limits: ParseLimits) -> int:
    """Inflate every member once, counting; returns the total inflated bytes.

    Raises:
        LimitExceeded: declared or actual inflated size over the limit.
        IngestError: a broken archive, or an XML part with a DOCTYPE.
    """
    budget = limits.max_decompressed_bytes
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            declared = sum(member.file_size for member in members)
            if declared > budget:
                detail = f"its parts declare {declared / MB:,.0f} MB"
                raise LimitExceeded(source, limits, "max_decompressed_bytes", detail)
            total = 0
            for member in members:
                total += _inflate_member(source, archive, member, budget - total, limits)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
        raise IngestError(source, f"not a valid .docx file ({error})") from None
    except RuntimeError as error:  # zipfile: an encrypted member
        if isinstance(error, RecursionError):
            raise
        raise IngestError(source, f"not a valid .docx file ({error})") from None
    return total


def _inflate_member(
    source: str,
    archive: zipfile.ZipFile,
    member: zipfile.ZipInfo,
    allowed: int,
    limits: ParseLimits,
) -> int:
    size = 0
    xml = member.filename.lower().endswith(_XML_SUFFIXES)
    tail = b""
    with archive.open(member) as stream:
        while chunk := stream.read(_READ_STEP):
            size += len(chunk)
            if size > allowed or size > member.file_size:
                detail = f"{member.filename} inflates past its declared {member.file_size:,} bytes"
                if size > allowed:
                    detail = f"while inflating {member.filename}"
                raise LimitExceeded(source, limits, "max_decompressed_bytes", detail)
            if xml and (_DOCTYPE in chunk or _DOCTYPE in tail + chunk[: len(_DOCTYPE)]):
                raise IngestError(
                    source,
                    f"refused: {member.filename} declares XML entities (<!DOCTYPE>), "
                    "which Word never writes; a possible entity-expansion bomb",
                )
            tail = chunk[-len(_DOCTYPE) :]
    return size


def read_docx(
    source: str, data: bytes, password: str | None = None, limits: ParseLimits | None = None
) -> ParsedDocument:
    import docx
    from docx.opc.exceptions import OpcError
    from docx.table import Table
    from docx.text.paragraph import Paragraph
    from lxml import etree

    limits = limits or ParseLimits()
    if not data.startswith(b"PK"):
        raise IngestError(source, "not a valid .docx file (not a ZIP archive)")
    check_package(source, data, limits)
    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError, OpcError) as error:
        raise IngestError(source, f"not a valid .docx file ({error})") from error
    except etree.LxmlError as error:
        raise IngestError(source, f"not a valid .docx file (XML: {error})") from None

    budget = CharBudget(source, limits)
    parts: list[tuple[str | None, list[str]]] = [(None, [])]
    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            style = (block.style.name or "") if block.style is not None else ""
            text = block.text.strip()
            budget.add(len(text))
            if style.lower().startswith(("heading", "title")) and text:
                parts.append((text, []))
            elif text:
                parts[-1][1].append(text)
        elif isinstance(block, Table):
            for row in block.rows:
                cells = [cell.text.strip() for cell in row.cells]
                budget.add(sum(len(cell) for cell in cells))
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

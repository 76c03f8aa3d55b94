"""Which reader a file's bytes need: the content decides, the extension only hints.

A PDF named ``.html`` is read as a PDF, a DOCX named ``.txt`` as a DOCX, a PNG,
JPEG or TIFF as an image (by OCR); a ZIP that is not a Word document, an
executable, another image (GIF) or an archive fails with a reason that says
what it is. Bytes with no known signature are text-like:
then the extension picks among text, Markdown and HTML (and a ``.pdf`` or
``.docx`` without its signature goes to that reader, which says it is broken).
"""

from __future__ import annotations

import codecs
import io
import struct
import zipfile
from pathlib import PurePosixPath

from ...errors import IngestError

# The PDF header may follow some junk; PDF readers look for it in the first 1,024 bytes.
_PDF_HEADER_WINDOW = 1024

# (signature, what the file is) for binary formats kbqa does not read.
_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "an executable (ELF)"),
    (b"\xfe\xed\xfa\xce", "an executable (Mach-O)"),
    (b"\xfe\xed\xfa\xcf", "an executable (Mach-O)"),
    (b"\xce\xfa\xed\xfe", "an executable (Mach-O)"),
    (b"\xcf\xfa\xed\xfe", "an executable (Mach-O)"),
    (b"\xca\xfe\xba\xbe", "an executable or Java class (Mach-O universal / class file)"),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "an old binary Office file (.doc, .xls); save it as .docx",
    ),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x00asm", "a WebAssembly module"),
)
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
# Pictures kbqa reads with OCR (readers/image.py).
_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")


def sniff_format(source: str, data: bytes, hint: str | None) -> str:
    """The reader for ``data``: ``pdf``, ``docx``, ``image``, or ``hint`` for text-like bytes.

    Raises:
        IngestError: the bytes are a format kbqa does not read (executable,
            GIF, archive, a ZIP that is not a DOCX), or unknown and unhinted.
    """
    head = data[:_PDF_HEADER_WINDOW]
    if head.startswith(b"%PDF-") or (b"%PDF-" in head and (hint == "pdf" or _binary(head))):
        return "pdf"
    if head.startswith(_ZIP_SIGNATURES):
        _check_docx_zip(source, data)
        return "docx"
    if head.startswith(_IMAGE_SIGNATURES):
        return "image"
    kind = _binary_kind(data)
    if kind is not None:
        suffix = PurePosixPath(source.replace("\\", "/")).suffix
        named = f", although named {suffix}" if suffix else ""
        raise IngestError(source, f"not a document: {kind}{named}")
    if hint is None:
        raise IngestError(source, "unsupported file type")
    return hint


def _binary(head: bytes) -> bool:
    """A ``%PDF-`` header after some junk, among bytes that are not UTF-8 text: a PDF,
    not a text that mentions one (writers put a comment of bytes above 127 under it)."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return True
    return b"\x00" in head


def _binary_kind(data: bytes) -> str | None:
    for signature, kind in _BINARY_SIGNATURES:
        if data.startswith(signature):
            # "GIF89a..." or "BZh..." could open a text: printable signatures need binary bytes
            if signature.isascii() and signature.decode().isprintable():
                if not _binary(data[:_PDF_HEADER_WINDOW]):
                    continue
            return kind
    if _is_windows_executable(data):
        return "an executable (Windows PE)"
    return None


def _is_windows_executable(data: bytes) -> bool:
    """MZ header whose e_lfanew points at a ``PE\\0\\0`` signature."""
    if not data.startswith(b"MZ") or len(data) < 0x40:
        return False
    (offset,) = struct.unpack_from("<I", data, 0x3C)
    return data[offset : offset + 4] == b"PE\x00\x00" or b"\x00" in data[:0x40]


def _check_docx_zip(source: str, data: bytes) -> None:
    """A ZIP is read only when it is a Word document (its central directory says so)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, EOFError) as error:
        raise IngestError(source, f"not a valid .docx file (broken ZIP archive: {error})") from None
    if "[Content_Types].xml" not in names or "word/document.xml" not in names:
        listed = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
        raise IngestError(
            source, f"not a document: a ZIP archive that is not a Word .docx file ({listed})"
        )

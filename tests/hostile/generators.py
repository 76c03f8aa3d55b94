"""Hostile files, built in memory: small on disk, huge (or slow) once read.

Used by the tests beside this file and by ``bench/hostile.py``. Compressed
bombs are written without ever holding their inflated bytes: a deflate block
made with a full flush does not refer to earlier data, so one compressed
megabyte-block repeated N times is a valid stream that inflates to N MB.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

MB = 1024 * 1024
ELF_HEADER = b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00\x01\x00\x00\x00"


def deflate_piece(data: bytes, final: bool = False) -> bytes:
    """Raw deflate blocks for ``data`` that stand alone (full flush): pieces concatenate."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    flush = zlib.Z_FINISH if final else zlib.Z_FULL_FLUSH
    return compressor.compress(data) + compressor.flush(flush)


def repeated_deflate(unit: bytes, megabytes: int, final: bool = True) -> tuple[bytes, int]:
    """Raw deflate data inflating to ``unit`` repeated over ``megabytes`` MB, and its size."""
    block_input = unit * max(1, MB // len(unit))
    ending = deflate_piece(b"", final=True) if final else b""
    return deflate_piece(block_input) * megabytes + ending, len(block_input) * megabytes


def zlib_stream(unit: bytes, megabytes: int) -> bytes:
    """A zlib (RFC 1950) stream, as in a PDF FlateDecode stream, with a real checksum."""
    raw, _size = repeated_deflate(unit, megabytes)
    block_input = unit * max(1, MB // len(unit))
    checksum = 1
    for _ in range(megabytes):
        checksum = zlib.adler32(block_input, checksum)
    return b"\x78\xda" + raw + struct.pack(">I", checksum)


# -- PDF -----------------------------------------------------------------------


def pdf(
    width: float = 612,
    height: float = 792,
    content: bytes = b"BT /F1 12 Tf 72 700 Td (Hello from a small PDF) Tj ET",
    flate: bool = False,
) -> bytes:
    """A one-page PDF with Helvetica, the given content stream and page size."""
    stream_dict = f"<< /Length {len(content)}{' /Filter /FlateDecode' if flate else ''} >>"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width:g} {height:g}] "
            "/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
        ).encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        stream_dict.encode() + b"\nstream\n" + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def flate_bomb_pdf(inflated_mb: int = 400) -> bytes:
    """One page whose Flate content stream inflates to ``inflated_mb`` MB of text operators."""
    unit = b"BT /F1 12 Tf 72 700 Td (bomb text) Tj ET\n"
    return pdf(content=zlib_stream(unit, inflated_mb), flate=True)


def tall_page_pdf(width: float = 612, height: float = 200_000) -> bytes:
    """Some 600 bytes asking for a 612 × 200,000 pt page: 470 M pixels at 1,200 px wide."""
    return pdf(width, height, b"BT /F1 12 Tf 72 199900 Td (The top of a very tall page) Tj ET")


# -- DOCX ----------------------------------------------------------------------


def small_docx(text: str = "A small Word document about herons.") -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _with_document_xml(
    original: bytes, deflated: bytes, size: int, crc: int, declared: int | None = None
) -> bytes:
    """``original`` (a DOCX) with ``word/document.xml`` replaced by raw deflate data."""
    members: list[tuple[str, bytes, int, int, int]] = []  # name, deflated, size, crc, declared
    with zipfile.ZipFile(io.BytesIO(original)) as archive:
        for info in archive.infolist():
            if info.filename == "word/document.xml":
                declared_size = size if declared is None else declared
                members.append((info.filename, deflated, size, crc, declared_size))
                continue
            data = archive.read(info)
            packed = deflate_piece(data, final=True)
            members.append((info.filename, packed, len(data), zlib.crc32(data), len(data)))
    out = bytearray()
    central = bytearray()
    for name, packed, _size, crc, declared_size in members:
        encoded = name.encode()
        offset = len(out)
        fields = (20, 0, 8, 0, 0, crc, len(packed), declared_size, len(encoded), 0)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields) + encoded + packed
        central += (
            struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, *fields, 0, 0, 0, 0, offset) + encoded
        )
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members),
                      len(central), len(out), 0)  # fmt: skip
    return bytes(out + central + end)


def zip_bomb_docx(inflated_mb: int = 1024, declared_mb: int | None = None) -> bytes:
    """A DOCX whose document.xml inflates to ``inflated_mb`` MB of XML (≈1,000:1).

    ``declared_mb`` (default: the truth) is the size its ZIP headers claim; a
    lie is caught while reading. The CRC is left at 0: computing it would mean
    inflating the bomb here, and no reader gets that far.
    """
    head = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        b"<w:body><w:p><w:r><w:t>"
    )
    tail = b"</w:t></w:r></w:p></w:body></w:document>"
    body, size = repeated_deflate(b"lol ", inflated_mb, final=False)
    deflated = deflate_piece(head) + body + deflate_piece(tail, final=True)
    declared = None if declared_mb is None else declared_mb * MB
    return _with_document_xml(small_docx(), deflated, len(head) + size + len(tail), 0, declared)


def billion_laughs_docx(levels: int = 9) -> bytes:
    """A DOCX whose document.xml declares entities that expand tenfold per level."""
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, levels + 1)
    ]
    xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f"<!DOCTYPE w:document [{''.join(entities)}]>"
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f"<w:body><w:p><w:r><w:t>&lol{levels};</w:t></w:r></w:p></w:body></w:document>"
    ).encode()
    return _with_document_xml(small_docx(), deflate_piece(xml, True), len(xml), zlib.crc32(xml))


def zip_not_docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes/readme.txt", "just a zip")
        archive.writestr("data.csv", "a,b\n1,2\n")
    return buffer.getvalue()


# -- text and HTML ---------------------------------------------------------------


def nested_html(depth: int, tag: str = "div") -> bytes:
    """``<div>x <div>x …`` (or nested ``<h1>``), never closed."""
    return (f"<html><body>{f'<{tag}>x ' * depth}</body></html>").encode()


def billion_laughs_html(levels: int = 9) -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, levels + 1)
    ]
    return (
        f"<!DOCTYPE html [{''.join(entities)}]>"
        f"<html><body><p>Laughs: &lol{levels};</p><p>Plain words about cranes.</p></body></html>"
    ).encode()


def long_line(size: int, spaces: bool = False) -> bytes:
    """One line of ``size`` bytes: letters and digits, with or without spaces."""
    unit = b"lorem ipsum dolor sit amet " if spaces else b"a1B2c3D4e5F6g7H8i9J0"
    return (unit * (size // len(unit) + 1))[:size]


def elf_executable(size: int = 4096) -> bytes:
    return (ELF_HEADER + b"\x00" * 64 + b"/lib64/ld-linux-x86-64.so.2\x00")[:size].ljust(
        size, b"\0"
    )


def windows_executable(size: int = 4096) -> bytes:
    head = bytearray(b"MZ" + bytes(0x3A) + struct.pack("<I", 0x80))
    head += bytes(0x80 - len(head)) + b"PE\x00\x00"
    return bytes(head).ljust(size, b"\0")

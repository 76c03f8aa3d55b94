"""Where the app finds a cited PDF or image to draw its page.

The knowledge base keeps text, not files. For uploads the app keeps the PDF
itself in ``<kb>/originals/<sha256>.pdf`` and an image (PNG, JPEG, TIFF, read
by OCR) in ``<kb>/originals/<sha256>.image``: the name is the document id (the
SHA-256 of the bytes), never anything the user typed. A PDF opened with a
password is kept decrypted, since its text is in the knowledge base already.
Documents ingested from disk are drawn from their own path, as long as the
file there still has the same bytes.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from ...files import write_atomically
from ...ingest.types import is_path_source

log = logging.getLogger(__name__)

FOLDER = "originals"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
_DOC_ID = re.compile(r"[0-9a-f]{64}")
_KEPT = re.compile(r"[0-9a-f]{64}\.(pdf|image)")


def kept_path(kb_folder: Path, doc_id: str, suffix: str = ".pdf") -> Path:
    if not _DOC_ID.fullmatch(doc_id):
        raise ValueError(f"not a document id: {doc_id!r}")
    return Path(kb_folder) / FOLDER / f"{doc_id}{suffix}"


def keep_original(
    kb_folder: Path, doc_id: str, data: bytes, password: str | None = None
) -> Path | None:
    """Keep an uploaded PDF or image for page pictures; None for other formats, or
    when it cannot be kept. The content decides, not the uploaded name."""
    from ...errors import IngestError
    from ...ingest.readers.sniff import sniff_format

    try:
        kind = sniff_format("the upload", data, None)
    except IngestError:
        return None
    if kind == "pdf":
        return keep_pdf(kb_folder, doc_id, data, password)
    if kind != "image":
        return None
    target = kept_path(kb_folder, doc_id, ".image")
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_atomically(target, data)
        except OSError as error:
            log.warning("could not keep %s for page pictures: %s", doc_id[:12], error)
            return None
    return target


def find_original(kb_folder: Path, source: str, doc_id: str) -> Path | None:
    """The PDF or image with the document's bytes: kept upload, or source file if unchanged."""
    pdf = find_pdf(kb_folder, source, doc_id)
    if pdf is not None:
        return pdf
    try:
        kept = kept_path(kb_folder, doc_id, ".image")
    except ValueError:
        return None
    if kept.is_file():
        return kept
    if is_path_source(source) and source.lower().endswith(IMAGE_SUFFIXES):
        return _unchanged(Path(source), doc_id)
    return None


def keep_pdf(kb_folder: Path, doc_id: str, data: bytes, password: str | None = None) -> Path | None:
    """Store an uploaded PDF for page pictures; None when it cannot be kept."""
    target = kept_path(kb_folder, doc_id)
    if target.is_file():
        return target
    if password:
        data = _decrypted(data, password) or b""
        if not data:
            return None
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_atomically(target, data)
    except OSError as error:
        log.warning("could not keep %s for page pictures: %s", doc_id[:12], error)
        return None
    return target


def find_pdf(kb_folder: Path, source: str, doc_id: str) -> Path | None:
    """The PDF with the document's bytes: the kept upload, or the source file if unchanged."""
    try:
        kept = kept_path(kb_folder, doc_id)
    except ValueError:
        return None
    if kept.is_file():
        return kept
    if is_path_source(source) and source.lower().endswith(".pdf"):
        return _unchanged(Path(source), doc_id)
    return None


def _unchanged(path: Path, doc_id: str) -> Path | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return path if _sha256(str(path), stat.st_mtime_ns, stat.st_size) == doc_id else None


def prune(kb_folder: Path, keep: Iterable[str]) -> int:
    """Delete kept files of documents no longer in the knowledge base; how many went."""
    folder = Path(kb_folder) / FOLDER
    if not folder.is_dir():
        return 0
    wanted = set(keep)
    removed = 0
    for path in folder.iterdir():
        if _KEPT.fullmatch(path.name) and path.stem not in wanted:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


@lru_cache(maxsize=256)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _decrypted(data: bytes, password: str) -> bytes | None:
    import io

    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        document = pdfium.PdfDocument(data, password=password)
        out = io.BytesIO()
        document.save(out, flags=pdfium_c.FPDF_REMOVE_SECURITY)
        document.close()
    except pdfium.PdfiumError as error:
        log.info("could not keep a decrypted copy: %s", error)
        return None
    return out.getvalue()

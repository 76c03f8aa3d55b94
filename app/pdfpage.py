"""A picture of a PDF page with a passage marked on it (PDFium via pypdfium2).

Chunk spans are character offsets into the page text the PDF reader
extracted: PDFium's text with ``\\r\\n`` and ``\\r`` folded to ``\\n``. They are
mapped back to PDFium's character indices, PDFium gives the rectangles of
that range line by line, and ``FPDF_PageToDevice`` places them on the
rendered picture (crop box and rotation included). When the page text does
not match the stored passage (the file changed, or pypdf read it), the
passage's opening words are searched for instead.
"""

from __future__ import annotations

import ctypes
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

PASSAGE_FILL = (255, 214, 10, 60)  # the whole passage: a light wash
CITED_FILL = (255, 170, 0, 110)  # the sentences the answer rests on
CITED_EDGE = (214, 120, 0, 255)
SEARCH_WORDS = 8  # opening words searched for when offsets do not line up


@dataclass(frozen=True)
class Mark:
    """Characters ``start:end`` of the page text; ``cited`` ones are drawn stronger."""

    start: int
    end: int
    cited: bool = False


@dataclass(frozen=True)
class PagePicture:
    png: bytes
    width: int
    height: int
    marked: bool  # False when the passage could not be located on the page


def render_page(
    pdf: Path | bytes,
    page_number: int,
    passage: str,
    marks: Sequence[Mark],
    width_px: int = 1200,
    crop: bool = False,
) -> PagePicture:
    """Page ``page_number`` (1-based) as PNG with ``marks`` highlighted.

    ``passage`` is the text the marks' offsets should cover (``marks[0]``
    spans it); it is used to check the offsets and to search as a fallback.
    With ``crop``, only the band of the page around the marks is kept.

    Raises:
        ValueError: the page does not exist or the file cannot be opened.
    """
    import pypdfium2 as pdfium
    from PIL import Image, ImageDraw

    document = pdfium.PdfDocument(pdf if isinstance(pdf, bytes) else str(pdf))
    try:
        if not 1 <= page_number <= len(document):
            raise ValueError(f"page {page_number} not in a {len(document)}-page PDF")
        page = document[page_number - 1]
        scale = width_px / page.get_width()
        bitmap = page.render(scale=scale, draw_annots=True)
        picture = bitmap.to_pil().convert("RGBA")
        textpage = page.get_textpage()
        boxes = _mark_boxes(page, textpage, picture.size, passage, marks)
        textpage.close()
        page.close()
    except pdfium.PdfiumError as error:
        raise ValueError(str(error)) from error
    finally:
        document.close()

    overlay = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    pad = max(1, round(scale))
    for (left, top, right, bottom), cited in boxes:
        box = (left - pad, top - pad, right + pad, bottom + pad)
        if cited:
            draw.rectangle(box, fill=CITED_FILL)
            draw.line((box[0], box[3], box[2], box[3]), CITED_EDGE, 2 * pad)
        else:
            draw.rectangle(box, fill=PASSAGE_FILL)
    picture = Image.alpha_composite(picture, overlay).convert("RGB")
    if crop and boxes:
        picture = _crop_around(picture, [box for box, _ in boxes])
    out = io.BytesIO()
    picture.save(out, format="PNG", optimize=True)
    return PagePicture(out.getvalue(), picture.width, picture.height, bool(boxes))


def _crop_around(picture: Image.Image, boxes: list[tuple[int, int, int, int]]) -> Image.Image:
    """The part of the page around the boxes, with room around them.

    Vertically at least 30% of the page is kept, so the passage is seen in
    its context; horizontally the margins beyond the marked lines go.
    """
    width, height = picture.size
    top, bottom = min(b[1] for b in boxes), max(b[3] for b in boxes)
    margin = max(int(0.06 * height), (int(0.3 * height) - (bottom - top)) // 2)
    top, bottom = max(0, top - margin), min(height, bottom + margin)
    left, right = min(b[0] for b in boxes), max(b[2] for b in boxes)
    side = int(0.05 * width)
    left, right = max(0, left - side), min(width, right + side)
    if right - left < width // 3:  # a short mark: keep a readable width around it
        middle = (left + right) // 2
        left, right = max(0, middle - width // 6), min(width, middle + width // 6)
    return picture.crop((left, top, right, bottom))


def normalized_to_raw(raw: str) -> list[int]:
    """For each character of the reader's page text, its index in PDFium's text.

    The reader folds ``\\r\\n`` and ``\\r`` into ``\\n``; one more entry marks the end.
    """
    mapping: list[int] = []
    index = 0
    while index < len(raw):
        mapping.append(index)
        index += 2 if raw.startswith("\r\n", index) else 1
    mapping.append(len(raw))
    return mapping


def _mark_boxes(
    page: object,
    textpage: object,
    size: tuple[int, int],
    passage: str,
    marks: Sequence[Mark],
) -> list[tuple[tuple[int, int, int, int], bool]]:
    raw = textpage.get_text_range()  # type: ignore[attr-defined]
    mapping = normalized_to_raw(raw)
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    ranges: list[tuple[int, int, bool]] = []
    if marks and text[marks[0].start : marks[0].end] == passage:
        for mark in marks:
            if 0 <= mark.start < mark.end <= len(text):
                ranges.append((mapping[mark.start], mapping[mark.end], mark.cited))
    else:
        found = _search(textpage, passage)
        if found is not None:
            ranges.append((found[0], found[1], False))
    boxes = []
    for start, end, cited in ranges:
        count = textpage.count_rects(start, end - start)  # type: ignore[attr-defined]
        for i in range(count):
            left, bottom, right, top = textpage.get_rect(i)  # type: ignore[attr-defined]
            x0, y0 = _to_device(page, size, left, top)
            x1, y1 = _to_device(page, size, right, bottom)
            boxes.append(((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), cited))
    return boxes


def _search(textpage: object, passage: str) -> tuple[int, int] | None:
    """Where the passage's opening words are on the page (start, end of the whole passage)."""
    words = passage.split()
    if not words:
        return None
    probe = " ".join(words[:SEARCH_WORDS])
    searcher = textpage.search(probe, match_case=False)  # type: ignore[attr-defined]
    found = searcher.get_next()
    searcher.close()
    if found is None:
        return None
    start, _count = found
    return start, start + len(passage)


def _to_device(page: object, size: tuple[int, int], x: float, y: float) -> tuple[int, int]:
    import pypdfium2.raw as pdfium_c

    device_x, device_y = ctypes.c_int(), ctypes.c_int()
    pdfium_c.FPDF_PageToDevice(
        page.raw,  # type: ignore[attr-defined]
        0,
        0,
        size[0],
        size[1],
        0,
        ctypes.c_double(x),
        ctypes.c_double(y),
        ctypes.byref(device_x),
        ctypes.byref(device_y),
    )
    return device_x.value, device_y.value

"""A picture of a PDF page with a passage marked on it (PDFium via pypdfium2).

Chunk spans are character offsets into the page text the PDF reader
extracted: PDFium's text with ``\\r\\n`` and ``\\r`` folded to ``\\n``. They are
mapped back to PDFium's character indices, PDFium gives the rectangles of
that range line by line, and ``FPDF_PageToDevice`` places them on the
rendered picture (crop box and rotation included). When the page text does
not match the stored passage (the file changed, or pypdf read it), the
passage's opening words are searched for instead.

Pages whose text came from OCR have no text layer to ask: they are read
again, drawn exactly as ingest drew them (``render_for_ocr``) and by the same
Tesseract, which gives the same text, and the marks go on the boxes of the
words they cover. Re-reading costs a few seconds per picture (the app caches
pictures), where storing every word's box would grow each knowledge base and
tie it to one drawing of the page; a page whose text no longer matches (another
Tesseract version) is searched for the passage's opening words instead.

A PDF is untrusted input and a page can be absurd (612 × 200,000 pt is 747
bytes, and at 1,200 px wide 470 M pixels: over 8 GB in the app's server with
the copies drawing makes), so pictures are drawn in the reading
process of ``ingest.reader_process`` under the parse limits (memory, time, Flate
streams) and scaled down to at most ``max_page_pixels``; any failure, a
MemoryError or a killed process included, reaches the caller as a ValueError
(``PageRenderError``) with the reason.
"""

from __future__ import annotations

import atexit
import ctypes
import io
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import IngestError
from ...ingest.limits import ParseLimits
from ...ingest.reader_process import ParseWorker, WorkerFailure
from ...ingest.readers.ocr import OcrText, OcrUnavailable, recognize, tesseract_languages
from ...ingest.readers.pdf import check_streams, needs_ocr, render_for_ocr
from ...ingest.readers.sniff import sniff_format

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

PASSAGE_FILL = (255, 214, 10, 60)  # the whole passage: a light wash
CITED_FILL = (255, 170, 0, 110)  # the sentences the answer rests on
CITED_EDGE = (214, 120, 0, 255)
SEARCH_WORDS = 8  # opening words searched for when offsets do not line up
OPTIMIZE_PNG_PIXELS = 4_000_000  # larger pictures are saved without PNG optimization (slow)


class PageRenderError(ValueError):
    """The page picture could not be drawn; the message says why."""


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
    limits: ParseLimits | None = None,
) -> PagePicture:
    """Page ``page_number`` (1-based) of a PDF, or picture of an image file (PNG,
    JPEG, TIFF: ``imagepage.py``), as PNG with ``marks`` highlighted.

    ``passage`` is the text the marks' offsets should cover (``marks[0]``
    spans it); it is used to check the offsets and to search as a fallback.
    With ``crop``, only the band of the page around the marks is kept. The
    page is drawn in the reading process under ``limits`` (default: the default
    limits; the app passes its settings' ``parse_limits()``), at ``width_px`` or
    less to stay within its pixel limit.

    Raises:
        PageRenderError (a ValueError): the page does not exist, the file cannot
            be opened, or drawing it went over a limit or failed.
    """
    limits = limits or ParseLimits()
    args = {
        "path": None if isinstance(pdf, bytes) else str(pdf),
        "page": page_number,
        "passage": passage,
        "marks": [[mark.start, mark.end, mark.cited] for mark in marks],
        "width_px": width_px,
        "crop": crop,
    }
    payload = pdf if isinstance(pdf, bytes) else b""
    try:
        result, png = _renderer(limits).call("kbqa.app.web.pdfpage:render_request", args, payload)
    except WorkerFailure as failure:
        log.info("no picture of page %s: %s", page_number, failure.reason)
        raise PageRenderError(failure.reason) from None
    return PagePicture(png, int(result["width"]), int(result["height"]), bool(result["marked"]))


def render_request(
    args: dict[str, Any], payload: bytes, limits: ParseLimits
) -> tuple[dict[str, Any], bytes]:
    """``render_page``'s work, in the reading process (``ingest.reader_child``'s ``call``)."""
    path = args.get("path")
    source = str(path or "the uploaded PDF")
    try:
        data = Path(path).read_bytes() if path else payload
        marks = [Mark(int(start), int(end), bool(cited)) for start, end, cited in args["marks"]]
        if sniff_format(source, data, "pdf") == "image":
            from .imagepage import render_image

            picture = render_image(
                data,
                int(args["page"]),
                str(args["passage"]),
                marks,
                int(args["width_px"]),
                bool(args["crop"]),
                limits,
            )
            result = {"width": picture.width, "height": picture.height, "marked": picture.marked}
            return result, picture.png
        check_streams(source, data, limits)
        picture = _render(
            data,
            int(args["page"]),
            str(args["passage"]),
            marks,
            int(args["width_px"]),
            bool(args["crop"]),
            limits.max_page_pixels,
            limits.ocr_seconds_per_page,
        )
    except (ValueError, OSError) as error:
        raise IngestError(source, str(error)) from None
    result = {"width": picture.width, "height": picture.height, "marked": picture.marked}
    return result, picture.png


def page_scale(width_pt: float, height_pt: float, width_px: int, max_pixels: int) -> float:
    """Points to pixels: ``width_px`` wide, or less where the page would pass ``max_pixels``."""
    if not (width_pt > 0 and height_pt > 0):
        raise ValueError(f"page has no area ({width_pt:g} × {height_pt:g} pt)")
    scale = width_px / width_pt
    if width_pt * height_pt * scale * scale > max_pixels:
        scale = math.sqrt(max_pixels / (width_pt * height_pt))
    while math.ceil(width_pt * scale) * math.ceil(height_pt * scale) > max_pixels:
        scale *= 0.995  # PDFium rounds the bitmap's sides up
    return scale


def _render(
    pdf: bytes,
    page_number: int,
    passage: str,
    marks: Sequence[Mark],
    width_px: int,
    crop: bool,
    max_pixels: int,
    ocr_seconds: float = 60.0,
) -> PagePicture:
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(pdf)
    except pdfium.PdfiumError as error:
        raise ValueError(str(error)) from error
    try:
        if not 1 <= page_number <= len(document):
            raise ValueError(f"page {page_number} not in a {len(document)}-page PDF")
        page = document[page_number - 1]
        scale = page_scale(page.get_width(), page.get_height(), width_px, max_pixels)
        bitmap = page.render(scale=scale, draw_annots=True)
        picture = bitmap.to_pil().convert("RGBA")  # a copy: the bitmap goes with the page
        textpage = page.get_textpage()
        boxes = _mark_boxes(page, textpage, picture.size, passage, marks)
        if not boxes and needs_ocr(page, textpage.get_text_range()):
            boxes = _ocr_boxes(page, picture.size, passage, marks, max_pixels, ocr_seconds)
        textpage.close()
        page.close()
    except pdfium.PdfiumError as error:
        raise ValueError(str(error)) from error
    finally:
        document.close()

    return draw_marks(picture, boxes, max(1, round(scale)), crop)


def draw_marks(
    picture: Image.Image,
    boxes: Sequence[tuple[tuple[int, int, int, int], bool]],
    pad: int,
    crop: bool,
) -> PagePicture:
    """``boxes`` washed onto ``picture`` (cited ones stronger), cropped around them, as PNG."""
    from PIL import Image, ImageDraw

    if picture.mode != "RGBA":
        picture = picture.convert("RGBA")
    overlay = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
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
    optimize = picture.width * picture.height <= OPTIMIZE_PNG_PIXELS
    picture.save(out, format="PNG", optimize=optimize)
    return PagePicture(out.getvalue(), picture.width, picture.height, bool(boxes))


# One reading process draws the app's pictures, kept between them (shared by
# the app's threads: ParseWorker serializes requests) and ended at exit.
_renderers: dict[ParseLimits, ParseWorker] = {}
_renderers_lock = threading.Lock()


def _renderer(limits: ParseLimits) -> ParseWorker:
    with _renderers_lock:
        worker = _renderers.get(limits)
        if worker is None:
            for old in _renderers.values():  # settings changed: one process is enough
                old.close()
            _renderers.clear()
            worker = _renderers[limits] = ParseWorker(limits)
        return worker


@atexit.register
def _close_renderers() -> None:
    with _renderers_lock:
        for worker in _renderers.values():
            worker.close()
        _renderers.clear()


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
    if right <= left or bottom <= top:  # marks off the page (text drawn outside it)
        return picture
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


def _ocr_boxes(
    page: object,
    size: tuple[int, int],
    passage: str,
    marks: Sequence[Mark],
    max_pixels: int,
    seconds: float,
) -> list[tuple[tuple[int, int, int, int], bool]]:
    """Marks on an OCR'd page: the page read again as ingest read it, words' boxes scaled."""
    try:
        languages = tesseract_languages()
        picture, dpi = render_for_ocr(page, max_pixels)
        ocr = recognize(picture, languages, seconds, dpi)
    except (OcrUnavailable, RuntimeError, OSError, ValueError) as error:
        log.info("no OCR boxes for the page picture: %s", error)
        return []
    return ocr_mark_boxes(ocr, size, passage, marks)


def ocr_mark_boxes(
    ocr: OcrText, size: tuple[int, int], passage: str, marks: Sequence[Mark]
) -> list[tuple[tuple[int, int, int, int], bool]]:
    """The boxes, on a picture of ``size``, of the OCR'd words each mark covers.

    Words on one line are joined into one box. When the OCR text does not hold
    ``passage`` at the marks' offsets, its opening words are searched for.
    """
    ranges = [(m.start, m.end, m.cited) for m in marks]
    if not marks or ocr.text[marks[0].start : marks[0].end] != passage:
        found = _search_text(ocr.text, passage)
        ranges = [(found[0], found[1], False)] if found else []
    sx, sy = size[0] / max(1, ocr.size[0]), size[1] / max(1, ocr.size[1])
    boxes: list[tuple[tuple[int, int, int, int], bool]] = []
    for start, end, cited in ranges:
        line: list[int] | None = None
        last_end = -1
        for word in ocr.words:
            if word.end <= start or word.start >= end:
                continue
            same_line = line is not None and ocr.text[last_end : word.start] == " "
            if line is not None and same_line:
                line = [min(line[0], word.box[0]), min(line[1], word.box[1]),
                        max(line[2], word.box[2]), max(line[3], word.box[3])]  # fmt: skip
            else:
                if line is not None:
                    boxes.append((_scaled(line, sx, sy), cited))
                line = list(word.box)
            last_end = word.end
        if line is not None:
            boxes.append((_scaled(line, sx, sy), cited))
    return boxes


def _scaled(box: Sequence[int], sx: float, sy: float) -> tuple[int, int, int, int]:
    return (round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy))


def _search_text(text: str, passage: str) -> tuple[int, int] | None:
    """Where the passage's opening words are in ``text``, whatever spaces separate them."""
    import re

    words = passage.split()[:SEARCH_WORDS]
    if not words:
        return None
    found = re.search(r"\s+".join(map(re.escape, words)), text, re.IGNORECASE)
    if found is None:
        return None
    return found.start(), min(len(text), found.start() + len(passage))


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

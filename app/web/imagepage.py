"""A picture of an OCR'd image (PNG, JPEG, TIFF page) with a passage marked on it.

An image's text came from Tesseract, so its words have no positions stored:
the picture is read again exactly as ingest read it (``readers/image.py``: the
same gray picture within the pixel limit, the same Tesseract and languages),
which gives the same text, and the marks go on the boxes of the words they
cover (``pdfpage.ocr_mark_boxes``), scaled onto the picture shown. Like PDF
pages, this runs in the reading process under the parse limits
(``pdfpage.render_request`` sends image files here).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...ingest.limits import ParseLimits
from ...ingest.readers.image import picture_for_ocr
from ...ingest.readers.ocr import OcrUnavailable, recognize, tesseract_languages
from .pdfpage import Mark, PagePicture, draw_marks, ocr_mark_boxes

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)


def render_image(
    data: bytes,
    page_number: int,
    passage: str,
    marks: Sequence[Mark],
    width_px: int,
    crop: bool,
    limits: ParseLimits,
) -> PagePicture:
    """Picture ``page_number`` (1-based; a TIFF may hold several) with ``marks`` drawn.

    Raises:
        ValueError: not a readable image, no such picture, or over the pixel limit.
    """
    from PIL import Image, UnidentifiedImageError

    from ...errors import IngestError

    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as error:
        raise ValueError(f"unreadable image ({error})") from None
    with image:
        frames = int(getattr(image, "n_frames", 1))
        if not 1 <= page_number <= frames:
            raise ValueError(f"picture {page_number} not in an image of {frames}")
        try:
            gray, dpi = picture_for_ocr("the image", image, page_number, limits)
            shown = _shown(image, width_px, limits.max_page_pixels)
        except IngestError as error:
            raise ValueError(error.reason) from None
        except (OSError, EOFError) as error:
            raise ValueError(f"unreadable image ({error})") from None
    boxes: list[tuple[tuple[int, int, int, int], bool]] = []
    try:
        ocr = recognize(gray, tesseract_languages(), limits.ocr_seconds_per_page, dpi)
        boxes = ocr_mark_boxes(ocr, shown.size, passage, marks)
    except (OcrUnavailable, RuntimeError, OSError, ValueError) as error:
        log.info("no OCR boxes for the picture: %s", error)
    pad = max(1, round(shown.width / 600))
    return draw_marks(shown, boxes, pad, crop)


def _shown(image: Image.Image, width_px: int, max_pixels: int) -> Image.Image:
    """The current picture in colour, at most ``width_px`` wide and ``max_pixels`` big."""
    picture = image.convert("RGB")
    width, height = picture.size
    scale = min(1.0, width_px / width, (max_pixels / (width * height)) ** 0.5)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        picture = picture.resize(size)
    return picture

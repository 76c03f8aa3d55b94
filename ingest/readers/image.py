"""Images (PNG, JPEG, TIFF): each picture is a page, read by OCR (``ocr.py``).

A TIFF may hold several pictures (a faxed letter): each is a page. Pictures
are read at most ``MAX_PICTURE_SHARE`` times ``max_page_pixels`` (a 24 M-pixel
phone photo is a legal input, a 200 M-pixel one a bomb) and scaled down to
``max_page_pixels`` before Tesseract reads them.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from ...errors import IngestError
from ..limits import LimitExceeded, ParseLimits
from ..types import OCR, PageOcr, ParsedDocument, Section
from .ocr import OcrText, OcrUnavailable, Progress, recognize_pages, tesseract_languages

if TYPE_CHECKING:
    from PIL import Image

MAX_PICTURE_SHARE = 4
_DPI_RANGE = (70, 1200)  # a resolution outside it is a placeholder (72 or 1), not a scan's


def read_image(
    source: str,
    data: bytes,
    password: str | None = None,
    limits: ParseLimits | None = None,
    on_progress: Progress | None = None,
) -> ParsedDocument:
    """The text of each picture in the file, by OCR.

    Raises:
        IngestError: not a readable image, a picture over the pixel limit,
            Tesseract not installed, or no text found.
    """
    from PIL import Image, UnidentifiedImageError

    limits = limits or ParseLimits()
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise LimitExceeded(source, limits, "max_page_pixels", str(error)) from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise IngestError(source, f"unreadable image ({error})") from None
    with image:
        frames = int(getattr(image, "n_frames", 1))
        try:
            languages = tesseract_languages()
        except OcrUnavailable as error:
            raise IngestError(source, f"an image, whose text needs OCR; {error}") from None

        def render(number: int) -> tuple[Image.Image, int | None]:
            return picture_for_ocr(source, image, number, limits)

        results = dict(
            recognize_pages(
                range(1, frames + 1), render, languages, limits.ocr_seconds_per_page, on_progress
            )
        )
    sections, pages, warnings = [], [], []
    for number in range(1, frames + 1):
        result = results[number]
        if isinstance(result, OcrText) and result.text.strip():
            sections.append(Section(result.text, number, 0, text_source=OCR))
            pages.append(PageOcr(number, result.confidence))
        elif isinstance(result, str):
            warnings.append(f"{result}: page {number}")
    if not sections:
        reason = warnings[0] if warnings else "OCR found no text in the image"
        raise IngestError(source, f"no text found: {reason}")
    return ParsedDocument(
        source, "image", frames, tuple(sections), None, tuple(warnings), tuple(pages)
    )


def picture_for_ocr(
    source: str, image: Image.Image, number: int, limits: ParseLimits
) -> tuple[Image.Image, int | None]:
    """Picture ``number`` (1-based) in gray, within the pixel limit, and its dpi if known."""
    from PIL import Image

    try:
        image.seek(number - 1)
        width, height = image.size
        if width * height > MAX_PICTURE_SHARE * limits.max_page_pixels:
            detail = f"picture {number} is {width:,} × {height:,} pixels"
            raise LimitExceeded(source, limits, "max_page_pixels", detail)
        picture = image.convert("L")
    except (OSError, ValueError, EOFError) as error:
        raise IngestError(source, f"unreadable image, picture {number} ({error})") from None
    dpi = _dpi(image.info.get("dpi"))
    if width * height > limits.max_page_pixels:
        scale = (limits.max_page_pixels / (width * height)) ** 0.5
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        picture = picture.resize(size, Image.Resampling.LANCZOS)
        dpi = round(dpi * scale) if dpi else None
    return picture, dpi


def _dpi(value: object) -> int | None:
    try:
        dpi = round(float(value[0]))  # type: ignore[index]
    except (TypeError, ValueError, IndexError):
        return None
    return dpi if _DPI_RANGE[0] <= dpi <= _DPI_RANGE[1] else None

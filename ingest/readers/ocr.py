"""OCR: the text of page pictures, read by Tesseract (Debian ``tesseract-ocr``).

One ``tesseract`` process runs per page, so a page's time limit is
a process timeout (``ParseLimits.ocr_seconds_per_page``), a crash ends that
process and fails that page alone, and pages are read side by side, one
process per core (``recognize_pages``). Choices, measured in docs/quality.md
("OCR") with ``bench/ocr.py``:

- Languages ``spa+eng`` on every page, in one pass: on the English scan
  (linn.pdf) it reads as well as ``eng`` alone, on a Spanish page as well as
  ``spa`` alone, so a first pass to guess each page's language would only
  cost time. French pages come out readable, with some accents lost.
- Skew is measured (row profiles of a small copy, ±5°) and corrected from
  0.3° up: skew.pdf, linn.pdf turned 1.8°, went from 4.5 % to 1.1 % character
  error rate at 300 dpi; on a page turned 1° it cost 0.05 points (rotation
  blurs a little); straight pages are left as they are.
- Text is rebuilt from Tesseract's words: a space between words, a newline
  between lines, a blank line between paragraphs; each word keeps its box
  in the picture, so the app can mark a passage on an OCR'd page.

``tesseract`` reads the picture from its stdin and writes its word table to
its stdout (``ocr_broker.tesseract_arguments``): no temporary file, so the
sandboxed reading process needs no writable folder. That process may not
start programs; it hands each run to its OCR helper (``ingest.ocr_broker``),
which starts ``tesseract`` and nothing else.
"""

from __future__ import annotations

import io
import logging
import math
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import ocr_broker
from ..ocr_broker import TesseractJob, tesseract_command

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

LANGUAGES = ("spa", "eng")
INSTALL_HINT = "apt-get install tesseract-ocr tesseract-ocr-spa tesseract-ocr-eng"
MAX_SKEW_DEGREES = 5.0
DESKEW_FROM_DEGREES = 0.3  # smaller skews Tesseract reads as well without a rotation
_SKEW_PICTURE_SIDE = 1000  # pixels of the copy whose rows are profiled
_BLANK_CONTRAST = 40  # a picture whose darkest and lightest pixels differ less is blank

# (start, end) characters of the page text, (left, top, right, bottom) pixels of the picture
Box = tuple[int, int, int, int]
Progress = Callable[[int, int], None]  # (pages done, pages to do)


class OcrUnavailable(Exception):
    """Tesseract (or every language it would need) is not installed; says how to install it."""


def run_tesseract(job: TesseractJob) -> bytes:
    """What ``tesseract`` wrote to stdout for ``job``.

    Raises:
        RuntimeError: it ran past ``job.seconds`` (killed), as pytesseract says it.
        pytesseract.TesseractError: it failed (``OSError`` when it cannot be started).
    """
    import pytesseract

    done = ocr_broker.runner()(tesseract_command(), job)
    if done.timed_out:
        raise RuntimeError("Tesseract process timeout")
    if done.returncode != 0:
        message = " ".join(done.stderr.decode("utf-8", "replace").splitlines()).strip()
        raise pytesseract.TesseractError(done.returncode, message[:2000])
    return done.stdout


@dataclass(frozen=True)
class OcrWord:
    start: int
    end: int
    box: Box


@dataclass(frozen=True)
class OcrText:
    """A picture's text, its mean word confidence (0-100) and each word's box.

    Boxes are in the pixels of the picture given (``size``), whatever rotation
    was applied to read it (``skew`` degrees, counter-clockwise).
    """

    text: str
    confidence: float
    words: tuple[OcrWord, ...]
    size: tuple[int, int]
    skew: float = 0.0


def tesseract_languages() -> str:
    """The ``-l`` argument: those of ``LANGUAGES`` installed, as ``spa+eng``.

    Raises:
        OcrUnavailable: no ``tesseract`` program, or none of the languages.
    """
    import pytesseract

    command = pytesseract.pytesseract.tesseract_cmd
    if shutil.which(command) is None:
        raise OcrUnavailable(f"OCR needs Tesseract, which is not installed: {INSTALL_HINT}")
    try:
        listing = run_tesseract(TesseractJob(None, 60.0)).decode("utf-8", "replace")
        installed = {line.strip() for line in listing.splitlines()[1:] if line.strip()}
    except (OSError, RuntimeError, pytesseract.TesseractError) as error:
        reason = f"Tesseract does not run ({error}); reinstall: {INSTALL_HINT}"
        raise OcrUnavailable(reason) from None
    usable = [language for language in LANGUAGES if language in installed]
    if not usable:
        raise OcrUnavailable(f"Tesseract has no Spanish or English data: {INSTALL_HINT}")
    if len(usable) < len(LANGUAGES):
        log.warning("Tesseract reads only %s here; for both: %s", "+".join(usable), INSTALL_HINT)
    return "+".join(usable)


def workers_for(pages: int) -> int:
    """Tesseract processes to run side by side: one per core this process may use."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, pages))


def recognize(
    picture: Image.Image,
    languages: str,
    seconds: float,
    dpi: int | None = None,
    deskew: bool = True,
) -> OcrText:
    """The text of one picture (straightened first when it is skewed, unless not ``deskew``).

    Raises:
        RuntimeError: ``tesseract`` ran past ``seconds`` (it was killed).
        pytesseract.TesseractError: ``tesseract`` failed on this picture.
    """
    from PIL import Image

    gray = picture.convert("L")
    extrema = gray.getextrema()  # (darkest, lightest) for one band
    low, high = int(extrema[0]), int(extrema[1])  # type: ignore[arg-type]
    if high - low < _BLANK_CONTRAST:
        return OcrText("", 0.0, (), picture.size)
    skew = measure_skew(gray) if deskew else 0.0
    straight = gray
    if abs(skew) >= DESKEW_FROM_DEGREES:
        straight = gray.rotate(skew, Image.Resampling.BICUBIC, expand=True, fillcolor=high)
    png = io.BytesIO()
    straight.save(png, format="PNG", compress_level=1)
    job = TesseractJob(languages, seconds, dpi or None, png.getvalue())
    text, confidence, words = _assemble(_table(run_tesseract(job)))
    if straight is not gray:
        words = [
            OcrWord(w.start, w.end, _unrotate(w.box, skew, straight.size, gray.size)) for w in words
        ]
    return OcrText(text, confidence, tuple(words), picture.size, skew)


def _table(tsv: bytes) -> dict[str, list[object]]:
    """Tesseract's TSV as columns (``level``, ``text``, …), as pytesseract's Output.DICT."""
    rows = [row.split("\t") for row in tsv.decode("utf-8", "replace").strip().split("\n")]
    if len(rows) < 2:
        return {"text": [], "level": []}
    header, rows = rows[0], rows[1:]
    if len(rows[-1]) < len(header):  # a last word that is empty loses its cell
        rows[-1].append("")
    table: dict[str, list[object]] = {
        name: [row[i] for row in rows if len(row) > i] for i, name in enumerate(header)
    }
    # whole-number confidences, as pytesseract gave them (the measured means assume it)
    table["conf"] = [str(int(float(str(value)))) for value in table.get("conf", [])]
    return table


def _assemble(data: dict[str, list[object]]) -> tuple[str, float, list[OcrWord]]:
    """Page text from Tesseract's word table, with each word's span and box."""
    parts: list[str] = []
    words: list[OcrWord] = []
    confidences: list[float] = []
    length = 0
    last_line: tuple[object, ...] | None = None
    for i, raw in enumerate(data["text"]):
        word = str(raw).strip()
        if int(str(data["level"][i])) != 5 or not word:
            continue
        line = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
        if last_line is not None:
            separator = " " if line == last_line else "\n" if line[:2] == last_line[:2] else "\n\n"
            parts.append(separator)
            length += len(separator)
        last_line = line
        left, top = int(str(data["left"][i])), int(str(data["top"][i]))
        box = (left, top, left + int(str(data["width"][i])), top + int(str(data["height"][i])))
        words.append(OcrWord(length, length + len(word), box))
        parts.append(word)
        length += len(word)
        confidence = float(str(data["conf"][i]))
        if confidence >= 0:
            confidences.append(confidence)
    mean = sum(confidences) / len(confidences) if confidences else 0.0
    return "".join(parts), round(mean, 1), words


def measure_skew(gray: Image.Image) -> float:
    """The rotation (degrees, counter-clockwise) that makes text lines level, within ±5°.

    Text lines make sharp steps in the ink per pixel row when level; the angle
    whose rotated copy has the largest squared row-to-row differences wins,
    searched every 0.5° then every 0.1° around the best.
    """
    import numpy as np
    from PIL import Image

    scale = _SKEW_PICTURE_SIDE / max(gray.size)
    small = gray
    if scale < 1:
        small = gray.resize((max(1, round(gray.width * scale)), max(1, round(gray.height * scale))))
    pixels = np.asarray(small, dtype=np.uint8)
    threshold = (int(pixels.min()) + int(pixels.max())) // 2
    ink = Image.fromarray(((pixels < threshold) * 255).astype(np.uint8))

    def sharpness(angle: float) -> float:
        turned = np.asarray(ink.rotate(angle, Image.Resampling.NEAREST), dtype=np.float32)
        rows = turned.sum(axis=1)
        return float(np.square(np.diff(rows)).sum())

    coarse = [a / 2 for a in range(-int(2 * MAX_SKEW_DEGREES), int(2 * MAX_SKEW_DEGREES) + 1)]
    best = max(coarse, key=sharpness)
    fine = [round(best + step / 10, 1) for step in range(-4, 5)]
    best = max(fine, key=sharpness)
    return best if abs(best) <= MAX_SKEW_DEGREES else 0.0


def _unrotate(box: Box, degrees: float, turned: tuple[int, int], size: tuple[int, int]) -> Box:
    """A box in a picture turned by ``degrees`` (PIL, ``expand=True``), back in the original."""
    radians = math.radians(degrees)
    cos, sin = math.cos(radians), math.sin(radians)
    points = []
    for x, y in ((box[0], box[1]), (box[2], box[1]), (box[0], box[3]), (box[2], box[3])):
        dx, dy = x - turned[0] / 2, y - turned[1] / 2
        points.append((size[0] / 2 + dx * cos - dy * sin, size[1] / 2 + dx * sin + dy * cos))
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return (math.floor(min(xs)), math.floor(min(ys)), math.ceil(max(xs)), math.ceil(max(ys)))


def recognize_pages(
    pages: Sequence[int],
    render: Callable[[int], tuple[Image.Image, int | None]],
    languages: str,
    seconds: float,
    on_progress: Progress | None = None,
) -> Iterator[tuple[int, OcrText | str]]:
    """``(page, OcrText)``, or ``(page, why it failed)``, for each page, as they finish.

    ``render(page)`` gives the page's picture and its dots per inch; it runs
    here, in the calling thread (PDFium is not thread-safe), while up to
    ``workers_for(len(pages))`` pages are read by their own ``tesseract``.
    At most two pictures per process wait, so memory stays bounded.
    """
    import pytesseract

    total = len(pages)
    if on_progress:
        on_progress(0, total)
    workers = workers_for(total)
    queued = iter(pages)
    running: dict[Future[OcrText], int] = {}
    undrawn: list[tuple[int, str]] = []
    done = 0
    with ThreadPoolExecutor(workers, thread_name_prefix="ocr") as pool:

        def submit() -> bool:
            page = next(queued, None)
            if page is None:
                return False
            try:
                picture, dpi = render(page)
            except ValueError as error:  # a page PDFium cannot draw (no area): it alone fails
                undrawn.append((page, f"cannot draw the page for OCR ({error})"))
                return True
            running[pool.submit(recognize, picture, languages, seconds, dpi)] = page
            return True

        while len(running) < 2 * workers and submit():
            pass
        while running or undrawn:
            while undrawn:
                yield undrawn.pop()
                done += 1
                if on_progress:
                    on_progress(done, total)
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                page = running.pop(future)
                try:
                    yield page, future.result()
                except pytesseract.TesseractError as error:  # a RuntimeError too: first
                    yield page, f"Tesseract failed ({error.message or error.status})"
                except RuntimeError as error:  # pytesseract's timeout
                    if "timeout" not in str(error).lower():
                        raise
                    yield page, f"OCR took over {seconds:g} s (KBQA_OCR_SECONDS_PER_PAGE)"
                done += 1
                if on_progress:
                    on_progress(done, total)
            while len(running) < 2 * workers and submit():
                pass

"""Make ``scanned-es.pdf``: two pages of Spanish text as a 1-bit scan, no text layer.

The text is from ``corpora/introduccion-a-los-llm.pdf`` (written for this
project). Each page is drawn at 200 dpi with DejaVu Serif (Pillow's own font
where DejaVu is missing), sprinkled with specks, turned 0.8° (page 1) and
-0.6° (page 2) as a sheet fed askew, thresholded to black and white, and
saved by Pillow as a PDF of CCITT G4 pictures, as scanners write them.

    .venv/bin/python tests/data/scanned/make_fixture.py

Seeded: the same bytes each run with the same Pillow and font.
"""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
DPI = 200
PAGE = (1165, 1654)  # A5 at 200 dpi
MARGIN = 110
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf"

PAGES = [
    (
        "¿Qué es un LLM?",
        [
            "LLM son las siglas inglesas de «large language model», es decir, modelo de "
            "lenguaje de gran tamaño. Se trata de una red neuronal de aprendizaje profundo "
            "de dimensiones enormes que, antes de dedicarse a ninguna tarea concreta, se "
            "preentrena con volúmenes gigantescos de texto.",
            "Lo que distingue a un LLM es su versatilidad: el mismo modelo puede contestar "
            "preguntas, resumir un informe, traducir de un idioma a otro o terminar una "
            "frase empezada.",
        ],
        0.8,
    ),
    (
        "Fuentes de datos para el entrenamiento",
        [
            "Un modelo de ese tamaño necesita una cantidad descomunal de texto, y buena "
            "parte procede de Internet. Dos fuentes aparecen una y otra vez:",
            "- Common Crawl, un archivo público de la web con más de 50 000 millones de "
            "páginas web.",
            "- Wikipedia, la enciclopedia libre, con alrededor de 57 millones de páginas.",
        ],
        -0.6,
    ),
]


def font(path: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(path, size)
    except OSError:
        return ImageFont.load_default(size)


def page(title: str, paragraphs: list[str], degrees: float, rng: random.Random) -> Image.Image:
    picture = Image.new("L", PAGE, 250)
    draw = ImageDraw.Draw(picture)
    body, heading = font(FONT, 30), font(BOLD, 36)
    y = MARGIN
    draw.text((MARGIN, y), title, font=heading, fill=20)
    y += 80
    for paragraph in paragraphs:
        for line in textwrap.wrap(paragraph, width=52):
            draw.text((MARGIN, y), line, font=body, fill=25)
            y += 44
        y += 22
    for _ in range(900):  # dust and toner specks
        x, y0 = rng.randrange(PAGE[0]), rng.randrange(PAGE[1])
        draw.point((x, y0), fill=rng.choice((0, 90, 160)))
    picture = picture.rotate(degrees, Image.Resampling.BICUBIC, fillcolor=250)
    return picture.point(lambda v: 255 if v > 150 else 0).convert("1")


def main() -> None:
    rng = random.Random(13)
    pictures = [page(title, text, degrees, rng) for title, text, degrees in PAGES]
    target = HERE / "scanned-es.pdf"
    pictures[0].save(target, save_all=True, append_images=pictures[1:], resolution=DPI)
    print(f"{target}: {target.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()

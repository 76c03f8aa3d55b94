"""Text normalisation shared by keyword search, grounding and refusal detection."""

from __future__ import annotations

import unicodedata


def fold_accents(text: str) -> str:
    """``parámetros`` → ``parametros``: decompose and drop the combining marks."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


# Function words of Spanish and English (accent-folded, lower case): they say
# nothing about which passage answers, so keyword search and grounding skip them.
STOP_WORDS = frozenset(
    """
    a al algo como con cual cuales cuando cuanta cuantas cuanto cuantos de del donde el ella
    ellos en entre era es esa ese eso esta este esto fue ha han hay la las le les lo los mas me
    mi muy no nos o para pero por que quien quienes se sea ser si sin sobre son su sus tiene
    tienen un una uno unos y ya yo tu te
    about an and any are as at be been but by can could did do does for from had has have how i
    if in into is it its many much my of on or our she should so than that the their them then
    there these they this those to too us was we were what when where which who whom why will
    with would you your
    """.split()
)


def printable(text: str, keep_newlines: bool = False) -> str:
    """Text safe to print to a terminal: control and format characters shown escaped.

    ESC/OSC sequences in a document or file name could otherwise retitle the
    terminal, move the cursor or forge lines of a listing; bidirectional
    overrides could reorder what is shown. ``\\x1b`` → ``\\x1b`` (four visible
    characters), ``\\u202e`` → ``\\u202e``; tabs become spaces.
    """
    out = []
    for ch in text:
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif ch == "\t":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)

"""Text normalisation shared by keyword search, grounding and refusal detection."""

from __future__ import annotations

import re
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


# -- words and sentences -------------------------------------------------------------

WORD = re.compile(r"\w+", re.UNICODE)
# "175 000", "175,000" and "175.000" are one number, not two words.
DIGIT_GROUPS = re.compile(r"(?<=\d)[ ,.\u00a0\u202f](?=\d{3}\b)")


def content_words(text: str) -> set[str]:
    """Lower-cased, accent-folded words that carry meaning (numbers included)."""
    folded = fold_accents(DIGIT_GROUPS.sub("", text.lower()))
    return {w for w in WORD.findall(folded) if w not in STOP_WORDS and (len(w) > 2 or w.isdigit())}


# Words after which a period does not end a sentence (folded, without the period).
_ABBREVIATIONS = frozenset(
    """
    mr mrs ms dr drs prof sr sra srta dra st jr vs etc al e.g i.e eg ie cf approx ca fig figs
    no nos num vol vols pp p pag pags art cap ed eds dept inc ltd co corp gen gov col lt sgt
    capt cmdr adm rev hon u.s a.m p.m jan feb mar apr jun jul aug sep sept oct nov dec
    ej p.ej aprox ud uds vd vds av avda dpto pza sta sto ntra
    """.split()
)
# A candidate boundary: closing punctuation, optional closing quotes/brackets, then space.
_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)|\n")
LIST_ITEM = re.compile(r"\s*(?:[-*•·‣▪–]|\d{1,3}[.)]|[a-z][)])\s")
# A line this short without closing punctuation is a heading or a list line, not a wrap.
_SHORT_LINE = 60


def _word_before(text: str, end: int) -> str:
    start = end
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "."):
        start -= 1
    return text[start:end]


def _ends_sentence(text: str, match: re.Match[str]) -> bool:
    """Whether a candidate boundary really closes a sentence."""
    start, end = match.start(), match.end()
    rest = text[end:].lstrip(" \t")
    if match.group() == "\n":
        line_start = text.rfind("\n", 0, start) + 1
        line = text[line_start:start].rstrip()
        if not line or not rest or rest.startswith("\n"):
            return True  # blank lines always separate
        if line[-1] in ".!?:;…" or LIST_ITEM.match(rest):
            return True
        # A short line that does not end in a comma or hyphen is a heading or list line.
        return len(line) < _SHORT_LINE and line[-1] not in ",-–(" and not rest[0].islower()
    if not rest:
        return True
    first = rest[0]
    if first.islower() or first in ",;:":
        return False  # "p. ej. el modelo", "vs. the other": the sentence goes on
    if text[start] != ".":
        return True
    word = _word_before(text, start)
    bare = word.rstrip(".")
    if len(bare) == 1 and bare.isalpha():
        return False  # an initial: "Nicholas E. Golovin", "J. R. R. Tolkien"
    if len(bare) == 2 and bare[0] == bare[1] and bare.isupper():
        return False  # Spanish plural abbreviations: "EE. UU.", "FF. AA."
    return fold_accents(bare.lower()) not in _ABBREVIATIONS


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """The sentences of ``text`` as ``(start, end)`` spans without surrounding space.

    A sentence ends at ``. ! ?`` followed by space and not by a lower-case word, at a
    blank line, and at a line break after closing punctuation, before a list item or
    after a short line (a heading). It does not end after an initial ("Nicholas E.
    Golovin"), a doubled-letter abbreviation ("EE. UU.") or a common abbreviation
    ("Dr.", "p. ej."). A line break inside a sentence (a PDF's wrapped line) does not
    end it.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _END.finditer(text):
        if not _ends_sentence(text, match):
            continue
        _add_span(text, start, match.end(), spans)
        start = match.end()
    _add_span(text, start, len(text), spans)
    return spans


def _add_span(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))


def sentences(text: str) -> list[str]:
    """The sentences of ``text``, as written (``sentence_spans``)."""
    return [text[s:e] for s, e in sentence_spans(text)]

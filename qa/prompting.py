"""The two languages kbqa answers in: detecting the question's, and saying "not found".

The prompts themselves live in ``qa/prompts/*.txt`` and are built where they are
used (``qa/compose.py``, ``qa/followup.py``).
"""

from __future__ import annotations

import re

REFUSALS = {
    "es": "No lo encuentro en los documentos.",
    "en": "The documents do not contain the answer.",
}
_SPANISH_HINTS = frozenset(
    "el la los las de del que y en un una es por para con cómo qué cuál cuáles cuántos "
    "cuántas quién dónde cuándo son tiene tienen se su sus al lo le más o".split()
)
_ENGLISH_HINTS = frozenset(
    "the a an of and in is are to for with how what which who where when does do "
    "has have many much it its on by or from".split()
)


def detect_language(text: str) -> str:
    """``es`` or ``en``: the two languages kbqa answers in.

    A stop-word count is enough to tell these two apart on one question, costs
    nothing, and is deterministic; a general detector would add a dependency
    and guess among a hundred languages we do not answer in.
    """
    if any(mark in text for mark in "¿¡ñÑ"):
        return "es"
    words = re.findall(r"[\wáéíóúü]+", text.lower())
    spanish = sum(word in _SPANISH_HINTS for word in words)
    english = sum(word in _ENGLISH_HINTS for word in words)
    return "es" if spanish > english else "en"

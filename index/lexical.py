"""Keyword search over chunks with SQLite FTS5 (BM25 ranking).

FTS5 lives in the same database file and transaction as the chunks, so the
keyword index can never disagree with them, even after a kill mid-write.
"""

from __future__ import annotations

import re

# Diacritics folded so "parametros" finds "parámetros"; no stemming (mixed languages).
FTS_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    heading, text, tokenize = 'unicode61 remove_diacritics 2'
);
"""

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

_TOKEN = re.compile(r"\w+(?:[-.]\w+)*", re.UNICODE)


def keyword_query(text: str) -> str | None:
    """An FTS5 query matching any of the text's content words (None if it has none).

    Each word is quoted, so user text can never inject FTS5 syntax.
    """
    words = []
    for token in _TOKEN.findall(text.lower()):
        folded = _fold(token)
        if folded not in STOP_WORDS and folded not in words and len(folded) > 1:
            words.append(folded)
    if not words:
        return None
    return " OR ".join('"' + word.replace('"', "") + '"' for word in words)


def _fold(word: str) -> str:
    import unicodedata

    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def reciprocal_rank_fusion(rankings: list[list[int]], k: int = 60) -> list[int]:
    """Ids ordered by the sum of 1/(k + rank) over the rankings (Cormack et al., 2009)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores, key=lambda item: (-scores[item], item))

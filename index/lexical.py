"""Keyword search over chunks with SQLite FTS5 (BM25 ranking).

FTS5 lives in the same database file and transaction as the chunks, so the
keyword index can never disagree with them, even after a kill mid-write.
"""

from __future__ import annotations

import re

from ..text import STOP_WORDS, fold_accents

# Diacritics folded so "parametros" finds "parámetros"; no stemming (mixed languages).
FTS_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    heading, text, tokenize = 'unicode61 remove_diacritics 2'
);
"""

_TOKEN = re.compile(r"\w+(?:[-.]\w+)*", re.UNICODE)


def keyword_query(text: str) -> str | None:
    """An FTS5 query matching any of the text's content words (None if it has none).

    Each word is quoted, so user text can never inject FTS5 syntax.
    """
    words = []
    for token in _TOKEN.findall(text.lower()):
        folded = fold_accents(token)
        if folded not in STOP_WORDS and folded not in words and len(folded) > 1:
            words.append(folded)
    if not words:
        return None
    return " OR ".join('"' + word.replace('"', "") + '"' for word in words)

"""Select the evidence: the sentences of the retrieved passages that answer the question.

(Over 450 lines on purpose: candidates, their signals and the neighbour rules are one
selection rule, fitted and measured together by ``bench/fit_evidence.py``.)

Every sentence of the top passages (``kbqa.text.sentence_spans``) is a candidate.
Each gets a few signals, all measured against the question:

- ``cosine``: the knowledge base's own embedder, question (as a query) against the
  sentence (as a passage); the untrained baseline alone puts the gold answer in the
  chosen sentence ~76 % of the time on XQuAD;
- ``overlap`` / ``context_overlap``: the share of the question's content words in the
  sentence, and in the sentence with the one before it and the passage heading;
- ``novelty``: the share of the sentence's content words that the question lacks (a
  sentence that only repeats the question answers nothing);
- ``answer_type`` / ``type_missing``: the sentence holds the kind of thing asked for
  (a figure for "how many", a year or date for "when", a name for "who", a reason for
  "why", a definition for "what is"), or the question asks for one it lacks;
- ``rank`` and ``passage_cosine``: where the retriever put the passage;
- ``fragment`` and ``length``: a heading or a few words without a verb ("GPT-3") is
  rarely the answer; nor is a whole table dumped on one line.

A logistic model combines them (``evidence.json``; fitted on SQuAD *train*
articles only by ``bench/fit_evidence.py``, reported on XQuAD, which it never
saw). The evidence is the best sentence plus the neighbours it needs: the one
before a sentence that opens with a pronoun or connector ("It…", "Esto…"), and
the items after a sentence that announces a list ("three approaches:").

Document text is data: sentences that read as instructions to a model
(``qa/injection.py``) are not candidates when the instruction filter is on; with it
off, an instruction still becomes evidence only if it is the best-scoring answer
to the question, and it is then shown verbatim as a quote, never obeyed.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from ..index.store import Hit
from ..models.embedder import Embedder
from ..text import (
    DIGIT_GROUPS,
    LIST_ITEM,
    STOP_WORDS,
    WORD,
    content_words,
    fold_accents,
    sentence_spans,
)
from .injection import is_instruction
from .retrieval import query_vectors

# At most this many verbatim spans make the evidence (best sentence and its neighbours),
# except a list, whose opener and items are shown together, up to MAX_LIST_ITEMS.
MAX_SPANS = 3
MAX_LIST_ITEMS = 8
# The runner-up sentence joins the evidence when its score is at least this share of the
# best one's: two near-equal candidates are both shown rather than a coin toss between
# them (measured on XQuAD in docs/quality.md, "Evidence").
RUNNER_UP_SHARE = 0.8
# A span longer than this is not a sentence (a table dumped as one line): it is skipped.
MAX_SENTENCE_CHARS = 600
# Words that make a sentence lean on the one before it.
_ANAPHORA = frozenset(
    """
    it its they them their these those this that he she his her such both also however
    therefore thus hence then instead yet
    esto esta este estos estas eso esa ese esos esas ello ella ellos ellas su sus dicho
    dicha dichos dichas asi tambien sin embargo ademas por tanto entonces alli ahi aquel
    aquella
    """.split()
)
_LIST_OPENER = re.compile(r":\s*$")
_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})\b")
_NUMBER = re.compile(r"\d")
_MONTHS = frozenset(
    """
    january february march april may june july august september october november december
    enero febrero marzo abril mayo junio julio agosto septiembre setiembre octubre noviembre
    diciembre siglo century
    """.split()
)
_HOW_MANY = re.compile(
    r"\b(how (many|much|long|old|far|big|large|tall|high)|what (percentage|proportion|"
    r"number|amount)|cu[aá]nt[oa]s?|qu[eé] (porcentaje|cantidad|n[uú]mero))\b"
)
_WHEN = re.compile(
    r"\b(when|what year|which year|what century|what decade|cu[aá]ndo|en qu[eé] (a[nñ]o|"
    r"siglo|d[eé]cada|fecha)|qu[eé] (a[nñ]o|siglo|d[eé]cada|fecha))\b"
)
_WHO = re.compile(
    r"\b(who|whom|whose|qui[eé]n(es)?|which (company|organi[sz]ation|person|country|city)|"
    r"what (company|organi[sz]ation|country|city)|qu[eé] (empresa|compa[nñ][ií]a|"
    r"organizaci[oó]n|pa[ií]s|ciudad|persona))\b"
)
_WHY = re.compile(r"\b(why|por qu[eé]|for what reason|what causes|what makes)\b")
_WHAT_IS = re.compile(
    r"^\W*(what|qu[eé]|cu[aá]l) (is|are|was|were|es|son|era|eran|significa|means?)\b"
)
# Words that give a reason, and words that define: what "why" and "what is" ask for.
_CAUSE = re.compile(
    r"\b(because|since|so|thus|therefore|hence|due to|thanks to|as a result|owing to|"
    r"allows?|enables?|makes? it|suits?|porque|ya que|puesto que|debido a|gracias a|por eso|"
    r"por ello|de modo que|de manera que|as[ií] que|permite|permiten|hace que|aprovecha)\b"
)
_DEFINES = re.compile(
    r"\b(is an?|are|is the|means?|refers? to|called|known as|stands? for|what \w+ mean by|"
    r"is what|es una?|son|significa|se llama|llamad[oa]s?|se denomina|denominad[oa]s?|se conoce "
    r"como|conocid[oa] como|es decir|siglas|consiste en|se trata de)\b"
)
_CODE = re.compile(r"```|^\s*\$ ")

FEATURES = (
    "cosine",
    "overlap",
    "context_overlap",
    "novelty",
    "answer_type",
    "type_missing",
    "rank",
    "passage_cosine",
    "fragment",
    "length",
    "code",
)


@dataclass(frozen=True)
class Sentence:
    """One candidate: a sentence of passage ``[number]``, verbatim, with its span."""

    number: int  # the passage's [n] among the hits (1-based)
    index: int  # its place among that passage's sentences
    start: int  # span in the passage's stored text (``hit.chunk.text[start:end]``)
    end: int
    text: str
    features: dict[str, float]
    score: float  # the selector's probability that this sentence answers the question


@dataclass(frozen=True)
class Evidence:
    """What the answer may say: verbatim spans, best first, and every candidate ranked."""

    question: str
    hits: tuple[Hit, ...]
    spans: tuple[Sentence, ...]  # the best sentence first, then the neighbours it needs
    ranked: tuple[Sentence, ...]  # every candidate, best first

    @property
    def best(self) -> Sentence | None:
        return self.ranked[0] if self.ranked else None

    @property
    def margin(self) -> float:
        """How far the best sentence leads the best one of another passage sentence."""
        if len(self.ranked) < 2:
            return self.ranked[0].score if self.ranked else 0.0
        return self.ranked[0].score - self.ranked[1].score

    def in_reading_order(self) -> tuple[Sentence, ...]:
        return tuple(sorted(self.spans, key=lambda s: (s.number, s.start)))


@dataclass(frozen=True)
class Selector:
    """A logistic model over ``FEATURES`` (weights by name, and a bias)."""

    weights: dict[str, float]
    bias: float
    fitted_on: str = ""

    def score(self, features: dict[str, float]) -> float:
        z = self.bias + sum(w * features.get(name, 0.0) for name, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-z))


# Without a fitted model: the cosine alone (the untrained baseline), as a probability.
COSINE_ONLY = Selector({"cosine": 20.0}, -16.0, "untrained: cosine only")


@lru_cache(maxsize=4)
def fitted_selector(embedder_name: str) -> Selector:
    """The selector fitted for this embedder (cosines differ between embedders); for an
    embedder without one, the first one fitted (its word and type signals still hold),
    and without any, the cosine alone."""
    path = resources.files(__package__).joinpath("evidence.json")
    try:
        entries = json.loads(path.read_text(encoding="utf-8")).get("selectors", [])
    except FileNotFoundError:
        return COSINE_ONLY
    chosen = next((e for e in entries if e["embedder"] == embedder_name), None)
    if chosen is None and entries:
        chosen = dict(entries[0], fitted_on=f"fitted for {entries[0]['embedder']}, not this one")
    if chosen is None:
        return COSINE_ONLY
    return Selector(
        {str(k): float(v) for k, v in chosen["weights"].items()},
        float(chosen["bias"]),
        str(chosen.get("fitted_on", "")),
    )


def _stems(words: set[str]) -> set[str]:
    """Words cut to five letters: "parámetros"/"parametro", "trained"/"training" meet."""
    return {w[:5] if not w.isdigit() else w for w in words}


def answer_type(question: str, sentence: str, asked_words: set[str]) -> float:
    """1 when the sentence holds what the question asks for (a figure, a date, a name)
    beyond what the question already says ("GPT-3" holds no answer to "how many")."""
    q = fold_accents(question.lower())
    words = set(WORD.findall(fold_accents(DIGIT_GROUPS.sub("", sentence.lower()))))
    new_words = words - asked_words
    if _HOW_MANY.search(q):
        return 1.0 if any(_NUMBER.search(w) for w in new_words) else 0.0
    if _WHEN.search(q):
        years = {w for w in new_words if _YEAR.fullmatch(w)}
        return 1.0 if years or new_words & _MONTHS else 0.0
    if _WHO.search(q):
        names = {
            fold_accents(w.lower())
            for i, w in enumerate(WORD.findall(sentence))
            if w[0].isupper() and i > 0
        }
        return 1.0 if names - asked_words - STOP_WORDS else 0.0
    folded = fold_accents(sentence.lower())
    if _WHY.search(q):
        return 1.0 if _CAUSE.search(folded) else 0.0
    if _WHAT_IS.search(q):
        return 1.0 if _DEFINES.search(folded) else 0.0
    return 0.5  # how / which / other: no type to check


def candidate_spans(
    hits: Sequence[Hit], filter_instructions: bool
) -> list[tuple[int, int, int, int]]:
    """(passage number, sentence index, start, end) of every candidate sentence.

    Headings are not answers and are skipped. A sentence announcing a list ("three
    ways:") is one candidate together with the list's items, as its answer is in them.
    """
    found = []
    for number, hit in enumerate(hits, start=1):
        text = hit.chunk.text
        bounds = sentence_spans(text)
        for index, (start, end) in enumerate(bounds):
            piece = text[start:end]
            if _is_heading(piece, hit.chunk.heading) or not content_words(piece):
                continue
            if _cut_by_chunking(piece, index, len(bounds)):
                continue
            if _LIST_OPENER.search(piece):
                end = _list_end(text, bounds, index)
                piece = text[start:end]
            if end - start > MAX_SENTENCE_CHARS or (filter_instructions and is_instruction(piece)):
                continue
            found.append((number, index, start, end))
    return found


def _cut_by_chunking(piece: str, index: int, count: int) -> bool:
    """A sentence the chunk boundary cut in two: the chunk's first one opening in lower
    case, or its last one without closing punctuation. The chunk overlap puts the whole
    sentence in the neighbouring chunk, where it is a candidate."""
    if count < 2:
        return False
    first = piece.lstrip()[:1]
    if index == 0 and first.islower():
        return True
    return index == count - 1 and piece.rstrip()[-1:] not in ".!?:;)\"'”»…" and len(piece) > 40


def _is_heading(piece: str, heading: str | None) -> bool:
    stripped = piece.strip()
    return stripped.startswith("#") or (
        heading is not None and stripped.strip("#: ").strip() == heading.strip()
    )


def _list_end(text: str, bounds: Sequence[tuple[int, int]], opener: int) -> int:
    """Where the list that sentence ``opener`` announces ends, or the opener's own end if
    no item follows. Items are lines; marked items ("- ", "1.") may follow a blank line."""
    end = bounds[opener][1]
    for start, item_end in bounds[opener + 1 : opener + 1 + MAX_LIST_ITEMS]:
        between = text[end:start]
        marked = LIST_ITEM.match(text[start - 1 : start + 6]) is not None
        if "\n" not in between or ("\n\n" in between and not marked):
            break
        if item_end - bounds[opener][0] > MAX_SENTENCE_CHARS:
            break
        end = item_end
    return end


def select_evidence(
    question: str,
    hits: Sequence[Hit],
    embedder: Embedder,
    *,
    selector: Selector | None = None,
    filter_instructions: bool = True,
) -> Evidence:
    """Score every sentence of ``hits`` against ``question``; keep the best and its neighbours."""
    hits = tuple(hits)
    selector = selector or fitted_selector(embedder.name)
    spans = candidate_spans(hits, filter_instructions)
    if not spans:
        return Evidence(question, hits, (), ())
    texts = [hits[n - 1].chunk.text[s:e] for n, _, s, e in spans]
    query = query_vectors(embedder, [question])[0]
    cosines = np.asarray(_SENTENCE_VECTORS.get(embedder, texts) @ query, dtype=np.float64)
    return rank_evidence(question, hits, spans, cosines, selector)


class _SentenceVectors:
    """Passage vectors of sentences, kept for the sentences asked about recently.

    A conversation asks about the same passages again and again; their sentences are
    embedded once. Bounded (least recently used out) and shared by threads.
    """

    def __init__(self, size: int = 20_000) -> None:
        self._size = size
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
        keys = [(embedder.name, t) for t in texts]
        with self._lock:
            missing = list(dict.fromkeys(k[1] for k in keys if k not in self._vectors))
        if missing:
            fresh = embedder.embed_passages(missing)
            with self._lock:
                for text, vector in zip(missing, fresh, strict=True):
                    self._vectors[(embedder.name, text)] = vector
                while len(self._vectors) > self._size:
                    self._vectors.popitem(last=False)
        with self._lock:
            found = [self._vectors.get(k) for k in keys]
            for k in keys:
                if k in self._vectors:
                    self._vectors.move_to_end(k)
        if any(v is None for v in found):  # evicted meanwhile by another thread: embed again
            return np.asarray(embedder.embed_passages(list(texts)))
        return np.stack([v for v in found if v is not None])


_SENTENCE_VECTORS = _SentenceVectors()


def rank_evidence(
    question: str,
    hits: Sequence[Hit],
    spans: Sequence[tuple[int, int, int, int]],
    cosines: np.ndarray,
    selector: Selector,
) -> Evidence:
    """The evidence from candidate ``spans`` (``candidate_spans``) and their cosines."""
    hits = tuple(hits)
    if not spans:
        return Evidence(question, hits, (), ())
    texts = [hits[n - 1].chunk.text[s:e] for n, _, s, e in spans]
    features = sentence_features(question, hits, spans, cosines)
    echo = _plain(question)
    ranked = sorted(
        (
            Sentence(n, i, s, e, text, f, selector.score(f))
            for (n, i, s, e), text, f in zip(spans, texts, features, strict=True)
            # A sentence that says nothing beyond the question, or quotes the question
            # itself (an example command, a heading phrased as a question), answers nothing.
            if f["novelty"] > 0 and not (echo and echo in _plain(text))
        ),
        key=lambda c: (-c.score, c.number, c.start),
    )
    if not ranked:
        return Evidence(question, hits, (), ())
    best = ranked[0]
    chosen = _with_neighbours(best, ranked, hits[best.number - 1].chunk.text, question)
    runner = next((c for c in ranked[1:] if not _overlaps(c, chosen)), None)
    if (
        runner is not None
        and len(chosen) < MAX_SPANS
        and runner.score >= RUNNER_UP_SHARE * best.score
    ):
        chosen = (*chosen, runner)
    return Evidence(question, hits, chosen, tuple(ranked))


def _overlaps(candidate: Sentence, chosen: Sequence[Sentence]) -> bool:
    return any(
        c.number == candidate.number and c.start < candidate.end and candidate.start < c.end
        for c in chosen
    )


def sentence_features(
    question: str,
    hits: Sequence[Hit],
    spans: Sequence[tuple[int, int, int, int]],
    cosines: np.ndarray,
) -> list[dict[str, float]]:
    """The signals of each candidate sentence (``FEATURES``), in the order of ``spans``."""
    asked = content_words(question)
    asked_stems = _stems(asked)
    previous: dict[tuple[int, int], str] = {}
    for number, index, start, end in spans:
        previous[(number, index)] = hits[number - 1].chunk.text[start:end]
    rows = []
    for (number, index, start, end), cosine in zip(spans, cosines, strict=True):
        hit = hits[number - 1]
        text = hit.chunk.text[start:end]
        words = content_words(text)
        stems = _stems(words)
        kind = answer_type(question, text, asked)
        before = previous.get((number, index - 1), "")
        context = _stems(content_words(f"{hit.chunk.heading or ''} {before} {text}"))
        share = len(asked_stems & stems) / len(asked_stems) if asked_stems else 0.0
        rows.append(
            {
                "cosine": float(cosine),
                "overlap": share,
                "context_overlap": len(asked_stems & context) / len(asked_stems)
                if asked_stems
                else 0.0,
                "novelty": len(stems - asked_stems) / len(stems) if stems else 0.0,
                "answer_type": kind,
                "type_missing": 1.0 if kind == 0.0 else 0.0,
                "rank": 1.0 / number,
                "passage_cosine": float(hit.score),
                "fragment": 1.0 if _is_fragment(text) else 0.0,
                "length": min(len(WORD.findall(text)), 60) / 60,
                "code": 1.0 if _CODE.search(text) else 0.0,
            }
        )
    return rows


def _plain(text: str) -> str:
    """Words only, folded: what makes two texts "the same words"."""
    return " ".join(WORD.findall(fold_accents(text.lower())))


def _is_fragment(text: str) -> bool:
    """A heading, a label or a list line: no closing punctuation and under eight words."""
    stripped = text.rstrip()
    return stripped.lstrip("#").strip() == "" or (
        stripped[-1] not in ".!?:;)\"'”»" and len(WORD.findall(stripped)) < 8
    )


def _with_neighbours(
    best: Sentence, ranked: Sequence[Sentence], passage: str | None = None, question: str = ""
) -> tuple[Sentence, ...]:
    """The best sentence, the one before it if it leans on it, the items of a list it opens
    (up to a blank line in ``passage``, the passage's text), and the sentences after one
    that only restates the question ("Here's to the crazy ones." → "The misfits. …")."""
    same = {c.index: c for c in ranked if c.number == best.number}
    chosen = [best]
    first = WORD.findall(fold_accents(best.text[:40].lower()))[:1]
    if first and first[0] in _ANAPHORA and best.index - 1 in same:
        chosen.append(same[best.index - 1])
    if _LIST_OPENER.search(best.text):
        last = best
        while last.index + 1 in same and len(chosen) <= MAX_LIST_ITEMS:
            item = same[last.index + 1]
            if passage is not None and "\n\n" in passage[last.end : item.start]:
                break  # the list ended with its paragraph
            chosen.append(item)
            last = item
        return tuple(chosen)
    if question and len(_stems(content_words(best.text)) - _stems(content_words(question))) <= 1:
        last = best
        while last.index + 1 in same and len(chosen) < MAX_SPANS:
            item = same[last.index + 1]
            if passage is not None and "\n\n" in passage[last.end : item.start]:
                break
            chosen.append(item)
            last = item
    return tuple(chosen[:MAX_SPANS])

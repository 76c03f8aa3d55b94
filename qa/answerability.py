"""Decide: do the selected sentences answer *this* question, about *this* entity?

One place decides, before anything is composed, from the evidence alone
(``qa/evidence.py``); the verdict carries every reason and signal:

1. **Nothing close.** The best passage's cosine is under the embedder's floor.
2. **Named terms.** The question's names and acronyms (``key_terms``) must each be
   mentioned by the passages; a question about an entity the documents never name
   is refused however similar the passages look ("near miss").
3. **About this entity.** The evidence must sit near a mention of those names: the
   evidence sentences, the ``NEIGHBOUR_SENTENCES`` before them in their passage, or
   the passage heading. A figure stated about another entity is not an answer.
4. **A calibrated score.** A logistic model over evidence signals (the selector's
   probability for the best sentence, its lead over the runner-up, the share of the
   question's content words around it) with a threshold chosen for refusal
   precision, fitted on the even articles of SQuAD-es v2 dev and reported on the
   odd ones (``bench/fit_evidence.py calibrate``, ``answerability.json``).

Checks 1-3 hold by construction (no fitted number); check 4 is the only learnt
one and is kept to few signals so that it carries over to unseen documents.

Words are matched after case and accent folding, with a short suffix allowance
("Normans" / "Normandy" do not match; "Denver's" / "Denver" do).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..text import DIGIT_GROUPS, STOP_WORDS, content_words, fold_accents

if TYPE_CHECKING:
    from .evidence import Evidence

_TOKEN = re.compile(r"\w+(?:[-'’]\w+)*", re.UNICODE)
_WORD = re.compile(r"\w+", re.UNICODE)

# Question words and other capitalised words that name nothing in the documents.
_NOT_NAMES = frozenset(
    fold_accents(w)
    for w in (
        "qué cuál cuáles quién quiénes cuánto cuántos cuánta cuántas dónde cuándo cómo por "
        "what which who whom whose where when why how many much according during "
        "i a an the el la los las un una yes no sí si"
    ).split()
)
# Two spellings this alike (difflib ratio, lengths within one) are one name:
# "ghandi"/"gandhi" 0.83 and "arpnet"/"arpanet" 0.92 are; "peter"/"petra" 0.80 and
# "normans"/"normandy" 0.80 are not, nor "austria"/"australia" (lengths differ by two).
SPELLING_SIMILARITY = 0.82
# Sentences before the quoted one that may still name its subject ("X was … . It has …").
# Replayed on SQuAD-es v2 and XQuAD es, 4 refused fewer right answers than 2 and
# caught the same borrowed ones (docs/quality.md).
NEIGHBOUR_SENTENCES = 4


def key_terms(question: str) -> tuple[str, ...]:
    """The names and acronyms of the question, folded: what the answer must be about.

    A word counts when it is capitalised but does not open the question, or is an
    acronym; adjacent ones form one name ("graham twigg"). Figures alone do not
    count: questions often carry a year the passage leaves implicit. Common
    capitalised question words ("Qué", "How") never count.
    """
    return tuple(dict.fromkeys(name for name, _, _ in name_spans(question)))


def name_spans(question: str) -> list[tuple[str, int, int]]:
    """Each name of the question, folded, with its character span in the question."""
    spans: list[tuple[list[str], int, int]] = []
    first = True
    for match in _TOKEN.finditer(question):
        word = match.group()
        folded = fold_accents(word.lower())
        opening, first = first, False
        if folded in _NOT_NAMES or (folded in STOP_WORDS and not word.isupper()):
            continue
        if not any(ch.isalpha() for ch in word):
            continue
        acronym = len(word) >= 2 and word.isupper()
        if not (acronym or (word[0].isupper() and not opening)):
            continue
        parts = _WORD.findall(folded)
        if spans and question[spans[-1][2] : match.start()].strip() == "":
            spans[-1] = (spans[-1][0] + parts, spans[-1][1], match.end())
        else:
            spans.append((parts, match.start(), match.end()))
    return [(" ".join(parts), start, end) for parts, start, end in spans if parts]


def words_of(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(fold_accents(DIGIT_GROUPS.sub("", text.lower()))))


@dataclass(frozen=True)
class Vocabulary:
    """What some passages can be said to name: their words, those written as names, initials."""

    words: frozenset[str]
    names: frozenset[str]  # folded words the passages write with a capital letter
    initials: str

    @classmethod
    def of(cls, texts: Sequence[str]) -> Vocabulary:
        words: set[str] = set()
        names: set[str] = set()
        for text in texts:
            words |= words_of(text)
            names |= {w for t in _TOKEN.findall(text) if t[0].isupper() for w in words_of(t)}
        return cls(frozenset(words), frozenset(names), " ".join(_initials(t) for t in texts))


def _word_mentioned(word: str, words: frozenset[str]) -> bool:
    if word in words:
        return True
    if len(word) < 5:
        return False
    # Inflections and possessives ("grammys"/"grammy", "denvers"/"denver") and slips
    # of spelling ("ghandi"/"gandhi", "arpnet"/"arpanet") still name the same thing.
    for other in words:
        if abs(len(other) - len(word)) > 2 or other[0] != word[0] or len(other) < 5:
            continue
        if other.startswith(word) or word.startswith(other):
            return True
        if (
            abs(len(other) - len(word)) <= 1
            and SequenceMatcher(None, word, other).ratio() >= SPELLING_SIMILARITY
        ):
            return True
    return False


def _initials(text: str) -> str:
    """Initials of runs of capitalised words, to find "AAA" written out in full."""
    letters = []
    for word in _TOKEN.findall(text):
        if word[0].isupper():
            letters.append(fold_accents(word[0].lower()))
        elif fold_accents(word.lower()) not in STOP_WORDS:
            letters.append(" ")
    return "".join(letters)


def mentions(name: str, vocabulary: Vocabulary) -> bool:
    """Whether passages with this vocabulary name ``name``.

    A one-word name may appear in any case. Of a longer name, every word, or one
    word written as a name: "Twigg" names "Graham Twigg", but the common word
    "large" does not name "Mistral Large".
    """
    parts = [p for p in name.split() if len(p) >= 3 and not p.isdigit()] or name.split()
    if all(_word_mentioned(p, vocabulary.words) for p in parts):
        return True
    if len(parts) > 1 and any(_word_mentioned(p, vocabulary.names) for p in parts):
        return True
    compact = name.replace(" ", "")
    return 2 <= len(compact) <= 6 and compact in vocabulary.initials


def missing_terms(terms: Sequence[str], passages: Sequence[str]) -> tuple[str, ...]:
    """The terms no passage mentions."""
    vocabulary = Vocabulary.of(passages)
    return tuple(t for t in terms if not mentions(t, vocabulary))


@dataclass(frozen=True)
class Assessment:
    """The verdict on one question and the signals behind it (kept for evaluation)."""

    answerable: bool
    reason: str  # "" when answerable; otherwise why not, in words
    key_terms: tuple[str, ...] = ()
    missing_terms: tuple[str, ...] = ()
    score: float | None = None  # calibrated probability that the evidence answers it
    signals: dict[str, float] = field(default_factory=dict)
    check: str = ""  # which check refused: floor, no_evidence, names, elsewhere, score


@dataclass(frozen=True)
class Calibration:
    """A logistic model over named signals and the threshold below which to refuse."""

    weights: dict[str, float]
    bias: float
    threshold: float
    fitted_on: str = ""

    def probability(self, signals: dict[str, float]) -> float | None:
        if any(name not in signals for name in self.weights):
            return None
        z = self.bias + sum(w * signals[name] for name, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-z))


@lru_cache(maxsize=1)
def _calibrations() -> dict[str, Any]:
    path = resources.files(__package__).joinpath("answerability.json")
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return {}


def calibration_for(embedder_name: str) -> Calibration | None:
    """The calibration fitted with this embedder's evidence scores, or ``None``: then only
    the checks that need no fitted number apply."""
    for entry in _calibrations().get("calibrations", []):
        if entry["embedder"] == embedder_name:
            return Calibration(
                {str(k): float(v) for k, v in entry["weights"].items()},
                float(entry["bias"]),
                float(entry["threshold"]),
                str(entry.get("fitted_on", "")),
            )
    return None


def evidence_signals(evidence: Evidence, around: Sequence[str]) -> dict[str, float]:
    """What the calibrated score reads, all from the evidence (``around``: its
    neighbourhood, ``evidence_neighbourhood``), nothing from a model reply."""
    signals = {"passage_cosine": max((hit.score for hit in evidence.hits), default=0.0)}
    best = evidence.best
    if best is None:
        return signals
    asked = {w if w.isdigit() else w[:5] for w in content_words(evidence.question)}
    held = {w if w.isdigit() else w[:5] for w in content_words(" ".join(around))}
    return {
        **signals,
        "best_score": best.score,
        "margin": evidence.margin,
        "context_overlap": best.features["context_overlap"],
        "best_cosine": best.features["cosine"],
        "type_missing": best.features.get("type_missing", 0.0),
        "words_missing": len(asked - held) / len(asked) if asked else 0.0,
    }


def evidence_neighbourhood(evidence: Evidence) -> list[str]:
    """Each evidence sentence with the ``NEIGHBOUR_SENTENCES`` before it and the heading."""
    from ..text import sentence_spans

    around = []
    for span in evidence.spans:
        chunk = evidence.hits[span.number - 1].chunk
        bounds = sentence_spans(chunk.text)
        first = max(0, span.index - NEIGHBOUR_SENTENCES)
        start = bounds[first][0] if bounds else 0
        around.append(f"{chunk.heading or ''}\n{chunk.text[start : span.end]}")
    return around


def decide(
    question: str,
    evidence: Evidence,
    min_score: float,
    calibration: Calibration | None,
) -> Assessment:
    """The one verdict: answerable from this evidence, or refused with its reason."""
    terms = key_terms(question)
    around = evidence_neighbourhood(evidence)
    signals = evidence_signals(evidence, around)
    best_passage = signals["passage_cosine"]
    if not evidence.hits or best_passage < min_score:
        return Assessment(
            False,
            f"no passage is close to the question (best cosine {best_passage:.2f} < "
            f"{min_score:.2f})",
            terms,
            signals=signals,
            check="floor",
        )
    missing = missing_terms(terms, [hit.chunk.text for hit in evidence.hits])
    if missing:
        return Assessment(
            False,
            f"the passages never mention {', '.join(missing)}",
            terms,
            missing,
            signals=signals,
            check="names",
        )
    if evidence.best is None:
        return Assessment(False, "no sentence of the passages can be quoted", terms,
                          signals=signals, check="no_evidence")  # fmt: skip
    if terms and not any(mentions(t, Vocabulary.of([n])) for n in around for t in terms):
        return Assessment(
            False,
            "the best sentences are about something else, not " + ", ".join(terms),
            terms,
            signals=signals,
            check="elsewhere",
        )
    score = calibration.probability(signals) if calibration else None
    if calibration is not None and score is not None and score < calibration.threshold:
        return Assessment(
            False,
            f"the passages are unlikely to answer it (score {score:.2f} < "
            f"{calibration.threshold:.2f})",
            terms,
            score=score,
            signals=signals,
            check="score",
        )
    return Assessment(True, "", terms, score=score, signals=signals)

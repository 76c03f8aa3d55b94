"""Do the passages answer *this* question, about *this* entity? Decided before a reply is shown.

A small LLM answers whatever it is asked, so three checks stand between its
reply and the reader:

1. **Named terms.** The question's names, acronyms and figures (``key_terms``)
   must each appear in the passages the model was shown. A question about an
   entity the documents never mention is refused before any generation: the
   nearest passages are about something else ("near miss").
2. **Borrowed facts.** Every quote the reply rests on must sit near a mention
   of the question's named terms (the quoted sentence, the four before it, or the
   passage heading). A figure quoted from a sentence about another entity is
   not an answer about this one.
3. **A calibrated score.** A logistic model over signals the pipeline has
   anyway: the best cosine, the share of the question's content words in the
   best passage, and the LLM's probability, at its first decoding step, of
   opening with the refusal sentence. Its weights and threshold are fitted on
   one half of SQuAD-es v2 (``bench/calibrate_answerability.py``) and stored in
   ``answerability.json`` per LLM; the other half is only used for reporting.

Words are matched after case and accent folding, with a short suffix allowance
("Normans" / "Normandy" do not match; "Denver's" / "Denver" do).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from difflib import SequenceMatcher
from functools import lru_cache
from importlib import resources
from typing import Any

from ..text import STOP_WORDS, fold_accents
from .grounding import DIGIT_GROUPS, content_words

_TOKEN = re.compile(r"\w+(?:[-'’]\w+)*", re.UNICODE)
_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])\s+|\n\s*\n")

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


@dataclass(frozen=True)
class Assessment:
    """The verdict on one question and the signals behind it (kept for evaluation)."""

    answerable: bool
    reason: str  # "" when answerable; otherwise why not, in words
    key_terms: tuple[str, ...] = ()
    missing_terms: tuple[str, ...] = ()
    score: float | None = None  # calibrated probability that the passages answer it
    signals: dict[str, float] = field(default_factory=dict)


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


def quote_neighbourhood(passage: str, start: int, heading: str | None = None) -> str:
    """The quoted sentence, the ``NEIGHBOUR_SENTENCES`` before it, and the heading."""
    bounds = [0] + [m.end() for m in _SENTENCE_BOUNDARY.finditer(passage, 0, start)]
    begin = bounds[max(0, len(bounds) - 1 - NEIGHBOUR_SENTENCES)]
    end_match = _SENTENCE_BOUNDARY.search(passage, start)
    end = end_match.start() if end_match else len(passage)
    return f"{heading or ''}\n{passage[begin:end]}"


def borrowed(terms: Sequence[str], neighbourhoods: Sequence[str]) -> bool:
    """True when no quote's neighbourhood names any of the question's terms."""
    if not terms or not neighbourhoods:
        return False
    return not any(mentions(t, Vocabulary.of([n])) for n in neighbourhoods for t in terms)


def question_overlap(question: str, passage: str) -> float:
    """Share of the question's content words that ``passage`` holds."""
    asked = content_words(question)
    if not asked:
        return 1.0
    return len(asked & content_words(passage)) / len(asked)


# -- the calibrated score ---------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """A logistic model over named signals and the threshold below which to refuse."""

    weights: dict[str, float]
    bias: float
    threshold: float
    fitted_on: str = ""

    def probability(self, signals: dict[str, float]) -> float | None:
        if any(name not in signals for name in self.weights):
            return None  # a signal this generator cannot give: no score, no verdict
        z = self.bias + sum(w * signals[name] for name, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-z))


@lru_cache(maxsize=1)
def _calibrations() -> dict[str, Any]:
    path = resources.files(__package__).joinpath("answerability.json")
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return {}


def calibration_for(generator_name: str, embedder_name: str) -> Calibration | None:
    """The fitted calibration for this LLM and embedder (cosines differ between embedders),
    or ``None``: then only the named-term and borrowed-fact checks apply."""
    for entry in _calibrations().get("calibrations", []):
        if entry["generator"] == generator_name and entry["embedder"] == embedder_name:
            return Calibration(
                {str(k): float(v) for k, v in entry["weights"].items()},
                float(entry["bias"]),
                float(entry["threshold"]),
                str(entry.get("fitted_on", "")),
            )
    return None


def signals(
    best_cosine: float, overlap: float, refusal_probability: float | None
) -> dict[str, float]:
    """The calibrated model's inputs, by name (absent when the generator cannot probe)."""
    values = {"best_cosine": best_cosine, "question_overlap": overlap}
    if refusal_probability is not None:
        # log-odds: the raw probability crowds near 0 and 1.
        p = min(max(refusal_probability, 1e-6), 1 - 1e-6)
        values["refusal_logit"] = math.log(p / (1 - p))
    return values


def before_answering(question: str, passages: Sequence[str]) -> Assessment:
    """Check 1: are the question's named terms in the passages the model will see?"""
    terms = key_terms(question)
    missing = missing_terms(terms, passages)
    if missing:
        return Assessment(False, f"the passages never mention {', '.join(missing)}", terms, missing)
    return Assessment(True, "", terms)


def after_first_step(
    assessment: Assessment, calibration: Calibration | None, values: dict[str, float]
) -> Assessment:
    """Check 3, once the first decoding step has given the refusal probability."""
    score = calibration.probability(values) if calibration else None
    updated = replace(assessment, score=score, signals=dict(values))
    if updated.answerable and calibration is not None and score is not None:
        if score < calibration.threshold:
            return replace(
                updated,
                answerable=False,
                reason=f"the passages are unlikely to answer it (score {score:.2f} < "
                f"{calibration.threshold:.2f})",
            )
    return updated


def after_quoting(assessment: Assessment, neighbourhoods: Sequence[str]) -> Assessment:
    """Check 2: the quotes must be about the question's named terms."""
    is_borrowed = borrowed(assessment.key_terms, neighbourhoods)
    updated = replace(assessment, signals={**assessment.signals, "borrowed": float(is_borrowed)})
    if updated.answerable and is_borrowed:
        return replace(
            updated,
            answerable=False,
            reason="the quoted passages state it about something else, not "
            + ", ".join(assessment.key_terms),
        )
    return updated

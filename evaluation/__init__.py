"""``kbqa eval``: retrieval quality on BEIR sets, answer quality on SQuAD-format sets.

- ``retrieval``: BEIR folders, nDCG/recall/MRR from ranx.
- ``squad``: SQuAD-format questions through the whole answer pipeline; EM, F1,
  gold contained, refusals.
- ``statistics``: means with bootstrap 95 % CIs; paired comparison of two runs.
- ``configuration``: what produced a result; the knowledge-base folder of a data set
  (keyed by its content, so re-runs embed nothing and an ablation reruns only what
  changed).
"""

from .configuration import knowledge_base_name, run_configuration
from .retrieval import RETRIEVAL_METRICS, BeirSet, evaluate_retrieval, load_beir
from .squad import (
    Question,
    evaluate_answers,
    exact_match,
    f1_score,
    gold_contained,
    load_squad,
    normalize_answer,
    retrieval_pairs,
)
from .statistics import answer_intervals, bootstrap_ci, compare_answers, summarize_answers

__all__ = [
    "RETRIEVAL_METRICS",
    "BeirSet",
    "Question",
    "answer_intervals",
    "bootstrap_ci",
    "compare_answers",
    "evaluate_answers",
    "evaluate_retrieval",
    "exact_match",
    "f1_score",
    "gold_contained",
    "knowledge_base_name",
    "load_beir",
    "load_squad",
    "normalize_answer",
    "retrieval_pairs",
    "run_configuration",
    "summarize_answers",
]

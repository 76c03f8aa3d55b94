"""kbqa eval's instrument: sentence answers judged by containment, CIs, paired comparison."""

from __future__ import annotations

import pytest

from kbqa.evaluation import bootstrap_ci, compare_answers, gold_contained


def test_a_sentence_answer_contains_its_gold_span() -> None:
    assert gold_contained(
        "GPT-3 tiene 175 000 millones de parámetros [1].", ["175 000 millones"], "es"
    )
    assert gold_contained("The answer is The Beatles.", ["the Beatles"], "en")
    assert not gold_contained("It has 17 layers.", ["175"], "en")  # whole tokens, not digits
    assert not gold_contained("", ["Paris"], "en")
    assert gold_contained("", [], "en")  # unanswerable: an empty prediction is right


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_data() -> None:
    few = [1.0, 0.0] * 20
    many = [1.0, 0.0] * 500
    low, high = bootstrap_ci(few)
    assert low < 0.5 < high
    low_many, high_many = bootstrap_ci(many)
    assert low_many < 0.5 < high_many and (high_many - low_many) < (high - low) / 3
    assert bootstrap_ci(few) == bootstrap_ci(few)  # seeded
    assert bootstrap_ci([3.0] * 10) == (3.0, 3.0)


def _row(identifier: str, f1: float, refused: bool = False) -> dict[str, object]:
    return {
        "id": identifier, "impossible": False, "exact_match": float(f1 == 1), "f1": f1,
        "gold_contained": f1, "gold_rank": 1, "gold_in_prompt": True, "refused": refused,
        "total_s": 1.0,
    }  # fmt: skip


def test_paired_comparison_uses_only_shared_questions() -> None:
    first = [_row(str(i), 0.0) for i in range(100)] + [_row("only-first", 1.0)]
    second = [_row(str(i), 1.0 if i < 60 else 0.0) for i in range(100)]
    result = compare_answers(first, second)
    assert result["paired_questions"] == 100
    f1 = result["metrics"]["f1"]
    assert f1["first"] == 0 and f1["second"] == 60 and f1["difference"] == 60
    low, high = f1["ci95"]
    assert 45 < low < 60 < high < 75
    same = compare_answers(first, first)["metrics"]["f1"]
    assert same["difference"] == 0 and same["ci95"] == (0.0, 0.0)


@pytest.mark.parametrize("values", [[], [1.0]])
def test_tiny_samples_do_not_crash(values: list[float]) -> None:
    low, high = bootstrap_ci(values)
    assert (low != low and high != high) or low == high == 1.0  # nan for no data

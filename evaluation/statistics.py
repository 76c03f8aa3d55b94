"""Means, bootstrap confidence intervals and paired comparisons of ``eval qa`` results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def bootstrap_ci(
    values: Sequence[float], resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (seeded: same data, same CI)."""
    import numpy as np

    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        return (float("nan"), float("nan"))
    draws = np.random.default_rng(seed).integers(0, len(data), (resamples, len(data)))
    means = data[draws].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return (round(float(low), 4), round(float(high), 4))


# Per-question values behind each mean in ``summarize_answers``: (metric, rows, value).
def _answer_metrics(results: Sequence[dict[str, Any]], recall_k: int) -> dict[str, list[float]]:
    answerable = [r for r in results if not r["impossible"]]
    impossible = [r for r in results if r["impossible"]]
    metrics = {
        "exact_match": [100 * r["exact_match"] for r in answerable],
        "f1": [100 * r["f1"] for r in answerable],
        "gold_contained": [100 * r.get("gold_contained", 0.0) for r in answerable],
        "recall@1": [float(r["gold_rank"] == 1) for r in answerable],
        f"recall@{recall_k}": [float(r["gold_rank"] is not None) for r in answerable],
        "gold_in_prompt": [float(r["gold_in_prompt"]) for r in answerable],
        "wrong_refusals": [float(r["refused"]) for r in answerable],
    }
    if impossible:
        metrics["refusal_recall"] = [float(r["refused"]) for r in impossible]
    return metrics


def compare_answers(
    first: Sequence[dict[str, Any]], second: Sequence[dict[str, Any]], recall_k: int = 5
) -> dict[str, Any]:
    """Paired comparison of two runs over the same questions: second minus first.

    Only questions present in both runs count; each metric's difference gets a
    paired bootstrap 95 % CI (questions resampled together), so a gap whose CI
    spans 0 is not a difference.
    """
    by_id = {r["id"]: r for r in second}
    pairs = [(r, by_id[r["id"]]) for r in first if r["id"] in by_id]
    left = _answer_metrics([a for a, _ in pairs], recall_k)
    right = _answer_metrics([b for _, b in pairs], recall_k)
    table: dict[str, Any] = {}
    for name, values in left.items():
        differences = [b - a for a, b in zip(values, right[name], strict=True)]
        if not differences:
            continue
        table[name] = {
            "first": round(sum(values) / len(values), 4),
            "second": round(sum(right[name]) / len(values), 4),
            "difference": round(sum(differences) / len(differences), 4),
            "ci95": bootstrap_ci(differences),
            "questions": len(differences),
        }
    return {"paired_questions": len(pairs), "metrics": table}


def summarize_answers(results: Sequence[dict[str, Any]], recall_k: int) -> dict[str, float]:
    def mean(values: Sequence[float]) -> float:
        return round(sum(values) / len(values), 4) if values else float("nan")

    summary = {name: mean(values) for name, values in _answer_metrics(results, recall_k).items()}
    summary.pop("refusal_recall", None)
    summary["median_total_s"] = (
        sorted(r["total_s"] for r in results)[len(results) // 2] if results else float("nan")
    )
    impossible = [r for r in results if r["impossible"]]
    if impossible:
        refused = [r for r in results if r["refused"]]
        true_refusals = sum(r["impossible"] for r in refused)
        summary["refusal_precision"] = round(true_refusals / len(refused), 4) if refused else 0.0
        summary["refusal_recall"] = round(true_refusals / len(impossible), 4)
    return summary


def answer_intervals(
    results: Sequence[dict[str, Any]], recall_k: int
) -> dict[str, tuple[float, float]]:
    """95 % bootstrap CI of each mean in the summary (refusal precision excepted)."""
    return {
        name: bootstrap_ci(values)
        for name, values in _answer_metrics(results, recall_k).items()
        if values
    }

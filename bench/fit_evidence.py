"""Fit and measure the evidence selector (``qa/evidence.py``, ``qa/evidence.json``).

The selector is fitted on SQuAD *train* articles only (``../shared/data/squad-train``)
and reported on XQuAD es/en, which it never saw:

    python bench/fit_evidence.py fit      # features of squad-train → qa/evidence.json
    python bench/fit_evidence.py report   # XQuAD es/en: cosine baseline vs fitted, 95 % CIs
    python bench/fit_evidence.py --smoke  # a few questions of tests/data, any output

Each data set becomes a knowledge base of its paragraphs (cached under
``$TMPDIR/kbqa-evidence``), the questions retrieve their top-5 passages (hybrid,
as ``kbqa ask`` does), and every sentence of those passages is a candidate; the
label is whether it holds a gold answer. Sentence vectors are computed once per
distinct sentence, so a run takes minutes, not hours.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CACHE = Path(tempfile.gettempdir()) / "kbqa-evidence"
OUT = ROOT / "qa" / "evidence.json"


def load_squad(path: Path) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Paragraphs by key and questions (id, text, answers, paragraph, article, impossible)."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    paragraphs: dict[str, str] = {}
    questions = []
    for a, article in enumerate(data):
        for p, paragraph in enumerate(article["paragraphs"]):
            key = f"a{a:03d}p{p:03d}"
            paragraphs[key] = paragraph["context"].lstrip("\ufeff")
            for qa in paragraph["qas"]:
                questions.append(
                    {
                        "id": qa["id"],
                        "question": qa["question"],
                        "answers": [x["text"] for x in qa.get("answers", [])],
                        "paragraph": key,
                        "article": a,
                        "impossible": bool(qa.get("is_impossible", False)),
                    }
                )
    return paragraphs, questions


def normalize(text: str) -> str:
    from kbqa.text import fold_accents

    return " ".join(fold_accents(text.lower()).split())


def contains_gold(text: str, answers: list[str]) -> bool:
    plain = normalize(text)
    return any(normalize(a) and normalize(a) in plain for a in answers)


def open_kb(name: str, paragraphs: dict[str, str], embedding_model: str) -> Any:
    from kbqa import KnowledgeBase
    from kbqa.settings import load_settings

    digest = hashlib.sha256(json.dumps(paragraphs, sort_keys=True).encode()).hexdigest()[:12]
    folder = CACHE / f"{name}-{embedding_model}-{digest}"
    settings = load_settings(embedding_model=embedding_model)
    kb = KnowledgeBase.open(folder, settings=settings)
    kb.add_texts([(f"{key}.txt", text) for key, text in paragraphs.items()], scheme="squad")
    return kb


def passage_vectors(embedder: Any, texts: list[str]) -> dict[str, np.ndarray]:
    """Passage vectors of ``texts``, kept on disk by text hash between runs (fitting is
    rerun as features change; the sentences and their vectors do not)."""
    path = CACHE / f"vectors-{embedder.name}.npz"
    known: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path, allow_pickle=False) as stored:
            known = dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))
    key = {t: hashlib.sha1(t.encode()).hexdigest() for t in texts}
    missing = sorted({t for t in texts if key[t] not in known})
    if missing:
        print(f"  {len(missing)} new sentences to embed", file=sys.stderr)
        for text, vector in zip(missing, embedder.embed_passages(missing), strict=True):
            known[key[text]] = vector
        keys = sorted(known)
        partial = path.with_suffix(f".{os.getpid()}.npz")
        np.savez(partial, keys=np.array(keys), vectors=np.stack([known[k] for k in keys]))
        os.replace(partial, path)  # runs in parallel never read a half-written file
    return {t: known[key[t]] for t in texts}


def retrieved(
    kb: Any, questions: list[dict[str, Any]], k: int = 5, filter_instructions: bool = True
) -> list[tuple[Any, Any, np.ndarray]]:
    """Per question: its hits, candidate spans and their cosines, as ``kbqa ask`` has them
    (sentence vectors from the on-disk cache, queries embedded in one batch)."""
    from kbqa.qa.evidence import candidate_spans

    hits_per_question = kb.search_many([q["question"] for q in questions], k)
    spans_per_question = [candidate_spans(h, filter_instructions) for h in hits_per_question]
    texts = sorted(
        {
            hits[n - 1].chunk.text[s:e]
            for hits, spans in zip(hits_per_question, spans_per_question, strict=True)
            for n, _, s, e in spans
        }
    )
    vectors = passage_vectors(kb.embedder, texts)
    queries = kb.embedder.embed_queries([q["question"] for q in questions])
    return [
        (
            hits,
            spans,
            np.array([float(vectors[hits[n - 1].chunk.text[s:e]] @ query) for n, _, s, e in spans]),
        )  # fmt: skip
        for hits, spans, query in zip(hits_per_question, spans_per_question, queries, strict=True)
    ]


def candidate_rows(
    kb: Any, questions: list[dict[str, Any]], k: int = 5, filter_instructions: bool = True
) -> list[dict[str, Any]]:
    """For each question: its candidate sentences with features, cosine and label."""
    from kbqa.qa.evidence import sentence_features

    rows = []
    for q, (hits, spans, cosines) in zip(
        questions, retrieved(kb, questions, k, filter_instructions), strict=True
    ):
        sentence_texts = [hits[n - 1].chunk.text[s:e] for n, _, s, e in spans]
        features = sentence_features(q["question"], hits, spans, cosines) if spans else []
        rows.append(
            {
                "id": q["id"],
                "question": q["question"],
                "answers": q["answers"],
                "impossible": q["impossible"],
                "article": q["article"],
                "best_passage_cosine": max((h.score for h in hits), default=0.0),
                "gold_retrieved": any(contains_gold(h.chunk.text, q["answers"]) for h in hits),
                "candidates": [
                    {
                        "number": n,
                        "index": i,
                        "text": t,
                        "features": f,
                        "label": contains_gold(t, q["answers"]),
                    }
                    for (n, i, _, _), t, f in zip(spans, sentence_texts, features, strict=True)
                ],
            }
        )
    return rows


def evidences(
    kb: Any, questions: list[dict[str, Any]], k: int = 5, selector: Any = None
) -> list[Any]:
    """The evidence ``kbqa ask`` would select for each question (default: fitted selector)."""
    from kbqa.qa.evidence import fitted_selector, rank_evidence

    selector = selector or fitted_selector(kb.embedder.name)
    return [
        rank_evidence(q["question"], hits, spans, cosines, selector)
        for q, (hits, spans, cosines) in zip(questions, retrieved(kb, questions, k), strict=True)
    ]


def verdict_rows(kb: Any, questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per question: the checks that need no fitted number, and the calibrated signals."""
    from kbqa.qa.answerability import decide
    from kbqa.qa.verify import evidence_answer
    from kbqa.settings import load_settings

    floor = load_settings().answer_options(kb.embedder.name).min_score
    rows = []
    for q, evidence in zip(questions, evidences(kb, questions), strict=True):
        verdict = decide(q["question"], evidence, floor, None)
        shown = evidence_answer(evidence).text if evidence.spans else ""
        rows.append(
            {
                "id": q["id"],
                "article": q["article"],
                "impossible": q["impossible"],
                "check": verdict.check,
                "signals": verdict.signals,
                "contains_gold": bool(shown) and contains_gold(shown, q["answers"]),
            }
        )
    return rows


def fit(rows: list[dict[str, Any]]) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    from kbqa.qa.evidence import FEATURES

    x, y = [], []
    for row in rows:
        if not any(c["label"] for c in row["candidates"]):
            continue  # nothing right to choose: says nothing about choosing
        for c in row["candidates"]:
            x.append([c["features"][f] for f in FEATURES])
            y.append(int(c["label"]))
    model = LogisticRegression(C=1.0, max_iter=1000).fit(np.array(x), np.array(y))
    return {
        "weights": {f: round(float(w), 4) for f, w in zip(FEATURES, model.coef_[0], strict=True)},
        "bias": round(float(model.intercept_[0]), 4),
        "examples": len(y),
    }


SIGNALS = ("best_score", "margin", "context_overlap", "best_cosine", "passage_cosine")
# The threshold is the lowest score at which refusals on the fitting half are at least
# this precise: refusing an answerable question is the failure users notice most.
TARGET_PRECISION = 0.85


def refusal_report(
    rows: list[dict[str, Any]], calibration: dict[str, Any] | None
) -> dict[str, Any]:
    """Refusal precision/recall and answerable refused, with the calibrated score applied."""
    from kbqa.qa.answerability import Calibration

    model = Calibration(calibration["weights"], calibration["bias"], calibration["threshold"]) \
        if calibration else None  # fmt: skip
    refused_right = refused_wrong = answerable = unanswerable = kept_right = 0
    by_check: dict[str, int] = {}
    for row in rows:
        check = row["check"]
        if not check and model is not None:
            score = model.probability(row["signals"])
            check = "score" if score is not None and score < model.threshold else ""
        by_check[check or "answered"] = by_check.get(check or "answered", 0) + 1
        if row["impossible"]:
            unanswerable += 1
            refused_right += bool(check)
        else:
            answerable += 1
            refused_wrong += bool(check)
            kept_right += (not check) and row["contains_gold"]
    refused = refused_right + refused_wrong
    return {
        "questions": len(rows),
        "unanswerable": unanswerable,
        "refused": refused,
        "by_check": by_check,
        "refusal_precision": round(refused_right / refused, 3) if refused else None,
        "refusal_precision_ci95": wilson(refused_right, refused),
        "refusal_recall": round(refused_right / unanswerable, 3) if unanswerable else None,
        "refusal_recall_ci95": wilson(refused_right, unanswerable),
        "answerable_refused": round(refused_wrong / answerable, 3) if answerable else None,
        "answerable_refused_ci95": wilson(refused_wrong, answerable),
        "answerable_shown_with_gold": round(kept_right / answerable, 3) if answerable else None,
        "answerable_shown_with_gold_ci95": wilson(kept_right, answerable),
    }


def calibrate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Logistic regression on the rows the construction checks let through; the threshold
    for ``TARGET_PRECISION`` over all refusals of these rows."""
    from sklearn.linear_model import LogisticRegression

    open_rows = [r for r in rows if not r["check"]]
    x = np.array([[r["signals"][f] for f in SIGNALS] for r in open_rows])
    y = np.array([0 if r["impossible"] else 1 for r in open_rows])
    model = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)
    weights = {f: round(float(w), 4) for f, w in zip(SIGNALS, model.coef_[0], strict=True)}
    scores = model.predict_proba(x)[:, 1]
    already = sum(1 for r in rows if r["check"] and r["impossible"])
    already_wrong = sum(1 for r in rows if r["check"] and not r["impossible"])
    best = 0.0
    for threshold in np.arange(0.05, 0.95, 0.01):
        refused = scores < threshold
        right = already + int(((y == 0) & refused).sum())
        wrong = already_wrong + int(((y == 1) & refused).sum())
        if right + wrong and right / (right + wrong) >= TARGET_PRECISION:
            best = float(threshold)
    return {"weights": weights, "bias": round(float(model.intercept_[0]), 4),
            "threshold": round(best, 2)}  # fmt: skip


def wilson(successes: int, n: int) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    z = 1.96
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return (round(centre - half, 3), round(centre + half, 3))


def evidence_containment(kb: Any, questions: list[dict[str, Any]], selector: Any) -> dict[str, Any]:
    """Share of answerable questions whose evidence (as ``kbqa ask`` selects it, neighbours
    included) holds a gold answer; and the best sentence alone."""
    answerable = [q for q in questions if not q["impossible"]]
    best_hits = evidence_hits = spans = 0
    for q, evidence in zip(answerable, evidences(kb, answerable, selector=selector), strict=True):
        if evidence.best is None:
            continue
        best_hits += contains_gold(evidence.best.text, q["answers"])
        evidence_hits += contains_gold(" ".join(s.text for s in evidence.spans), q["answers"])
        spans += len(evidence.spans)
    n = len(answerable)
    return {
        "questions": n,
        "best_sentence_contains_gold": round(best_hits / n, 3),
        "best_sentence_ci95": wilson(best_hits, n),
        "evidence_contains_gold": round(evidence_hits / n, 3),
        "evidence_ci95": wilson(evidence_hits, n),
        "mean_spans": round(spans / n, 2),
    }


def sample(questions: list[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    if limit and limit < len(questions):
        return sorted(random.Random(0).sample(questions, limit), key=lambda q: q["id"])
    return questions


def rows_for(
    name: str, path: Path, limit: int | None, embedding_model: str
) -> list[dict[str, Any]]:
    paragraphs, questions = load_squad(path)
    if limit and limit < len(questions):
        questions = sorted(random.Random(0).sample(questions, limit), key=lambda q: q["id"])
    started = time.perf_counter()
    kb = open_kb(name, paragraphs, embedding_model)
    rows = candidate_rows(kb, questions)
    print(
        f"{name}: {len(rows)} questions in {time.perf_counter() - started:.0f} s", file=sys.stderr
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "command", nargs="?", choices=["fit", "report", "calibrate"], default="report"
    )
    parser.add_argument("--embedding-model", default="multilingual-e5-small")
    parser.add_argument("--limit", type=int, default=300, help="questions per XQuAD language")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument(
        "--runner-up",
        type=float,
        nargs="*",
        default=None,
        help="report: also measure these RUNNER_UP_SHARE values (1.1 = never)",
    )
    parser.add_argument("--write", action="store_true", help="calibrate: store the result")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from kbqa.qa.evidence import COSINE_ONLY, Selector, fitted_selector

    if args.smoke:
        smoke_file = ROOT / "tests" / "data" / "squad-sample.json"
        paragraphs, questions = load_squad(smoke_file)
        kb = open_kb("smoke", paragraphs, "all-MiniLM-L6-v2")
        questions = sample(questions, 10)
        rows = candidate_rows(kb, questions)
        result = {"smoke": True, "fitted": fit(rows) if len(rows) > 2 else None}
        result["report"] = evidence_containment(kb, questions, COSINE_ONLY)
        _write(result, args.out or Path(tempfile.gettempdir()) / "fit_evidence_smoke.json")
        return 0
    if args.command == "fit":
        rows = []
        for part in ("train-v1.1-first11.json", "train-v2.0-first10.json"):
            rows += rows_for(part, DATA / "squad-train" / part, None, args.embedding_model)
        seen: set[str] = set()
        rows = [r for r in rows if not (r["id"] in seen or seen.add(r["id"]))]  # type: ignore[func-returns-value]
        fitted = fit(rows)
        fitted.update(
            embedder=args.embedding_model,
            fitted_on="SQuAD v1.1/v2.0 train, first articles (../shared/data/squad-train), "
            f"{len(rows)} questions; bench/fit_evidence.py fit",
        )
        current = json.loads(OUT.read_text()) if OUT.exists() else {"selectors": []}
        others = [s for s in current["selectors"] if s["embedder"] != args.embedding_model]
        OUT.write_text(json.dumps({"selectors": [*others, fitted]}, indent=2) + "\n")
        print(json.dumps(fitted, indent=2))
        return 0
    if args.command == "calibrate":
        return run_calibration(args)
    fitted_selector.cache_clear()
    selector: Selector = fitted_selector(args.embedding_model)
    result: dict[str, Any] = {"selector": selector.__dict__, "sets": {}}
    for lang in ("es", "en"):
        paragraphs, questions = load_squad(DATA / "xquad" / f"xquad.{lang}.json")
        kb = open_kb(f"xquad-{lang}", paragraphs, args.embedding_model)
        questions = sample(questions, args.limit)
        result["sets"][f"xquad-{lang}"] = {
            "cosine_only": evidence_containment(kb, questions, COSINE_ONLY),
            "fitted": evidence_containment(kb, questions, selector),
        }
        import kbqa.qa.evidence as module

        shipped = module.RUNNER_UP_SHARE
        for share in args.runner_up or []:
            module.RUNNER_UP_SHARE = share
            result["sets"][f"xquad-{lang}"][f"fitted, runner-up share {share}"] = (
                evidence_containment(kb, questions, selector)
            )
        module.RUNNER_UP_SHARE = shipped
        print(lang, json.dumps(result["sets"][f"xquad-{lang}"]), file=sys.stderr)
    _write(result, args.out or ROOT / "bench" / "results" / "evidence.json")
    return 0


def run_calibration(args: argparse.Namespace) -> int:
    """Fit the refusal score on the even articles of SQuAD-es v2 dev, report on the odd
    ones, and on XQuAD es/en (all answerable: every refusal there is wrong)."""
    paragraphs, questions = load_squad(DATA / "squad-es" / "dev-v2.0-es.json")
    kb = open_kb("squad-es-v2", paragraphs, args.embedding_model)
    rows = verdict_rows(kb, questions)
    even = [r for r in rows if r["article"] % 2 == 0]
    odd = [r for r in rows if r["article"] % 2 == 1]
    fitted = calibrate(even)
    fitted.update(
        embedder=args.embedding_model,
        signals=list(SIGNALS),
        fitted_on="SQuAD-es v2 dev, even articles (calibration half); "
        "bench/fit_evidence.py calibrate",
    )
    result: dict[str, Any] = {
        "calibration": fitted,
        "squad-es-v2-even (fitting half)": refusal_report(even, fitted),
        "squad-es-v2-odd (reporting half)": refusal_report(odd, fitted),
        "squad-es-v2-odd, construction checks only": refusal_report(odd, None),
    }
    for lang in ("es", "en"):
        paragraphs, questions = load_squad(DATA / "xquad" / f"xquad.{lang}.json")
        if args.limit and args.limit < len(questions):
            questions = sorted(random.Random(0).sample(questions, args.limit),
                               key=lambda q: q["id"])  # fmt: skip
        kb = open_kb(f"xquad-{lang}", paragraphs, args.embedding_model)
        result[f"xquad-{lang}"] = refusal_report(verdict_rows(kb, questions), fitted)
        # The near-miss set: XQuAD questions whose name is swapped for one no paragraph
        # holds (bench/near_miss.py); every one should be refused.
        swaps = json.loads((ROOT / "bench" / "data" / "near-miss.json").read_text("utf-8"))
        near = [
            {"id": s["id"], "question": s["question"], "answers": [], "article": -1,
             "impossible": True}
            for s in swaps if s["language"] == lang
        ]  # fmt: skip
        result[f"near-miss-{lang}"] = refusal_report(verdict_rows(kb, near), fitted)
    fitted["reported_on_other_half"] = result["squad-es-v2-odd (reporting half)"]
    if args.write:
        target = ROOT / "qa" / "answerability.json"
        target.write_text(json.dumps({"calibrations": [fitted]}, indent=2) + "\n")
    _write(result, args.out or ROOT / "bench" / "results" / "answerability.json")
    return 0


def _write(result: dict[str, Any], out: Path) -> None:
    """``result`` with the commit, the machine and the settings (bench/common.py)."""
    sys.path.insert(0, str(ROOT))
    from bench.common import write_result

    write_result(out, result)
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    raise SystemExit(main())

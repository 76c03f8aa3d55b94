"""Answer quality and speed per answer style and LLM, on the same XQuAD questions.

    python bench/answer_styles.py --limit 200                       # es and en, 0.5B
    python bench/answer_styles.py --llms qwen2.5-coder-0.5b-instruct,qwen2.5-coder-1.5b-instruct \\
        --styles short --limit 50 --languages es
    python bench/answer_styles.py --smoke                           # tiny, smallest models

For each question and each (style, LLM): the shown answer (markers stripped) is
scored as SQuAD does (exact match, F1 with the language's articles) and by whether
it contains a gold answer; a refusal scores 0. Seconds are from the question to
the answer shown, models loaded, median and p95. The knowledge base holds every
paragraph of the language's XQuAD file (as ``kbqa eval qa`` builds it), so each
question is answered against all 240 paragraphs, not its own. 95 % intervals are
bootstrap over questions; differences between styles are paired.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "bench"))


def bootstrap(values: list[float], rounds: int = 2000) -> tuple[float, float]:
    rng = random.Random(0)
    means = sorted(sum(rng.choice(values) for _ in values) / len(values) for _ in range(rounds))
    return (round(means[int(0.025 * rounds)], 3), round(means[int(0.975 * rounds)], 3))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--styles", default="evidence,short,sentence")
    parser.add_argument("--llms", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--languages", default="es,en")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument(
        "--int8-decode", default="on", help="on,off: each LLM with and without the int8 copy "
        "of its weights for one-token steps, compared paired (models/int8_decode.py)"
    )  # fmt: skip
    parser.add_argument("--smoke", action="store_true", help="2 questions, smallest models")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from fit_evidence import load_squad, open_kb, sample

    from kbqa.evaluation.squad import exact_match, f1_score, gold_contained
    from kbqa.models.generator import TransformersGenerator
    from kbqa.qa.citations import strip_markers
    from kbqa.settings import load_settings

    int8_values = [value == "on" for value in args.int8_decode.split(",")]
    styles = args.styles.split(",")
    llms = args.llms.split(",")
    languages = args.languages.split(",")
    embedding_model = "multilingual-e5-small"
    if args.smoke:
        llms, languages, args.limit = ["smollm2-135m-instruct"], ["smoke"], 2
        embedding_model = "all-MiniLM-L6-v2"
    settings = load_settings()
    result: dict[str, Any] = {"limit": args.limit, "sets": {}}
    for language in languages:
        path = (
            ROOT / "tests" / "data" / "squad-sample.json"
            if language == "smoke"
            else DATA / "xquad" / f"xquad.{language}.json"
        )
        paragraphs, questions = load_squad(path)
        questions = sample(questions, args.limit)
        kb = open_kb(f"xquad-{language}", paragraphs, embedding_model)
        scoring = "es" if language == "es" else "en"
        rows: dict[str, list[dict[str, Any]]] = {}
        for llm, int8 in [(llm, value) for llm in llms for value in int8_values]:
            kb.generator = TransformersGenerator(
                llm, settings.cache_dir, settings.device, settings.precision,
                int8_decode=int8,
            )  # fmt: skip
            kb.ask(questions[0]["question"], style="short")  # load and warm up
            for style in styles:
                if style == "evidence" and (llm, int8) != (llms[0], int8_values[0]):
                    continue  # no model runs: the same for every LLM
                key = style if style == "evidence" else f"{style} · {llm}"
                if len(int8_values) > 1 and style != "evidence":
                    key += f" · int8 decode {'on' if int8 else 'off'}"
                rows[key] = []
                for q in questions:
                    started = time.perf_counter()
                    answer = kb.ask(q["question"], style=style)
                    seconds = time.perf_counter() - started
                    shown = "" if answer.refused else strip_markers(answer.text)
                    rows[key].append(
                        {
                            "id": q["id"],
                            "shown": shown,
                            "from": answer.shown,
                            "refused": answer.refused,
                            "seconds": seconds,
                            "em": exact_match(shown, q["answers"], scoring),
                            "f1": f1_score(shown, q["answers"], scoring),
                            "contains": gold_contained(shown, q["answers"], scoring),
                        }
                    )
                print(language, key, summarize(rows[key]), file=sys.stderr)
        result["sets"][language] = {
            key: {**summarize(values), "per_question": values} for key, values in rows.items()
        }
        if len(int8_values) > 1:
            result.setdefault("int8_decode_paired", {})[language] = {
                f"{style} · {llm}": paired(
                    rows[f"{style} · {llm} · int8 decode on"],
                    rows[f"{style} · {llm} · int8 decode off"],
                )
                for llm in llms
                for style in styles
                if style != "evidence"
            }
    out = args.out or (
        Path(tempfile.gettempdir()) / "answer_styles_smoke.json"
        if args.smoke
        else ROOT / "bench" / "results" / "answer_styles.json"
    )
    sys.path.insert(0, str(ROOT))
    from bench.common import write_result  # commit, machine and settings beside the figures

    write_result(out, result, args)
    for language, table in result["sets"].items():
        for key, row in table.items():
            print(language, key, {k: v for k, v in row.items() if k != "per_question"})
    for language, table in result.get("int8_decode_paired", {}).items():
        for key, row in table.items():
            print(language, key, "int8 decode on vs off:", row)
    return 0


def paired(on: list[dict[str, Any]], off: list[dict[str, Any]]) -> dict[str, Any]:
    """int8 decode on against off on the same questions: identical answers shown, the F1
    difference (on - off) with its paired bootstrap interval, and the speed ratio."""
    assert [q["id"] for q in on] == [q["id"] for q in off]
    differences = [a["f1"] - b["f1"] for a, b in zip(on, off, strict=True)]
    return {
        "questions": len(on),
        "same_answer": sum(a["shown"] == b["shown"] for a, b in zip(on, off, strict=True)),
        "f1_difference": round(100 * statistics.mean(differences), 1),
        "f1_difference_ci95": [round(100 * x, 1) for x in bootstrap(differences)],
        "seconds_p50_ratio": round(
            statistics.median(a["seconds"] for a in on)
            / statistics.median(b["seconds"] for b in off),
            3,
        ),
    }


def summarize(values: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = [v["seconds"] for v in values]
    f1 = [v["f1"] for v in values]
    contains = [v["contains"] for v in values]
    return {
        "questions": len(values),
        "f1": round(100 * statistics.mean(f1), 1),
        "f1_ci95": [round(100 * x, 1) for x in bootstrap(f1)],
        "exact_match": round(100 * statistics.mean(v["em"] for v in values), 1),
        "contains_gold": round(100 * statistics.mean(contains), 1),
        "contains_gold_ci95": [round(100 * x, 1) for x in bootstrap(contains)],
        "refused": sum(v["refused"] for v in values),
        "draft_shown": sum(v["from"] == "draft" for v in values),
        "seconds_p50": round(statistics.median(seconds), 3),
        "seconds_p95": percentile(seconds, 0.95),
    }


if __name__ == "__main__":
    raise SystemExit(main())

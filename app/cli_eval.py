"""``kbqa eval``: the commands that measure retrieval and answers (``kbqa.evaluation``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .terminal import EXIT_ERROR, EXIT_OK, say


def evaluate(args: argparse.Namespace) -> int:
    """``kbqa eval retrieval`` and ``kbqa eval qa``: run, print the table, write ``--out``."""
    from .. import evaluation
    from ..qa.knowledge_base import KnowledgeBase
    from ..settings import load_settings

    settings = load_settings(
        retrieval=args.retrieval, answer_style=getattr(args, "answer_style", None)
    )
    source = args.beir if args.kind == "retrieval" else (args.passages or args.squad)
    folder = args.kb or settings.home / "eval" / evaluation.knowledge_base_name(
        source, settings.embedding_model, settings.chunk_tokens
    )
    kb = KnowledgeBase.open(folder, settings=settings)
    progress = sys.stderr.isatty()
    if args.kind == "retrieval":
        data = evaluation.load_beir(args.beir, args.split)
        result = evaluation.evaluate_retrieval(kb, data, limit=args.limit, seed=args.seed,
                                               progress=progress)  # fmt: skip
        table = result["metrics"]
        detail = "per_query"
    else:
        from .batch_ray import evaluate_answers_batch

        result = evaluate_answers_batch(kb, args.squad, args.passages, args.limit, args.seed,
                                        settings=settings, engine=args.engine,
                                        address=args.ray_address, progress=progress)  # fmt: skip
        table = result["summary"]
        detail = "per_question"
    result["configuration"] = evaluation.run_configuration(kb)
    result["command"] = "kbqa " + " ".join(sys.argv[1:])
    intervals = result.get("ci95", {})
    for name, value in table.items():
        interval = intervals.get(name)
        shown = f"  95% CI [{interval[0]}, {interval[1]}]" if interval else ""
        say(f"{name:>20}  {value}{shown}")
    counts = {k: v for k, v in result.items() if k not in (detail, "configuration", "metrics",
                                                           "summary", "ci95")}  # fmt: skip
    say(json.dumps(counts, ensure_ascii=False))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n")
        say(f"results written to {args.out}", file=sys.stderr)
    return EXIT_OK


def compare_runs(first: Path, second: Path) -> int:
    """``kbqa eval compare``: second run minus first, over the questions both answered,
    with paired 95% CIs."""
    from ..evaluation import compare_answers

    runs = []
    for path in (first, second):
        try:
            runs.append(json.loads(path.read_text(encoding="utf-8"))["per_question"])
        except (OSError, ValueError, KeyError) as error:
            say(f"kbqa: error: {path}: not an `eval qa --out` file ({error})", file=sys.stderr)
            return EXIT_ERROR
    result = compare_answers(runs[0], runs[1])
    say(f"{result['paired_questions']} questions in both runs; second minus first:")
    for name, row in result["metrics"].items():
        low, high = row["ci95"]
        verdict = "no difference" if low <= 0 <= high else "differs"
        say(f"{name:>20}  {row['first']:>8} -> {row['second']:<8}  "
            f"{row['difference']:+.4f}  95% CI [{low}, {high}]  {verdict}")  # fmt: skip
    return EXIT_OK

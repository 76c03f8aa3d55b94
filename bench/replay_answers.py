"""Re-score an earlier ``kbqa eval qa --out`` run with today's checks, without the LLM.

Decoding is greedy and the prompt is unchanged, so the model's reply to a
question is what that run recorded; this script replays each recorded reply
through today's pipeline (retrieval, packing, answerability checks, quoting) with
the real tokenizer for packing, and writes a new run file. Replies the earlier
run refused were not recorded; they replay as the refusal they were. Used to
measure the answerability checks on XQuAD (docs/quality.md) in seconds instead
of 20 minutes per 200 questions.

    python bench/replay_answers.py bench/results/eval-xquad-es-200.json \\
        --squad ../shared/data/xquad/xquad.es.json --out CHECKED.json
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kbqa.models.registry import choose_generator
from kbqa.qa import evaluation
from kbqa.qa.knowledge_base import KnowledgeBase
from kbqa.qa.prompting import REFUSALS, detect_language
from kbqa.qa.settings import load_settings


class RecordedReplies:
    """Answers each question with the reply an earlier run recorded; counts real tokens."""

    def __init__(self, real: Any, replies: dict[str, str]) -> None:
        self.name = real.name
        self._real = real
        self._replies = replies

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        return int(self._real.count_tokens(messages))

    def stream(self, messages: list[dict[str, str]], max_new_tokens: int) -> Iterator[str]:
        content = messages[-1]["content"]
        for question, reply in self._replies.items():
            if content.rstrip().endswith(question.strip()):
                yield reply
                return
        raise KeyError("no recorded reply for this prompt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--squad", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    run = json.loads(args.run.read_text(encoding="utf-8"))
    replies = {
        r["question"]: r.get("reply") or r["prediction"] or REFUSALS[detect_language(r["question"])]
        for r in run["per_question"]
    }
    settings = load_settings()
    from kbqa.models.generator import TransformersGenerator

    real = TransformersGenerator(
        choose_generator(settings.llm_model), settings.cache_dir, settings.device
    )
    source = args.squad
    folder = settings.home / "eval" / f"{source.stem}-replay"
    kb = KnowledgeBase.open(folder, settings=settings, generator=RecordedReplies(real, replies))
    # The same sample as the earlier run: its size and seed (`kbqa eval qa`'s default 0).
    seed = (
        int(re.search(r"--seed (\d+)", run.get("command", "")).group(1))
        if "--seed" in run.get("command", "")
        else 0
    )
    result = evaluation.evaluate_answers(kb, source, limit=len(run["per_question"]), seed=seed)
    assert {r["id"] for r in result["per_question"]} == {r["id"] for r in run["per_question"]}
    result["replayed_from"] = str(args.run)
    result["configuration"] = evaluation.run_configuration(kb)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps(result["summary"], indent=1))
    print(json.dumps(result["ci95"]))


if __name__ == "__main__":
    main()

"""The near-miss set: XQuAD questions whose named entity is swapped for one no passage names.

Each question keeps its wording, but the name it asks about (a person, place,
team, organisation: a capitalised run of words that occurs in the question's own
paragraph) is replaced by a name from SQuAD-es v1.1 questions that appears
nowhere in the knowledge base (checked by plain, accent-folded substring search
over every XQuAD paragraph of that language, independent of the matcher in
``qa/answerability.py``). The closest passages are then about the original
entity, so a trustworthy answer is a refusal.

    python bench/near_miss.py                  # writes bench/results/near-miss.{es,en}.json
    kbqa eval qa --squad bench/results/near-miss.es.json --out bench/results/eval-near-miss-es.json

The output files are in SQuAD format with every XQuAD paragraph (so the
knowledge base is the same as for XQuAD itself) and only the swapped questions,
all marked unanswerable. ``bench/data/near-miss.json`` lists the swaps.
Deterministic: the same shared data and seed give the same set. ``--smoke``: five
Spanish questions, written beside ``--out FILE.json`` (a summary with the commit,
the machine and the swaps), ``bench/data`` untouched; skipped, with the reason in
the JSON, where the shared data is absent.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import add_smoke_flag, skip, write_result  # noqa: E402
from kbqa.qa.answerability import name_spans  # noqa: E402
from kbqa.text import fold_accents  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def folded(text: str) -> str:
    return fold_accents(text.lower())


def replacement_pool(squad_es: Path, corpus: str, ascii_only: bool) -> dict[int, list[str]]:
    """Names from SQuAD-es questions that the corpus never contains, by word count."""
    data = json.loads(squad_es.read_text(encoding="utf-8"))["data"]
    # Words the source texts also write in lower case are common nouns ("Ciencia",
    # capitalised by a question's style), not names.
    lowercase = {
        word
        for article in data
        for paragraph in article["paragraphs"]
        for word in paragraph["context"].split()
        if word.isalpha() and word.islower()
    }
    pool: dict[int, set[str]] = {1: set(), 2: set()}
    for article in data:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                question = qa["question"]
                for _, start, end in name_spans(question):
                    original = question[start:end]
                    words = original.split()
                    if len(words) not in pool or len(original) < 4:
                        continue
                    if ascii_only and not original.isascii():
                        continue
                    if not all(w[0].isupper() and w.replace("-", "").isalpha() for w in words):
                        continue
                    if any(w.lower() in lowercase for w in words):
                        continue
                    if any(len(w) < 3 for w in words) or original.isupper():
                        continue  # acronyms and initials read oddly in another question
                    # Absent as a whole and word by word: no passage may name it.
                    if any(f" {folded(w)}" in corpus for w in words):
                        continue
                    pool[len(words)].add(original)
    return {size: sorted(names) for size, names in pool.items()}


def build(language: str, count: int, seed: int) -> tuple[dict, list[dict]]:
    xquad = json.loads((DATA / "xquad" / f"xquad.{language}.json").read_text(encoding="utf-8"))
    corpus = " " + " ".join(
        folded(p["context"]) for a in xquad["data"] for p in a["paragraphs"]
    ).replace("\n", " ")
    # Word boundaries for the substring test: every non-letter becomes a space.
    corpus = "".join(ch if ch.isalnum() else " " for ch in corpus)
    pool = replacement_pool(DATA / "squad-es" / "dev-v1.1-es.json", corpus, language == "en")
    candidates = []
    for a_index, article in enumerate(xquad["data"]):
        for p_index, paragraph in enumerate(article["paragraphs"]):
            context = " " + "".join(
                ch if ch.isalnum() else " " for ch in folded(paragraph["context"])
            )
            for qa in paragraph["qas"]:
                question = qa["question"]
                spans = [
                    (name, start, end)
                    for name, start, end in name_spans(question)
                    if len(question[start:end].split()) in pool
                    and not question[start:end].isupper()
                    and f" {name} " in context
                ]
                if spans:
                    candidates.append((a_index, p_index, qa, spans))
    rng = random.Random(seed)
    chosen = rng.sample(candidates, min(count, len(candidates)))
    swaps = []
    kept: dict[tuple[int, int], list[dict]] = {}
    for a_index, p_index, qa, spans in sorted(chosen, key=lambda c: c[2]["id"]):
        name, start, end = max(spans, key=lambda s: s[2] - s[1])
        original = qa["question"][start:end]
        replacement = rng.choice(pool[len(original.split())])
        question = qa["question"][:start] + replacement + qa["question"][end:]
        swap_id = f"{qa['id']}-nearmiss"
        swaps.append(
            {
                "language": language,
                "id": swap_id,
                "original_id": qa["id"],
                "original": qa["question"],
                "question": question,
                "swapped": [original, replacement],
            }
        )
        kept.setdefault((a_index, p_index), []).append(
            {"id": swap_id, "question": question, "answers": [], "is_impossible": True}
        )
    squad = {
        "version": f"near-miss-{language}",
        "data": [
            {
                "title": article.get("title", ""),
                "paragraphs": [
                    {"context": paragraph["context"], "qas": kept.get((a, p), [])}
                    for p, paragraph in enumerate(article["paragraphs"])
                ],
            }
            for a, article in enumerate(xquad["data"])
        ],
    }
    return squad, swaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60, help="questions per language")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:
        smoke(args)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    all_swaps = []
    for language in ("es", "en"):
        squad, swaps = build(language, args.count, args.seed)
        target = args.out / f"near-miss.{language}.json"
        target.write_text(json.dumps(squad, ensure_ascii=False), encoding="utf-8")
        all_swaps.extend(swaps)
        print(f"{target}: {len(swaps)} questions")
    listing = ROOT / "bench" / "data" / "near-miss.json"
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text(json.dumps(all_swaps, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{listing}: {len(all_swaps)} swaps")


def smoke(args: argparse.Namespace) -> None:
    needed = [DATA / "xquad" / "xquad.es.json", DATA / "squad-es" / "dev-v1.1-es.json"]
    missing = [str(path) for path in needed if not path.exists()]
    if missing:
        skip(args.out, f"needs the shared data sets: {', '.join(missing)}", args)
    squad, swaps = build("es", 5, args.seed)
    target = args.out.with_name(f"{args.out.stem}.near-miss.es.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(squad, ensure_ascii=False), encoding="utf-8")
    write_result(args.out, {"squad_file": str(target), "swaps": swaps}, args)
    print(f"{target}: {len(swaps)} questions")


if __name__ == "__main__":
    main()

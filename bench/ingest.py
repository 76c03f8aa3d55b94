"""Ingest speed: ``kbqa ingest`` against a LangChain-tutorial pipeline, same model, same files.

    python bench/ingest.py [--quick | --smoke] [--startup] [--models multilingual-e5-small ...]
                           [--repeats R] [--scifact-docs N[,N...]] [--baseline-chunk-chars C]
                           [--profile]
                           [--out bench/results/ingest.json]

Baseline, as a LangChain tutorial writes it: PyPDFLoader (one Document per page),
BSHTMLLoader (one per HTML file), DirectoryLoader + TextLoader for the SciFact files,
RecursiveCharacterTextSplitter in characters, HuggingFaceEmbeddings on the same
local model folder kbqa uses (its defaults: float32, batch 32; on e5 the careful
user's ``encode_kwargs={"prompt_name": "passage"}`` adds e5's "passage: " prefix,
as kbqa does), FAISS.from_documents, then save_local (kbqa writes its KB too).
The baseline has no incremental mode: its re-ingest is a full ingest.

Ours: ``kbqa ingest --kb FRESH_DIR FILES`` with KBQA_EMBEDDING_MODEL set and every
other setting at its default (``-v`` only so that the log names the precision kbqa
chose; bfloat16 on CPUs that have it is kbqa's own choice, so it counts).

Chunk sizes are made comparable: kbqa cuts 200 embedder tokens with 32 overlap,
which is 600-900 characters depending on language and tokenizer, so by default the
baseline cuts 200 x (characters per token of that model's tokenizer on a sample of
that corpus) characters, rounded to 50, with the same 16% overlap (``--baseline-chunk-chars``
fixes it instead, e.g. 1000 for the tutorial default). Mean chunk length in characters
is reported for both sides.

Every ingest runs in its own fresh process, so wall time (process start, imports
and model load included: what a user waits for) and peak RSS (os.wait4) are per run.
Both sides read the same files: SciFact docs are written once as one Markdown file
per doc (``# title`` then the abstract), a seeded subset; the HTML chapters are
copied into a temp folder so one of them can be changed for the re-ingest test.

Modes, sized for 2 CPU cores, with kbqa's default embedder (multilingual-e5-small;
float32 e5 embeds ~12 chunks/s there, the baseline's speed): ``--quick``: Debian
PDF + 150 SciFact docs, 1 repeat. Full (``make bench``): Debian PDF + Debian HTML
+ 150 and 400 SciFact docs, 1 repeat (~9 min quiet; at 150 start-up weighs most).
``--models all-MiniLM-L6-v2 multilingual-e5-small`` adds the small English model. CPU seconds
(user + system of the run's process) are reported beside wall time: on a shared
machine they move less.
Re-ingest (ours): the unchanged corpus again on the same KB, and (multi-file corpora)
the corpus with one file changed; each as a ratio to the first ingest.
``--smoke``: 8 SciFact docs (or this repository's corpora when the shared data is
absent), all-MiniLM-L6-v2, no PDF; the baseline is skipped, with the reason
recorded, where langchain-community (the ``bench`` extra) is not installed.
``--startup``: where a small ingest's time goes before embedding (imports, model
load, the reading process), from ``python -X importtime`` and timed steps, on the
smallest SciFact sample.
Not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import (  # noqa: E402 - after the sys.path line
    SMOKE_EMBEDDER,
    add_smoke_flag,
    load_settings,
    smoke_texts,
    write_result,
)

DATA = ROOT.parent / "shared" / "data"
DEBIAN = DATA / "debian-reference-es"
PDF = DEBIAN / "debian-reference.es.pdf"
SCIFACT = DATA / "beir" / "scifact" / "corpus.jsonl"
KBQA = Path(sys.executable).parent / "kbqa"
DEFAULT_OUT = ROOT / "bench" / "results" / "ingest.json"
PROFILE_OUT = ROOT / "bench" / "results" / "ingest-profile.txt"
MODELS = ("all-MiniLM-L6-v2", "multilingual-e5-small")
CORPORA = ("pdf", "html", "scifact")
SEED = 0
# kbqa's summary line: "1 added, 0 updated, ...; 272 pages, 1458 chunks embedded in 43.4 s".
SUMMARY = re.compile(
    r"(\d+) added, (\d+) updated, (\d+) unchanged, (\d+) removed, (\d+) failed; "
    r"(\d+) pages, (\d+) chunks embedded in ([\d.]+) s"
)
PRECISION_LOG = re.compile(r"loaded from .* in (\w+)")


@dataclass
class Corpus:
    """Files both sides ingest; ``paths`` are what is passed on the command line."""

    name: str
    kind: str  # "pdf", "html" or "markdown": picks the baseline's loader
    paths: list[Path]
    docs: int
    pages: int | None = None
    changeable: Path | None = None  # a file the changed-file re-ingest may append to


@dataclass
class Measured:
    wall_s: float
    cpu_s: float  # user + system, every thread: steadier than wall time on a busy machine
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Side:
    """One side's runs of one corpus and model."""

    runs: list[dict[str, Any]] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(float(run[key]) for run in self.runs)


# --- corpora -----------------------------------------------------------------------------


def pdf_corpus() -> Corpus:
    import pypdfium2

    pages = len(pypdfium2.PdfDocument(str(PDF)))
    return Corpus("debian-es-pdf", "pdf", [PDF], docs=1, pages=pages)


def html_corpus(folder: Path) -> Corpus:
    """The Debian HTML chapters, copied so that one can be changed later."""
    folder.mkdir(parents=True)
    for page in sorted(DEBIAN.glob("*.html")):
        shutil.copy2(page, folder / page.name)
    files = sorted(folder.glob("*.html"))
    return Corpus("debian-es-html", "html", [folder], docs=len(files), changeable=files[0])


def scifact_corpus(folder: Path, count: int) -> Corpus:
    """A seeded sample of SciFact docs (``count`` 0 = all), one Markdown file per doc."""
    with SCIFACT.open(encoding="utf-8") as lines:
        docs = [json.loads(line) for line in lines]
    if 0 < count < len(docs):
        docs = random.Random(SEED).sample(docs, count)
    folder.mkdir(parents=True)
    for doc in docs:
        text = f"# {doc['title'].strip()}\n\n{doc['text'].strip()}\n"
        (folder / f"{doc['_id']}.md").write_text(text, encoding="utf-8")
    first = folder / f"{docs[0]['_id']}.md"
    return Corpus(f"scifact-{len(docs)}", "markdown", [folder], docs=len(docs), changeable=first)


def smoke_corpus(folder: Path) -> Corpus:
    """Markdown files cut from this repository's corpora: no shared data needed."""
    folder.mkdir(parents=True)
    for name, text in smoke_texts(8):
        (folder / f"{Path(name).stem}.md").write_text(text + "\n", encoding="utf-8")
    files = sorted(folder.glob("*.md"))
    return Corpus("corpora-smoke", "markdown", [folder], docs=len(files), changeable=files[0])


def sample_texts(corpus: Corpus, limit: int = 300) -> list[str]:
    """Some of the corpus's text, to measure characters per token."""
    if corpus.kind == "pdf":
        import pypdfium2

        pdf = pypdfium2.PdfDocument(str(corpus.paths[0]))
        step = max(1, len(pdf) // limit)
        texts = [pdf[i].get_textpage().get_text_range() for i in range(0, len(pdf), step)]
        pdf.close()
        return texts
    files = sorted(p for folder in corpus.paths for p in folder.iterdir())[:limit]
    if corpus.kind == "html":
        from bs4 import BeautifulSoup

        return [BeautifulSoup(p.read_bytes(), "lxml").get_text() for p in files]
    return [p.read_text(encoding="utf-8") for p in files]


def model_folder(name: str) -> Path:
    """The embedding model's folder, converted into the configured cache on first use."""
    from kbqa.models.registry import local_folder

    return local_folder(name, "embedder", load_settings().cache_dir)


def matched_chunk_chars(corpus: Corpus, model: str, chunk_tokens: int) -> int:
    """Characters that hold ``chunk_tokens`` of this model's tokens in this corpus."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # long samples are only counted, never embedded
    tokenizer = AutoTokenizer.from_pretrained(str(model_folder(model)))
    texts = [t for t in sample_texts(corpus) if t.strip()]
    tokens = sum(len(tokenizer.tokenize(t)) for t in texts)
    chars_per_token = sum(len(t) for t in texts) / tokens
    return int(round(chunk_tokens * chars_per_token / 50) * 50)


# --- running one ingest in a fresh process --------------------------------------------------


def run_measured(command: list[str], env: dict[str, str]) -> Measured:
    """Run ``command``; its own wall time and peak RSS (not this process's)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=ROOT)
        # wait4, not wait: its rusage is this child's alone.
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        return Measured(
            wall, cpu, usage.ru_maxrss / 1024, process.returncode, out.read(), err.read()
        )


def child_env(model: str) -> dict[str, str]:
    env = dict(os.environ)
    env["KBQA_EMBEDDING_MODEL"] = model
    env.setdefault("HF_HUB_OFFLINE", "1")  # both sides: the model is a local folder
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    return env


def kb_chunk_stats(kb: Path) -> tuple[int, float]:
    """Chunk count and mean chunk length in characters, read from the KB's SQLite file."""
    database = next(kb.rglob("chunks.sqlite"))
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        count, mean = db.execute("SELECT COUNT(*), AVG(LENGTH(text)) FROM chunks").fetchone()
    return int(count), float(mean or 0.0)


def parse_summary(stdout: str) -> dict[str, Any]:
    found = SUMMARY.search(stdout)
    if not found:
        raise RuntimeError(f"kbqa printed no summary: {stdout[-500:]!r}")
    keys = ("added", "updated", "unchanged", "removed", "failed", "pages", "chunks")
    summary: dict[str, Any] = dict(zip(keys, map(int, found.groups()[:7]), strict=True))
    summary["reported_s"] = float(found.group(8))
    return summary


def run_ours(corpus: Corpus, model: str, kb: Path) -> dict[str, Any]:
    command = [str(KBQA), "ingest", "-v", "--no-progress", "--kb", str(kb)]
    measured = run_measured(command + [str(p) for p in corpus.paths], child_env(model))
    if measured.returncode not in (0, 3):  # 3: done, some files failed (counted below)
        raise RuntimeError(f"kbqa ingest failed ({measured.returncode}): {measured.stderr[-2000:]}")
    summary = parse_summary(measured.stdout)
    precision = PRECISION_LOG.search(measured.stderr)
    run = {
        "wall_s": measured.wall_s,
        "cpu_s": measured.cpu_s,
        "peak_rss_mb": measured.peak_rss_mb,
        "summary": measured.stdout.strip().splitlines()[-1],
        "precision": precision.group(1) if precision else "not reported",
        **summary,
    }
    if summary["added"] or summary["updated"]:
        run["chunks_in_kb"], run["mean_chunk_chars"] = kb_chunk_stats(kb)
    return run


def run_baseline(
    corpus: Corpus, model: str, chunking: tuple[int, int], folder: Path
) -> dict[str, Any]:
    spec = {
        "kind": corpus.kind,
        "paths": [str(p) for p in corpus.paths],
        "model": model,
        "chunk_chars": chunking[0],
        "overlap_chars": chunking[1],
        "save_to": str(folder),
    }
    command = [sys.executable, str(Path(__file__).resolve()), "--baseline-child", json.dumps(spec)]
    measured = run_measured(command, child_env(model))
    if measured.returncode != 0:
        raise RuntimeError(f"baseline failed: {measured.stderr[-2000:]}")
    phases = json.loads(measured.stdout.strip().splitlines()[-1])
    return {
        "wall_s": measured.wall_s,
        "cpu_s": measured.cpu_s,
        "peak_rss_mb": measured.peak_rss_mb,
        **phases,
    }


def baseline_child(spec: dict[str, Any]) -> None:
    """The tutorial pipeline; prints its phase timings as one JSON line."""
    import warnings

    warnings.filterwarnings("ignore")  # langchain-community's deprecation notices
    clock = time.perf_counter()
    phases: dict[str, Any] = {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        phases[f"{name}_s"] = round(now - clock, 3)
        clock = now

    import torch
    from langchain_community.document_loaders import (
        BSHTMLLoader,
        DirectoryLoader,
        PyPDFLoader,
        TextLoader,
    )
    from langchain_community.embeddings import HuggingFaceEmbeddings
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    lap("import")
    paths = [Path(p) for p in spec["paths"]]
    if spec["kind"] == "pdf":
        documents = [d for p in paths for d in PyPDFLoader(str(p)).load()]
    elif spec["kind"] == "html":
        files = sorted(f for p in paths for f in p.glob("*.html"))
        documents = [d for f in files for d in BSHTMLLoader(f, open_encoding="utf-8").load()]
    else:
        loader_kwargs = {"encoding": "utf-8"}
        documents = [
            d
            for p in paths
            for d in DirectoryLoader(
                str(p), glob="*.md", loader_cls=TextLoader, loader_kwargs=loader_kwargs
            ).load()
        ]
    lap("load")
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=spec["chunk_chars"], chunk_overlap=spec["overlap_chars"]
    )
    chunks = splitter.split_documents(documents)
    lap("split")
    # e5 wants "passage: " before every passage; the folder names that prompt.
    encode_kwargs = {"prompt_name": "passage"} if "e5" in spec["model"] else {}
    embeddings = HuggingFaceEmbeddings(
        model_name=str(model_folder(spec["model"])),
        model_kwargs={"device": "cuda" if torch.cuda.is_available() else "cpu"},
        encode_kwargs=encode_kwargs,
    )
    lap("model_load")
    store = FAISS.from_documents(chunks, embeddings)
    lap("embed_index")
    store.save_local(spec["save_to"])
    lap("save")
    phases.update(
        documents=len(documents),
        pages=len(documents) if spec["kind"] == "pdf" else None,
        chunks=len(chunks),
        mean_chunk_chars=statistics.fmean(len(c.page_content) for c in chunks),
        chunk_chars=spec["chunk_chars"],
        overlap_chars=spec["overlap_chars"],
        precision=str(embeddings.client.dtype).removeprefix("torch."),
        encode_kwargs=encode_kwargs,
    )
    print(json.dumps(phases))


# --- the benchmark -------------------------------------------------------------------------


def warm_up(models: list[str], with_baseline: bool = True) -> None:
    """Read the model files and import torch once, so the first timed run is not a cold one."""
    for model in models:
        for path in model_folder(model).rglob("*"):
            if path.is_file():
                path.read_bytes()
    import_line = "import torch, sentence_transformers" + (
        ", langchain_community" if with_baseline else ""
    )
    subprocess.run([sys.executable, "-W", "ignore", "-c", import_line], check=True, cwd=ROOT)


def rates(run: dict[str, Any], corpus: Corpus) -> dict[str, Any]:
    wall = run["wall_s"]
    row = {
        "wall_s": round(wall, 2),
        "cpu_s": round(run["cpu_s"], 1),
        "docs_per_s": round(corpus.docs / wall, 2),
        "chunks": run["chunks"],
        "chunks_per_s": round(run["chunks"] / wall, 2),
        "mean_chunk_chars": round(run["mean_chunk_chars"], 1),
        "peak_rss_mb": round(run["peak_rss_mb"], 1),
        "precision": run["precision"],
    }
    if corpus.pages:
        row["pages_per_s"] = round(corpus.pages / wall, 2)
    return row


def median_run(side: Side) -> dict[str, Any]:
    """The run with the median wall time (a real run, so its fields agree)."""
    ordered = sorted(side.runs, key=lambda r: r["wall_s"])
    return ordered[(len(ordered) - 1) // 2]


def reingest(corpus: Corpus, model: str, kb: Path, repeats: int) -> dict[str, Any]:
    """Ours again on the same KB: unchanged, then (if it can) with one file changed."""
    unchanged = [run_ours(corpus, model, kb) for _ in range(repeats)]
    assert all(r["unchanged"] == corpus.docs and not r["added"] for r in unchanged), unchanged
    result: dict[str, Any] = {
        "unchanged_wall_s": round(statistics.median(r["wall_s"] for r in unchanged), 2),
        "unchanged_peak_rss_mb": round(max(r["peak_rss_mb"] for r in unchanged), 1),
    }
    if corpus.changeable is not None:
        changed = []
        for attempt in range(repeats):
            with corpus.changeable.open("a", encoding="utf-8") as file:
                file.write(f"\nA line added by bench/ingest.py, change {attempt + 1}.\n")
            changed.append(run_ours(corpus, model, kb))
        assert all(r["updated"] == 1 for r in changed), changed
        result["one_changed_wall_s"] = round(statistics.median(r["wall_s"] for r in changed), 2)
        result["one_changed_chunks"] = changed[-1]["chunks"]
    return result


def bench_corpus(
    corpus: Corpus,
    model: str,
    repeats: int,
    chunking: tuple[int, int],
    work: Path,
    baseline_too: bool = True,
) -> dict[str, Any]:
    """Both sides ``repeats`` times, then ours re-ingesting; ``chunking`` is the baseline's."""
    ours, baseline = Side(), Side()
    for attempt in range(repeats):
        # Alternate who goes first: neither side always meets the other's leftovers.
        order = ("baseline", "ours") if attempt % 2 == 0 else ("ours", "baseline")
        for who in order if baseline_too else ("ours",):
            target = work / f"{corpus.name}-{model}-{who}-{attempt}"
            if who == "ours":
                ours.runs.append(run_ours(corpus, model, target))
            else:
                baseline.runs.append(run_baseline(corpus, model, chunking, target))
            print(f"  {corpus.name} {model} {who} #{attempt + 1}: {_last(ours, baseline, who)}")
    last_kb = work / f"{corpus.name}-{model}-ours-{repeats - 1}"
    ours_row = rates(median_run(ours), corpus)
    again = reingest(corpus, model, last_kb, repeats)
    first = ours_row["wall_s"]
    again["unchanged_ratio_to_first"] = round(again["unchanged_wall_s"] / first, 3)
    if "one_changed_wall_s" in again:
        again["one_changed_ratio_to_first"] = round(again["one_changed_wall_s"] / first, 3)
    again["baseline"] = "no incremental mode: re-ingest = full ingest"
    manifest = json.loads((last_kb / "manifest.json").read_text())
    manifest.pop("created_at", None)
    row: dict[str, Any] = {
        "corpus": corpus.name,
        "model": model,
        "docs": corpus.docs,
        "pages": corpus.pages,
        "repeats": repeats,
        "ours": ours_row
        | {
            "kbqa_summary": median_run(ours)["summary"],
            "kbqa_reported_s": ours.median("reported_s"),
        },
        "baseline": None,
        "ours_over_baseline_wall": None,
        "ours_over_baseline_cpu": None,
        "reingest_ours": again,
        "kb_manifest": manifest,
        "all_wall_s": {
            "ours": [round(r["wall_s"], 2) for r in ours.runs],
            "baseline": [round(r["wall_s"], 2) for r in baseline.runs],
        },
    }
    if baseline.runs:
        base_row = rates(median_run(baseline), corpus)
        phases = ("import_s", "load_s", "split_s", "model_load_s", "embed_index_s", "save_s")
        row["baseline"] = (
            base_row
            | {k: median_run(baseline)[k] for k in phases}
            | {"chunk_chars": chunking[0], "overlap_chars": chunking[1]}
        )
        row["ours_over_baseline_wall"] = round(first / base_row["wall_s"], 3)
        row["ours_over_baseline_cpu"] = round(ours_row["cpu_s"] / base_row["cpu_s"], 3)
    return row


def _last(ours: Side, baseline: Side, who: str) -> str:
    run = (ours if who == "ours" else baseline).runs[-1]
    return (
        f"{run['wall_s']:.1f} s ({run['cpu_s']:.0f} CPU s), {run['chunks']} chunks, "
        f"{run['peak_rss_mb']:.0f} MB RSS"
    )


def profile_ours(corpus: Corpus, model: str, work: Path) -> None:
    """A pyinstrument text profile of one ``kbqa ingest`` (not timed: the profiler slows it)."""
    command = [sys.executable, "-m", "pyinstrument", "-o", str(PROFILE_OUT), "-r", "text"]
    command += [str(KBQA), "ingest", "--no-progress", "--kb", str(work / "profiled-kb")]
    paths = [str(p) for p in corpus.paths]
    subprocess.run(command + paths, check=True, env=child_env(model), cwd=ROOT)
    print(f"profile: {PROFILE_OUT}")


# (title, width, how to show it) for each column of the ingest table.
COLUMNS: list[tuple[str, int, Any]] = [
    ("wall s", 8, lambda s, r: f"{s['wall_s']:.1f}"),
    ("CPU s", 7, lambda s, r: f"{s['cpu_s']:.0f}"),
    ("pages/s", 8, lambda s, r: f"{s['pages_per_s']:.2f}" if "pages_per_s" in s else "-"),
    ("docs/s", 8, lambda s, r: f"{s['docs_per_s']:.2f}"),
    ("chunks", 7, lambda s, r: str(s["chunks"])),
    ("chunks/s", 9, lambda s, r: f"{s['chunks_per_s']:.1f}"),
    ("chars", 6, lambda s, r: f"{s['mean_chunk_chars']:.0f}"),
    ("RSS MB", 7, lambda s, r: f"{s['peak_rss_mb']:.0f}"),
    ("dtype", 9, lambda s, r: s["precision"]),
    (
        "ours/base",
        10,
        lambda s, r: (
            f"{r['ours_over_baseline_wall']:.2f}"
            if s is r["ours"] and r["ours_over_baseline_wall"]
            else ""
        ),
    ),
]


def print_table(rows: list[dict[str, Any]]) -> None:
    """Both sides per corpus and model, then ours re-ingesting."""
    left = max(len(f"{r['corpus']} {r['model']}") for r in rows) + 2
    print(f"{'corpus, model':<{left}}{'side':<9}" + "".join(f"{t:>{w}}" for t, w, _ in COLUMNS))
    for row in rows:
        for side in ("baseline", "ours"):
            if row[side] is None:
                print(f"{row['corpus'] + ' ' + row['model']:<{left}}{side:<9}  (not run)")
                continue
            cells = "".join(f"{show(row[side], row):>{w}}" for _, w, show in COLUMNS)
            print(f"{row['corpus'] + ' ' + row['model']:<{left}}{side:<9}{cells}")
    print("\nre-ingest, ours (the baseline has no incremental mode: it rebuilds everything)")
    titles = f"{'unchanged s':>12}{'/first':>8}{'1 changed s':>12}{'/first':>8}"
    print(f"{'corpus, model':<{left}}{titles}")
    for row in rows:
        again = row["reingest_ours"]
        changed = again.get("one_changed_wall_s")
        cells = f"{again['unchanged_wall_s']:>12.2f}{again['unchanged_ratio_to_first']:>8.3f}"
        if changed is None:
            cells += f"{'-':>12}{'-':>8}"
        else:
            cells += f"{changed:>12.2f}{again['one_changed_ratio_to_first']:>8.3f}"
        print(f"{row['corpus'] + ' ' + row['model']:<{left}}{cells}")


IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def import_times(stderr: str, top: int = 12) -> dict[str, Any]:
    """``python -X importtime``'s top-level imports by cumulative time, and their sum."""
    rows = []
    for line in stderr.splitlines():
        found = IMPORT_LINE.match(line)
        if found and len(found.group(3)) <= 1:  # one space: imported by the program itself
            rows.append((found.group(4), int(found.group(2)) / 1e6))
    rows.sort(key=lambda row: -row[1])
    return {
        "top_level_total_s": round(sum(seconds for _, seconds in rows), 2),
        "top": [{"module": name, "cumulative_s": round(s, 3)} for name, s in rows[:top]],
    }


def startup(corpus: Corpus, model: str, work: Path) -> dict[str, Any]:
    """Where a small ingest's time goes before (and besides) embedding.

    Each step is a fresh process: a bare interpreter; the CLI's imports alone
    (``kbqa --help``); a one-file ingest (imports, model load, the reading process,
    one chunk); the corpus itself; then ``-X importtime`` of the one-file ingest.
    """
    env = child_env(model)
    one = work / "startup-one"
    one.mkdir()
    (one / "one.md").write_text("# One\n\nA single short document about herons.\n")
    interpreter = run_measured([sys.executable, "-c", "pass"], env)
    cli = run_measured([str(KBQA), "--help"], env)
    loaded = run_measured(
        [sys.executable, "-c", EMBEDDER_LOAD, model], env
    )  # imports and the model, no reading process
    single = run_ours(Corpus("one", "markdown", [one], docs=1), model, work / "startup-kb-1")
    whole = run_ours(corpus, model, work / "startup-kb")
    command = [sys.executable, "-X", "importtime", str(KBQA), "ingest", "--no-progress"]
    timed_imports = run_measured(command + ["--kb", str(work / "startup-kb-2"), str(one)], env)
    result = {
        "corpus": corpus.name,
        "model": model,
        "python_s": round(interpreter.wall_s, 2),
        "cli_help_s": round(cli.wall_s, 2),
        "import_and_model_load_s": round(loaded.wall_s, 2),
        "one_file_ingest_s": round(single["wall_s"], 2),
        "corpus_ingest_s": round(whole["wall_s"], 2),
        "corpus_reported_s": whole["reported_s"],
        "fixed_share_of_corpus": round(single["wall_s"] / whole["wall_s"], 3),
        "imports": import_times(timed_imports.stderr),
    }
    print(json.dumps(result, indent=1))
    return result


# Imports kbqa's embedder and embeds one passage: imports plus model load, nothing else.
EMBEDDER_LOAD = """
import sys
from kbqa import load_settings
from kbqa.models.embedder import SentenceTransformerEmbedder
settings = load_settings()
SentenceTransformerEmbedder(sys.argv[1], settings.cache_dir).embed_passages(["warm up"])
"""


def listed(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def baseline_installed() -> str | None:
    """Why the LangChain baseline cannot run here, or None when it can."""
    import importlib.util

    if importlib.util.find_spec("langchain_community") is None:
        return "langchain-community is not installed (pip install -e '.[bench]')"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="PDF + 150 SciFact docs")
    add_smoke_flag(parser)
    parser.add_argument(
        "--startup", action="store_true", help="also measure where a small ingest's time goes"
    )
    parser.add_argument(
        "--corpora", help=f"some of {','.join(CORPORA)} (default: all; quick: pdf,scifact)"
    )
    parser.add_argument("--models", nargs="+", choices=MODELS, help="default: kbqa's default")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side; medians reported")
    parser.add_argument(
        "--scifact-docs",
        help="SciFact docs, seeded samples, comma-separated; 0 = all 5183 (default 150,400)",
    )
    parser.add_argument(
        "--baseline-chunk-chars",
        type=int,
        default=0,
        help="baseline chunk size in characters; 0 = match kbqa's 200 tokens per corpus",
    )
    parser.add_argument("--profile", action="store_true", help=f"also write {PROFILE_OUT.name}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--baseline-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_child:
        baseline_child(json.loads(args.baseline_child))
        return

    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]  # progress in logs
    started = time.perf_counter()
    settings = load_settings()
    models = args.models or [SMOKE_EMBEDDER if args.smoke else settings.embedding_model]
    default_docs = "8" if args.smoke else "150" if args.quick else "150,400"
    scifact_sizes = [int(n) for n in listed(args.scifact_docs or default_docs)]
    chunk_tokens, overlap_tokens = settings.chunk_tokens, settings.chunk_overlap
    baseline_missing = baseline_installed()
    if baseline_missing:
        print(f"baseline skipped: {baseline_missing}")
    if not args.smoke:
        warm_up(models, with_baseline=baseline_missing is None)
    rows = []
    startup_rows = []
    with tempfile.TemporaryDirectory(prefix="kbqa-bench-ingest-") as folder:
        work = Path(folder)
        wanted = set(listed(args.corpora)) or (
            {"scifact"} if args.smoke else {"pdf", "scifact"} if args.quick else set(CORPORA)
        )
        corpora = []
        if "pdf" in wanted:
            corpora.append(pdf_corpus())
        if "html" in wanted:
            corpora.append(html_corpus(work / "debian-html"))
        if "scifact" in wanted and SCIFACT.exists():
            corpora.extend(scifact_corpus(work / f"scifact-{n}", n) for n in scifact_sizes)
        elif "scifact" in wanted and args.smoke:
            corpora.append(smoke_corpus(work / "smoke"))
        elif "scifact" in wanted:
            raise SystemExit(f"needs {SCIFACT} (the shared data sets)")
        if args.smoke:  # the changed-file re-ingest is a first ingest again: left out
            corpora = [dataclasses.replace(corpus, changeable=None) for corpus in corpora]
        for model in models:
            for corpus in corpora:
                chunk_chars = args.baseline_chunk_chars or matched_chunk_chars(
                    corpus, model, chunk_tokens
                )
                # The same overlap share as kbqa's (32 of 200 tokens: 16%).
                overlap_chars = round(chunk_chars * overlap_tokens / chunk_tokens)
                chunking = (chunk_chars, overlap_chars)
                print(f"{corpus.name} / {model}: baseline chunks {chunking} characters")
                rows.append(
                    bench_corpus(
                        corpus, model, args.repeats, chunking, work, baseline_missing is None
                    )
                )
        if args.startup:
            samples = [corpus for corpus in corpora if corpus.kind == "markdown"] or corpora
            startup_rows.append(startup(min(samples, key=lambda c: c.docs), models[0], work))
        if args.profile:
            profile_ours(corpora[0], models[0], work)
    elapsed = time.perf_counter() - started

    print()
    print_table(rows)
    print(f"\nbench/ingest.py took {elapsed / 60:.1f} min")
    results = {
        "mode": "smoke" if args.smoke else "quick" if args.quick else "full",
        "seconds": round(elapsed, 1),
        "kbqa_chunking": {"chunk_tokens": chunk_tokens, "overlap_tokens": overlap_tokens},
        "kbqa_env": {k: v for k, v in os.environ.items() if k.startswith("KBQA_")},
        "baseline": (
            "LangChain tutorial: PyPDFLoader / BSHTMLLoader / DirectoryLoader+TextLoader, "
            "RecursiveCharacterTextSplitter (characters), HuggingFaceEmbeddings (same local "
            "model, float32, batch 32, e5: prompt_name=passage), FAISS.from_documents, save_local"
        ),
        "baseline_skipped": baseline_missing,
        "wall_s_includes": "process start, imports, model load, reading, chunking, embedding, "
        "writing the index",
        "results": rows,
        "startup": startup_rows,
    }
    write_result(args.out, results, args, settings)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""The tables of ``docs/performance.md``, rendered from ``make bench``'s results.

    python tools/bench_report.py [--results bench/results] [--out bench/results/report.md]

``make bench`` ends with it, so each run leaves one Markdown file whose tables all
come from that run's JSON (ingest, search, answer per style, the machine's limits,
embedders), each headed by the command that made it, its commit and the load
average it started at. ``docs/performance.md`` copies these tables and adds the
reading of them; a table is never typed in by hand. A result that is missing or
was skipped is named as such, never left out silently.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
Result = dict[str, Any]


def number(value: Any, digits: int = 2) -> str:
    """A figure for a table: thousands separated, ``digits`` decimals at most, ``—`` if none."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        text = f"{value:,.{digits}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(number(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def provenance(result: Result) -> str:
    """Command, commit and load: what a reader needs to trust or rerun a table."""
    commit = result.get("commit") or {}
    sha = str(commit.get("sha") or "?")[:7]
    if commit.get("dirty"):
        sha += " (uncommitted changes)"
    load = (result.get("machine") or {}).get("load_average") or []
    parts = [
        f"`{result.get('command') or '?'}`",
        f"commit {sha}",
        f"load average {number(load[0], 1)} at the start" if load else "",
        f"{number(result.get('seconds'), 0)} s" if result.get("seconds") else "",
    ]
    return "; ".join(part for part in parts if part)


def ingest_tables(result: Result) -> str:
    rows = []
    for row in result["results"]:
        label = f"{row['corpus']} ({row['model']})"
        for side in ("baseline", "ours"):
            measured = row.get(side)
            if not measured:
                continue
            rows.append(
                [
                    label if side == "baseline" or not row.get("baseline") else "",
                    "LangChain" if side == "baseline" else "**kbqa**",
                    measured["wall_s"],
                    measured["cpu_s"],
                    measured.get("pages_per_s"),
                    measured.get("docs_per_s"),
                    measured["chunks"],
                    measured["chunks_per_s"],
                    measured["mean_chunk_chars"],
                    measured["peak_rss_mb"],
                    measured["precision"],
                    number(row.get("ours_over_baseline_wall"), 3) if side == "ours" else None,
                ]
            )
    header = [
        "corpus", "side", "wall s", "CPU s", "pages/s", "docs/s", "chunks", "chunks/s",
        "mean chunk chars", "peak RSS MB", "precision", "kbqa ÷ LangChain",
    ]  # fmt: skip
    text = [table(header, rows)]
    if any(len(row.get("all_wall_s", {}).get("ours", [])) > 1 for row in result["results"]):
        text.append(
            "Every run, wall seconds (medians above): "
            + "; ".join(
                f"{row['corpus']}: kbqa {row['all_wall_s']['ours']}, "
                f"LangChain {row['all_wall_s'].get('baseline')}"
                for row in result["results"]
            )
        )
    again = [
        [
            row["corpus"],
            row["reingest_ours"].get("unchanged_wall_s"),
            number(row["reingest_ours"].get("unchanged_ratio_to_first"), 3),
            row["reingest_ours"].get("one_changed_wall_s"),
            row["reingest_ours"].get("one_changed_ratio_to_first"),
        ]
        for row in result["results"]
        if row.get("reingest_ours")
    ]
    if again:
        text.append("Re-ingest (kbqa; the baseline has no incremental mode):")
        text.append(
            table(["corpus", "unchanged, s", "÷ first", "one file changed, s", "÷ first"], again)
        )
    for start in result.get("startup") or []:
        text.append(
            f"Where a small ingest's time goes ({start['corpus']}, fresh processes): "
            f"Python {number(start['python_s'])} s; `kbqa --help` {number(start['cli_help_s'])} s;"
            f" imports and model load {number(start['import_and_model_load_s'])} s; a one-file "
            f"ingest {number(start['one_file_ingest_s'])} s; the corpus "
            f"{number(start['corpus_ingest_s'])} s (fixed share "
            f"{number(start['fixed_share_of_corpus'], 3)}). Largest imports: "
            + ", ".join(
                f"{item['module']} {number(item['cumulative_s'])} s"
                for item in start["imports"]["top"][:5]
            )
            + "."
        )
    return "\n\n".join(text)


def search_table(result: Result) -> str:
    header = [
        "vectors", "asked for", "index", "build s", "p50 ms", "p95 ms", "recall@10",
        "bytes/vector on disk", "RSS MB per 1M vectors",
    ]  # fmt: skip
    rows = [
        [
            run["size"],
            run["kind"],
            run["index"],
            run.get("build_s"),
            run.get("p50_ms"),
            run.get("p95_ms"),
            number(run.get("recall@10"), 3),
            run.get("bytes_per_vector"),
            run.get("rss_mb_per_million"),
        ]
        for run in result["runs"]
    ]
    return table(header, rows)


def answer_tables(result: Result) -> str:
    styles = [
        [
            row["llm"],
            row["style"],
            row["questions"],
            row["first_shown_s"]["p50"],
            row["first_shown_s"]["p95"],
            row["total_s"]["p50"],
            row["total_s"]["p95"],
            row["decode_tokens_per_s"]["p50"],
            row["refused"],
            row.get("target_s"),
        ]
        for row in result.get("styles") or []
    ]
    header = [
        "LLM", "style", "questions", "first shown p50 s", "p95", "total p50 s", "p95",
        "decode tokens/s p50", "refused", "target p50 s",
    ]  # fmt: skip
    text = [table(header, styles)]
    summary = result.get("summary") or {}
    labels = {
        "first_token_s": "first token, s (end to end)",
        "generation_first_token_s": "first token, s (generation only)",
        "decode_tokens_per_s": "decode, tokens/s",
        "total_s": "total, s",
        "prompt_tokens": "prompt tokens",
        "new_tokens": "new tokens",
    }
    versus = [
        [
            label,
            summary[key]["ours"]["p50"],
            summary[key]["ours"]["p95"],
            summary[key]["baseline"]["p50"],
            summary[key]["baseline"]["p95"],
            summary[key]["ratio_p50"],
        ]
        for key, label in labels.items()
        if key in summary
    ]
    if versus and result.get("baseline"):
        ours = result.get("ours") or {}
        text.append(
            f"Against the plain transformers pipeline ({ours.get('llm')}, style "
            f"{ours.get('style')}, the first {result['setup'].get('baseline_questions')} "
            f"questions; same reply on {number(result.get('same_reply'))}):"
        )
        text.append(
            table(
                ["metric", "kbqa p50", "kbqa p95", "baseline p50", "baseline p95", "kbqa ÷ base"],
                versus,
            )
        )
    return "\n\n".join(text)


def limits_table(result: Result) -> str:
    bounds, measured = result["bounds"], result["measured"]
    matmul = result["matmul_gflop_per_s"]
    rows = [
        ["memory read bandwidth, GB/s (torch sum)", result["bandwidth_gb_per_s"]["torch_sum_read"]],
        [
            f"matrix multiply {result['matmul_size']}², GFLOP/s: float32 / bfloat16 / int8",
            f"{number(matmul['fp32'], 1)} / {number(matmul['bf16'], 1)} / "
            f"{number(matmul['int8'], 1)}",
        ],
        [
            "decode bound, tokens/s: bfloat16 / float32",
            f"{number(bounds['bfloat16']['decode_bound_tokens_per_s'], 1)} / "
            f"{number(bounds['float32']['decode_bound_tokens_per_s'], 1)}",
        ],
        *(
            [["decode bound with the int8 decode copy, tokens/s", number(int8, 1)]]
            if (int8 := bounds.get("bfloat16+int8 decode", {}).get("decode_bound_tokens_per_s"))
            else []
        ),
        [
            "prefill bound, tokens/s: bfloat16 / float32",
            f"{number(bounds['bfloat16']['prefill_bound_tokens_per_s'], 0)} / "
            f"{number(bounds['float32']['prefill_bound_tokens_per_s'], 0)}",
        ],
    ]
    for side in ("ours", "baseline"):
        got = measured.get(side)
        if got:
            rows.append(
                [
                    f"{'kbqa' if side == 'ours' else 'baseline'} ({got['dtype']}): "
                    "decode / prefill",
                    f"{number(got['decode_tokens_per_s'], 1)} tokens/s = "
                    f"{number(got['decode_fraction_of_bound'])} of its bound / "
                    f"{number(got['prefill_tokens_per_s'], 0)} tokens/s = "
                    f"{number(got['prefill_fraction_of_bound'])}",
                ]
            )
    return table(["measure", "figure"], rows)


def embedders_table(result: Result) -> str:
    rows = []
    for name, run in result["models"].items():
        rows.append(
            [
                name,
                run["load_wall_s"],
                run["passages_n"] / run["passages_wall_s"],
                run["passages_cpu_s"],
                run["queries_n"] / run["queries_wall_s"],
                run["queries_cpu_s"],
            ]
        )
    header = ["model", "load s", "passages/s", "CPU s", "queries/s", "CPU s"]
    return table(header, rows)


def decode_table(result: Result) -> str:
    rows = []
    for llm, run in result["llms"].items():
        for label in ("on", "off"):
            got = run["summary"][label]
            rows.append(
                [
                    llm,
                    label,
                    got["decode_tokens_per_s"],
                    got["first_piece_s"],
                    got["total_s"],
                    got["new_tokens"],
                    run["int8_copy_mib"] if label == "on" else 0,
                    run["ratio_on_off"].get("decode_tokens_per_s") if label == "on" else "",
                    run["same_reply"],
                ]
            )
    header = [
        "LLM", "int8 decode", "decode tokens/s p50", "first piece s", "total s", "new tokens",
        "copy MiB", "decode on ÷ off", "same reply",
    ]  # fmt: skip
    return table(header, rows)


SECTIONS: list[tuple[str, str, Callable[[Result], str]]] = [
    ("ingest.json", "Ingest against the LangChain pipeline", ingest_tables),
    ("search.json", "Search at scale", search_table),
    ("decode.json", "Decoding with and without the int8 decode copy", decode_table),
    ("answer.json", "Answer speed per style and LLM", answer_tables),
    ("limits.json", "The machine's limits", limits_table),
    ("embedders.json", "Embedders", embedders_table),
]


def report(results: Path) -> str:
    out = ["# make bench: tables", ""]
    for file, title, render in SECTIONS:
        out.append(f"## {title}")
        out.append("")
        path = results / file
        if not path.is_file():
            out += [f"Not measured: {path.name} is missing.", ""]
            continue
        result = json.loads(path.read_text(encoding="utf-8"))
        out += [provenance(result), ""]
        if "skipped" in result:
            out += [f"Skipped: {result['skipped']}", ""]
            continue
        out += [render(result), ""]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--out", type=Path, help="default: standard output")
    args = parser.parse_args(argv)
    text = report(args.results)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

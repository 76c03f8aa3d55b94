"""tools/bench_report.py: the tables of docs/performance.md come from make bench's JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TOOL = ROOT / "tools" / "bench_report.py"


def render(results: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(TOOL), "--results", str(results)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_section_renders_from_the_kept_results() -> None:
    text = render(RESULTS)
    ingest = json.loads((RESULTS / "ingest.json").read_text())
    for row in ingest["results"]:
        # Each corpus's kbqa row carries its wall time and its ratio to the baseline.
        ours = f"| **kbqa** | {row['ours']['wall_s']:g} |"
        assert ours in text, ours
    for title in ("Ingest", "Search at scale", "Decoding", "Answer speed", "limits", "Embedders"):
        assert f"## {title}" in text or title in text
    assert "Not measured" not in text and "Skipped" not in text
    assert text.count("|---|") >= 6  # one table per section at least


def test_a_missing_or_skipped_result_is_named(tmp_path: Path) -> None:
    shutil.copy(RESULTS / "search.json", tmp_path / "search.json")
    (tmp_path / "limits.json").write_text(json.dumps({"skipped": "no model here"}))
    text = render(tmp_path)
    assert "Not measured: ingest.json is missing." in text
    assert "Skipped: no model here" in text
    assert "| 1,000,000 |" in text  # the search table itself

"""Every benchmark in bench/ still runs: each script's ``--smoke`` mode, one process each.

A smoke run uses the smallest real input and the smallest models (seconds), writes its
JSON to a temporary file, and must exit 0 with ``commit``, ``machine`` and ``settings``
recorded and the fields its tables are built from. A script may instead write
``skipped`` with a reason where its input cannot exist here (no GPU, no Tesseract, no
shared data sets), never silently. The ones that load real models are marked slow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
HELPERS = {"__init__", "common", "machine"}  # modules the scripts import, not benchmarks
# Scripts another test already runs end to end (their smoke mode would only repeat it).
RUN_ELSEWHERE = {
    "injection": "tests/test_injection.py",
    "first_content": "tests/test_api_sources.py",
    "sandbox": "tests/hostile/test_sandbox.py",
    "open_webui": "run by hand: python bench/open_webui.py (a 7 GB install, not in make test)",
}


@dataclass(frozen=True)
class Smoke:
    fields: tuple[str, ...]  # what the result must hold (besides commit, machine, settings)
    slow: bool = False  # loads a real model
    may_skip: str = ""  # why this script may skip here ("" : it must run)
    timeout_s: int = 240
    arguments: tuple[str, ...] = ()  # besides --smoke and --out


SMOKES = {
    "search": Smoke(("runs", "faiss")),
    "scoped_search": Smoke(("rows", "index", "exact_scope_rows")),
    "scale": Smoke(("ingest", "index", "nodes")),
    "hostile": Smoke(("ingest", "walking", "pictures", "linearity")),
    "near_miss": Smoke(("swaps", "squad_file"), may_skip="shared data"),
    "gpu_check": Smoke(("vectors", "embeddings"), may_skip="no CUDA GPU"),
    "ocr": Smoke(("fixture_cer", "speed"), may_skip="no Tesseract"),
    "limits": Smoke(("bounds", "model", "bandwidth_gb_per_s"), slow=True),
    "embedders": Smoke(("models",), slow=True),
    "decode": Smoke(("llms", "tokens"), slow=True),
    "ingest": Smoke(("results", "baseline_skipped"), slow=True, timeout_s=420),
    "answer": Smoke(
        ("summary", "styles", "per_question"),
        slow=True,
        timeout_s=420,
        arguments=("--int8-decode", "on,off"),  # both runs side by side, labelled
    ),
    "api_load": Smoke(("summary",), slow=True, timeout_s=420),
    "ray_ingest": Smoke(("runs",), slow=True, timeout_s=420),
    "fit_evidence": Smoke(("report",), slow=True),
    "answer_styles": Smoke(
        ("sets", "int8_decode_paired"),
        slow=True,
        timeout_s=420,
        arguments=("--int8-decode", "on,off"),
    ),
}


def scripts() -> set[str]:
    return {path.stem for path in BENCH.glob("*.py") if path.stem not in HELPERS}


def test_every_benchmark_has_a_smoke_run() -> None:
    """A new script in bench/ gets a ``--smoke`` mode and an entry here."""
    assert scripts() == set(SMOKES) | set(RUN_ELSEWHERE), (
        "bench/ and SMOKES differ: give each script --smoke and an entry in SMOKES"
    )


def params() -> list[Any]:
    return [
        pytest.param(
            name,
            smoke,
            marks=[pytest.mark.timeout(smoke.timeout_s + 30)]
            + ([pytest.mark.slow] if smoke.slow else []),
            id=name,
        )
        for name, smoke in SMOKES.items()
    ]


@pytest.mark.parametrize(("name", "smoke"), params())
def test_smoke_run_writes_its_result(name: str, smoke: Smoke, tmp_path: Path) -> None:
    out = tmp_path / f"{name}.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / f"{name}.py"), "--smoke", "--out", str(out), *smoke.arguments],
        capture_output=True,
        text=True,
        timeout=smoke.timeout_s,
        cwd=tmp_path,  # nothing may land in the working directory
    )
    assert done.returncode == 0, f"{name} --smoke failed:\n{done.stderr[-4000:]}"
    assert out.is_file(), f"{name} --smoke wrote no {out.name}:\n{done.stdout[-2000:]}"
    result = json.loads(out.read_text())
    assert result["smoke"] is True
    assert result["machine"]["cores"] >= 1 and result["machine"]["cpu"]
    assert "sha" in result["commit"] and "settings" in result
    if "skipped" in result:
        assert smoke.may_skip, f"{name} skipped: {result['skipped']}"
        pytest.skip(f"{name}: {result['skipped']}")
    missing = [field for field in smoke.fields if field not in result]
    if name == "answer":  # one row per (LLM, int8 decode, style)
        assert {row["llm"].rsplit(" · ", 1)[-1] for row in result["styles"]} == {
            "int8 decode on",
            "int8 decode off",
        }
    assert not missing, f"{name}: no {missing} in {sorted(result)}"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".json") == [], (
        f"{name} left files in its working directory"
    )

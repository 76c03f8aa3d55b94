"""``kbqa doctor``: which protections of the reading process hold on this machine.

Every file is parsed in a reading process that sandboxes itself before it reads
(``ingest.sandbox``: seccomp filter, NO_NEW_PRIVS, cleared environment, only
its pipes open, an address-space limit; its OCR helper likewise). Where the
kernel or libseccomp lacks a part, reading goes on under the limits alone;
this command starts a real reading process, asks it what the kernel shows,
and prints one row per protection. Exit status 0 when all hold, 1 otherwise.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from ..text import printable

EXIT_ALL_ACTIVE = 0
EXIT_SOME_MISSING = 1


def run_doctor(settings: Any, out: IO[str] | None = None) -> int:
    """Print the reading process's protections as a table (escaped); 0 when all hold."""
    from ..ingest.reader_process import ParseWorker, WorkerFailure, sandboxed
    from ..ingest.sandbox import SandboxReport

    out = out or sys.stdout
    if not sandboxed():
        print("reading process: NOT sandboxed (KBQA_READER_SANDBOX=0 is for benchmarks)", file=out)
    try:
        with ParseWorker(settings.parse_limits()) as worker:
            result, _ = worker.call("kbqa.ingest.sandbox:report_request", {}, seconds=60.0)
    except WorkerFailure as failure:
        print(printable(f"the reading process did not answer: {failure.reason}"), file=out)
        return EXIT_SOME_MISSING
    report = SandboxReport.from_dict(result)
    rows = [("protection", "active", "detail")]
    rows += [(p.name, "yes" if p.active else "NO", p.detail) for p in report.protections]
    width = max(len(row[0]) for row in rows)
    for name, active, detail in rows:
        print(printable(f"{name:<{width}}  {active:<6}  {detail}"), file=out)
    missing = report.missing
    if missing:
        names = ", ".join(p.name for p in missing)
        print(printable(f"missing: {names}; files are still read under the limits"), file=out)
        return EXIT_SOME_MISSING
    print("every file is read with no network, no programs, and nothing written", file=out)
    return EXIT_ALL_ACTIVE

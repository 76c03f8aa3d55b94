"""The machine a benchmark ran on, recorded beside every result."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine() -> dict[str, object]:
    cpu, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "bf16_instructions": bool(flags & {"avx512_bf16", "amx_bf16"}),
        "memory_gb": round(memory_gb, 1),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }

"""What a benchmark ran on, for the header of its results table (timings mean nothing without it)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    """1/5/15-minute load average: a shared machine's timings need it next to them."""
    return "/".join(f"{x:.1f}" for x in os.getloadavg())

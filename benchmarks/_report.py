"""Write a benchmark's results into its own section of docs/benchmarks.md.

Each benchmark owns one section between ``<!-- BEGIN name -->`` and ``<!-- END name -->``;
rerunning it replaces that section only. Every section carries the date and the machine.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import subprocess
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\nRun on demand (`python benchmarks/NAME.py`); "
    "each section below is written by its script.\n"
)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        one, five, fifteen = os.getloadavg()
        load = f", load average {one:.2f} {five:.2f} {fifteen:.2f}"
    except OSError:
        load = ""
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}{load}"


def git_rev() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_section(name: str, title: str, body: str) -> None:
    """Replace (or append) section ``name`` of docs/benchmarks.md."""
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"<!-- BEGIN {name} -->\n## {title}\n\n*{stamp}; {machine()}; rlworks {git_rev()}.*\n\n"
        f"{body.strip()}\n<!-- END {name} -->"
    )
    text = DOC.read_text() if DOC.exists() else HEADER
    pattern = re.compile(
        rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S
    )
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + block + "\n"
    )
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)

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


def replace_marked(path: Path, name: str, block_body: str, head: str) -> None:
    """Replace the part of ``path`` between ``<!-- BEGIN name -->`` and ``<!-- END name -->``
    with ``block_body`` (or append it, starting a new file with ``head``)."""
    block = f"<!-- BEGIN {name} -->\n{block_body.strip()}\n<!-- END {name} -->"
    text = path.read_text() if path.exists() else head
    pattern = re.compile(
        rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S
    )
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + block + "\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_section(name: str, title: str, body: str) -> None:
    """Replace (or append) section ``name`` of docs/benchmarks.md."""
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    replace_marked(
        DOC,
        name,
        f"## {title}\n\n*{stamp}; {machine()}; rlworks {git_rev()}.*\n\n{body.strip()}",
        HEADER,
    )

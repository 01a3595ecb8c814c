"""Provenance of a run: package versions, code revision, host and process.

Everything here is cheap and never imports the packages it reports on: versions come from
``importlib.metadata`` (so asking for torch's version does not load torch), the revision
from ``git`` run in the current directory with ``GIT_OPTIONAL_LOCKS=0`` (so it never takes
the index lock of a repository someone is working in).
"""

from __future__ import annotations

import functools
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TypedDict

# Packages whose versions decide the numbers a run produces.
TRACKED_PACKAGES = ("numpy", "torch", "gymnasium", "rlworks")


def package_versions(packages: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """``{"python": "3.11.9", "numpy": "2.1.0", ...}``; ``None`` for a package not installed."""
    import importlib.metadata as metadata
    import platform

    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    if versions.get("rlworks") is None and "rlworks" in packages:
        import rlworks  # running from a source tree that is not installed

        versions["rlworks"] = rlworks.__version__
    return versions


@functools.cache
def git_revision(cwd: str | None = None) -> str | None:
    """``"<sha>"`` of HEAD in ``cwd``'s repository, ``"<sha>-dirty"`` with tracked changes.

    ``None`` outside a repository or without git. Cached per process: the code a process
    runs is the code it loaded, whatever happens to the working tree afterwards.
    """
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    if not sha:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return f"{sha}-dirty" if status else sha


def host_name() -> str:
    return os.uname().nodename if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", "")


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot; Linux only, else ``None``).

    Stored next to the pid so a recycled pid is not mistaken for the run's process.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (comm) may contain spaces and parentheses: split after its closing ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of the full line
    except (IndexError, ValueError):
        return None


def process_alive(pid: int, start_time: int | None = None) -> bool:
    """Whether ``pid`` on this host is a live (non-zombie) process started at ``start_time``."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OSError:  # pragma: no cover - platforms without signal 0
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): signal 0 is all we know
    if stat[stat.rfind(")") + 2 :].startswith("Z"):
        return False  # killed, not yet reaped by its parent
    return start_time is None or process_start_time(pid) == start_time


class Provenance(TypedDict):
    versions: dict[str, str | None]
    git_rev: str | None
    command: str
    host: str
    pid: int
    pid_start: int | None


def collect() -> Provenance:
    """Everything :meth:`RunStore.create_run` records about where a run comes from."""
    pid = os.getpid()
    return Provenance(
        versions=package_versions(),
        git_rev=git_revision(os.getcwd()),
        command=shlex.join(sys.argv),
        host=host_name(),
        pid=pid,
        pid_start=process_start_time(pid),
    )

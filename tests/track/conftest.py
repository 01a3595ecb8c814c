from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlworks.cli import runs as runs_cli
from rlworks.track.store import RunStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    s = RunStore(tmp_path / "store")
    yield s
    s.close()


def make_parser() -> argparse.ArgumentParser:
    """What the main CLI does: a global --store and the subcommands."""
    parser = argparse.ArgumentParser(prog="rlworks")
    parser.add_argument("--store", default=None)
    sub = parser.add_subparsers(dest="command")
    runs_cli.register(sub)
    return parser


@pytest.fixture
def cli():
    parser = make_parser()

    def run(*argv: str) -> int:
        args = parser.parse_args(list(argv))
        return args.func(args)

    return run

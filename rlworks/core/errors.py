"""User-facing errors: one line that names the input at fault and the fix.

Library code raises :class:`UserError` at its boundary (argument parsing, config loading,
store look-ups); the CLI prints ``error: <message>`` and exits with code 2, no traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input from the user. ``str(err)`` is a complete one-line message."""

    exit_code = 2


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean 'X'?"`` for the closest choice, or ``""`` if none is close."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean '{lowered[close[0]]}'?" if close else ""


def unknown(kind: str, name: str, choices: Iterable[str]) -> UserError:
    """The standard error for a name that is not one of ``choices``."""
    choices = sorted(choices)
    hint = did_you_mean(name, choices)
    if not hint:
        shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
        hint = f"; choose one of: {shown}"
    return UserError(f"unknown {kind} '{name}'{hint}")

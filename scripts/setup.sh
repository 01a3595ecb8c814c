#!/usr/bin/env bash
# Set up ./.venv for rlworks. Usage: bash scripts/setup.sh [EXTRAS]   (e.g. "dev" or "dev,envpool")
# torch comes first, pinned to the CPU wheel on local disk: a bare `torch` requirement (ours or
# another package's) would otherwise download a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY="$cand"; break
    fi
  done
fi
[ -n "$PY" ] || { echo "error: rlworks needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 2; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
if ! .venv/bin/python -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
  echo "installing torch 2.13.0 (CPU)..." >&2
  .venv/bin/python -m pip install -q torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
fi
spec="."
[ -n "$extras" ] && spec=".[$extras]"
echo "installing rlworks${extras:+ [$extras]}..." >&2
.venv/bin/python -m pip install -q -e "$spec" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c 'import rlworks, torch, gymnasium' || { echo "error: set-up failed" >&2; exit 1; }

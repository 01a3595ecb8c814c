#!/usr/bin/env bash
# Set up ./.venv with the dev extras and run the test suite: the default tier (unit, smoke,
# everything not marked `slow`), then the fixed CI subset of slow learning tests (`ci_slow`).
# pytest's exit code 5 ("no tests collected") is a failure here, never a silent pass.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,envpool || exit $?
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
run() {
  .venv/bin/python -m pytest "$@"
  rc=$?
  if [ "$rc" -eq 5 ]; then echo "error: pytest collected no tests for: $*" >&2; exit 1; fi
  [ "$rc" -eq 0 ] || exit "$rc"
}
run -q -p no:cacheprovider "$@"
run -q -p no:cacheprovider -m ci_slow "$@"

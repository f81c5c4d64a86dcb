#!/usr/bin/env bash
# The whole check: ruff, mypy and the import-layers contract (lint-imports), then every test (learning tests
# included), in .venv with the dev extra. Arguments go to pytest (scripts/test.sh tests/envs -q);
# ROBUSTRL_SKIP_LINT=1 runs pytest alone.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/venv.sh" dev
cd "$root"
if [ -z "${ROBUSTRL_SKIP_LINT:-}" ]; then
  echo "[robustrl] ruff, mypy, lint-imports" >&2
  .venv/bin/ruff check src tests benchmarks
  .venv/bin/mypy
  .venv/bin/lint-imports
fi
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# The whole test suite (learning tests included), in .venv with the dev extra.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/venv.sh" dev
cd "$root"
exec .venv/bin/python -m pytest "$@"

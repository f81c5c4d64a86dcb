#!/usr/bin/env bash
# The main job: a quick robustness study on the default settings, ending with a report.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/venv.sh"
cd "$root"
exec .venv/bin/robustrl demo "$@"

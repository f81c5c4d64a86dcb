#!/usr/bin/env bash
# Create or reuse .venv and install robustrl into it. Usage: scripts/venv.sh [EXTRAS]  (e.g. "dev")
# torch is installed first, pinned (ROBUSTRL_TORCH_SPEC, default torch==2.13.0), so that no dependency
# range can pull a CUDA build of torch onto a CPU machine; later installs are constrained to that pin.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
extras="${1:-}"
torch_spec="${ROBUSTRL_TORCH_SPEC:-torch==2.13.0}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[robustrl] creating virtual environment .venv" >&2
  "$python" -m venv .venv
fi
# Reinstall only when the package definition or the requested extras changed.
stamp=".venv/.robustrl-installed"
want="$(cat pyproject.toml .ci/constraints.txt | sha256sum | cut -c1-16) extras=${extras} torch=${torch_spec}"
if [ -f "$stamp" ] && grep -qxF "$want" "$stamp"; then
  exit 0
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
echo "[robustrl] installing ${torch_spec} (CPU build where available)" >&2
.venv/bin/python -m pip install -q "$torch_spec"
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
.venv/bin/python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > "$constraints"
target="."
[ -n "$extras" ] && target=".[${extras}]"
echo "[robustrl] installing robustrl${extras:+[$extras]}" >&2
.venv/bin/python -m pip install -q -c "$constraints" -e "$target"
echo "$want" > "$stamp"

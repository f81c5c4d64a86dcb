"""Provenance records which numeric code path produced a result."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from robustrl.common.provenance import provenance


def test_provenance_names_the_cpu_and_its_code_paths() -> None:
    got = provenance()
    assert got["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    cpuinfo = Path("/proc/cpuinfo")
    names = [ln.split(":", 1)[1].strip() for ln in (cpuinfo.read_text().splitlines() if cpuinfo.is_file() else [])
             if ln.startswith("model name")]  # fmt: skip
    assert got["cpu"] == (names[0] if names else platform.processor())
    assert got["torch"] == torch.__version__ and got["torch_threads"] == torch.get_num_threads()


def test_a_pinned_mkl_path_is_recorded() -> None:
    code = "from robustrl.common.provenance import provenance; print(provenance()['mkl_cbwr'])"
    for value, shown in (("COMPATIBLE", "COMPATIBLE"), (None, "None")):
        env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
        if value is not None:
            env["MKL_CBWR"] = value
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == shown

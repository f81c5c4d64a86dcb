"""What produced a result: versions, commit, device. Saved beside every artefact."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """The commit of the robustrl checkout, when it is one."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux, else what :func:`platform.processor` says)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def provenance() -> dict[str, Any]:
    """Versions of the packages that matter, python, platform, commit, CPU and a UTC timestamp.

    The CPU fields say which numeric code path ran: PyTorch's CPU kernels (``cpu_capability``) and MKL's
    (chosen per processor unless ``MKL_CBWR`` fixes it) round differently on different processors, so a seeded
    training run is reproducible on the same kind of machine, not across kinds.
    """
    import torch

    return {
        "robustrl": _version("robustrl"),
        "torch": torch.__version__,
        "gymnasium": _version("gymnasium"),
        "numpy": _version("numpy"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": git_commit(),
        "torch_threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_cbwr": os.environ.get("MKL_CBWR"),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }

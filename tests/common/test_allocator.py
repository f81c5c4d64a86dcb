"""Freed memory stays in the process: large tensors freed are not handed back to the system (and faulted in again)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from robustrl.common.allocator import keep_freed_memory

_PROBE = textwrap.dedent("""
    import sys
    import torch
    from robustrl.common.allocator import keep_freed_memory
    kept = keep_freed_memory() if sys.argv[1] == "keep" else False
    if sys.argv[2:] == ["settings-only"]:
        sys.exit(print(kept, 0))

    def rss_mib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 >> 20

    blocks = [torch.ones(4 << 20) for _ in range(8)]  # 128 MiB of activations, touched
    full = rss_mib()
    while blocks:  # freed, the last made first
        blocks.pop()
    print(kept, full - rss_mib())  # MiB given back to the system
""")


def _probe(mode: str, *more: str, **env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES", "ROBUSTRL_MALLOC"))}
    out = subprocess.run([sys.executable, "-c", _PROBE, mode, *more], capture_output=True, text=True, check=True,
                         env={**clean, **env}).stdout.split()  # fmt: skip
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_large_tensors_stay_in_the_process_instead_of_going_back_to_the_system() -> None:
    kept, returned_kept = _probe("keep")
    _, returned_default = _probe("default")
    assert kept == "True"
    assert returned_default >= 100  # glibc's defaults unmap the blocks: the next update faults them in again
    assert returned_kept < 16


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_zero_or_a_users_own_malloc_settings_leave_malloc_alone() -> None:
    assert _probe("keep", "settings-only")[0] == "True"
    assert _probe("keep", "settings-only", ROBUSTRL_MALLOC_RETAIN_MIB="0")[0] == "False"
    assert _probe("keep", "settings-only", MALLOC_TRIM_THRESHOLD_="1000000")[0] == "False"


def test_a_bad_size_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ("lots", "-5", "1e9"):
        monkeypatch.setenv("ROBUSTRL_MALLOC_RETAIN_MIB", bad)
        with pytest.raises(ValueError, match="ROBUSTRL_MALLOC_RETAIN_MIB"):
            keep_freed_memory()

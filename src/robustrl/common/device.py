"""Check a ``--device`` before any work: it must exist in this torch build and on this machine."""

from __future__ import annotations

import torch

__all__ = ["check_device"]


def check_device(device: str | torch.device | None, what: str = "--device") -> torch.device | None:
    """The torch device ``device`` after checking it exists in this build and on this machine.

    A tensor of size 0 is made there, so CUDA on a CPU-only build, a missing GPU index or an unknown type
    fail here, with ``what`` named, instead of as a traceback deep inside the first rollout.

    None stays None (the caller's default, e.g. the policy's device).

    Raises:
        ValueError: not a device name, or a device this process cannot use.

    Example:
        >>> check_device("cpu")
        device(type='cpu')
    """
    if device is None:
        return None
    try:
        dev: torch.device | None = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type == "meta":
        raise ValueError(f"{what} {str(device)!r} is not a device to run on: use cpu, cuda or cuda:N")
    try:
        torch.empty(0, device=dev)
    except (RuntimeError, AssertionError, ValueError) as err:
        no_cuda = dev.type == "cuda" and not torch.backends.cuda.is_built()
        why = "this torch build has no CUDA support" if no_cuda else str(err).strip().splitlines()[0][:200]
        raise ValueError(f"{what} {str(device)!r} cannot be used here ({why}); pass --device cpu") from None
    return dev

"""``robustrl certify``: the config and the entry point the console script calls."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from robustrl.certify.certificate import Certificate, certify_policy


@dataclass(frozen=True)
class CertifyConfig:
    """Certify a policy's return under ℓ2 observation attacks with Policy Smoothing."""

    policy: Path
    """Policy file (robustrl zip, SB3 zip, TorchScript) loaded with robustrl.load_policy."""
    env: str
    """Environment id, e.g. CartPole-v1."""
    sigma: float
    """Std of the Gaussian observation noise of the smoothed policy (use the training --obs-noise)."""
    budgets: tuple[str, ...] = ("0:1:0.05",)
    """Total ℓ2 budgets B: numbers and/or start:stop:step ranges (stop included)."""
    out: Path | None = None
    """Where to write the certificate JSON (not written when unset)."""
    episodes: int = 10_000
    """Number of smoothed episodes n."""
    alpha: float = 0.05
    """Failure probability; the certificate holds with probability 1 - alpha."""
    method: Literal["dkw", "cp"] = "dkw"
    """Confidence bounds: DKW band (data-chosen thresholds) or Clopper-Pearson on a fixed grid."""
    floor: float | None = None
    """Least return the task allows (default: the env's declared return floor)."""
    max_return: float | None = None
    """Largest return the task allows; with --method cp every integer above the floor up to it is a threshold."""
    per_step: bool = False
    """Read the budgets as per-step ε; certified total budget B = ε·sqrt(horizon)."""
    quantile: float | None = None
    """Also certify this quantile of the attacked return (e.g. 0.5 for the median)."""
    seed: int = 0
    """Seed of env resets, observation noise and bootstrap."""
    num_envs: int | None = None
    """Env copies stepped together (default 1024 on CPU, up to 2^20 on GPU)."""
    device: str = "cpu"
    """Where envs and policy run (cpu, cuda)."""
    progress: bool = True
    """Show a progress bar."""


def parse_budgets(items: Sequence[str] | str) -> np.ndarray:
    """Parse budgets: numbers and ``start:stop:step`` ranges (stop included), as a sorted float array.

    Example:
        >>> parse_budgets(["0:1:0.25", "2"]).tolist()
        [0.0, 0.25, 0.5, 0.75, 1.0, 2.0]

    """
    tokens = [items] if isinstance(items, str) else list(items)
    out: list[float] = []
    for token in tokens:
        for part in str(token).replace(",", " ").split():
            try:
                if ":" in part:
                    start, stop, step = (float(x) for x in part.split(":"))
                    if not step > 0 or not math.isfinite(step) or stop < start:
                        raise ValueError("need step > 0 and stop >= start")
                    count = math.floor((stop - start) / step + 1e-9)
                    out.extend(round(start + i * step, 12) for i in range(count + 1))
                else:
                    out.append(float(part))
            except ValueError as err:
                raise ValueError(f"budgets: cannot read {part!r} as a number or start:stop:step ({err})") from err
    if not out:
        raise ValueError("budgets: no budget given")
    arr = np.unique(np.asarray(out, dtype=np.float64))
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"budgets must be finite and >= 0, got {arr.tolist()}")
    return arr


def run_certify(cfg: CertifyConfig) -> Certificate:
    """Run :func:`~robustrl.certify.certificate.certify_policy` from a config; save it when ``cfg.out`` is set."""
    budgets = parse_budgets(cfg.budgets)
    cert = certify_policy(
        cfg.policy,
        cfg.env,
        sigma=cfg.sigma,
        budgets=None if cfg.per_step else budgets,
        epsilon=budgets if cfg.per_step else None,
        episodes=cfg.episodes,
        alpha=cfg.alpha,
        method=cfg.method,
        floor=cfg.floor,
        max_return=cfg.max_return,
        quantile=cfg.quantile,
        seed=cfg.seed,
        num_envs=cfg.num_envs,
        device=cfg.device,
        progress=cfg.progress,
    )
    if cfg.out is not None:
        cert.save(cfg.out)
    return cert

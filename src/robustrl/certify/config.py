"""``CertifyConfig``: one Policy Smoothing certification, as ``robustrl certify`` parses it.

The field docstrings are the CLI help; the config round-trips through ``robustrl.common.config``
(``config_to_dict`` / ``config_from_dict``) and the resolved config is saved in every certificate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from robustrl.certify.smoothing import dkw_margin, resolve_budgets
from robustrl.common.device import check_device
from robustrl.common.io import check_output_path
from robustrl.common.limits import MAX_COUNT, check_count, check_fits
from robustrl.common.seeding import check_seed
from robustrl.defenses.smoothing import check_sigma

__all__ = [
    "BUDGET_BYTES",
    "EPISODE_BYTES",
    "THRESHOLD_BYTES",
    "CertifyConfig",
    "CertifyPlan",
    "budget_texts",
    "check_thresholds_fit",
    "integer_grid_size",
    "parse_budgets",
    "plan_certify",
]

EPISODE_BYTES = 384
"""Peak memory one smoothed episode costs a certificate: the rollout's buffers, the stored return and
length, and, dominating, their Python lists and JSON text while the certificate is saved."""
BUDGET_BYTES = 256
"""Memory one budget costs: its parsed value, its bound (and quantile bound), their JSON text."""
THRESHOLD_BYTES = 64
"""Memory one threshold of the bound costs: the grid, its survival probability, lower bound and width."""


@dataclass(frozen=True)
class CertifyConfig:
    """Certify a policy's return under ℓ2 observation attacks with Policy Smoothing."""

    policy: str
    """Policy file (robustrl zip, SB3 zip, TorchScript) loaded with robustrl.load_policy."""
    env: str
    """Environment id, e.g. CartPole-v1."""
    sigma: float
    """Std of the Gaussian observation noise of the smoothed policy (use the training --obs-noise)."""
    budgets: tuple[str, ...] = ("0:1:0.05",)
    """Total ℓ2 budgets B: numbers and/or start:stop:step ranges (stop included); sorted, repeats dropped."""
    out: str | None = None
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
    thresholds: tuple[float, ...] = ()
    """Fixed threshold grid of the bound, chosen before the data (empty: from the method)."""
    per_step: bool = False
    """Read the budgets as per-step ε; certified total budget B = ε·sqrt(horizon)."""
    horizon: int | None = None
    """Horizon H of per-step budgets (default: the env's time limit)."""
    quantile: float | None = None
    """Also certify this quantile of the attacked return (e.g. 0.5 for the median)."""
    seed: int | None = 0
    """Seed of env resets, observation noise and bootstrap."""
    num_envs: int | None = None
    """Env copies stepped together (default 1024 on CPU, up to 2^20 on GPU)."""
    device: str | None = None
    """Where envs and policy run (cpu, cuda; default: the policy's device, cpu for a file)."""
    deterministic: bool = True
    """Greedy base actions (true) or sampled ones."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments of robustrl.make_env (Python and config files only)."""
    progress: bool = True
    """Show a progress bar."""
    trust_code: bool = False
    """Allow loading TorchScript policies, which are code; only for files you trust."""
    vec_normalize: str | None = None
    """SB3 vec_normalize.pkl applied inside an SB3 policy (read without unpickling)."""

    def validate(self) -> None:
        """Check every option without running anything (:func:`plan_certify`); ``ValueError`` naming it."""
        plan_certify(self)


def parse_budgets(items: Sequence[str] | str) -> np.ndarray:
    """Parse budgets: numbers and ``start:stop:step`` ranges (stop included), as a sorted float array.

    Every range is counted before it is expanded: more budgets than
    :data:`robustrl.common.limits.MAX_COUNT`, or than fit in memory (:data:`BUDGET_BYTES` each), are
    refused with the range and the limit named.

    Raises:
        ValueError: a token that is not a number or a range, a negative or non-finite budget, none at
            all, or too many.

    Example:
        >>> parse_budgets(["0:1:0.25", "2"]).tolist()
        [0.0, 0.25, 0.5, 0.75, 1.0, 2.0]

    """
    tokens = [items] if isinstance(items, str) else list(items)
    parts = [part for token in tokens for part in str(token).replace(",", " ").split()]
    ranges: dict[str, tuple[float, float, int]] = {}
    for part in parts:
        if ":" not in part:
            continue
        try:
            start, stop, step = (float(x) for x in part.split(":"))
            if not step > 0 or not all(map(math.isfinite, (start, stop, step))) or stop < start:
                raise ValueError("need finite start <= stop and step > 0")
        except ValueError as err:
            raise ValueError(f"budgets: cannot read {part!r} as a number or start:stop:step ({err})") from err
        count = math.floor((stop - start) / step + 1e-9) + 1
        if count > MAX_COUNT:
            raise ValueError(
                f"--budgets {part} is {count:.3g} budgets, more than the limit of {MAX_COUNT}: use a coarser step"
            )
        ranges[part] = (start, step, count)
    total = sum(c for _, _, c in ranges.values()) + len(parts) - len(ranges)
    check_fits(total * BUDGET_BYTES, f"--budgets {' '.join(parts)} ({total} budgets)", hint="use a coarser step")
    out: list[float] = []
    for part in parts:
        if part in ranges:
            start, step, count = ranges[part]
            out.extend(round(start + i * step, 12) for i in range(count))
            continue
        try:
            out.append(float(part))
        except ValueError as err:
            raise ValueError(f"budgets: cannot read {part!r} as a number or start:stop:step ({err})") from err
    if not out:
        raise ValueError("budgets: no budget given")
    arr = np.unique(np.asarray(out, dtype=np.float64))
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"budgets must be finite and >= 0, got {arr.tolist()}")
    return arr


def budget_texts(values: Any, what: str = "budgets") -> tuple[str, ...]:
    """Numbers (a number or a 1-D list) as the exact texts :func:`parse_budgets` reads back.

    Raises:
        ValueError: not numbers, or not 1-D (naming ``what``).

    Example:
        >>> budget_texts([0, 0.1])
        ('0.0', '0.1')
    """
    try:
        arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be numbers, got {values!r}") from err
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a number or a 1-D list of numbers, got shape {tuple(arr.shape)}")
    return tuple(repr(float(v)) for v in arr)


def check_thresholds_fit(count: int, what: str) -> int:
    """``count`` thresholds of the bound after checking they fit in memory (:data:`THRESHOLD_BYTES` each).

    Raises:
        ValueError: too many thresholds (naming ``what`` and the limit).
    """
    n = check_count(count, what)
    check_fits(n * THRESHOLD_BYTES, f"{what} ({n} thresholds)", hint="use a smaller --max-return or --thresholds")
    return n


class CertifyPlan(NamedTuple):
    """What :func:`plan_certify` resolved from a :class:`CertifyConfig`, before any work."""

    sigma: float
    """The smoothing σ."""
    budgets: np.ndarray | None
    """Total ℓ2 budgets B ``[K]`` (None with per-step budgets)."""
    epsilon: np.ndarray | None
    """Per-step budgets ε ``[K]`` (None with total budgets)."""
    thresholds: list[float] | None
    """The fixed threshold grid, if given."""
    device: torch.device | None
    """The checked device (None: the policy's)."""


def integer_grid_size(floor: float, max_return: float) -> int:
    """How many thresholds ``--method cp --max-return`` makes: the integers in ``(floor, max_return]``.

    Raises:
        ValueError: ``max_return`` not finite or not above the floor.
    """
    if not math.isfinite(max_return) or not math.isfinite(floor) or max_return <= floor:
        raise ValueError(f"--max-return must be finite and above the floor {floor}, got {max_return!r}")
    return math.floor(max_return - floor + 1e-9)


def plan_certify(cfg: CertifyConfig) -> CertifyPlan:
    """Check every option of ``cfg`` and size the request, without loading or running anything.

    The memory of ``episodes`` smoothed episodes (:data:`EPISODE_BYTES` each), of the budgets (counted
    before a range is expanded) and of a Clopper–Pearson integer grid (when the floor is given; otherwise
    :func:`~robustrl.certify.certify` checks it once the env declares its floor, still before sampling) is
    checked; ``out`` must be a writable file path in an existing folder, ``device`` one this process can use.

    Raises:
        ValueError: naming the bad option (and the limit, for a request that cannot fit).
    """
    if cfg.seed is not None:
        check_seed(cfg.seed, "--seed")
    episodes = check_count(cfg.episodes, "--episodes")
    check_fits(episodes * EPISODE_BYTES, f"--episodes {episodes}", hint="use fewer episodes")
    s = check_sigma(cfg.sigma, "sigma")
    if not cfg.budgets:
        raise ValueError("--budgets is required (total ℓ2 budgets B >= 0, or per-step ε with --per-step)")
    parsed = parse_budgets(cfg.budgets)
    budgets, epsilon = (None, parsed) if cfg.per_step else (parsed, None)
    if budgets is not None:
        resolve_budgets(budgets, None, None)
    thresholds = list(cfg.thresholds) if cfg.thresholds else None
    alpha = cfg.alpha
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < float(alpha) < 0.5:
        raise ValueError(
            f"--alpha must be in (0, 0.5) (the certificate holds with probability 1 − alpha), got {alpha!r}"
        )
    if cfg.method not in ("dkw", "cp"):
        raise ValueError(f"--method must be 'dkw' or 'cp', got {cfg.method!r}")
    if cfg.method == "cp" and thresholds is None:
        if cfg.max_return is None:
            raise ValueError(
                "--method cp needs a threshold grid fixed before the data: pass --thresholds or --max-return"
            )
        if cfg.floor is not None:
            check_thresholds_fit(integer_grid_size(cfg.floor, cfg.max_return), f"--max-return {cfg.max_return:g}")
    if cfg.method == "dkw" and dkw_margin(episodes, float(alpha)) >= 1:
        raise ValueError(
            f"--episodes {episodes} is too few for --alpha {alpha}: the DKW half-width is >= 1, nothing can be "
            "certified; use thousands of episodes"
        )
    if cfg.quantile is not None:
        q = float(cfg.quantile)
        if not 0 < q < 1:
            raise ValueError(f"--quantile must be in (0, 1), got {cfg.quantile!r}")
        if (1 - q) ** episodes > float(alpha):
            raise ValueError(f"--episodes {episodes} is too few to certify the {q}-quantile at --alpha {alpha}")
    if cfg.num_envs is not None:
        check_count(cfg.num_envs, "--num-envs")
    if cfg.horizon is not None:
        check_count(cfg.horizon, "--horizon")
    if cfg.out is not None:
        check_output_path(cfg.out, what="--out", kind="file")
    return CertifyPlan(s, budgets, epsilon, thresholds, check_device(cfg.device))

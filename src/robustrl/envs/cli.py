"""``robustrl envs``: a table of the env ids robustrl can make, their parameters and return floors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from robustrl.envs.base import EnvInfo
from robustrl.envs.registry import list_envs


@dataclass(frozen=True)
class EnvsConfig:
    """Which environments to list."""

    kind: Literal["all", "native", "gymnasium"] = "all"
    """native: batched torch envs; gymnasium: ids served by the Gymnasium adapter; all: both."""
    match: str = ""
    """Only ids containing this text (case-insensitive)."""


def _format_params(info: EnvInfo) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in info.params.items()) or "-"


def run_envs(cfg: EnvsConfig) -> str:
    """Return a readable table: id, kind, time limit, parameters with defaults, return floor.

    Example:
        >>> print(run_envs(EnvsConfig(kind="native", match="cartpole")))  # doctest: +NORMALIZE_WHITESPACE
        id           kind    steps  parameters                                                        floor
        CartPole-v1  native  500    gravity=9.8, masscart=1, masspole=0.1, length=0.5, force_mag=10  0
    """
    infos = [i for i in list_envs(cfg.kind) if cfg.match.lower() in i.id.lower()]
    if not infos:
        return f"no env ids match {cfg.match!r} (kind {cfg.kind})"
    rows = [("id", "kind", "steps", "parameters", "floor")]
    for i in infos:
        floor = "-" if i.return_floor is None else f"{i.return_floor:g}"
        steps = "-" if i.max_episode_steps is None else str(i.max_episode_steps)
        rows.append((i.id, i.kind, steps, _format_params(i), floor))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)

"""ATLA and PA-ATLA: train the agent against a learned state adversary trained alongside it (configs only).

ATLA (Zhang et al., ICLR 2021, "Robust Reinforcement Learning on State Observations with Learned Optimal
Adversary") alternates PPO updates of the agent, acting on observations perturbed by an ``sa-rl``
adversary, with PPO updates of that adversary against the current agent. PA-ATLA (Sun et al., ICLR 2022)
uses the ``pa-ad`` adversary instead (a policy-space director realised by PGD). The trainer that runs the
two learners is :func:`robustrl.adversarial.atla.train_atla` (it needs the PPO learner, a layer above).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

from robustrl.common.limits import check_count

__all__ = ["ATLAConfig", "AlternatingConfig", "PAATLAConfig"]


@dataclass(frozen=True)
class AlternatingConfig:
    """What ATLA and PA-ATLA share: the adversary's budget, schedule and training."""

    kind: ClassVar[Literal["sa-rl", "pa-ad"]] = "sa-rl"

    eps: float = 0.05
    """Per-step ε of the adversary (the agent's normalised units where it normalises, raw units otherwise)."""
    eps_ramp: float = 0.3
    """Fraction of training over which ε grows linearly from 0 (0: the full ε from the start)."""
    norm: Literal["linf", "l2"] = "linf"
    """Which ℓp ball the perturbation stays in."""
    agent_iters: int = 1
    """Agent PPO iterations per round."""
    adversary_iters: int = 1
    """Adversary PPO iterations per round."""
    adversary_set: tuple[str, ...] = ()
    """Overrides of the adversary's PPOConfig as key=value (default: the robustrl adversary preset)."""
    pgd_steps: int = 10
    """pa-atla: PGD steps of the director's actor."""

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first bad field."""
        name = type(self).__name__
        if isinstance(self.eps, bool) or not isinstance(self.eps, int | float) or not math.isfinite(self.eps) \
                or self.eps <= 0:
            raise ValueError(f"{name}.eps must be a finite number > 0, got {self.eps!r}")
        if not 0.0 <= self.eps_ramp <= 1.0:
            raise ValueError(f"{name}.eps_ramp must lie in [0, 1], got {self.eps_ramp!r}")
        if self.norm not in ("linf", "l2"):
            raise ValueError(f"{name}.norm must be 'linf' or 'l2', got {self.norm!r}")
        for fld in ("agent_iters", "adversary_iters", "pgd_steps"):
            check_count(getattr(self, fld), f"{name}.{fld}")
        for item in self.adversary_set:
            if "=" not in item:
                raise ValueError(f"{name}.adversary_set expects key=value items, got {item!r}")

    def eps_at(self, progress: float) -> float:
        """ε after a fraction ``progress`` of training (linear ramp over ``eps_ramp``).

        Example:
            >>> ATLAConfig(eps=0.1, eps_ramp=0.5).eps_at(0.25)
            0.05
        """
        if self.eps_ramp <= 0:
            return float(self.eps)
        return float(self.eps) * min(1.0, max(progress, 0.0) / self.eps_ramp)


@dataclass(frozen=True)
class ATLAConfig(AlternatingConfig):
    """ATLA: alternate PPO training of the agent and of an sa-rl adversary perturbing its observations."""

    kind: ClassVar[Literal["sa-rl", "pa-ad"]] = "sa-rl"


@dataclass(frozen=True)
class PAATLAConfig(AlternatingConfig):
    """PA-ATLA: alternate PPO training of the agent and of a pa-ad adversary (director + PGD actor)."""

    kind: ClassVar[Literal["sa-rl", "pa-ad"]] = "pa-ad"

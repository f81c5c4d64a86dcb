"""The fields SAC and TD3 share: replay, update schedule, networks and the critic head.

:class:`OffPolicyConfig` is the one base of ``SACConfig`` and ``TD3Config`` (one level, no chain); each
redeclares only the defaults it tunes differently and adds its own fields after these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from robustrl.agents.critics import CriticHead, check_critic_head


@dataclass(frozen=True)
class OffPolicyConfig:
    """Replay-based actor-critic hyperparameters (defaults: a fast Pendulum-v1 setting)."""

    num_envs: int = 8
    """Env copies stepped together."""
    total_steps: int = 20_000
    """Environment transitions to train for (summed over copies)."""
    learning_rate: float = 2e-3
    """Adam step size of the actor and the critics (and SAC's temperature)."""
    buffer_size: int = 100_000
    """Replay buffer capacity (transitions)."""
    learning_starts: int = 100
    """Transitions collected with uniform random actions before the first update."""
    batch_size: int = 128
    """Transitions per gradient step."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target networks."""
    train_freq: int = 1
    """Env steps (of all copies at once) between two rounds of updates."""
    gradient_steps: int = 4
    """(Critic) gradient steps per round of updates."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden widths of the actor and of each critic."""
    activation: Literal["tanh", "relu"] = "relu"
    """Hidden activation."""
    normalize_obs: bool = False
    """Keep a running observation normaliser inside the policy (updated with collected observations)."""
    critic_head: CriticHead = "regression"
    """Critic output: scalar Q with squared TD error, or HL-Gauss classification over num_bins bins."""
    num_bins: int = 101
    """Bins of the HL-Gauss critic head."""
    v_min: float = -1000.0
    """Lowest bin centre of the HL-Gauss head (below the smallest Q expected)."""
    v_max: float = 100.0
    """Highest bin centre of the HL-Gauss head (above the largest Q expected)."""
    sigma_ratio: float = 0.75
    """HL-Gauss σ as a multiple of the bin width."""

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first bad field."""
        what = type(self).__name__
        for name in ("num_envs", "total_steps", "buffer_size", "batch_size", "train_freq", "gradient_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{what}.{name} must be ≥ 1, got {getattr(self, name)}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"{what}.gamma must lie in [0, 1], got {self.gamma}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"{what}.tau must lie in (0, 1], got {self.tau}")
        if self.learning_rate <= 0:
            raise ValueError(f"{what}.learning_rate must be > 0, got {self.learning_rate}")
        check_critic_head(self, what)


def critic_head_spec(cfg: OffPolicyConfig) -> dict[str, Any]:
    """The policy constructor arguments that give its critics ``cfg``'s head (HL-Gauss: bins and support)."""
    if cfg.critic_head == "hl_gauss":
        return {"critic_bins": cfg.num_bins, "critic_v_min": cfg.v_min, "critic_v_max": cfg.v_max}
    return {}

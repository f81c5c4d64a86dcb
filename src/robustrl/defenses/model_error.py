"""Typed configs of the defenses against model error (``robustrl train --defense NAME --uncertainty-set SET``).

Pure dataclasses: their trainers live in :mod:`robustrl.model_robust` (above the learners). The uncertainty
set itself is ``TrainConfig.uncertainty_set`` (see :mod:`robustrl.envs.uncertainty`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

__all__ = ["DomainRandomisationConfig", "IWOCSConfig", "M2TD3Config", "NRMDPTrainConfig", "PRMDPTrainConfig",
           "QARLConfig", "RARLConfig", "temperature"]


def _positive_int(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {value!r}")


def _fraction(value: float, what: str, *, allow_zero: bool = False) -> None:
    if not (math.isfinite(value) and (0 <= value if allow_zero else 0 < value) and value <= 1):
        raise ValueError(f"{what} must be in {'[0' if allow_zero else '(0'}, 1], got {value!r}")


@dataclass(frozen=True)
class DomainRandomisationConfig:
    """Domain randomisation: the set's parameters drawn at every episode start (Tobin et al. 2017)."""

    grid_points: int = 0
    """0: uniform over the box; k >= 2: uniform over the k-per-dimension grid of the set."""

    def validate(self) -> None:
        """Check the options; ValueError naming a bad one."""
        gp = self.grid_points
        if isinstance(gp, bool) or not isinstance(gp, int) or gp < 0 or gp == 1:
            raise ValueError(f"grid_points must be 0 or an integer >= 2, got {self.grid_points!r}")


@dataclass(frozen=True)
class RARLConfig:
    """RARL: a protagonist and a force adversary trained alternately, zero-sum (Pinto et al., ICML 2017)."""

    rounds: int = 10
    """Alternations; each trains the protagonist, then the adversary, on total_steps / rounds transitions."""
    force_scale: float = 1.0
    """Multiplier of the set's force bound (the adversary's forces lie in ±force_scale·bound)."""
    adversary_fraction: float = 1.0
    """Adversary transitions per round as a fraction of the protagonist's."""

    def validate(self) -> None:
        """Check the options; ValueError naming a bad one."""
        _positive_int(self.rounds, "rounds")
        if not (math.isfinite(self.force_scale) and self.force_scale > 0):
            raise ValueError(f"force_scale must be finite and > 0, got {self.force_scale!r}")
        _fraction(self.adversary_fraction, "adversary_fraction")


Schedule = Literal["linear", "exponential"]


@dataclass(frozen=True)
class QARLConfig:
    """QARL: RARL whose adversary is entropy-regularised, its temperature annealed from random to rational.

    Reddi et al. (ICLR 2023), "Robust Adversarial Reinforcement Learning via Bounded Rationality Curricula":
    the adversary plays a quantal response (entropy bonus with temperature τ); τ starts high (an almost
    uniformly random adversary) and decreases to ``temperature_end`` (a fully rational one at 0) over the rounds.
    """

    rounds: int = 10
    """Alternations (the curriculum has one temperature per round)."""
    force_scale: float = 1.0
    """Multiplier of the set's force bound."""
    adversary_fraction: float = 1.0
    """Adversary transitions per round as a fraction of the protagonist's."""
    temperature_start: float = 1.0
    """Entropy coefficient of the adversary in the first round."""
    temperature_end: float = 0.0
    """Entropy coefficient in the last round (0: fully rational)."""
    schedule: Schedule = "linear"
    """How τ goes from start to end: linear, or exponential (geometric towards end, reaching it at the last round)."""

    def validate(self) -> None:
        """Check the options; ValueError naming a bad one."""
        RARLConfig(self.rounds, self.force_scale, self.adversary_fraction).validate()
        for name in ("temperature_start", "temperature_end"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {v!r}")
        if self.temperature_end > self.temperature_start:
            raise ValueError("temperature_end must not exceed temperature_start (the curriculum goes to rational)")
        if self.schedule not in ("linear", "exponential"):
            raise ValueError(f"schedule must be 'linear' or 'exponential', got {self.schedule!r}")


def temperature(cfg: QARLConfig, round_index: int) -> float:
    """τ of round ``round_index`` (0-based): ``start`` at 0, ``end`` at ``rounds − 1``.

    Linear: ``start + (end − start)·r/(R−1)``. Exponential: ``(start − end)·(1e-3)^(r/(R−1)) + end`` for the
    rounds before the last, ``end`` at the last (a geometric decay of the gap to ``end``).

    Example:
        >>> [temperature(QARLConfig(rounds=3, temperature_start=1.0), r) for r in range(3)]
        [1.0, 0.5, 0.0]
    """
    if not 0 <= round_index < cfg.rounds:
        raise ValueError(f"round_index must be in [0, {cfg.rounds}), got {round_index}")
    if cfg.rounds == 1:
        return cfg.temperature_end
    x = round_index / (cfg.rounds - 1)
    if cfg.schedule == "linear":
        return cfg.temperature_start + (cfg.temperature_end - cfg.temperature_start) * x
    if round_index == cfg.rounds - 1:
        return cfg.temperature_end
    return (cfg.temperature_start - cfg.temperature_end) * (1e-3 ** x) + cfg.temperature_end


@dataclass(frozen=True)
class IWOCSConfig:
    """IWOCS: a sequence of policies, each trained on the worst-case parameters found so far (Zouitine et al. 2024)."""

    iterations: int = 3
    """Policies in the sequence; each trains on total_steps / iterations transitions."""
    search: Literal["cma", "grid"] = "cma"
    """Worst-case search: CMA-ES (IWOCS) or the set's grid (IWOCS*)."""
    search_budget: int = 30
    """CMA-ES: candidate points evaluated per search."""
    grid_points: int = 5
    """Grid search: points per dimension."""
    search_episodes: int = 4
    """Episodes per candidate point."""
    sigma0: float = 0.3
    """CMA-ES initial step size, in unit-cube coordinates."""
    warm_start: bool = True
    """Start each policy from the previous one's weights (False: from scratch)."""
    mode_switch: bool = False
    """Also fit the mode switch (one-step predictor per policy, ``mode_switch.pt``) and score it on the grid."""
    switch_fit_steps: int = 4096
    """Mode switch: transitions of each policy at its point to fit its predictor."""
    switch_warmup: int = 5
    """Mode switch: transitions of an episode before the first switch (the selected policy acts until then)."""

    def validate(self) -> None:
        """Check the options; ValueError naming a bad one."""
        _positive_int(self.iterations, "iterations")
        _positive_int(self.switch_fit_steps, "switch_fit_steps")
        if isinstance(self.switch_warmup, bool) or not isinstance(self.switch_warmup, int) or self.switch_warmup < 0:
            raise ValueError(f"switch_warmup must be an integer >= 0, got {self.switch_warmup!r}")
        _positive_int(self.search_budget, "search_budget")
        _positive_int(self.search_episodes, "search_episodes")
        if isinstance(self.grid_points, bool) or not isinstance(self.grid_points, int) or self.grid_points < 2:
            raise ValueError(f"grid_points must be an integer >= 2, got {self.grid_points!r}")
        if self.search not in ("cma", "grid"):
            raise ValueError(f"search must be 'cma' or 'grid', got {self.search!r}")
        if not (math.isfinite(self.sigma0) and 0 < self.sigma0 <= 1):
            raise ValueError(f"sigma0 must be in (0, 1], got {self.sigma0!r}")


@dataclass(frozen=True)
class M2TD3Config:
    """M2TD3: TD3 with an ω-conditioned critic and a max-min update over ω particles (Tanabe et al., NeurIPS 2022).

    The critic is ``Q(s, a, ω)``; ``num_omegas`` particles ω̂_k track the worst case of the uncertainty set by
    gradient descent on Q, the actor ascends Q at the worst one (or at their probability-weighted mean, the
    reference's SoftM2TD3), and each training episode runs at an ω drawn around a particle. Noise scales are
    fractions of the set's half-width per axis (the reference's ``*_rate`` options).
    """

    num_omegas: int = 5
    """Particles ω̂_1..N tracking the worst case (the reference's ``hatomega_num``)."""
    omega_lr: float = 3e-4
    """Adam step size of the particles (on their logits; the reference's ``ho_lr``)."""
    actor_objective: Literal["worst", "soft"] = "worst"
    """worst: the actor ascends Q at the worst particle (M2TD3); soft: at the selection-probability-weighted mean."""
    omega_std: float = 1.0
    """Std of the episode ω around its particle at the start of training (fraction of the half-width)."""
    omega_std_min: float = 0.1
    """The same at the end of training (linear decay; set it to omega_std for a constant std)."""
    target_omega_noise: float = 0.2
    """Std of the target ω smoothing noise (fraction of the half-width)."""
    target_omega_noise_clip: float = 0.5
    """Clip of the target ω smoothing noise (fraction of the half-width)."""
    prob_rate: float = 1e-3
    """Rate of the moving average of how often each particle is the worst (per actor update)."""
    min_prob: float = 0.05
    """A particle whose selection probability falls below this restarts uniformly in the set (0: never)."""
    restart_distance: float = 0.05
    """A particle within this L1 distance of a later one (unit-cube coordinates) restarts (0: never)."""

    def validate(self) -> None:
        """Check the options; ValueError naming a bad one."""
        _positive_int(self.num_omegas, "num_omegas")
        if not (math.isfinite(self.omega_lr) and self.omega_lr > 0):
            raise ValueError(f"omega_lr must be finite and > 0, got {self.omega_lr!r}")
        if self.actor_objective not in ("worst", "soft"):
            raise ValueError(f"actor_objective must be 'worst' or 'soft', got {self.actor_objective!r}")
        for name in ("omega_std", "omega_std_min", "target_omega_noise", "target_omega_noise_clip",
                     "restart_distance"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {v!r}")
        _fraction(self.prob_rate, "prob_rate")
        if not (math.isfinite(self.min_prob) and 0 <= self.min_prob < 1 / self.num_omegas):
            raise ValueError(f"min_prob must be in [0, 1/num_omegas) = [0, {1 / self.num_omegas:g}), "
                             f"got {self.min_prob!r}")


@dataclass(frozen=True)
class _ActionRobustConfig:
    """What PR-MDP and NR-MDP training share."""

    alpha: float = 0.1
    """The adversary's probability of taking over (PR-MDP) or weight in the blend (NR-MDP), in (0, 1]."""
    rounds: int = 10
    """Alternations; each trains the protagonist, then the adversary, on total_steps / rounds transitions."""
    adversary_fraction: float = 1.0
    """Adversary transitions per round as a fraction of the protagonist's."""

    def validate(self) -> None:
        """Check the options; ValueError naming a bad one."""
        _fraction(self.alpha, "alpha")
        _positive_int(self.rounds, "rounds")
        _fraction(self.adversary_fraction, "adversary_fraction")


@dataclass(frozen=True)
class PRMDPTrainConfig(_ActionRobustConfig):
    """PR-MDP training: an adversary replaces the action with probability α (Tessler et al., ICML 2019)."""

    mix: ClassVar[str] = "pr"


@dataclass(frozen=True)
class NRMDPTrainConfig(_ActionRobustConfig):
    """NR-MDP training: the env receives (1 − α)·a + α·a_adv (Tessler et al., ICML 2019; continuous actions)."""

    mix: ClassVar[str] = "nr"

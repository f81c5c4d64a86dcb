"""Defenses by name: ``robustrl train --defense NAME --defense-set key=value``.

Each entry is a typed config class and either a function from that config to :class:`TrainingHooks`
(the defense changes what one learner sees and adds to its loss: smoothing, SA-PPO's regulariser...) or the
``module:function`` of a *trainer* that runs more than one learner (an agent and its adversary: ATLA, RARL;
a sequence of agents: IWOCS). Trainers live above the learners (``robustrl.adversarial``,
``robustrl.model_robust``); :func:`robustrl.jobs.train` calls them, ``robustrl.agents.train`` refuses them.
A new defense is a config, a hooks function or a trainer, and one line here (see ``docs/architecture.md``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from robustrl.common.config import apply_overrides
from robustrl.defenses.atla import ATLAConfig, PAATLAConfig
from robustrl.defenses.base import TrainingHooks
from robustrl.defenses.model_error import (
    DomainRandomisationConfig,
    IWOCSConfig,
    M2TD3Config,
    NRMDPTrainConfig,
    PRMDPTrainConfig,
    QARLConfig,
    RARLConfig,
)
from robustrl.defenses.protected import ProtectedConfig
from robustrl.defenses.sa_reg import SARegConfig, sa_reg_hooks
from robustrl.defenses.smoothing import SmoothingConfig, smoothing_transform
from robustrl.defenses.wocar import WocaRConfig

DefenseName = str
"""A key of :data:`DEFENSES`, or ``none`` (checked by :func:`resolve_defense`, which names close matches)."""


@dataclass(frozen=True)
class DefenseSpec:
    """One registered defense."""

    config: type
    """Its frozen config dataclass (with a ``validate()`` method)."""
    hooks: Callable[[Any], TrainingHooks] | None = None
    """``config -> TrainingHooks`` (None: the defense has a trainer instead)."""
    trainer: str = ""
    """``module:function`` taking ``(TrainConfig, defense config)`` and returning a ``TrainResult``, for
    defenses that train more than one network; imported only when called (by :func:`robustrl.jobs.train`)."""
    help: str = ""
    """One line for ``robustrl train --help`` and error messages."""

    def __post_init__(self) -> None:
        if (self.hooks is None) == (not self.trainer):
            raise ValueError("a DefenseSpec has either hooks or a trainer")


def _smoothing_hooks(cfg: SmoothingConfig) -> TrainingHooks:
    return TrainingHooks(obs_transform=smoothing_transform(cfg.sigma), clean_critic=cfg.critic_obs == "clean")


DEFENSES: dict[str, DefenseSpec] = {
    "smoothing": DefenseSpec(SmoothingConfig, _smoothing_hooks, help="Gaussian observation noise (Policy Smoothing)"),
    "domain-randomisation": DefenseSpec(
        DomainRandomisationConfig, trainer="robustrl.model_robust.domain_randomisation:train_domain_randomisation",
        help="parameters of --uncertainty-set drawn at every episode start",
    ),
    "rarl": DefenseSpec(RARLConfig, trainer="robustrl.model_robust.rarl:train_rarl",
                        help="protagonist vs force adversary on --uncertainty-set's force set (RARL)"),
    "qarl": DefenseSpec(QARLConfig, trainer="robustrl.model_robust.rarl:train_qarl",
                        help="RARL with an entropy-regularised adversary, temperature curriculum (QARL)"),
    "iwocs": DefenseSpec(IWOCSConfig, trainer="robustrl.model_robust.iwocs:train_iwocs",
                         help="policies trained on successive worst cases of --uncertainty-set (IWOCS)"),
    "m2td3": DefenseSpec(M2TD3Config, trainer="robustrl.model_robust.m2td3:train_m2td3",
                         help="TD3 with an ω-conditioned critic, max-min over the ω particles of --uncertainty-set"),
    "pr-mdp": DefenseSpec(PRMDPTrainConfig, trainer="robustrl.model_robust.rarl:train_action_robust",
                          help="action adversary taking over with probability alpha, trained alternately (PR-MDP)"),
    "nr-mdp": DefenseSpec(NRMDPTrainConfig, trainer="robustrl.model_robust.rarl:train_action_robust",
                          help="action adversary blended in with weight alpha, trained alternately (NR-MDP)"),
    "atla": DefenseSpec(ATLAConfig, trainer="robustrl.adversarial.atla:train_atla",
                        help="alternating training against a learned sa-rl state adversary (ATLA)"),
    "pa-atla": DefenseSpec(PAATLAConfig, trainer="robustrl.adversarial.atla:train_atla",
                           help="alternating training against a learned pa-ad state adversary (PA-ATLA)"),
    "protected": DefenseSpec(ProtectedConfig, trainer="robustrl.adversarial.protected:train_protected",
                             help="non-dominated PPO policies, each against the set's weakest attack (PROTECTED)"),
    "sa-reg": DefenseSpec(SARegConfig, sa_reg_hooks,
                          help="SA-PPO/SA-DQN regulariser: κ·max over the ε-ball of KL(π(s) ‖ π(ŝ)) (or the Q margin)"),
    "wocar": DefenseSpec(WocaRConfig, trainer="robustrl.adversarial.wocar:train_wocar",
                         help="WocaR-PPO: worst-attack critic (IBP over the ε-ball) in the advantage, no attacker"),
}
"""Every defense by name (``none`` is the absence of one)."""


def resolve_defense(name: str, overrides: Sequence[str] = (), **values: Any) -> Any | None:
    """The typed config of defense ``name`` with ``key=value`` overrides (None for ``none``).

    Raises:
        ValueError: unknown name (with close names), unknown key or bad value, naming it.

    Example:
        >>> resolve_defense("smoothing", ["sigma=0.3"])
        SmoothingConfig(sigma=0.3, critic_obs='clean')
    """
    if name == "none":
        if overrides or values:
            raise ValueError("--defense-set needs a --defense")
        return None
    spec = DEFENSES.get(name)
    if spec is None:
        close = difflib.get_close_matches(str(name), list(DEFENSES), n=3)
        hint = f"; did you mean {close}?" if close else ""
        raise ValueError(f"unknown defense {name!r}{hint} (defenses: none, {', '.join(sorted(DEFENSES))})")
    cfg = apply_overrides(spec.config(**values), list(overrides), what="--defense-set")
    cfg.validate()
    return cfg


def defense_hooks(cfg: Any | None) -> TrainingHooks:
    """The :class:`TrainingHooks` of a resolved defense config (no hooks for None)."""
    if cfg is None:
        return TrainingHooks()
    spec = defense_spec(cfg)
    if spec.hooks is None:
        raise ValueError(
            f"defense {defense_name(cfg)!r} trains more than one network; run it with robustrl train "
            "(robustrl.jobs.train), not robustrl.agents.train"
        )
    return spec.hooks(cfg)


def defense_spec(cfg: Any) -> DefenseSpec:
    """The registry entry of a resolved defense config."""
    for spec in DEFENSES.values():
        if isinstance(cfg, spec.config):
            return spec
    raise ValueError(f"{type(cfg).__name__} is not a registered defense config")


def defense_name(cfg: Any | None) -> str:
    """The registry name of a resolved defense config (``none`` for None)."""
    if cfg is None:
        return "none"
    return next(name for name, spec in DEFENSES.items() if isinstance(cfg, spec.config))

"""``make_threat(name, budget, **options)``: every threat by name, as a rollout transform.

Observation threats become ``obs_transform(obs, ctx) -> obs'`` callables and action threats
``action_transform(action, obs, ctx) -> action'`` callables, both ready for
:func:`robustrl.rollout`; evaluation and the CLI build their threats here.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch

from robustrl.common.config import config_from_dict, config_to_dict
from robustrl.policies.base import Policy
from robustrl.rollout.context import StepContext
from robustrl.threats.action_noise import action_noise, action_replace, check_probability
from robustrl.threats.critic import CriticConfig, critic
from robustrl.threats.episode_l2 import EpisodeL2Attack, EpisodeL2Config
from robustrl.threats.fgsm import FGSMConfig, fgsm
from robustrl.threats.mad import MADConfig, mad
from robustrl.threats.noise import GaussianConfig, UniformConfig, gaussian, uniform
from robustrl.threats.pgd import PGDConfig, pgd
from robustrl.threats.pr_mdp import PRMDPConfig, pr_mdp
from robustrl.threats.projection import observation_scale

ThreatKind = Literal["obs", "action"]


@dataclass(frozen=True)
class BuildOptions:
    """What evaluation knows when it builds a threat, besides the budget and the threat's config."""

    adversary: Policy | None = None
    """The policy acting for an adversary that needs one (``pr_mdp``)."""
    horizon: int | None = None
    """The env's time limit (threats that plan over an episode use it)."""


ObsStep = Callable[[torch.Tensor, StepContext, torch.Tensor | None], torch.Tensor]
"""``(obs [N, ...], ctx, scale) -> obs'``: one step of an observation threat (``scale`` in attack units)."""

ActionStep = Callable[[torch.Tensor, torch.Tensor, StepContext], torch.Tensor]
"""``(action, clean_obs, ctx) -> action'``: one step of an action threat."""

Builder = Callable[[float, Any, BuildOptions], Any]
"""``(budget, config, options) -> ObsStep | ActionStep``: how a spec makes its per-step function."""


@dataclass(frozen=True)
class ThreatSpec:
    """One registered threat: its config, how it is built, and what its budget means."""

    name: str
    """Registry name (``pgd``, ``mad``...)."""
    kind: ThreatKind
    """``obs`` (observation transform) or ``action`` (action transform)."""
    config: type | None
    """Its config dataclass (None: no options)."""
    fn: Callable[..., torch.Tensor] | None
    """The pure function it wraps (None: identity), for documentation and direct use."""
    budget: str
    """What the budget means."""
    build: Builder
    """Makes the per-step function from ``(budget, config, options)``."""
    threat_model: Callable[[Any], str]
    """``config -> threat model`` (``obs/linf``…): budgets are comparable within one threat model."""
    independent_rows: bool = True
    """Each row's result depends on that row only, so rows of inactive copies may be skipped."""


def _per_step_obs(fn: Callable[..., torch.Tensor]) -> Builder:
    """Builder of a stateless per-step observation attack ``fn(policy, obs, budget, generator, config, scale=)``."""

    def build(budget: float, config: Any, _: BuildOptions) -> ObsStep:
        return lambda obs, ctx, scale: fn(ctx.policy, obs, budget, ctx.generator, config, scale=scale)

    return build


def _identity_obs(budget: float, config: Any, _: BuildOptions) -> ObsStep:
    return lambda obs, ctx, scale: obs


def _episode_l2(budget: float, config: EpisodeL2Config, options: BuildOptions) -> ObsStep:
    if config.horizon == 0 and options.horizon is not None:
        config = replace(config, horizon=int(options.horizon))
    attack = EpisodeL2Attack(budget, config)

    def step(obs: torch.Tensor, ctx: StepContext, scale: torch.Tensor | None) -> torch.Tensor:
        attack.scale = scale
        return attack(obs, ctx)

    step.config = config  # type: ignore[attr-defined]
    return step


def _action_fn(fn: Callable[..., torch.Tensor]) -> Builder:
    """Builder of a stateless action threat ``fn(policy, action, budget, generator)``."""

    def build(budget: float, config: Any, _: BuildOptions) -> ActionStep:
        return lambda action, obs, ctx: fn(ctx.policy, action, budget, ctx.generator)

    return build


def _pr_mdp(budget: float, config: PRMDPConfig, options: BuildOptions) -> ActionStep:
    adversary = options.adversary
    return lambda action, obs, ctx: pr_mdp(ctx.policy, action, obs, budget, ctx.generator, config, adversary=adversary)


def _norm_model(config: Any) -> str:
    return f"obs/{config.norm}"


THREATS: dict[str, ThreatSpec] = {
    spec.name: spec
    for spec in (
        ThreatSpec("none", "obs", None, None, "ignored: the clean observation", _identity_obs, lambda _: "obs/none"),
        ThreatSpec(
            "uniform", "obs", UniformConfig, uniform, "per-step ℓp radius ε", _per_step_obs(uniform), _norm_model
        ),
        ThreatSpec(
            "gaussian", "obs", GaussianConfig, gaussian, "per-step ℓp radius ε", _per_step_obs(gaussian), _norm_model
        ),
        ThreatSpec("fgsm", "obs", FGSMConfig, fgsm, "per-step ℓp radius ε", _per_step_obs(fgsm), _norm_model),
        ThreatSpec("pgd", "obs", PGDConfig, pgd, "per-step ℓp radius ε", _per_step_obs(pgd), _norm_model),
        ThreatSpec("mad", "obs", MADConfig, mad, "per-step ℓp radius ε", _per_step_obs(mad), _norm_model),
        ThreatSpec("critic", "obs", CriticConfig, critic, "per-step ℓp radius ε", _per_step_obs(critic), _norm_model),
        ThreatSpec(
            "episode_l2", "obs", EpisodeL2Config, None, "episode-total ℓ2 budget B", _episode_l2,
            lambda _: "obs/episode_l2", independent_rows=False,
        ),
        ThreatSpec(
            "action_noise", "action", None, action_noise, "noise σ / half range", _action_fn(action_noise),
            lambda _: "action/noise",
        ),
        ThreatSpec(
            "action_replace", "action", None, action_replace, "probability p", _action_fn(action_replace),
            lambda _: "action/replace",
        ),
        ThreatSpec(
            "pr_mdp", "action", PRMDPConfig, pr_mdp, "takeover probability α", _pr_mdp, lambda c: f"action/{c.mix}"
        ),
    )
}
"""Every threat :func:`make_threat` knows, by name. A new threat is one more spec (see docs/architecture.md)."""


class ObsThreat:
    """An observation threat as a rollout ``obs_transform`` (build it with :func:`make_threat`).

    It perturbs observations only; a smoothed victim's noise is composed after it by the caller
    (:func:`robustrl.defenses.smoothing.smoothing_transform`).
    """

    kind: ThreatKind = "obs"

    def __init__(
        self,
        spec: ThreatSpec,
        budget: float,
        config: Any,
        *,
        normalized: bool = False,
        scale: torch.Tensor | None = None,
        options: BuildOptions = BuildOptions(),
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.budget = budget
        self.normalized = normalized
        self.scale = scale
        self._step: ObsStep = spec.build(budget, config, options)
        self.config = getattr(self._step, "config", config)

    @property
    def threat_model(self) -> str:
        """``obs/linf``, ``obs/l2``, ``obs/episode_l2`` or ``obs/none``: budgets are comparable within one."""
        return self.spec.threat_model(self.config)

    def _scale(self, policy: Policy) -> torch.Tensor | None:
        return observation_scale(policy) if self.normalized else self.scale

    def __call__(self, obs: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """The observation the policy sees instead of ``obs [N, *obs_shape]``.

        Where the threat's rows are independent, on CPU only the rows of ``ctx.active`` are attacked (all rows
        for a recurrent victim, whose carried state covers every copy).
        """
        if self.budget == 0 or self.name == "none":
            return obs
        scale = self._scale(ctx.policy)
        active = getattr(ctx, "active", None)
        if (
            self.spec.independent_rows
            and active is not None
            and getattr(ctx.policy, "start_episodes", None) is None
            and obs.device.type == "cpu"
            and not bool(active.all())
        ):
            adv = obs.clone() if obs.is_floating_point() else obs.float()
            if bool(active.any()):
                sub = StepContext(ctx.policy, ctx.step[active], ctx.episode_start[active], ctx.generator)
                adv[active] = self._step(obs[active], sub, scale)
            return adv
        return self._step(obs, ctx, scale).detach()

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (name, kind, threat model, budget, options, normalisation)."""
        return {**_description(self), "normalized": self.normalized}

    def __repr__(self) -> str:
        return f"ObsThreat({self.name!r}, budget={self.budget}, config={self.config!r})"


class ActionThreat:
    """An action threat as a rollout ``action_transform`` (build it with :func:`make_threat`)."""

    kind: ThreatKind = "action"

    def __init__(
        self, spec: ThreatSpec, budget: float, config: Any, *, options: BuildOptions = BuildOptions()
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.budget = budget
        self.config = config
        self.adversary = options.adversary
        self._step: ActionStep = spec.build(budget, config, options)

    @property
    def threat_model(self) -> str:
        """``action/noise``, ``action/replace``, ``action/pr`` or ``action/nr``."""
        return self.spec.threat_model(self.config)

    def __call__(self, action: torch.Tensor, obs: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """The action the env receives instead of ``action``."""
        if self.budget == 0:
            return action
        return self._step(action, obs, ctx)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (name, kind, threat model, budget, options, adversary)."""
        adversary = type(self.adversary).__name__ if self.adversary is not None else "worst"
        return {**_description(self), "adversary": adversary}

    def __repr__(self) -> str:
        return f"ActionThreat({self.name!r}, budget={self.budget}, config={self.config!r})"


Threat = ObsThreat | ActionThreat


def _description(threat: Threat) -> dict[str, Any]:
    """What every threat's ``describe()`` starts with: name, kind, threat model, budget, options."""
    return {
        "name": threat.name,
        "kind": threat.kind,
        "threat_model": threat.threat_model,
        "budget": threat.budget,
        "options": config_to_dict(threat.config) if threat.config is not None else {},
    }


def threat_spec(name: str) -> ThreatSpec:
    """The registered threat called ``name`` (``ValueError`` with close names when unknown)."""
    spec = THREATS.get(name) if isinstance(name, str) else None
    if spec is None:
        close = difflib.get_close_matches(str(name), list(THREATS), n=3)
        hint = f"; did you mean {close}?" if close else ""
        raise ValueError(f"unknown threat {name!r}{hint} (threats: {sorted(THREATS)})")
    return spec


def make_threat(
    name: str,
    budget: float,
    *,
    normalized: bool = False,
    scale: torch.Tensor | None = None,
    smoothing_sigma: float = 0.0,
    eot: bool = True,
    adversary: Policy | None = None,
    horizon: int | None = None,
    **options: Any,
) -> Threat:
    """Build a threat by name, ready to pass to :func:`robustrl.rollout`.

    Args:
        name: a key of :data:`THREATS` (``pgd``, ``mad``, ``critic``, ``fgsm``, ``uniform``, ``gaussian``,
            ``episode_l2``, ``none``, ``action_noise``, ``action_replace``, ``pr_mdp``).
        budget: ε (per-step ℓp radius), B (episode ℓ2 budget), σ (action noise) or a probability
            (``action_replace``, ``pr_mdp``); 0 leaves inputs unchanged.
        normalized: attack in the policy's normalised units (``policy.obs_norm`` std), as SA-PPO.
        scale: explicit ``[*obs_shape]`` per-dimension scale (instead of ``normalized``).
        smoothing_sigma: the victim is Gaussian-smoothed with this σ: gradient attacks use EOT over its
            noise (unless ``eot=False``). The threat does not add the noise: compose it after the attack with
            :func:`robustrl.defenses.smoothing.smoothing_transform` (evaluation does).
        eot: with smoothing, attack through the noise (expectation over ``eot_samples`` draws).
        adversary: the policy that acts for the ``pr_mdp`` adversary (default: worst-case heuristic).
        horizon: the env's time limit, for threats that plan over an episode (``episode_l2``'s ``even``
            allocation uses it when its own ``horizon`` option is 0).
        **options: fields of the threat's config (e.g. ``steps=20, norm="l2"`` for ``pgd``).

    Returns:
        An :class:`ObsThreat` (``obs_transform``) or :class:`ActionThreat` (``action_transform``).

    Raises:
        ValueError: unknown name or option, negative budget, probability > 1, bad combination.

    Example:
        >>> t = make_threat("pgd", 0.05, steps=20)
        >>> t.kind, t.config.steps, t.threat_model
        ('obs', 20, 'obs/linf')
    """
    spec = threat_spec(name)
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not math.isfinite(budget):
        raise ValueError(f"budget of threat {name!r} must be a finite number, got {budget!r}")
    if budget < 0:
        raise ValueError(f"budget of threat {name!r} must be ≥ 0, got {budget}")
    if not math.isfinite(smoothing_sigma) or smoothing_sigma < 0:
        raise ValueError(f"smoothing_sigma must be finite and ≥ 0, got {smoothing_sigma}")
    if spec.config is None:
        if options:
            raise ValueError(f"threat {name!r} takes no options, got {sorted(options)}")
        config: Any = None
    else:
        config = config_from_dict(spec.config, dict(options))
        if smoothing_sigma > 0 and eot and hasattr(config, "smoothing_sigma") and "smoothing_sigma" not in options:
            config = replace(config, smoothing_sigma=float(smoothing_sigma))
    if spec.kind == "action":
        if smoothing_sigma > 0 or normalized or scale is not None:
            raise ValueError(
                f"action threat {name!r} takes no smoothing/normalisation options: smooth observations "
                "separately with robustrl.defenses.smoothing_transform(σ)"
            )
        if name != "action_noise":
            check_probability(budget, f"budget of threat {name!r}")
        if adversary is not None and name != "pr_mdp":
            raise ValueError(f"only pr_mdp takes an adversary, not {name!r}")
        return ActionThreat(spec, float(budget), config, options=BuildOptions(adversary=adversary))
    if adversary is not None:
        raise ValueError(f"only pr_mdp takes an adversary, not {name!r}")
    if normalized and scale is not None:
        raise ValueError("pass either normalized=True or scale=..., not both")
    return ObsThreat(
        spec, float(budget), config, normalized=normalized, scale=scale, options=BuildOptions(horizon=horizon)
    )

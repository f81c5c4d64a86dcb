"""``make_threat(name, budget, **options)``: every threat by name, as a rollout transform.

Observation threats become ``obs_transform(obs, ctx) -> obs'`` callables and action threats
``action_transform(action, obs, ctx) -> action'`` callables, both ready for
:func:`robustrl.evaluate.rollout`; evaluation and the CLI build their threats here.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import torch

from robustrl.common.config import config_from_dict, config_to_dict
from robustrl.policies.base import Policy
from robustrl.threats.action_noise import action_noise, action_replace, check_probability
from robustrl.threats.critic import CriticConfig, critic
from robustrl.threats.episode_l2 import EpisodeL2Attack, EpisodeL2Config
from robustrl.threats.fgsm import FGSMConfig, fgsm
from robustrl.threats.mad import MADConfig, mad
from robustrl.threats.noise import GaussianConfig, UniformConfig, gaussian, uniform
from robustrl.threats.pgd import PGDConfig, pgd
from robustrl.threats.pr_mdp import PRMDPConfig, pr_mdp
from robustrl.threats.projection import observation_scale

if TYPE_CHECKING:
    from robustrl.evaluate.rollout import StepContext

ThreatKind = Literal["obs", "action"]


@dataclass(frozen=True)
class ThreatSpec:
    """One registered threat."""

    name: str
    """Registry name (``pgd``, ``mad``...)."""
    kind: ThreatKind
    """``obs`` (observation transform) or ``action`` (action transform)."""
    config: type | None
    """Its config dataclass (None: no options)."""
    fn: Callable[..., torch.Tensor] | None
    """The pure function ``fn(policy, x, budget, generator, [config], ...)`` (None: stateful or identity)."""
    budget: str
    """What the budget means."""


THREATS: dict[str, ThreatSpec] = {
    spec.name: spec
    for spec in (
        ThreatSpec("none", "obs", None, None, "ignored: the clean observation (plus smoothing noise, if any)"),
        ThreatSpec("uniform", "obs", UniformConfig, uniform, "per-step ℓp radius ε"),
        ThreatSpec("gaussian", "obs", GaussianConfig, gaussian, "per-step ℓp radius ε"),
        ThreatSpec("fgsm", "obs", FGSMConfig, fgsm, "per-step ℓp radius ε"),
        ThreatSpec("pgd", "obs", PGDConfig, pgd, "per-step ℓp radius ε"),
        ThreatSpec("mad", "obs", MADConfig, mad, "per-step ℓp radius ε"),
        ThreatSpec("critic", "obs", CriticConfig, critic, "per-step ℓp radius ε"),
        ThreatSpec("episode_l2", "obs", EpisodeL2Config, None, "episode-total ℓ2 budget B"),
        ThreatSpec("action_noise", "action", None, action_noise, "noise σ / half range"),
        ThreatSpec("action_replace", "action", None, action_replace, "probability p"),
        ThreatSpec("pr_mdp", "action", PRMDPConfig, pr_mdp, "takeover probability α"),
    )
}
"""Every threat :func:`make_threat` knows, by name."""


def _smoothing_noise(obs: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(obs.shape, generator=generator, dtype=obs.dtype, device=obs.device)
    return obs + sigma * noise


class ObsThreat:
    """An observation threat as a rollout ``obs_transform`` (build it with :func:`make_threat`)."""

    kind: ThreatKind = "obs"

    def __init__(
        self,
        spec: ThreatSpec,
        budget: float,
        config: Any,
        *,
        normalized: bool = False,
        scale: torch.Tensor | None = None,
        smoothing_sigma: float = 0.0,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.budget = budget
        self.config = config
        self.normalized = normalized
        self.scale = scale
        self.smoothing_sigma = smoothing_sigma
        self._episode = EpisodeL2Attack(budget, config, scale=scale) if isinstance(config, EpisodeL2Config) else None

    @property
    def threat_model(self) -> str:
        """``obs/linf``, ``obs/l2``, ``obs/episode_l2`` or ``obs/none``: budgets are comparable within one."""
        if self.name == "none":
            return "obs/none"
        if self._episode is not None:
            return "obs/episode_l2"
        return f"obs/{self.config.norm}"

    def _scale(self, policy: Policy) -> torch.Tensor | None:
        return observation_scale(policy) if self.normalized else self.scale

    def __call__(self, obs: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """The observation the policy sees instead of ``obs [N, *obs_shape]``."""
        if self._episode is not None:
            self._episode.scale = self._scale(ctx.policy)
            adv = self._episode(obs, ctx)
        elif self.spec.fn is None or self.budget == 0:
            adv = obs
        else:
            adv = self._per_step(obs, ctx)
        if self.smoothing_sigma > 0:
            adv = _smoothing_noise(adv if adv.is_floating_point() else adv.float(), self.smoothing_sigma, ctx.generator)
        return adv.detach()

    def _per_step(self, obs: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """A per-step attack; on CPU only the rows of ``ctx.active`` (when the context has it) are attacked."""
        fn = self.spec.fn
        assert fn is not None
        scale = self._scale(ctx.policy)
        active = getattr(ctx, "active", None)
        if active is not None and obs.device.type == "cpu" and not bool(active.all()):
            adv = obs.clone() if obs.is_floating_point() else obs.float()
            if bool(active.any()):
                adv[active] = fn(ctx.policy, obs[active], self.budget, ctx.generator, self.config, scale=scale)
            return adv
        return fn(ctx.policy, obs, self.budget, ctx.generator, self.config, scale=scale)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (name, kind, threat model, budget, options, normalisation, smoothing σ)."""
        return {**_description(self), "normalized": self.normalized, "smoothing_sigma": self.smoothing_sigma}

    def __repr__(self) -> str:
        return f"ObsThreat({self.name!r}, budget={self.budget}, config={self.config!r})"


class ActionThreat:
    """An action threat as a rollout ``action_transform`` (build it with :func:`make_threat`)."""

    kind: ThreatKind = "action"

    def __init__(self, spec: ThreatSpec, budget: float, config: Any, *, adversary: Policy | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.budget = budget
        self.config = config
        self.adversary = adversary

    @property
    def threat_model(self) -> str:
        """``action/noise``, ``action/replace``, ``action/pr`` or ``action/nr``."""
        if self.name == "pr_mdp":
            return f"action/{self.config.mix}"
        return "action/" + self.name.removeprefix("action_")

    def __call__(self, action: torch.Tensor, obs: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """The action the env receives instead of ``action``."""
        if self.budget == 0:
            return action
        if self.name == "pr_mdp":
            return pr_mdp(ctx.policy, action, obs, self.budget, ctx.generator, self.config, adversary=self.adversary)
        assert self.spec.fn is not None
        return self.spec.fn(ctx.policy, action, self.budget, ctx.generator)

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
    **options: Any,
) -> Threat:
    """Build a threat by name, ready to pass to :func:`robustrl.evaluate.rollout`.

    Args:
        name: a key of :data:`THREATS` (``pgd``, ``mad``, ``critic``, ``fgsm``, ``uniform``, ``gaussian``,
            ``episode_l2``, ``none``, ``action_noise``, ``action_replace``, ``pr_mdp``).
        budget: ε (per-step ℓp radius), B (episode ℓ2 budget), σ (action noise) or a probability
            (``action_replace``, ``pr_mdp``); 0 leaves inputs unchanged.
        normalized: attack in the policy's normalised units (``policy.obs_norm`` std), as SA-PPO.
        scale: explicit ``[*obs_shape]`` per-dimension scale (instead of ``normalized``).
        smoothing_sigma: the victim is Gaussian-smoothed with this σ: noise is added after the attack,
            and gradient attacks use EOT over it (unless ``eot=False``).
        eot: with smoothing, attack through the noise (expectation over ``eot_samples`` draws).
        adversary: the policy that acts for the ``pr_mdp`` adversary (default: worst-case heuristic).
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
                "separately with make_threat('none', 0, smoothing_sigma=σ)"
            )
        if name != "action_noise":
            check_probability(budget, f"budget of threat {name!r}")
        if adversary is not None and name != "pr_mdp":
            raise ValueError(f"only pr_mdp takes an adversary, not {name!r}")
        return ActionThreat(spec, float(budget), config, adversary=adversary)
    if adversary is not None:
        raise ValueError(f"only pr_mdp takes an adversary, not {name!r}")
    if normalized and scale is not None:
        raise ValueError("pass either normalized=True or scale=..., not both")
    return ObsThreat(
        spec, float(budget), config, normalized=normalized, scale=scale, smoothing_sigma=float(smoothing_sigma)
    )

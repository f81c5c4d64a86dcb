"""Gaussian observation smoothing: the one home of Policy Smoothing's noise (Kumar, Levine & Feizi, ICLR 2022).

Training with noise (``robustrl train --obs-noise σ``), evaluating the smoothed policy
(``robustrl evaluate --smoothing-sigma σ``) and certifying it (``robustrl certify --sigma σ``) all draw the
noise here: :func:`smoothing_noise` adds ``N(0, σ² I)``, :func:`smoothing_transform` is the rollout
``obs_transform`` (an optional attack first, then the noise: the certificate's threat model), and
:class:`SmoothedPolicy` is the smoothed policy ``π_σ(obs) = π(obs + σ·ε)``. σ is checked once, by
:func:`check_sigma`, at every public boundary.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import torch

from robustrl.policies.base import Policy
from robustrl.rollout.context import ObsTransform, StepContext


def check_sigma(sigma: Any, what: str = "sigma", *, allow_zero: bool = False) -> float:
    """``float(sigma)`` after checking it is a finite number > 0 (≥ 0 with ``allow_zero``).

    Raises:
        ValueError: naming ``what`` (the option the user set) and the value.

    Example:
        >>> check_sigma(0.2)
        0.2
        >>> check_sigma(-1, "obs_noise", allow_zero=True)
        Traceback (most recent call last):
        ...
        ValueError: obs_noise must be a finite number ≥ 0 (the smoothing noise std), got -1
    """
    bad = isinstance(sigma, bool) or not isinstance(sigma, int | float)
    s = float("nan") if bad else float(sigma)
    if bad or not math.isfinite(s) or s < 0 or (s == 0 and not allow_zero):
        bound = "≥ 0" if allow_zero else "> 0"
        raise ValueError(f"{what} must be a finite number {bound} (the smoothing noise std), got {sigma!r}")
    return s


def smoothing_noise(obs: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """``obs + σ·ε``, ``ε ~ N(0, I)`` drawn from ``generator``; σ = 0 returns ``obs`` itself.

    Args:
        obs: ``[N, *obs_shape]`` observations (integer ones are cast to float32).
        sigma: noise std in observation units (checked by the caller with :func:`check_sigma`).
        generator: where the noise comes from (on ``obs.device``).

    Returns:
        ``[N, *obs_shape]`` noisy observations.
    """
    x = obs if obs.is_floating_point() else obs.float()
    if sigma == 0.0:
        return x
    eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + sigma * eps


def smoothing_transform(sigma: float, attack: ObsTransform | None = None) -> ObsTransform:
    """An ``obs_transform`` for the rollout functions: ``attack(obs) + N(0, σ² I)``.

    Run the *base* policy with it and the rollout is the smoothed policy's (noise from the rollout's
    generator). With ``attack`` the adversary perturbs the clean observation first, seeing the base policy
    as ``ctx.policy`` (configure EOT attacks with the same σ), and the noise is added after, which is the
    Policy Smoothing threat model. Without ``attack`` it is equivalent in law to :class:`SmoothedPolicy`.

    Example:
        >>> import robustrl
        >>> from robustrl.policies import ActorCriticPolicy
        >>> env = robustrl.make_env("CartPole-v1", 8, seed=0)
        >>> pi = ActorCriticPolicy(env.observation_space, env.action_space)
        >>> robustrl.rollout(pi, env, 8, seed=0, obs_transform=smoothing_transform(0.2)).returns.shape
        torch.Size([8])

    """
    s = check_sigma(sigma)

    def transform(obs: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        seen = attack(obs, ctx) if attack is not None else obs
        return smoothing_noise(seen.detach(), s, ctx.generator)

    return transform


class SmoothedPolicy:
    """``π_σ(obs) = π(obs + σ·ε)``, ``ε ~ N(0, I)`` drawn from the generator passed to :meth:`act`.

    Args:
        policy: the base policy (our networks, SB3 or TorchScript wrappers: anything meeting
            :class:`~robustrl.policies.base.Policy`).
        sigma: noise std σ > 0, in observation units.

    Example:
        >>> import torch, gymnasium as gym
        >>> class Sign:
        ...     observation_space = gym.spaces.Box(-1.0, 1.0, (1,))
        ...     action_space = gym.spaces.Discrete(2)
        ...     def act(self, obs, *, deterministic=True, generator=None):
        ...         return (obs[:, 0] > 0).long()
        >>> pi = SmoothedPolicy(Sign(), sigma=1.0)
        >>> a = pi.act(torch.full((100_000, 1), 1.0), generator=torch.Generator().manual_seed(0))
        >>> round(a.double().mean().item(), 2)  # P(1 + N(0, 1) > 0) = Φ(1) ≈ 0.84
        0.84

    """

    def __init__(self, policy: Policy, sigma: float) -> None:
        self.policy = policy
        """The base policy."""
        self.sigma = check_sigma(sigma)
        """Noise std σ."""
        self.observation_space: gym.Space[Any] = policy.observation_space
        self.action_space: gym.Space[Any] = policy.action_space

    def act(
        self, obs: torch.Tensor, *, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Actions of the base policy at ``obs + σ·ε`` (``obs [N, *obs_shape]``).

        Raises:
            ValueError: without a generator (robustrl never reads global random state).

        """
        if generator is None:
            raise ValueError("SmoothedPolicy.act needs an explicit generator for the observation noise")
        if not torch.is_floating_point(obs):
            raise ValueError(f"SmoothedPolicy needs float observations, got dtype {obs.dtype}")
        noisy = smoothing_noise(obs, self.sigma, generator)
        return self.policy.act(noisy, deterministic=deterministic, generator=generator)

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        """The base policy's parameters (none for parameter-free policies)."""
        params = getattr(self.policy, "parameters", None)
        return iter(params()) if callable(params) else iter(())

    def __repr__(self) -> str:
        return f"SmoothedPolicy(sigma={self.sigma}, policy={type(self.policy).__name__})"


@dataclass(frozen=True)
class SmoothingConfig:
    """Train on Gaussian-noised observations, for Policy Smoothing certificates at the same σ."""

    sigma: float = 0.2
    """Noise std σ > 0 added to every observation the agent acts and learns on (observation units)."""
    critic_obs: Literal["clean", "noisy"] = "clean"
    """What PPO's critic sees: the clean observation (asymmetric critic) or the noisy one."""

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the bad field."""
        check_sigma(self.sigma, "SmoothingConfig.sigma")
        if self.critic_obs not in ("clean", "noisy"):
            raise ValueError(f"SmoothingConfig.critic_obs must be 'clean' or 'noisy', got {self.critic_obs!r}")

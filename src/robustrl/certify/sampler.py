"""The smoothed policy and the smoothed-rollout sampler (on the shared rollout engine).

Policy Smoothing (Kumar, Levine & Feizi, ICLR 2022) certifies the *smoothed* policy: Gaussian noise
``N(0, σ² I)`` is added to every observation before the base policy acts. :class:`SmoothedPolicy` is that
policy; the noise comes from the explicit generator the rollout engine passes to ``act``. Because the
noise is added inside the policy, an observation attack given to the engine as ``obs_transform`` perturbs
the observation *before* the noise, exactly the threat model of the certificate.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import torch

from robustrl.envs.base import VecEnv
from robustrl.evaluate import ObsTransform, RolloutResult, StepContext, rollout
from robustrl.policies.base import Policy, policy_device


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
        s = float(sigma)
        if not math.isfinite(s) or s <= 0:
            raise ValueError(f"sigma must be a finite number > 0 (the smoothing noise std), got {sigma!r}")
        self.policy = policy
        """The base policy."""
        self.sigma = s
        """Noise std σ."""
        self.observation_space: gym.Space[Any] = policy.observation_space
        self.action_space: gym.Space[Any] = policy.action_space

    def noise(self, obs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Draw ``σ·ε`` shaped like ``obs`` from ``generator`` (on ``obs``'s device and dtype)."""
        eps = torch.randn(obs.shape, generator=generator, device=obs.device, dtype=obs.dtype)
        return eps.mul_(self.sigma)

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
        return self.policy.act(obs + self.noise(obs, generator), deterministic=deterministic, generator=generator)

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        """The base policy's parameters (none for parameter-free policies)."""
        params = getattr(self.policy, "parameters", None)
        return iter(params()) if callable(params) else iter(())

    def __repr__(self) -> str:
        return f"SmoothedPolicy(sigma={self.sigma}, policy={type(self.policy).__name__})"


def smoothing_transform(sigma: float, attack: ObsTransform | None = None) -> ObsTransform:
    """An ``obs_transform`` for :func:`robustrl.evaluate.rollout`: ``attack(obs) + N(0, σ² I)``.

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
    s = float(sigma)
    if not math.isfinite(s) or s <= 0:
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")

    def transform(obs: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        seen = attack(obs, ctx) if attack is not None else obs
        eps = torch.randn(seen.shape, generator=ctx.generator, device=seen.device, dtype=seen.dtype)
        return seen + s * eps

    return transform


def check_same_device(policy: Policy, device: torch.device) -> None:
    """Raise a ``ValueError`` when a policy with parameters lives on another device than ``device``."""
    params = getattr(policy, "parameters", None)
    if not callable(params) or next(iter(params()), None) is None:
        return  # parameter-free policies follow their input
    pdev = policy_device(policy)
    same = pdev.type == device.type and (pdev.index is None or device.index is None or pdev.index == device.index)
    if not same:
        raise ValueError(
            f"policy is on {pdev} but the env is on {device}: move the policy (policy.to(device)) "
            "or make the env on the policy's device"
        )


def default_num_envs(episodes: int, device: torch.device) -> int:
    """Env copies for ``episodes`` smoothed episodes: 1024 on CPU (cache-sized), up to 2²⁰ on GPU."""
    cap = 1024 if device.type == "cpu" else 1 << 20
    return max(1, min(int(episodes), cap))


def sample_smoothed_returns(
    policy: Policy,
    env: VecEnv,
    episodes: int,
    *,
    sigma: float,
    seed: int | None = 0,
    deterministic: bool = True,
    progress: bool = False,
) -> RolloutResult:
    """Returns of ``episodes`` clean episodes of the smoothed policy ``π_σ`` on a batched env.

    All ``env.num_envs`` copies step at once through :func:`robustrl.evaluate.rollout`; episodes are
    assigned to copies before any data (no bias towards short episodes).

    Args:
        policy: the base policy, on ``env.device``.
        env: a batched env (``robustrl.make_env``).
        episodes: how many episodes (the certificate's n).
        sigma: smoothing noise std σ > 0.
        seed: seeds env resets and the noise; the same seed gives the same returns.
        deterministic: greedy base actions (True) or sampled ones.
        progress: show a progress bar.

    Returns:
        :class:`~robustrl.evaluate.RolloutResult`: ``returns`` float64 ``[episodes]``, ``lengths``.

    Raises:
        ValueError: policy and env on different devices, bad σ or episodes.

    """
    check_same_device(policy, env.device)
    smoothed = policy if isinstance(policy, SmoothedPolicy) else SmoothedPolicy(policy, sigma)
    if smoothed.sigma != float(sigma):
        raise ValueError(f"policy is already smoothed with sigma={smoothed.sigma}, not {sigma}")
    return rollout(smoothed, env, episodes, seed=seed, deterministic=deterministic, progress=progress)

"""The smoothed-rollout sampler of certification (on the shared rollout engine).

Policy Smoothing (Kumar, Levine & Feizi, ICLR 2022) certifies the *smoothed* policy: Gaussian noise
``N(0, σ² I)`` is added to every observation before the base policy acts. The smoothed policy and the noise
live in :mod:`robustrl.defenses.smoothing` (re-exported here); because the noise is added inside the policy,
an observation attack given to the engine as ``obs_transform`` perturbs the observation *before* the noise,
exactly the threat model of the certificate.
"""

from __future__ import annotations

import torch

from robustrl.defenses.smoothing import SmoothedPolicy, smoothing_transform
from robustrl.envs.base import VecEnv
from robustrl.policies.base import Policy, policy_device
from robustrl.rollout import RolloutResult, rollout

__all__ = [
    "SmoothedPolicy",
    "check_same_device",
    "default_num_envs",
    "sample_smoothed_returns",
    "smoothing_transform",
]


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
        :class:`~robustrl.rollout.RolloutResult`: ``returns`` float64 ``[episodes]``, ``lengths``.

    Raises:
        ValueError: policy and env on different devices, bad σ or episodes.

    """
    check_same_device(policy, env.device)
    smoothed = policy if isinstance(policy, SmoothedPolicy) else SmoothedPolicy(policy, sigma)
    if smoothed.sigma != float(sigma):
        raise ValueError(f"policy is already smoothed with sigma={smoothed.sigma}, not {sigma}")
    return rollout(smoothed, env, episodes, seed=seed, deterministic=deterministic, progress=progress)

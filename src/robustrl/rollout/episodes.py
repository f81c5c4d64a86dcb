"""The one rollout engine: evaluation, attacks, certification and training evaluation all run here.

Episodes are numbered in the order they *start* (ties broken by copy index) and the first ``episodes``
to start are the sample. Whether an episode is in the sample is decided when it starts, before anything
about its outcome exists, so the sample is not biased towards short episodes (taking the first episodes
to *finish* would be); and no copy sits idle waiting for a fixed quota while others still run. Results
come back in start order. The loop steps all copies at once on tensors; there is no Python loop over
copies and no host-device synchronisation except the periodic completion check.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch

from robustrl.common.progress import progress_bar
from robustrl.common.seeding import derive_seed, torch_generator
from robustrl.envs.base import VecEnv
from robustrl.policies.base import Policy
from robustrl.rollout.collect import episode_starts_hook
from robustrl.rollout.context import ActionTransform, ObsTransform, StepContext


class RolloutResult(NamedTuple):
    """Per-episode results, in the order the episodes started."""

    returns: torch.Tensor
    """``float64 [episodes]`` undiscounted returns (CPU)."""
    lengths: torch.Tensor
    """``int64 [episodes]`` episode lengths (CPU)."""
    copies: torch.Tensor
    """``int64 [episodes]`` the env copy that ran each episode (CPU): maps episodes to per-copy params."""


def rollout(
    policy: Policy,
    env: VecEnv,
    episodes: int,
    *,
    seed: int | None = None,
    obs_transform: ObsTransform | None = None,
    action_transform: ActionTransform | None = None,
    deterministic: bool = True,
    max_episode_steps: int | None = None,
    progress: bool = False,
) -> RolloutResult:
    """Run ``policy`` on ``env`` until ``episodes`` episodes are complete.

    Args:
        policy: anything with a batched ``act(obs, deterministic=..., generator=...)``.
        env: a batched env; all ``env.num_envs`` copies run at once.
        episodes: how many episodes to return (≥ 1).
        seed: seeds the env reset and the rollout generator (policy sampling, threats); same seed ⇒ same returns.
        obs_transform: optional observation threat/smoothing applied before the policy sees ``obs``.
        action_transform: optional action threat applied before the env receives the action.
        deterministic: greedy actions (True) or sampled ones.
        max_episode_steps: guard for envs without a time limit (required when ``env.max_episode_steps`` is None).
        progress: show a progress bar over completed episodes.

    Returns:
        :class:`RolloutResult` with ``returns`` and ``lengths``, each ``[episodes]``.

    Example:
        >>> import robustrl
        >>> class Left:
        ...     def act(self, obs, *, deterministic=True, generator=None):
        ...         return torch.zeros(obs.shape[0], dtype=torch.int64)
        >>> env = robustrl.make_env("CartPole-v1", num_envs=4, seed=0)
        >>> res = rollout(Left(), env, episodes=8, seed=0)
        >>> res.returns.shape, bool((res.returns < 20).all())
        (torch.Size([8]), True)

    """
    if episodes < 1:
        raise ValueError(f"episodes must be ≥ 1, got {episodes}")
    n = env.num_envs
    device = env.device
    horizon = max_episode_steps or env.max_episode_steps
    if horizon is None:
        raise ValueError(f"{env.env_id} has no time limit: pass max_episode_steps to rollout()")
    # The last sampled episode starts after at most ceil(episodes / n) - 1 earlier ones on its copy.
    step_limit = -(-episodes // n) * horizon + 1

    obs, _ = env.reset(seed=seed)
    generator = torch_generator(derive_seed(seed, 1) if seed is not None else None, device)
    # Slot ``episodes`` is a sink for writes of copies whose episode is not in the sample.
    returns = torch.zeros(episodes + 1, dtype=torch.float64, device=device)
    lengths = torch.zeros(episodes + 1, dtype=torch.int64, device=device)
    copies = torch.zeros(episodes + 1, dtype=torch.int64, device=device)
    copy_index = torch.arange(n, device=device)
    sink = torch.tensor(episodes, device=device)
    episode_id = torch.arange(n, device=device)
    episode_id = torch.where(episode_id < episodes, episode_id, sink)
    started = torch.tensor(n, device=device)
    finished = torch.zeros((), dtype=torch.int64, device=device)
    ep_return = torch.zeros(n, dtype=torch.float64, device=device)
    ep_len = torch.zeros(n, dtype=torch.int64, device=device)
    episode_start = torch.ones(n, dtype=torch.bool, device=device)
    check_every = 1 if device.type == "cpu" else 16
    bar = progress_bar(total=episodes, desc="episodes", unit="ep", disable=not progress, leave=False)

    starts = episode_starts_hook(policy)
    with contextlib.closing(bar):
        for t in range(step_limit):
            if starts is not None:
                starts(episode_start)
            ctx = StepContext(
                policy=policy,
                step=ep_len,
                episode_start=episode_start,
                generator=generator,
                active=episode_id < episodes,
            )
            seen = obs_transform(obs, ctx) if obs_transform is not None else obs
            with torch.no_grad():
                action = policy.act(seen, deterministic=deterministic, generator=generator)
            if action_transform is not None:
                action = action_transform(action, obs, ctx)
            obs, reward, terminated, truncated, _ = env.step(action)
            ep_return = ep_return + reward.to(torch.float64)
            ep_len = ep_len + 1
            done = terminated | truncated
            slot = torch.where(done, episode_id, sink)
            returns.scatter_(0, slot, ep_return)
            lengths.scatter_(0, slot, ep_len)
            copies.scatter_(0, slot, copy_index)
            finished = finished + (slot < episodes).sum()
            # Copies that finished start the next episodes, numbered in copy order.
            new_id = started + torch.cumsum(done, 0) - 1
            episode_id = torch.where(done, torch.where(new_id < episodes, new_id, sink), episode_id)
            started = started + done.sum()
            ep_return = torch.where(done, torch.zeros_like(ep_return), ep_return)
            ep_len = torch.where(done, torch.zeros_like(ep_len), ep_len)
            episode_start = done
            if t % check_every == 0 or t == step_limit - 1:
                count = int(finished)
                bar.update(count - bar.n)
                if count == episodes:
                    break
        else:  # pragma: no cover - the env's time limit makes this unreachable
            raise RuntimeError(f"rollout did not finish {episodes} episodes within {step_limit} steps")

    return RolloutResult(
        returns=returns[:episodes].cpu(), lengths=lengths[:episodes].cpu(), copies=copies[:episodes].cpu()
    )

"""``collect``: a fixed number of steps of every env copy for a learner, as ``[T, N, ...]`` tensors.

Learners (PPO, DQN, SAC, …) collect their experience here, so a threat or a defense given as an
``obs_transform`` / ``action_transform`` applies to every learner the same way. The observation the policy
saw and the clean observation are both recorded; so is the last observation of every episode that ended
(``info["final_obs"]``, spliced here once), for bootstrapping truncated episodes and for replay successors.

The loop steps all copies at once. On CUDA it never synchronises host and device: the final observations
are transformed and stored densely at every step. On CPU (where a check is free) the transform of final
observations runs only at steps where some episode ended.

A recurrent policy (one with ``start_episodes``) is told each step's episode starts before the observation is
transformed or acted on, so its carried state restarts with every episode.

Collection continues across calls: :func:`start_collect` resets the env once, and each
:class:`Trajectory` carries the :class:`CollectState` to pass to the next :func:`collect`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

import torch

from robustrl.common.seeding import derive_seed, torch_generator
from robustrl.envs.base import VecEnv
from robustrl.policies.base import Policy
from robustrl.rollout.context import ActionTransform, ObsTransform, StepContext


class Act(NamedTuple):
    """What a learner's acting function returns for one step of all copies."""

    action: torch.Tensor
    """``[N, ...]`` the action to record (e.g. PPO's unclipped Gaussian sample)."""
    env_action: torch.Tensor | None = None
    """``[N, ...]`` the action the env receives (None: ``action``), before any ``action_transform``."""
    extras: Mapping[str, torch.Tensor] | None = None
    """Per-copy values to record, each ``[N, ...]`` (e.g. ``{"log_prob": ...}``)."""


ActFn = Callable[[torch.Tensor, StepContext], Act]
"""``(seen_obs [N, *obs_shape], ctx) -> Act``: a learner's exploration policy for one step."""


class CollectState(NamedTuple):
    """Where collection stands between calls (pass ``trajectory.state`` to the next :func:`collect`)."""

    obs: torch.Tensor
    """``[N, *obs_shape]`` clean observation the next step acts on."""
    seen: torch.Tensor | None
    """``[N, *obs_shape]`` what the policy sees of it (None: not transformed yet)."""
    step: torch.Tensor
    """``int64 [N]`` steps already taken in each copy's current episode (counted while a transform is set)."""
    episode_start: torch.Tensor
    """``bool [N]`` True where ``obs`` is the first observation of an episode."""
    generator: torch.Generator
    """Randomness of the transforms (threats, smoothing noise) and of the default acting function."""


class Trajectory(NamedTuple):
    """``T`` steps of ``N`` env copies, time-major."""

    obs: torch.Tensor
    """``[T, N, *obs_shape]`` float observations the policy saw (after ``obs_transform``)."""
    clean_obs: torch.Tensor
    """``[T, N, *obs_shape]`` float observations before the transform (``obs`` itself without one)."""
    actions: torch.Tensor
    """``[T, N, ...]`` recorded actions (:attr:`Act.action`)."""
    rewards: torch.Tensor
    """``float32 [T, N]``."""
    terminated: torch.Tensor
    """``bool [T, N]``."""
    truncated: torch.Tensor
    """``bool [T, N]``."""
    final_obs: torch.Tensor
    """``[T, N, *obs_shape]`` the transformed last observation of the episode that ended at step t (the
    clean one with ``transform_final=False``; rows where no episode ended are unspecified)."""
    final_clean_obs: torch.Tensor
    """``[T, N, *obs_shape]`` the same before the transform (``final_obs`` itself without one)."""
    extras: dict[str, torch.Tensor]
    """Each :attr:`Act.extras` entry stacked to ``[T, N, ...]``."""
    state: CollectState
    """Where collection continues."""

    @property
    def done(self) -> torch.Tensor:
        """``bool [T, N]``: an episode ended at the step."""
        return self.terminated | self.truncated

    def next_obs(self, *, clean: bool = False) -> torch.Tensor:
        """``[T, N, *obs_shape]`` the successor of every transition (replay buffers' ``next_obs``).

        The next observation the policy saw, or at an episode's end its final observation (transformed,
        or clean with ``clean=True``), never the next episode's first one.
        """
        obs, final, last = (
            (self.clean_obs, self.final_clean_obs, self.state.obs)
            if clean
            else (self.obs, self.final_obs, self.state.seen)
        )
        assert last is not None
        following = torch.cat([obs[1:], last.float().unsqueeze(0)])
        done = self.done.view(*self.done.shape, *([1] * (obs.dim() - 2)))
        return torch.where(done, final, following)


def start_collect(
    env: VecEnv, *, seed: int | None = None, generator: torch.Generator | None = None
) -> CollectState:
    """Reset ``env`` (seeded with ``seed``) and return the state :func:`collect` starts from.

    Args:
        env: the batched env to collect from.
        seed: seeds the env reset, and the transforms' generator when ``generator`` is None.
        generator: the transforms' generator (on ``env.device``); default derived from ``seed``.
    """
    obs, _ = env.reset(seed=seed)
    n, device = env.num_envs, env.device
    if generator is None:
        generator = torch_generator(derive_seed(seed, 1) if seed is not None else None, device)
    return CollectState(
        obs=obs,
        seen=None,
        step=torch.zeros(n, dtype=torch.int64, device=device),
        episode_start=torch.ones(n, dtype=torch.bool, device=device),
        generator=generator,
    )


def episode_starts_hook(policy: object) -> Callable[[torch.Tensor], None] | None:
    """A recurrent policy's ``start_episodes(mask [N])`` (resets its carried state), or None for other policies."""
    hook = getattr(policy, "start_episodes", None)
    return hook if callable(hook) else None


def _default_act(policy: Policy, deterministic: bool) -> ActFn:
    def act(seen: torch.Tensor, ctx: StepContext) -> Act:
        return Act(policy.act(seen, deterministic=deterministic, generator=ctx.generator))

    return act


def collect(
    policy: Policy,
    env: VecEnv,
    steps: int,
    *,
    state: CollectState,
    act: ActFn | None = None,
    obs_transform: ObsTransform | None = None,
    action_transform: ActionTransform | None = None,
    transform_final: bool = True,
    deterministic: bool = False,
) -> Trajectory:
    """Step every copy of ``env`` ``steps`` times from ``state``; returns the ``[T, N, ...]`` trajectory.

    Args:
        policy: the policy being trained (the victim threats see as ``ctx.policy``).
        env: a batched env; ``state`` must come from it (:func:`start_collect` or a previous trajectory).
        steps: ``T ≥ 1``.
        state: where to continue.
        act: the learner's acting function (e.g. sampling with its own generator and recording
            log-probabilities); default ``policy.act(seen, deterministic=..., generator=state.generator)``.
        obs_transform: applied to every observation before the policy sees it (and to final
            observations), e.g. smoothing noise or an attack.
        action_transform: applied to the env action before the env receives it.
        transform_final: also transform the final observations of episodes that end (replay successors,
            bootstrap values of a critic that sees what the actor sees); False leaves ``final_obs`` clean
            and spares the transform's work and randomness.
        deterministic: greedy actions in the default acting function.

    Returns:
        :class:`Trajectory`; ``trajectory.state`` continues the collection.

    Example:
        >>> import robustrl
        >>> from robustrl.policies import ActorCriticPolicy
        >>> env = robustrl.make_env("CartPole-v1", 4, seed=0)
        >>> pi = ActorCriticPolicy(env.observation_space, env.action_space)
        >>> traj = collect(pi, env, 8, state=start_collect(env, seed=0))
        >>> traj.obs.shape, traj.rewards.shape, traj.next_obs().shape
        (torch.Size([8, 4, 4]), torch.Size([8, 4]), torch.Size([8, 4, 4]))
    """
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    act_fn = act if act is not None else _default_act(policy, deterministic)
    n, device = env.num_envs, env.device
    gen = state.generator
    clean, step, start = state.obs.float(), state.step, state.episode_start
    transformed = obs_transform is not None
    final_transformed = transformed and transform_final
    count_steps = transformed or action_transform is not None  # ctx.step is for threats; learners need none
    check_done = device.type == "cpu"

    def context(step_: torch.Tensor, start_: torch.Tensor) -> StepContext:
        return StepContext(policy=policy, step=step_, episode_start=start_, generator=gen)

    starts = episode_starts_hook(policy)
    if starts is not None:
        starts(start)
    ctx = context(step, start)
    seen = state.seen if state.seen is not None else (obs_transform(clean, ctx) if obs_transform else clean)
    obs_shape = tuple(clean.shape[1:])
    obs_buf = torch.empty((steps, n, *obs_shape), device=device)
    clean_buf = torch.empty_like(obs_buf) if transformed else obs_buf
    final_clean_buf = torch.empty_like(obs_buf)
    final_buf = torch.empty_like(obs_buf) if final_transformed else final_clean_buf
    rew_buf = torch.empty((steps, n), device=device)
    term_buf = torch.empty((steps, n), dtype=torch.bool, device=device)
    trunc_buf = torch.empty((steps, n), dtype=torch.bool, device=device)
    actions: list[torch.Tensor] = []
    extras: dict[str, list[torch.Tensor]] = {}
    for t in range(steps):
        obs_buf[t] = seen
        if transformed:
            clean_buf[t] = clean
        with torch.no_grad():
            out = act_fn(seen, ctx)
        actions.append(out.action)
        for key, value in (out.extras or {}).items():
            extras.setdefault(key, []).append(value)
        env_action = out.env_action if out.env_action is not None else out.action
        if action_transform is not None:
            env_action = action_transform(env_action, clean, ctx)
        obs, reward, terminated, truncated, info = env.step(env_action)
        rew_buf[t] = reward
        term_buf[t] = terminated
        trunc_buf[t] = truncated
        done = terminated | truncated
        if not check_done or bool(done.any()):  # on CPU the check is free; rows of unfinished copies are moot
            final = info["final_obs"].float()
            final_clean_buf[t] = final
            if final_transformed:
                assert obs_transform is not None
                final_buf[t] = obs_transform(final, context(step + 1, torch.zeros_like(done)))
        if count_steps:
            step = torch.where(done, 0, step + 1)
        start = done
        clean = obs.float()
        if starts is not None:
            starts(start)
        ctx = context(step, start)
        seen = obs_transform(clean, ctx) if obs_transform is not None else clean
    return Trajectory(
        obs=obs_buf,
        clean_obs=clean_buf,
        actions=torch.stack(actions),
        rewards=rew_buf,
        terminated=term_buf,
        truncated=trunc_buf,
        final_obs=final_buf,
        final_clean_obs=final_clean_buf,
        extras={k: torch.stack(v) for k, v in extras.items()},
        state=CollectState(obs=clean, seen=seen, step=step, episode_start=start, generator=gen),
    )

"""Collecting offline datasets: episodes of any policy, the replay of an online learner, and D4RL-like recipes.

* :func:`collect_episodes` runs a policy (ours, an SB3 zip, TorchScript: anything
  :func:`robustrl.load_policy` reads, or the uniform :class:`RandomPolicy`) through the shared
  :func:`robustrl.rollout.collect` engine, with optional behaviour noise (ε-greedy for Discrete actions,
  Gaussian ``N(0, (noise·half-range)²)`` clipped to the box for Box actions), and cuts the steps into complete
  episodes with ``terminated`` and ``truncated`` kept apart.
* :class:`RecordingVecEnv` wraps the env an online learner trains on and records every transition it steps:
  the learner's replay, from which the ``medium-replay`` recipe takes the data of training up to medium.
* :func:`make_recipe` builds ``random``, ``medium`` (a policy at about a third of the expert's return above
  random), ``expert``, ``medium-replay`` and ``medium-expert`` (medium + expert episodes, D4RL's mix) for any
  env :func:`robustrl.agents.train.train` can learn: Pendulum/CartPole in seconds, Hopper/HalfCheetah/Walker2d
  by the same code at MuJoCo budgets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

from robustrl.common.seeding import derive_seed, torch_generator
from robustrl.envs import VecEnv, make_env
from robustrl.offline.data import OfflineDataset
from robustrl.policies.base import Policy
from robustrl.rollout import rollout
from robustrl.rollout.collect import Act, collect, start_collect
from robustrl.rollout.context import StepContext

__all__ = ["RECIPES", "RandomPolicy", "RecordingVecEnv", "collect_episodes", "make_recipe", "reference_return"]

Recipe = Literal["random", "medium", "expert", "medium-replay", "medium-expert"]
RECIPES: tuple[str, ...] = ("random", "medium", "expert", "medium-replay", "medium-expert")
"""The D4RL-like dataset recipes."""


class RandomPolicy:
    """Uniformly random actions on the action space (the ``random`` recipe, and ``--policy random``)."""

    def __init__(self, observation_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        if not isinstance(action_space, gym.spaces.Box | gym.spaces.Discrete):
            raise ValueError(f"a random policy needs a Box or Discrete action space, got {action_space!r}")
        self.observation_space: gym.Space[Any] = observation_space
        self.action_space: gym.Space[Any] = action_space

    def act(
        self, obs: torch.Tensor, *, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``[N]`` uniform integers or ``[N, *shape]`` uniform points of the box, drawn from ``generator``."""
        n = obs.shape[0]
        space = self.action_space
        if isinstance(space, gym.spaces.Discrete):
            return torch.randint(int(space.n), (n,), generator=generator, device=obs.device) + int(space.start)
        assert isinstance(space, gym.spaces.Box)
        low = torch.as_tensor(space.low, dtype=torch.float32, device=obs.device)
        high = torch.as_tensor(space.high, dtype=torch.float32, device=obs.device)
        u = torch.rand((n, *space.shape), generator=generator, device=obs.device)
        return low + u * (high - low)


def _noisy_act(policy: Policy, space: gym.Space[Any], noise: float, generator: torch.Generator) -> Any:
    random = RandomPolicy(policy.observation_space, space)

    def act(seen: torch.Tensor, ctx: StepContext) -> Act:
        a = policy.act(seen, deterministic=True, generator=generator)
        if noise <= 0:
            return Act(a)
        if isinstance(space, gym.spaces.Discrete):
            flip = torch.rand(a.shape[0], generator=generator, device=a.device) < noise
            return Act(torch.where(flip, random.act(seen, generator=generator), a))
        assert isinstance(space, gym.spaces.Box)
        low = torch.as_tensor(space.low, dtype=torch.float32, device=a.device)
        high = torch.as_tensor(space.high, dtype=torch.float32, device=a.device)
        eps = torch.randn(a.shape, generator=generator, device=a.device) * (noise * (high - low) / 2)
        return Act(torch.clamp(a + eps, low, high))

    return act


class _EpisodeCutter:
    """Stitches ``[T, N]`` steps of ``N`` copies into complete episodes (per-copy carry between chunks)."""

    def __init__(self, n: int) -> None:
        self.open: list[list[tuple[np.ndarray, ...]]] = [[] for _ in range(n)]
        self.done: list[dict[str, np.ndarray]] = []

    def add(self, obs: np.ndarray, act: np.ndarray, rew: np.ndarray, nxt: np.ndarray, te: np.ndarray,
            tr: np.ndarray) -> None:  # fmt: skip
        """Add ``T`` steps (arrays ``[T, N, ...]``)."""
        for t in range(obs.shape[0]):
            for i in range(obs.shape[1]):
                self.open[i].append((obs[t, i], act[t, i], rew[t, i], nxt[t, i], te[t, i], tr[t, i]))
                if te[t, i] or tr[t, i]:
                    cols = list(zip(*self.open[i], strict=True))
                    keys = ("observations", "actions", "rewards", "next_observations", "terminations", "truncations")
                    self.done.append({k: np.stack(c) for k, c in zip(keys, cols, strict=True)})
                    self.open[i] = []


def _dataset(episodes: list[dict[str, np.ndarray]], env_id: str, meta: dict[str, Any]) -> OfflineDataset:
    if not episodes:
        raise ValueError("no episode finished: collect more steps")
    cat = {k: np.concatenate([e[k] for e in episodes]) for k in episodes[0]}
    ids = np.concatenate([np.full(len(e["rewards"]), k, np.int64) for k, e in enumerate(episodes)])
    actions = cat["actions"]
    return OfflineDataset(
        observations=cat["observations"].astype(np.float32).reshape(len(ids), -1),
        actions=actions.astype(np.int64) if actions.ndim == 1 else actions.astype(np.float32).reshape(len(ids), -1),
        rewards=cat["rewards"].astype(np.float32),
        next_observations=cat["next_observations"].astype(np.float32).reshape(len(ids), -1),
        terminations=cat["terminations"].astype(bool), truncations=cat["truncations"].astype(bool),
        episode_ids=ids, env_id=env_id, meta=meta,
    )  # fmt: skip


def collect_episodes(
    policy: Policy,
    env: VecEnv,
    episodes: int,
    *,
    noise: float = 0.0,
    seed: int = 0,
    meta: dict[str, Any] | None = None,
) -> OfflineDataset:
    """Run ``policy`` on ``env`` until ``episodes`` episodes are complete; their transitions in finishing order.

    Args:
        policy: the behaviour policy (acts deterministically; ``noise`` adds the behaviour noise).
        env: the batched env (its copies run at once).
        episodes: complete episodes to keep (≥ 1).
        noise: ε of ε-greedy (Discrete) or the Gaussian std in half-ranges of the box (Box); 0: none.
        seed: seeds the env reset and the noise.
        meta: stored as the dataset's ``meta``.

    Raises:
        ValueError: ``episodes < 1``, ``noise`` outside ``[0, 1]`` for Discrete or negative for Box.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be ≥ 1, got {episodes}")
    if not np.isfinite(noise) or noise < 0 or (isinstance(env.action_space, gym.spaces.Discrete) and noise > 1):
        raise ValueError(f"noise must be in [0, 1] (ε-greedy) or ≥ 0 (Gaussian), got {noise}")
    gen = torch_generator(derive_seed(seed, 3), env.device)
    state = start_collect(env, seed=seed)
    cutter = _EpisodeCutter(env.num_envs)
    chunk = env.max_episode_steps or 1000
    act = _noisy_act(policy, env.action_space, noise, gen)
    while len(cutter.done) < episodes:
        traj = collect(policy, env, chunk, state=state, act=act, transform_final=False)
        state = traj.state
        cutter.add(traj.obs.cpu().numpy(), traj.actions.cpu().numpy(), traj.rewards.cpu().numpy(),
                   traj.next_obs(clean=True).cpu().numpy(), traj.terminated.cpu().numpy(),
                   traj.truncated.cpu().numpy())  # fmt: skip
    return _dataset(cutter.done[:episodes], env.env_id, dict(meta or {}))


def reference_return(policy: Policy, env_id: str, episodes: int = 32, *, seed: int = 0) -> float:
    """Mean undiscounted return of ``policy`` (deterministic) over ``episodes`` episodes of ``env_id``."""
    env = make_env(env_id, min(episodes, 16), seed=seed)
    try:
        return float(rollout(policy, env, episodes, seed=seed, deterministic=True).returns.mean())
    finally:
        env.close()


class RecordingVecEnv:
    """A :class:`~robustrl.envs.VecEnv` that records every transition stepped through it (a learner's replay).

    Everything is delegated to the wrapped env; :meth:`step` also stores ``(obs, action, reward, next_obs,
    terminated, truncated)`` per copy, the successor of a finished episode being ``info["final_obs"]``.
    """

    def __init__(self, env: VecEnv) -> None:
        self._env = env
        self._obs: torch.Tensor | None = None
        self.cutter = _EpisodeCutter(env.num_envs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    def reset(self, *args: Any, **kwargs: Any) -> Any:
        """Reset the wrapped env (open episodes are dropped)."""
        obs, info = self._env.reset(*args, **kwargs)
        self._obs = obs.clone()
        self.cutter.open = [[] for _ in range(self._env.num_envs)]
        return obs, info

    def step(self, action: torch.Tensor) -> Any:
        """Step the wrapped env and record the transitions."""
        obs, reward, terminated, truncated, info = self._env.step(action)
        assert self._obs is not None, "reset the env before stepping it"
        done = terminated | truncated
        nxt = torch.where(done.view(-1, *([1] * (obs.dim() - 1))), info["final_obs"], obs) if done.any() else obs
        a = action.detach().cpu().numpy()
        self.cutter.add(self._obs.cpu().numpy()[None], a[None], reward.cpu().numpy()[None], nxt.cpu().numpy()[None],
                        terminated.cpu().numpy()[None], truncated.cpu().numpy()[None])  # fmt: skip
        self._obs = obs.clone()
        return obs, reward, terminated, truncated, info


@dataclass(frozen=True)
class RecipeBudget:
    """Online training of the behaviour policies of a recipe."""

    algo: str
    """The online learner (robustrl.agents.train)."""
    expert_steps: int
    """Environment steps of the expert's training."""
    eval_every: int
    """Steps between evaluations while training up to medium."""


RECIPE_BUDGETS: dict[str, RecipeBudget] = {
    "CartPole-v1": RecipeBudget("ppo", 60_000, 2_048),
    "Pendulum-v1": RecipeBudget("td3", 20_000, 1_000),
    **{e: RecipeBudget("sac", 1_000_000, 10_000) for e in ("Hopper-v5", "HalfCheetah-v5", "Walker2d-v5")},
}
"""Behaviour-policy training per env (other Box envs: SAC at 200k steps, Discrete: PPO at 200k)."""


def _budget(env_id: str, discrete: bool) -> RecipeBudget:
    return RECIPE_BUDGETS.get(env_id, RecipeBudget("ppo" if discrete else "sac", 200_000, 5_000))


def make_recipe(
    env_id: str,
    recipe: str,
    episodes: int,
    *,
    seed: int = 0,
    expert_steps: int | None = None,
    noise: float = 0.0,
    progress: bool = False,
    expert: Policy | None = None,
) -> OfflineDataset:
    """Build a D4RL-like dataset ``recipe`` of ``env_id`` (behaviour policies trained here, nothing downloaded).

    The expert is ``expert`` if given (e.g. a policy trained earlier), else trained by
    :func:`robustrl.agents.train.train` (the budget of :data:`RECIPE_BUDGETS`, or ``expert_steps``); the
    medium policy by a second run of the same learner stopped at the first evaluation whose return reaches
    ``R_random + (R_expert − R_random) / 3``; ``medium-replay`` is every transition that second run stepped
    (its replay); ``medium-expert`` is ``episodes`` medium plus ``episodes`` expert episodes.
    Reference returns (normalised score 0 and 100) are the random and the expert policy's mean returns.

    Raises:
        ValueError: an unknown recipe or env id, ``episodes < 1``.
    """
    from robustrl.agents.train import ALGORITHMS, TrainConfig, resolve_algo_config, train

    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose from {list(RECIPES)}")
    if episodes < 1:
        raise ValueError(f"episodes must be ≥ 1, got {episodes}")
    env = make_env(env_id, 8, seed=seed)
    try:
        discrete = isinstance(env.action_space, gym.spaces.Discrete)
        budget = _budget(env_id, discrete)
        steps = expert_steps if expert_steps is not None else budget.expert_steps
        random_pi = RandomPolicy(env.observation_space, env.action_space)
        ref_min = reference_return(random_pi, env_id, seed=_s(seed, 1))
        meta = {"recipe": recipe, "env_id": env_id, "seed": seed, "behaviour_algo": budget.algo,
                "expert_steps": None if expert is not None else steps, "noise": noise,
                "expert": "given" if expert is not None else "trained"}  # fmt: skip
        if recipe == "random":
            data = collect_episodes(random_pi, env, episodes, seed=_s(seed, 2), meta=meta)
            return dataclasses.replace(data, ref_min_score=ref_min, ref_max_score=None)
        if expert is None:
            expert = train(TrainConfig(algo=budget.algo, env=env_id, total_steps=steps, seed=seed,  # type: ignore[arg-type]
                                       eval_every=0, eval_episodes=8, progress=progress)).policy  # fmt: skip
        ref_max = reference_return(expert, env_id, seed=_s(seed, 3))
        meta.update(ref_random=ref_min, ref_expert=ref_max)
        refs: dict[str, Any] = {"ref_min_score": ref_min, "ref_max_score": ref_max}
        if recipe == "expert":
            data = collect_episodes(expert, env, episodes, noise=noise, seed=_s(seed, 4), meta=meta)
            return dataclasses.replace(data, **refs)
        target = ref_min + (ref_max - ref_min) / 3.0
        meta["medium_target"] = target
        tcfg = TrainConfig(algo=budget.algo, env=env_id, total_steps=steps, seed=_s(seed, 5),  # type: ignore[arg-type]
                           eval_every=budget.eval_every, eval_episodes=8)  # fmt: skip
        algo_cfg = resolve_algo_config(tcfg)
        learn_env = RecordingVecEnv(make_env(env_id, algo_cfg.num_envs, seed=_s(seed, 6)))
        agent = ALGORITHMS[budget.algo][0](learn_env, algo_cfg, seed=tcfg.seed)
        next_eval, medium_return = budget.eval_every, -np.inf
        while agent.steps < steps:
            agent.iterate()
            if agent.steps >= next_eval:
                next_eval += budget.eval_every
                agent.policy.eval()
                medium_return = reference_return(agent.policy, env_id, 8, seed=_s(seed, 7))
                agent.policy.train()
                if medium_return >= target:
                    break
        learn_env.close()
        agent.policy.eval()
        meta.update(medium_return=medium_return, medium_steps=agent.steps)
        if recipe == "medium-replay":
            return dataclasses.replace(_dataset(learn_env.cutter.done, env_id, meta), **refs)
        medium = collect_episodes(agent.policy, env, episodes, noise=noise, seed=_s(seed, 8), meta=meta)
        if recipe == "medium":
            return dataclasses.replace(medium, **refs)
        top = collect_episodes(expert, env, episodes, noise=noise, seed=_s(seed, 9), meta=meta)
        return dataclasses.replace(concat([medium, top]), **refs)
    finally:
        env.close()


def concat(parts: list[OfflineDataset]) -> OfflineDataset:
    """The transitions of ``parts`` one after another (episodes renumbered; env and meta of the first)."""
    offset, ids = 0, []
    for p in parts:
        _, inv = np.unique(p.episode_ids, return_inverse=True)
        ids.append(inv + offset)
        offset += int(inv.max()) + 1
    masks = [p.corrupted for p in parts]
    return dataclasses.replace(
        parts[0],
        observations=np.concatenate([p.observations for p in parts]),
        actions=np.concatenate([p.actions for p in parts]),
        rewards=np.concatenate([p.rewards for p in parts]),
        next_observations=np.concatenate([p.next_observations for p in parts]),
        terminations=np.concatenate([p.terminations for p in parts]),
        truncations=np.concatenate([p.truncations for p in parts]),
        episode_ids=np.concatenate(ids).astype(np.int64),
        corrupted=None if any(m is None for m in masks) else np.concatenate(masks),  # type: ignore[arg-type]
    )


def _s(seed: int, key: int) -> int:
    child = derive_seed(seed, key)
    assert child is not None
    return child

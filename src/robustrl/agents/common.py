"""Pieces every online learner shares: seeded initialisation, schedules, optimisers, defense regularisers.

The :class:`Agent` protocol is what :func:`robustrl.agents.train` drives: one ``iterate()`` collects
experience from a batched env and updates the policy, returning ``train/…`` metrics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

import torch
from torch import nn

from robustrl.agents.buffer import ReplayBuffer
from robustrl.common.seeding import derive_seed, torch_generator
from robustrl.defenses.base import Minibatch, Regularizer
from robustrl.rollout import Trajectory, collect

Metrics = dict[str, float | torch.Tensor]
"""``train/…`` metrics of one iteration: floats, or scalar tensors left on the device (read lazily)."""


class Agent(Protocol):
    """An online learner stepping a batched env (PPO, DQN, SAC)."""

    policy: nn.Module
    """The policy being trained (meets :class:`~robustrl.policies.base.Policy`)."""
    steps: int
    """Environment transitions collected so far (summed over env copies)."""

    def iterate(self) -> Metrics:
        """Collect experience and update once; returns ``train/…`` metrics of this iteration."""
        ...


def check_num_envs(env_num_envs: int, cfg_num_envs: int, what: str) -> None:
    """Raise a ``ValueError`` when an env's copy count differs from the config's ``num_envs``."""
    if env_num_envs != cfg_num_envs:
        raise ValueError(
            f"the env has {env_num_envs} copies but {what}.num_envs is {cfg_num_envs}: make the env with "
            f"num_envs={cfg_num_envs} or set num_envs={env_num_envs} in the config"
        )


def regularization(
    regularizers: Sequence[Regularizer], policy: nn.Module, batch: Minibatch, progress: float
) -> torch.Tensor:
    """The sum of a defense's extra loss terms on one minibatch (a scalar tensor)."""
    terms = [reg(policy, batch, progress) for reg in regularizers]
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Build networks deterministically from ``seed`` without touching the caller's global RNG state.

    PyTorch's layer constructors draw their initial weights from the global generator; inside this block
    that generator is forked and seeded, and restored on exit.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed) % (2**63))
        yield


class Generators:
    """Independent ``torch.Generator`` streams derived from one seed, one per purpose.

    Args:
        seed: the run's seed.
        device: where the generators live (the env's device).
    """

    def __init__(self, seed: int, device: torch.device) -> None:
        self.seed = int(seed)
        self.device = device

    def make(self, key: int) -> torch.Generator:
        """A fresh generator seeded from ``(seed, key)``."""
        child = derive_seed(self.seed, key)
        assert child is not None
        return torch_generator(child, self.device)


def linear_schedule(start: float, progress: float, end: float = 0.0) -> float:
    """Linear interpolation from ``start`` (progress 0) to ``end`` (progress 1), clamped to [0, 1]."""
    p = min(max(progress, 0.0), 1.0)
    return start + (end - start) * p


def make_adam(params: Iterable[torch.Tensor], lr: float, eps: float = 1e-8) -> torch.optim.Adam:
    """Adam with the fused kernel (one op per step for all parameters: the fastest on small nets)."""
    return torch.optim.Adam(list(params), lr=lr, eps=eps, fused=True)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def polyak_(target: list[torch.Tensor], source: list[torch.Tensor], tau: float) -> None:
    """In place ``θ' ← (1 − τ)·θ' + τ·θ`` over matching tensor lists (one fused op; τ = 1 copies)."""
    with torch.no_grad():
        if tau >= 1.0:
            torch._foreach_copy_(target, source)
        else:
            torch._foreach_lerp_(target, source, tau)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging of ``target``'s parameters towards ``source``'s (buffers are copied)."""
    polyak_(list(target.parameters()), list(source.parameters()), tau)
    with torch.no_grad():
        for tb, sb in zip(target.buffers(), source.buffers()):
            tb.copy_(sb)


_COUNTERS = ("steps", "updates")


def learner_state(agent: object) -> dict[str, Any]:
    """Everything a checkpoint needs to resume a learner, found by type among its attributes.

    Networks, optimisers, learned tensors, replay buffers, random streams and counters. The result holds
    only tensors, numbers and dicts of them, so ``torch.load(..., weights_only=True)`` reads it back.
    The env and the episodes in flight are not part of it.
    """
    out: dict[str, Any] = {}
    for name, value in vars(agent).items():
        if isinstance(value, nn.Module | torch.optim.Optimizer):
            out[name] = {"kind": "state_dict", "value": value.state_dict()}
        elif isinstance(value, torch.Generator):
            out[name] = {"kind": "generator", "value": value.get_state()}
        elif isinstance(value, torch.Tensor):
            out[name] = {"kind": "tensor", "value": value.detach().clone()}
        elif isinstance(value, ReplayBuffer):
            out[name] = {"kind": "buffer", "value": value.state_dict()}
        elif name == "_state" and hasattr(value, "generator"):
            out[name] = {"kind": "generator", "value": value.generator.get_state()}
        elif name in _COUNTERS:
            out[name] = {"kind": "int", "value": int(value)}
    return out


def load_learner_state(agent: object, state: dict[str, Any]) -> None:
    """Restore :func:`learner_state` output into a learner built with the same config.

    Raises:
        ValueError: the state does not match the learner (missing or extra parts, other shapes).
    """
    mine = learner_state(agent)
    if set(mine) != set(state):
        raise ValueError(
            f"checkpoint does not match the learner: it has {sorted(state)}, the learner needs {sorted(mine)}"
        )
    attrs = vars(agent)
    try:
        for name, entry in state.items():
            kind, value = entry["kind"], entry["value"]
            target = attrs[name]
            if kind == "state_dict":
                target.load_state_dict(value)
            elif kind == "generator":
                (target.generator if name == "_state" else target).set_state(value)
            elif kind == "tensor":
                with torch.no_grad():
                    target.copy_(value)
            elif kind == "buffer":
                assert isinstance(target, ReplayBuffer)
                target.load_state_dict(value)
            else:
                setattr(agent, name, int(value))
    except (RuntimeError, KeyError, TypeError) as err:
        raise ValueError(f"checkpoint does not match the learner: {err}") from err


def store_transitions(traj: Trajectory, buffer: ReplayBuffer, obs_norm: nn.Module | None) -> torch.Tensor:
    """Add a collected trajectory to a replay buffer; returns its mean reward (a tensor: no sync).

    Successors are spliced at episode ends (never the next episode's first observation), and the policy's
    observation normaliser is updated with what the policy saw.
    """
    seen = traj.obs.flatten(0, 1)
    buffer.add(
        seen, traj.actions.flatten(0, 1), traj.rewards.flatten(), traj.next_obs().flatten(0, 1),
        traj.terminated.flatten(),
    )
    if obs_norm is not None:
        obs_norm.update(seen)  # type: ignore[operator]
    return traj.rewards.mean()


def collect_replay(agent: Any, vec_steps: int) -> torch.Tensor:
    """One round of an off-policy learner's collection into its replay buffer; returns the mean reward.

    ``vec_steps`` steps of every copy through :func:`~robustrl.rollout.collect` with the learner's acting
    function and defense hooks; advances ``agent._state`` and ``agent.steps``. The reward is a tensor (no sync).
    """
    traj = collect(
        agent.policy,
        agent.env,
        vec_steps,
        state=agent._state,
        act=agent._act,
        obs_transform=agent.hooks.obs_transform,
        action_transform=agent.hooks.action_transform,
    )
    agent._state = traj.state
    agent.steps += vec_steps * agent.env.num_envs
    return store_transitions(traj, agent.buffer, agent.policy.obs_norm)

"""Pieces every online learner shares: observation noise, seeded initialisation, schedules, optimisers.

The :class:`Agent` protocol is what :func:`robustrl.agents.train` drives: one ``iterate()`` collects
experience from a batched env and updates the policy, returning ``train/…`` metrics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Protocol

import torch
from torch import nn

from robustrl.common.seeding import derive_seed, torch_generator


class Agent(Protocol):
    """An online learner stepping a batched env (PPO, DQN, SAC)."""

    policy: nn.Module
    """The policy being trained (meets :class:`~robustrl.policies.base.Policy`)."""
    steps: int
    """Environment transitions collected so far (summed over env copies)."""

    def iterate(self) -> dict[str, float]:
        """Collect experience and update once; returns ``train/…`` metrics of this iteration."""
        ...


def check_num_envs(env_num_envs: int, cfg_num_envs: int, what: str) -> None:
    """Raise a ``ValueError`` when an env's copy count differs from the config's ``num_envs``."""
    if env_num_envs != cfg_num_envs:
        raise ValueError(
            f"the env has {env_num_envs} copies but {what}.num_envs is {cfg_num_envs}: make the env with "
            f"num_envs={cfg_num_envs} or set num_envs={env_num_envs} in the config"
        )


def add_obs_noise(obs: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian observation noise ``obs + σ·ε``, ``ε ~ N(0, I)`` drawn from ``generator``.

    This is the smoothing noise of Policy Smoothing (Kumar, Levine & Feizi, ICLR 2022): a policy trained
    on noisy observations stays good when the certifier adds the same noise.

    Args:
        obs: ``[N, *obs_shape]`` floating-point observations.
        sigma: noise standard deviation (same units as ``obs``); 0 returns ``obs`` itself.
        generator: where the noise comes from (on ``obs.device``).

    Returns:
        ``[N, *obs_shape]`` noisy observations.
    """
    if sigma == 0.0:
        return obs
    noise = torch.randn(obs.shape, generator=generator, device=obs.device, dtype=obs.dtype)
    return obs + sigma * noise


def check_obs_noise(sigma: float) -> None:
    """Raise a ``ValueError`` naming ``obs_noise`` unless it is a finite number ≥ 0."""
    if not (isinstance(sigma, int | float) and sigma >= 0.0 and sigma < float("inf")):
        raise ValueError(f"obs_noise must be a finite number ≥ 0, got {sigma!r}")


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

"""Returns and lengths of the episodes a learner plays while it trains (SB3's ``ep_rew_mean``).

:class:`EpisodeStats` wraps the training env: every copy's reward (the env's own, before any scaling a learner
applies) is summed until its episode ends. :meth:`EpisodeStats.recent` gives the mean return and length over the
last :data:`WINDOW` finished episodes. ``robustrl train`` logs them as ``train/episode_return`` and
``train/episode_length`` and keeps their curve in ``result.json`` (``train_curve``), a learning curve that costs
no evaluation episodes.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch

from robustrl.envs.base import StepResult, VecEnv

__all__ = ["WINDOW", "EpisodeStats"]

WINDOW = 100
"""Finished episodes the recent means are taken over."""


class EpisodeStats:
    """A :class:`~robustrl.envs.VecEnv` that sums each copy's rewards into episode returns (all else delegated).

    Example:
        >>> import robustrl
        >>> env = EpisodeStats(robustrl.make_env("CartPole-v1", 4, seed=0))
        >>> _ = env.reset(seed=0)
        >>> for _ in range(100):
        ...     _ = env.step(torch.zeros(4, dtype=torch.int64))  # always push left: short episodes
        >>> env.finished > 0 and env.recent()[0] == env.recent()[1]  # CartPole: return = length
        True
    """

    def __init__(self, env: VecEnv, window: int = WINDOW) -> None:
        self._env = env
        self._returns: deque[float] = deque(maxlen=window)
        self._lengths: deque[int] = deque(maxlen=window)
        self._ret = torch.zeros(env.num_envs, dtype=torch.float64, device=env.device)
        self._len = torch.zeros(env.num_envs, dtype=torch.int64, device=env.device)
        self._finished = 0
        self._eager = env.device.type == "cpu"
        self._pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    @property
    def finished(self) -> int:
        """Episodes finished since the wrapper was made."""
        self._flush()
        return self._finished

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    def reset(self, *args: Any, **kwargs: Any) -> Any:
        """Reset the wrapped env; episodes in progress are dropped."""
        out = self._env.reset(*args, **kwargs)
        self._pending.clear()
        self._ret.zero_()
        self._len.zero_()
        return out

    def step(self, action: torch.Tensor, *, disturbance: torch.Tensor | None = None) -> StepResult:
        """Step the wrapped env (with its disturbance, if any) and count the rewards."""
        out = self._env.step(action) if disturbance is None else self._env.step(action, disturbance=disturbance)
        obs, reward, terminated, truncated, info = out
        self._ret += reward
        self._len += 1
        done = terminated | truncated
        if self._eager:
            if bool(done.any()):  # free on the CPU
                self._take(self._ret[done], self._len[done])
                self._ret[done] = 0.0
                self._len[done] = 0
        else:  # an accelerator: no host sync per step; recent() reads what ended
            self._pending.append((done, self._ret.clone(), self._len.clone()))
            self._ret.masked_fill_(done, 0.0)
            self._len.masked_fill_(done, 0)
        return obs, reward, terminated, truncated, info

    def _take(self, returns: torch.Tensor, lengths: torch.Tensor) -> None:
        self._returns.extend(returns.tolist())
        self._lengths.extend(lengths.tolist())
        self._finished += len(returns)

    def _flush(self) -> None:
        if self._pending:
            done, ret, length = (torch.stack(x) for x in zip(*self._pending, strict=True))
            self._pending.clear()
            self._take(ret[done], length[done])

    def recent(self) -> tuple[float, float] | None:
        """``(mean return, mean length)`` of the last finished episodes (at most the window), None before any."""
        self._flush()
        if not self._returns:
            return None
        return sum(self._returns) / len(self._returns), sum(self._lengths) / len(self._lengths)

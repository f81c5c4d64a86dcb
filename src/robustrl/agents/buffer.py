"""A circular replay buffer of transitions on torch tensors (DQN, SAC).

Every tensor lives on the env's device, preallocated; adding a batch of ``N`` transitions (one per env
copy) is one indexed write per field, sampling is one ``randint`` from an explicit generator.
``next_obs`` holds the successor of each transition's own episode (``info["final_obs"]`` where the episode
ended), and ``terminated`` — not ``truncated`` — decides whether the target bootstraps.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch


class Transitions(NamedTuple):
    """A batch of transitions ``[B, ...]``."""

    obs: torch.Tensor
    """``[B, *obs_shape]`` observations acted on."""
    actions: torch.Tensor
    """``[B]`` int64 (discrete) or ``[B, act_dim]`` float32 actions taken."""
    rewards: torch.Tensor
    """``[B]`` float32 rewards."""
    next_obs: torch.Tensor
    """``[B, *obs_shape]`` successors within the same episode."""
    terminated: torch.Tensor
    """``[B]`` float32, 1 where the episode terminated (no bootstrap); truncation is not termination."""


class ReplayBuffer:
    """Fixed-capacity FIFO of transitions.

    Args:
        capacity: transitions kept (the oldest are overwritten).
        obs_shape: one observation's shape.
        action_shape: one action's shape (``()`` for discrete actions).
        action_dtype: ``torch.int64`` (discrete) or ``torch.float32`` (continuous).
        device: where the storage lives.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        action_dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be ≥ 1, got {capacity}")
        self.capacity = int(capacity)
        self.device = device
        self.obs = torch.empty((capacity, *obs_shape), device=device)
        self.next_obs = torch.empty((capacity, *obs_shape), device=device)
        self.actions = torch.empty((capacity, *action_shape), dtype=action_dtype, device=device)
        self.rewards = torch.empty(capacity, device=device)
        self.terminated = torch.empty(capacity, device=device)
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
    ) -> None:
        """Append a batch of ``N`` transitions (each argument has leading dimension ``N``)."""
        n = obs.shape[0]
        if n > self.capacity:
            raise ValueError(f"cannot add {n} transitions to a buffer of capacity {self.capacity}")
        idx = (torch.arange(n, device=self.device) + self.pos) % self.capacity
        self.obs[idx] = obs
        self.actions[idx] = actions
        self.rewards[idx] = rewards.float()
        self.next_obs[idx] = next_obs
        self.terminated[idx] = terminated.float()
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator) -> Transitions:
        """``batch_size`` transitions drawn uniformly with replacement using ``generator``."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = torch.randint(0, self.size, (batch_size,), generator=generator, device=self.device)
        return Transitions(
            self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx], self.terminated[idx]
        )

    def state(self) -> dict[str, Any]:
        """Sizes for logging."""
        return {"size": self.size, "capacity": self.capacity}

    def state_dict(self) -> dict[str, Any]:
        """The stored transitions and the write position (for checkpoints)."""
        n = self.size
        return {
            "obs": self.obs[:n].clone(), "next_obs": self.next_obs[:n].clone(), "actions": self.actions[:n].clone(),
            "rewards": self.rewards[:n].clone(), "terminated": self.terminated[:n].clone(),
            "pos": self.pos, "size": self.size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output into a buffer of the same capacity and shapes."""
        n = int(state["size"])
        if not 0 <= n <= self.capacity or not 0 <= int(state["pos"]) < max(self.capacity, 1):
            raise ValueError(f"replay buffer state of size {n} does not fit capacity {self.capacity}")
        for key in ("obs", "next_obs", "actions", "rewards", "terminated"):
            value = state[key]
            store = getattr(self, key)
            if tuple(value.shape) != (n, *store.shape[1:]):
                expected = (n, *store.shape[1:])
                raise ValueError(f"replay buffer {key} has shape {tuple(value.shape)}, expected {expected}")
            store[:n] = value
        self.pos, self.size = int(state["pos"]), n

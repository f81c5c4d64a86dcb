"""Pendulum-v1 as a batched torch env, step for step equal to Gymnasium 1.x's ``PendulumEnv``.

Swing-up of a frictionless pendulum: torque clipped to ``[-max_torque, max_torque]``, angular velocity
clipped to ``[-max_speed, max_speed]``, cost ``angle_normalize(th)² + 0.1·thdot² + 0.001·u²``, never
terminates, TimeLimit 200.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from robustrl.envs.native import NativeVecEnv
from robustrl.envs.params import ParamSpec

DT = 0.05
"""Seconds per step."""


def angle_normalize(x: torch.Tensor) -> torch.Tensor:
    """Wrap angles to ``[-pi, pi)`` exactly as Gymnasium does (floored modulo)."""
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


def pendulum_step(
    state: torch.Tensor,
    torque: torch.Tensor,
    g: torch.Tensor,
    m: torch.Tensor,
    l: torch.Tensor,  # noqa: E741  (Gymnasium's name)
    max_speed: torch.Tensor,
    max_torque: torch.Tensor,
    disturbance: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the pendulum, in Gymnasium's order of floating-point operations.

    Args:
        state: ``[2, N]``, rows (theta rad, theta_dot rad/s).
        torque: ``[N]`` float32 requested torque (N·m), clipped here to ``±max_torque`` in float32.
        g: ``[N]`` gravitational acceleration (m/s²).
        m: ``[N]`` mass (kg).
        l: ``[N]`` length (m).
        max_speed: ``[N]`` angular velocity limit (rad/s).
        max_torque: ``[N]`` torque limit (N·m).
        disturbance: ``[N]`` extra torque (N·m, + in the direction of increasing theta) added to the
            clipped torque, itself neither clipped nor in the cost; None adds nothing (and no operation).

    Returns:
        ``(next_state [2, N], reward [N] float32)``.
    """
    th, thdot = state.unbind(0)
    mt32 = max_torque.to(torch.float32)
    u32 = torch.minimum(torch.maximum(torque, -mt32), mt32)
    # Gymnasium squares the clipped float32 torque in float32.
    costs = angle_normalize(th) ** 2 + 0.1 * thdot**2 + (0.001 * (u32 * u32)).to(state.dtype)
    # ... and multiplies it by 3/(m l²) in float32 too (a Python float times a NumPy float32 scalar).
    push = ((3.0 / (m * (l * l))).to(torch.float32) * u32).to(state.dtype)
    if disturbance is not None:
        push = push + 3.0 / (m * (l * l)) * disturbance
    newthdot = thdot + (3 * g / (2 * l) * torch.sin(th) + push) * DT
    newthdot = torch.minimum(torch.maximum(newthdot, -max_speed), max_speed)
    newth = th + newthdot * DT
    return torch.stack((newth, newthdot)), (-costs).to(torch.float32)


class PendulumEnv(NativeVecEnv):
    """Batched Pendulum-v1 (Gymnasium 1.x dynamics, clipping, cost).

    The action space is Gymnasium's ``Box(-2, 2, (1,))`` whatever ``max_torque`` is; actions are clipped to
    each copy's ``max_torque``.
    """

    ID: ClassVar[str] = "Pendulum-v1"
    PARAMS: ClassVar[dict[str, ParamSpec]] = {
        "g": ParamSpec(10.0, "gravitational acceleration (m/s²)", "nonnegative"),
        "m": ParamSpec(1.0, "mass (kg)"),
        "l": ParamSpec(1.0, "length (m)"),
        "max_speed": ParamSpec(8.0, "angular velocity limit (rad/s)"),
        "max_torque": ParamSpec(2.0, "torque limit (N·m)"),
    }
    STATE_DIM: ClassVar[int] = 2
    MAX_EPISODE_STEPS: ClassVar[int] = 200
    DISTURBANCE_SHAPE: ClassVar[tuple[int, ...] | None] = (1,)
    DISTURBANCE_DOC: ClassVar[str] = (
        "torque at the pivot (N·m, + towards increasing theta), added after the action's clip to ±max_torque;"
        " not clipped itself and not in the cost"
    )

    def __init__(self, num_envs: int = 1, **kwargs: Any) -> None:
        high = np.array([1.0, 1.0, 8.0], dtype=np.float32)
        self.observation_space = gym.spaces.Box(low=-high, high=high, dtype=np.float32)
        self.action_space = gym.spaces.Box(low=-2.0, high=2.0, shape=(1,), dtype=np.float32)
        super().__init__(num_envs, **kwargs)

    def _derive(self) -> None:
        self._high = torch.tensor([[math.pi], [1.0]], dtype=self.dtype, device=self.device)

    def _initial_state(self, n: int) -> torch.Tensor:
        # Gymnasium: uniform(low=-[pi, 1], high=[pi, 1]).
        return self._uniform(2, n).mul_(2 * self._high).sub_(self._high)

    def _dynamics(
        self, state: torch.Tensor, action: torch.Tensor, disturbance: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        p = self._p
        nxt, reward = pendulum_step(
            state,
            action[:, 0].to(torch.float32),
            p["g"],
            p["m"],
            p["l"],
            p["max_speed"],
            p["max_torque"],
            None if disturbance is None else disturbance[:, 0],
        )
        return nxt, reward, torch.zeros(reward.shape, dtype=torch.bool, device=reward.device)

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        th, thdot = state.unbind(0)
        return torch.stack((torch.cos(th), torch.sin(th), thdot), dim=1).to(torch.float32)

    def _floor(self) -> float:
        # Each step costs at most pi² + 0.1·max(|thdot|)² + 0.001·max_torque²; |thdot| ≤ max_speed after a
        # step and ≤ 1 at reset.
        speed = torch.clamp(self._p["max_speed"], min=1.0)
        worst = math.pi**2 + 0.1 * speed**2 + 0.001 * self._p["max_torque"] ** 2
        return -float(worst.max()) * float(self._limit)

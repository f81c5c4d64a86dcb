"""MountainCar-v0 and MountainCarContinuous-v0 as batched torch envs, equal to Gymnasium 1.x step for step.

Moore (1990), "Efficient memory-based learning for robot control". Velocity clipped to ±0.07, position
clipped to [-1.2, 0.6] with an inelastic left wall (velocity set to 0 there), goal at 0.5 (discrete) or
0.45 (continuous). Gymnasium keeps the continuous env's state in float32 between steps and computes in a mix
of float32 and float64; this module reproduces those roundings.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from robustrl.envs.native import NativeVecEnv
from robustrl.envs.params import ParamSpec

MIN_POSITION = -1.2
MAX_POSITION = 0.6
MAX_SPEED = 0.07


def mountain_car_step(
    state: torch.Tensor,
    push: torch.Tensor,
    force: torch.Tensor,
    gravity: torch.Tensor,
    goal_velocity: float,
    disturbance: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the discrete mountain car (Gymnasium's float64 maths).

    Args:
        state: ``[2, N]``, rows (position, velocity).
        push: ``[N]`` int64 action in {0, 1, 2} (push left, none, right).
        force: ``[N]`` acceleration of a push.
        gravity: ``[N]`` gravity term.
        goal_velocity: velocity needed at the goal to terminate.
        disturbance: ``[N]`` extra force (position units/step², + to the right) added to the push term
            ``(push - 1) · force``; None adds nothing (and no operation).

    Returns:
        ``(next_state [2, N], terminated [N] bool)``.
    """
    position, velocity = state.unbind(0)
    drive = (push - 1).to(state.dtype) * force
    if disturbance is not None:
        drive = drive + disturbance
    velocity = velocity + (drive + torch.cos(3 * position) * (-gravity))
    velocity = velocity.clamp(-MAX_SPEED, MAX_SPEED)
    position = (position + velocity).clamp(MIN_POSITION, MAX_POSITION)
    velocity = torch.where((position == MIN_POSITION) & (velocity < 0), 0.0, velocity)
    terminated = (position >= 0.5) & (velocity >= goal_velocity)
    return torch.stack((position, velocity)), terminated


def _f32(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Round ``x`` to float32 precision, kept in ``like``'s dtype."""
    return x.to(torch.float32).to(like.dtype)


def continuous_mountain_car_step(
    state: torch.Tensor,
    action: torch.Tensor,
    power: torch.Tensor,
    gravity: torch.Tensor,
    goal_velocity: float,
    fresh: torch.Tensor | None = None,
    disturbance: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the continuous mountain car with Gymnasium's float32 roundings.

    Args:
        state: ``[2, N]``, rows (position, velocity), float32 values (float64 right after a reset).
        action: ``[N]`` float32 force request; clipped to [-1, 1] for the dynamics, not for the reward.
        power: ``[N]`` acceleration per unit of action.
        gravity: ``[N]`` gravity term (Gymnasium hard-codes 0.0025).
        goal_velocity: velocity needed at the goal to terminate.
        fresh: ``[N]`` bool, copies whose state was just reset (Gymnasium still holds it in float64);
            None treats every copy as mid-episode.
        disturbance: ``[N]`` extra force (position units/step², + to the right) added to the action's
            ``force · power`` term (in float64, after Gymnasium's float32 roundings of that term); None adds
            nothing (and no operation).

    Returns:
        ``(next_state [2, N], reward [N] float32, terminated [N] bool)``.
    """
    position, velocity = state.unbind(0)
    f32 = torch.float32
    if fresh is None:
        fresh = torch.zeros_like(action, dtype=torch.bool)
    # Gymnasium holds a just-reset state in float64 and every later one in float32, and mixes precisions:
    # - 3·position is a float32 product once the state is float32;
    # - force = min(max(a, -1.0), 1.0) stays float32 when a lies in [-1, 1]: force·power is then float32 and
    #   0.0025·cos(3p) (float64) is rounded before a float32 difference; a clipped force is a Python float
    #   and the whole increment is float64;
    # - the velocity (and then the position) is rounded to float32 except in the first step of an episode.
    three_p = 3 * position
    slope = gravity * torch.cos(torch.where(fresh, three_p, _f32(three_p, state)))
    inside = (action >= -1.0) & (action <= 1.0)
    delta32 = (action * power.to(f32) - slope.to(f32)).to(state.dtype)
    delta64 = action.clamp(-1.0, 1.0).to(state.dtype) * power - slope
    delta = torch.where(inside, delta32, torch.where(fresh, delta64, _f32(delta64, state)))
    if disturbance is not None:
        delta = delta + disturbance
    velocity = velocity + delta
    velocity = torch.where(fresh, velocity, _f32(velocity, state))
    max_speed = float(np.float32(MAX_SPEED))
    velocity = velocity.clamp(-max_speed, max_speed)
    position = _f32(position + velocity, state)
    velocity = _f32(velocity, state)
    lo, hi = float(np.float32(MIN_POSITION)), float(np.float32(MAX_POSITION))
    position = position.clamp(lo, hi)
    velocity = torch.where((position == lo) & (velocity < 0), 0.0, velocity)
    terminated = (position >= float(np.float32(0.45))) & (velocity >= goal_velocity)
    a64 = action.to(torch.float64)
    reward = terminated.to(torch.float64) * 100.0 - a64 * a64 * 0.1
    return torch.stack((position, velocity)), reward.to(f32), terminated


class MountainCarEnv(NativeVecEnv):
    """Batched MountainCar-v0: reward -1 per step, TimeLimit 200.

    Args:
        num_envs: copies stepped together.
        goal_velocity: Gymnasium's option: least velocity at the goal that ends the episode.
        **kwargs: see :class:`~robustrl.envs.native.NativeVecEnv`.
    """

    ID: ClassVar[str] = "MountainCar-v0"
    PARAMS: ClassVar[dict[str, ParamSpec]] = {
        "force": ParamSpec(0.001, "acceleration of a push (position units/step²)"),
        "gravity": ParamSpec(0.0025, "gravity term (position units/step²)", "nonnegative"),
    }
    STATE_DIM: ClassVar[int] = 2
    MAX_EPISODE_STEPS: ClassVar[int] = 200
    DISTURBANCE_SHAPE: ClassVar[tuple[int, ...] | None] = (1,)
    DISTURBANCE_DOC: ClassVar[str] = (
        "force on the car (position units/step², as the force parameter; + to the right), added to the"
        " push term (action - 1) · force of the velocity update"
    )

    def __init__(self, num_envs: int = 1, *, goal_velocity: float = 0.0, **kwargs: Any) -> None:
        low = np.array([MIN_POSITION, -MAX_SPEED], dtype=np.float32)
        high = np.array([MAX_POSITION, MAX_SPEED], dtype=np.float32)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self.goal_velocity = float(goal_velocity)
        super().__init__(num_envs, **kwargs)
        self._minus_one = torch.full((num_envs,), -1.0, dtype=torch.float32, device=self.device)

    def _initial_state(self, n: int) -> torch.Tensor:
        u = self._uniform(n)
        return torch.stack((u.mul_(0.2).sub_(0.6), torch.zeros_like(u)))

    def _dynamics(
        self, state: torch.Tensor, action: torch.Tensor, disturbance: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        push = None if disturbance is None else disturbance[:, 0]
        p = self._p
        nxt, terminated = mountain_car_step(state, action, p["force"], p["gravity"], self.goal_velocity, push)
        return nxt, self._minus_one.clone(), terminated

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        return state.t().to(torch.float32, memory_format=torch.contiguous_format, copy=True)

    def _floor(self) -> float:
        return -float(self._limit)


class MountainCarContinuousEnv(NativeVecEnv):
    """Batched MountainCarContinuous-v0: reward 100 at the goal minus 0.1·action² per step, TimeLimit 999.

    The return floor ``-0.1·999`` assumes actions inside the action space ``[-1, 1]``; like Gymnasium, the
    reward penalises the unclipped action.

    Args:
        num_envs: copies stepped together.
        goal_velocity: Gymnasium's option: least velocity at the goal that ends the episode.
        **kwargs: see :class:`~robustrl.envs.native.NativeVecEnv`.
    """

    ID: ClassVar[str] = "MountainCarContinuous-v0"
    PARAMS: ClassVar[dict[str, ParamSpec]] = {
        "power": ParamSpec(0.0015, "acceleration per unit of action (position units/step²)"),
        "gravity": ParamSpec(0.0025, "gravity term, a constant in Gymnasium's code", "nonnegative"),
    }
    STATE_DIM: ClassVar[int] = 2
    MAX_EPISODE_STEPS: ClassVar[int] = 999
    DISTURBANCE_SHAPE: ClassVar[tuple[int, ...] | None] = (1,)
    DISTURBANCE_DOC: ClassVar[str] = (
        "force on the car (position units/step², as power × action; + to the right), added to the action's"
        " force term clip(action, -1, 1) · power of the velocity update; not in the reward"
    )

    def __init__(self, num_envs: int = 1, *, goal_velocity: float = 0.0, **kwargs: Any) -> None:
        low = np.array([MIN_POSITION, -MAX_SPEED], dtype=np.float32)
        high = np.array([MAX_POSITION, MAX_SPEED], dtype=np.float32)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.goal_velocity = float(goal_velocity)
        super().__init__(num_envs, **kwargs)

    def _initial_state(self, n: int) -> torch.Tensor:
        u = self._uniform(n)
        return torch.stack((u.mul_(0.2).sub_(0.6), torch.zeros_like(u)))

    def _dynamics(
        self, state: torch.Tensor, action: torch.Tensor, disturbance: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        return continuous_mountain_car_step(
            state,
            action[:, 0].to(torch.float32),
            self._p["power"],
            self._p["gravity"],
            self.goal_velocity,
            self._elapsed == 0,
            None if disturbance is None else disturbance[:, 0],
        )

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        return state.t().to(torch.float32, memory_format=torch.contiguous_format, copy=True)

    def _floor(self) -> float:
        return -0.1 * float(self._limit)

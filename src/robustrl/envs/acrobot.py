"""Acrobot-v1 as a batched torch env, step for step equal to Gymnasium 1.x's ``AcrobotEnv``.

Sutton (1996), "Generalization in reinforcement learning: successful examples using sparse coarse coding";
Sutton & Barto (2018). Two links, torque on the joint between them, one RK4 step of ``dt = 0.2`` s per
action, the "book" dynamics by default (``book_or_nips="nips"`` gives the NIPS paper's), angles wrapped to
[-pi, pi], velocities bounded by 4·pi and 9·pi, reward -1 per step until the tip swings above the bar,
TimeLimit 500.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
import torch

from robustrl.envs.native import NativeVecEnv
from robustrl.envs.params import ParamSpec

DT = 0.2
"""Integration step (s)."""
MAX_VEL_1 = 4 * math.pi
MAX_VEL_2 = 9 * math.pi
GRAVITY = 9.8
"""Gymnasium's gravity (a local constant there, so not a parameter here)."""


def acrobot_derivs(s: torch.Tensor, torque: torch.Tensor, p: dict[str, torch.Tensor], book: bool) -> torch.Tensor:
    """Time derivative ``[4, N]`` of the state ``s [4, N]`` under ``torque [N]`` (Gymnasium's ``_dsdt``)."""
    m1, m2 = p["LINK_MASS_1"], p["LINK_MASS_2"]
    l1 = p["LINK_LENGTH_1"]
    lc1, lc2 = p["LINK_COM_POS_1"], p["LINK_COM_POS_2"]
    i1 = i2 = p["LINK_MOI"]
    g = GRAVITY
    theta1, theta2, dtheta1, dtheta2 = s.unbind(0)
    cos2, sin2 = torch.cos(theta2), torch.sin(theta2)
    d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * cos2) + i1 + i2
    d2 = m2 * (lc2**2 + l1 * lc2 * cos2) + i2
    phi2 = m2 * lc2 * g * torch.cos(theta1 + theta2 - math.pi / 2.0)
    phi1 = (
        -m2 * l1 * lc2 * dtheta2**2 * sin2
        - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin2
        + (m1 * lc1 + m2 * l1) * g * torch.cos(theta1 - math.pi / 2)
        + phi2
    )
    if book:
        ddtheta2 = (torque + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * sin2 - phi2) / (
            m2 * lc2**2 + i2 - d2**2 / d1
        )
    else:
        ddtheta2 = (torque + d2 / d1 * phi1 - phi2) / (m2 * lc2**2 + i2 - d2**2 / d1)
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return torch.stack((dtheta1, dtheta2, ddtheta1, ddtheta2))


def rk4_step(
    s: torch.Tensor, torque: torch.Tensor, p: dict[str, torch.Tensor], book: bool, dt: float = DT
) -> torch.Tensor:
    """One classical Runge–Kutta step of length ``dt`` (Gymnasium's ``rk4`` over ``[0, dt]``)."""
    dt2 = dt / 2.0
    k1 = acrobot_derivs(s, torque, p, book)
    k2 = acrobot_derivs(s + dt2 * k1, torque, p, book)
    k3 = acrobot_derivs(s + dt2 * k2, torque, p, book)
    k4 = acrobot_derivs(s + dt * k3, torque, p, book)
    return s + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


def wrap(x: torch.Tensor, m: float, big_m: float) -> torch.Tensor:
    """Wrap ``x`` into ``[m, big_m]`` by whole periods, like Gymnasium's ``wrap`` (one subtraction per period)."""
    diff = big_m - m
    above = torch.ceil((x - big_m) / diff).clamp(min=0)
    below = torch.ceil((m - x) / diff).clamp(min=0)
    return x - above * diff + below * diff


class AcrobotEnv(NativeVecEnv):
    """Batched Acrobot-v1 (Gymnasium 1.x dynamics, RK4, wrapping and bounds).

    ``LINK_LENGTH_2`` is not a parameter: Gymnasium uses it only to draw.

    Args:
        num_envs: copies stepped together.
        book_or_nips: ``"book"`` (Gymnasium's default) or ``"nips"`` dynamics.
        **kwargs: see :class:`~robustrl.envs.native.NativeVecEnv`.
    """

    ID: ClassVar[str] = "Acrobot-v1"
    PARAMS: ClassVar[dict[str, ParamSpec]] = {
        "LINK_LENGTH_1": ParamSpec(1.0, "length of link 1 (m)"),
        "LINK_MASS_1": ParamSpec(1.0, "mass of link 1 (kg)"),
        "LINK_MASS_2": ParamSpec(1.0, "mass of link 2 (kg)"),
        "LINK_COM_POS_1": ParamSpec(0.5, "position of link 1's centre of mass (m)"),
        "LINK_COM_POS_2": ParamSpec(0.5, "position of link 2's centre of mass (m)"),
        "LINK_MOI": ParamSpec(1.0, "moment of inertia of each link (kg·m²)"),
    }
    STATE_DIM: ClassVar[int] = 4
    MAX_EPISODE_STEPS: ClassVar[int] = 500
    DISTURBANCE_SHAPE: ClassVar[tuple[int, ...] | None] = (1,)
    DISTURBANCE_DOC: ClassVar[str] = (
        "torque on the actuated joint between the links (N·m, the sign of the action's torque), added to the"
        " action's torque in {-1, 0, 1} and held through the RK4 step (like Gymnasium's torque noise)"
    )

    def __init__(self, num_envs: int = 1, *, book_or_nips: Literal["book", "nips"] = "book", **kwargs: Any) -> None:
        if book_or_nips not in ("book", "nips"):
            raise ValueError(f"book_or_nips must be 'book' or 'nips', got {book_or_nips!r}")
        high = np.array([1.0, 1.0, 1.0, 1.0, MAX_VEL_1, MAX_VEL_2], dtype=np.float32)
        self.observation_space = gym.spaces.Box(low=-high, high=high, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self.book_or_nips = book_or_nips
        super().__init__(num_envs, **kwargs)

    def _initial_state(self, n: int) -> torch.Tensor:
        u = self._uniform(4, n)
        # Gymnasium draws in float64 and stores the initial state as float32.
        return u.mul_(0.2).sub_(0.1).to(torch.float32).to(self.dtype)

    def _dynamics(
        self, state: torch.Tensor, action: torch.Tensor, disturbance: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        torque = action.to(self.dtype) - 1.0  # AVAIL_TORQUE = [-1, 0, +1]
        if disturbance is not None:
            torque = torque + disturbance[:, 0]
        ns = rk4_step(state, torque, self._p, self.book_or_nips == "book")
        th1, th2, v1, v2 = ns.unbind(0)
        ns = torch.stack(
            (
                wrap(th1, -math.pi, math.pi),
                wrap(th2, -math.pi, math.pi),
                v1.clamp(-MAX_VEL_1, MAX_VEL_1),
                v2.clamp(-MAX_VEL_2, MAX_VEL_2),
            )
        )
        terminated = -torch.cos(ns[0]) - torch.cos(ns[1] + ns[0]) > 1.0
        reward = terminated.to(torch.float32) - 1.0
        return ns, reward, terminated

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        th1, th2, v1, v2 = state.unbind(0)
        return torch.stack((torch.cos(th1), torch.sin(th1), torch.cos(th2), torch.sin(th2), v1, v2), dim=1).to(
            torch.float32
        )

    def _floor(self) -> float:
        return -float(self._limit)

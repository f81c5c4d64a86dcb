"""CartPole-v1 as a batched torch env, step for step equal to Gymnasium 1.x's ``CartPoleEnv``.

Barto, Sutton & Anderson (1983), "Neuronlike adaptive elements that can solve difficult learning control
problems"; Gymnasium's Euler integration, thresholds and reward (+1 on every step, the terminating one
included), TimeLimit 500.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import gymnasium as gym
import numpy as np
import torch

from robustrl.envs.native import NativeVecEnv, ParamSpec

TAU = 0.02
"""Seconds between state updates."""
X_THRESHOLD = 2.4
"""|x| beyond which the episode terminates (m)."""
THETA_THRESHOLD = 12 * 2 * math.pi / 360
"""|theta| beyond which the episode terminates (rad)."""


class CartPoleCoefficients(NamedTuple):
    """Per-copy constants of the cart-pole equations, derived once from the physical parameters."""

    push: torch.Tensor
    """``[2, N]``: acceleration of the cart by action 0 and 1, ``∓force_mag / total_mass``."""
    pml: torch.Tensor
    """``[N]``: ``masspole · length / total_mass``."""
    gravity: torch.Tensor
    """``[N]``: gravitational acceleration."""
    four_thirds_length: torch.Tensor
    """``[N]``: ``4/3 · length``."""
    ml: torch.Tensor
    """``[N]``: ``length · masspole / total_mass``."""
    thresholds: torch.Tensor
    """``[2]``: termination thresholds of ``|x|`` and ``|theta|``."""


def cartpole_coefficients(
    gravity: torch.Tensor,
    masscart: torch.Tensor,
    masspole: torch.Tensor,
    length: torch.Tensor,
    force_mag: torch.Tensor,
) -> CartPoleCoefficients:
    """Derive the per-copy constants of :func:`cartpole_step` from Gymnasium's parameters.

    Args:
        gravity: ``[N]`` gravitational acceleration (m/s²).
        masscart: ``[N]`` cart mass (kg).
        masspole: ``[N]`` pole mass (kg).
        length: ``[N]`` half the pole's length (m), as in Gymnasium.
        force_mag: ``[N]`` push magnitude (N).
    """
    total_mass = masspole + masscart
    fo = force_mag / total_mass
    ml = masspole * length / total_mass
    return CartPoleCoefficients(
        push=torch.stack((-fo, fo)),
        pml=ml,
        gravity=gravity,
        four_thirds_length=4.0 / 3.0 * length,
        ml=ml,
        thresholds=torch.tensor([X_THRESHOLD, THETA_THRESHOLD], dtype=gravity.dtype, device=gravity.device),
    )


def cartpole_step(
    state: torch.Tensor, action: torch.Tensor, k: CartPoleCoefficients
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Euler step of the cart-pole (Gymnasium's equations, in few fused tensor operations).

    With ``F = ±force_mag``, ``M = masscart + masspole``, ``m = masspole``, ``l = length``:
    ``temp = (F + m l thdot² sin th) / M``,
    ``thacc = (g sin th - cos th · temp) / (l (4/3 - m cos² th / M))``,
    ``xacc = temp - m l thacc cos th / M``, then ``s' = s + tau · (xdot, xacc, thdot, thacc)``. The
    algebra is regrouped (divisions by ``M`` folded into the constants) so results can differ from
    Gymnasium's in the last bits.

    Args:
        state: ``[N, 4]`` = (x, x_dot, theta, theta_dot) in m, m/s, rad, rad/s.
        action: ``[N]`` int64, 1 pushes right, 0 left.
        k: constants from :func:`cartpole_coefficients`.

    Returns:
        ``(next_state [N, 4], terminated [N] bool)``: terminated when ``|x| > 2.4`` or ``|theta| > 12°``.
    """
    _, x_dot, theta, theta_dot = state.unbind(1)
    push = k.push.gather(0, action.view(1, -1)).view(-1)
    cos, sin = torch.cos(theta), torch.sin(theta)
    temp = torch.addcmul(push, k.pml * theta_dot, theta_dot * sin)
    thetaacc = torch.addcmul(k.gravity * sin, cos, temp, value=-1.0) / torch.addcmul(
        k.four_thirds_length, k.ml * cos, cos, value=-1.0
    )
    xacc = torch.addcmul(temp, k.pml * thetaacc, cos, value=-1.0)
    nxt = torch.add(state, torch.stack((x_dot, xacc, theta_dot, thetaacc), dim=1), alpha=TAU)
    # |x| and |theta| against their thresholds; the two bools of a row read as one int16 (an "any").
    out = (nxt[:, ::2].abs() > k.thresholds).view(torch.int16).view(-1) != 0
    return nxt, out


class CartPoleEnv(NativeVecEnv):
    """Batched CartPole-v1 (Gymnasium 1.x dynamics, reward and termination).

    Args:
        num_envs: copies stepped together.
        sutton_barto_reward: Gymnasium's option: reward 0 per step and -1 on termination.
        **kwargs: see :class:`~robustrl.envs.native.NativeVecEnv`.
    """

    ID: ClassVar[str] = "CartPole-v1"
    PARAMS: ClassVar[dict[str, ParamSpec]] = {
        "gravity": ParamSpec(9.8, "gravitational acceleration (m/s²)", "nonnegative"),
        "masscart": ParamSpec(1.0, "mass of the cart (kg)"),
        "masspole": ParamSpec(0.1, "mass of the pole (kg)"),
        "length": ParamSpec(0.5, "half the pole's length (m)"),
        "force_mag": ParamSpec(10.0, "magnitude of the push (N)"),
    }
    STATE_DIM: ClassVar[int] = 4
    MAX_EPISODE_STEPS: ClassVar[int] = 500

    def __init__(self, num_envs: int = 1, *, sutton_barto_reward: bool = False, **kwargs: Any) -> None:
        high = np.array([X_THRESHOLD * 2, np.inf, THETA_THRESHOLD * 2, np.inf], dtype=np.float32)
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.sutton_barto_reward = bool(sutton_barto_reward)
        super().__init__(num_envs, **kwargs)

    def _derive(self) -> None:
        p = self._p
        self._k = cartpole_coefficients(p["gravity"], p["masscart"], p["masspole"], p["length"], p["force_mag"])
        self._ones = torch.ones(self.num_envs, dtype=torch.float32, device=self.device)

    def _initial_state(self, n: int) -> torch.Tensor:
        u = self._uniform(n, 4)
        return u.mul_(0.1).sub_(0.05)

    def _dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, ...]:
        nxt, terminated = cartpole_step(state, action, self._k)
        reward = -terminated.to(torch.float32) if self.sutton_barto_reward else self._ones.clone()
        return nxt, reward, terminated

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        return state.to(torch.float32, copy=True)

    def _floor(self) -> float:
        return -1.0 if self.sutton_barto_reward else 0.0

"""CartPole-v1 as a batched torch env, step for step equal to Gymnasium 1.x's ``CartPoleEnv``.

Barto, Sutton & Anderson (1983), "Neuronlike adaptive elements that can solve difficult learning control
problems"; Gymnasium's Euler integration, thresholds and reward (+1 on every step, the terminating one
included), TimeLimit 500.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from robustrl.envs.native import NativeVecEnv
from robustrl.envs.params import ParamSpec

TAU = 0.02
"""Seconds between state updates."""
X_THRESHOLD = 2.4
"""|x| beyond which the episode terminates (m)."""
THETA_THRESHOLD = 12 * 2 * math.pi / 360
"""|theta| beyond which the episode terminates (rad)."""


def cartpole_step(
    state: torch.Tensor,
    action: torch.Tensor,
    gravity: torch.Tensor,
    masspole: torch.Tensor,
    total_mass: torch.Tensor,
    length: torch.Tensor,
    polemass_length: torch.Tensor,
    force_mag: torch.Tensor,
    neg_force_mag: torch.Tensor | None = None,
    thresholds: torch.Tensor | None = None,
    disturbance: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Euler step of the cart-pole, in Gymnasium's order of floating-point operations.

    ``temp = (F + m_p l thdot² sin th) / M``, ``thacc = (g sin th - cos th · temp) / (l (4/3 - m_p cos² th / M))``,
    ``xacc = temp - m_p l thacc cos th / M``, then ``s' = s + tau · (xdot, xacc, thdot, thacc)``.

    Args:
        state: ``[4, N]``, rows (x, x_dot, theta, theta_dot) in m, m/s, rad, rad/s.
        action: ``[N]`` int64, 1 pushes right with ``+force_mag``, 0 left.
        gravity: ``[N]`` gravitational acceleration (m/s²).
        masspole: ``[N]`` pole mass (kg).
        total_mass: ``[N]`` cart + pole mass (kg).
        length: ``[N]`` half the pole's length (m), as in Gymnasium.
        polemass_length: ``[N]`` masspole · length.
        force_mag: ``[N]`` push magnitude (N).
        neg_force_mag: ``-force_mag`` if the caller has it (saves an operation).
        thresholds: ``[[2.4], [12°]]`` like ``state`` if the caller has it (made here when None).
        disturbance: ``[N]`` extra horizontal force on the cart (N, + to the right), added to the push
            ``F``; None adds nothing (and no operation).

    Returns:
        ``(next_state [4, N], terminated [N] bool)``: terminated when ``|x| > 2.4`` or ``|theta| > 12°``.
    """
    _, x_dot, theta, theta_dot = state.unbind(0)
    force = torch.where(action.bool(), force_mag, -force_mag if neg_force_mag is None else neg_force_mag)
    if disturbance is not None:
        force = force + disturbance
    costheta = torch.cos(theta)
    sintheta = torch.sin(theta)
    temp = (force + polemass_length * (theta_dot * theta_dot) * sintheta) / total_mass
    # 4/3 - a/b as rsub(a/b, 4/3) and a - b/c as addcdiv(a, b, c, value=-1): rounded like Gymnasium's.
    thetaacc = (gravity * sintheta - costheta * temp) / (
        length * torch.rsub(masspole * (costheta * costheta) / total_mass, 4.0 / 3.0)
    )
    xacc = torch.addcdiv(temp, polemass_length * thetaacc * costheta, total_mass, value=-1.0)
    nxt = state + TAU * torch.stack((x_dot, xacc, theta_dot, thetaacc))
    if thresholds is None:
        thresholds = state.new_tensor([[X_THRESHOLD], [THETA_THRESHOLD]])
    out = nxt[::2].abs() > thresholds
    return nxt, out[0] | out[1]


def cartpole_step_numpy(
    state: np.ndarray,
    action: np.ndarray,
    coef: np.ndarray,
    thresholds: np.ndarray,
    work: np.ndarray,
    flags: np.ndarray,
    disturbance: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`cartpole_step` in place with NumPy ufuncs, bit for bit the same floating-point operations.

    It allocates only the force row and the returned flags: every other intermediate goes to ``work`` with
    ``out=``, and operations that are the same on two quantities run once on two stacked rows.

    Args:
        state: ``[4, N]`` C-contiguous, rows (x, x_dot, theta, theta_dot); updated in place to the next state.
        action: ``[N]`` int, nonzero pushes right with ``+force_mag``, 0 left.
        coef: ``[7, N]`` per-copy constants, rows (gravity, polemass_length, masspole, total_mass, length,
            force_mag, -force_mag).
        thresholds: ``[[2.4], [12°]]``, the dtype of ``state``.
        work: ``[9, N]`` scratch, the dtype of ``state``, with ``work[0] = gravity``, ``work[1] = cos(theta)``
            and ``work[2] = sin(theta)`` on entry (the caller computes them, so the trig implementation is
            the one of the torch path).
        flags: ``[2, N]`` bool scratch.
        disturbance: ``[N]`` extra horizontal force on the cart (N), added to the push; None: none.

    Returns:
        ``terminated [N]`` bool (fresh): ``|x| > 2.4`` or ``|theta| > 12°`` after the step.
    """
    costheta, sintheta = work[1], work[2]
    a, b = work[3], work[4]
    np.multiply(state[3], state[3], out=a)
    np.multiply(costheta, costheta, out=b)
    np.multiply(work[3:5], coef[1:3], out=work[3:5])  # (polemass_length thdot², masspole cos²)
    a *= sintheta
    force = np.where(action, coef[5], coef[6])
    if disturbance is not None:
        force += disturbance
    a += force
    np.divide(work[3:5], coef[3], out=work[3:5])  # (temp, masspole cos² / total_mass)
    np.subtract(4.0 / 3.0, b, out=b)
    b *= coef[4]  # the denominator of thetaacc
    deriv = work[5:9]  # (x_dot, xacc, theta_dot, thetaacc)
    np.multiply(work[0:2], work[2:4], out=work[7:9])  # (gravity sin, cos temp)
    thetaacc, xacc = work[8], work[6]
    np.subtract(work[7], thetaacc, out=thetaacc)
    thetaacc /= b
    np.multiply(coef[1], thetaacc, out=xacc)
    xacc *= costheta
    xacc /= coef[3]
    np.subtract(a, xacc, out=xacc)
    np.copyto(deriv[0::2], state[1::2])
    deriv *= TAU
    state += deriv
    out = work[1:3]
    np.abs(state[0::2], out=out)
    np.greater(out, thresholds, out=flags)
    return np.logical_or(flags[0], flags[1])


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
    NUMPY_KERNEL: ClassVar[bool] = True
    DISTURBANCE_SHAPE: ClassVar[tuple[int, ...] | None] = (1,)
    DISTURBANCE_DOC: ClassVar[str] = (
        "horizontal force on the cart (N, + to the right), added to the push ±force_mag before the Euler step"
    )
    _VIEWS: ClassVar[tuple[str, ...]] = ("_work_np", "_cos_t", "_sin_t", "_theta_t", "_coef_np", "_thresholds_np")

    def __init__(self, num_envs: int = 1, *, sutton_barto_reward: bool = False, **kwargs: Any) -> None:
        high = np.array([X_THRESHOLD * 2, np.inf, THETA_THRESHOLD * 2, np.inf], dtype=np.float32)
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.sutton_barto_reward = bool(sutton_barto_reward)
        self._work_t: torch.Tensor | None = None
        super().__init__(num_envs, **kwargs)
        if self._numpy_path:
            # NumPy kernel buffers; torch views of the same memory for torch's cos/sin (as the torch path).
            self._flags = np.empty((2, num_envs), dtype=np.bool_)
            self._ones = np.ones(num_envs, dtype=np.float32)

    def _derive(self) -> None:
        p = self._p
        total_mass = p["masspole"] + p["masscart"]
        # One tensor for all per-copy constants: fewer inputs for torch.compile to guard.
        self._coef = torch.stack(
            (
                p["gravity"],
                p["masspole"],
                total_mass,
                p["length"],
                p["masspole"] * p["length"],
                p["force_mag"],
                -p["force_mag"],
            )
        )
        self._thresholds = torch.tensor([[X_THRESHOLD], [THETA_THRESHOLD]], dtype=self.dtype, device=self.device)
        if self.device.type == "cpu":
            c = self._coef
            self._coef_np = torch.cat((c[0:1], c[4:5], c[1:4], c[5:7])).numpy()
            self._thresholds_np = self._thresholds.numpy()
            if self._work_t is None:
                self._work_t = torch.empty((9, self.num_envs), dtype=self.dtype)
                self._bind_work()
            self._work_np[0] = self._coef_np[0]

    def _bind_work(self) -> None:
        assert self._work_t is not None
        self._work_np = self._work_t.numpy()
        self._cos_t, self._sin_t = self._work_t[1], self._work_t[2]

    def _bind_views(self) -> None:
        super()._bind_views()
        if self._work_t is not None:
            self._bind_work()
        if self._numpy_path:
            self._theta_t = self._state_buf[2]

    def _initial_state(self, n: int) -> torch.Tensor:
        return self._uniform(4, n).mul_(0.1).sub_(0.05)

    def _dynamics(
        self, state: torch.Tensor, action: torch.Tensor, disturbance: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        gravity, masspole, total_mass, length, polemass_length, force_mag, neg_force_mag = self._coef.unbind(0)
        nxt, terminated = cartpole_step(
            state,
            action,
            gravity,
            masspole,
            total_mass,
            length,
            polemass_length,
            force_mag,
            neg_force_mag,
            self._thresholds,
            None if disturbance is None else disturbance[:, 0],
        )
        if self.sutton_barto_reward:
            reward = -terminated.to(torch.float32)
        else:
            reward = torch.ones(terminated.shape, dtype=torch.float32, device=terminated.device)
        return nxt, reward, terminated

    def _numpy_dynamics(
        self, state: np.ndarray, action: np.ndarray, disturbance: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        # torch's cos/sin (not NumPy's): the same bits as the torch and fused paths, and faster for large N.
        theta = self._theta_t if state is self._state_np else torch.from_numpy(state[2])
        torch.cos(theta, out=self._cos_t)
        torch.sin(theta, out=self._sin_t)
        push = None if disturbance is None else disturbance[:, 0]
        terminated = cartpole_step_numpy(
            state, action, self._coef_np, self._thresholds_np, self._work_np, self._flags, push
        )
        if self.sutton_barto_reward:
            return -terminated.astype(np.float32), terminated
        return self._ones.copy(), terminated

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        return state.t().to(torch.float32, memory_format=torch.contiguous_format, copy=True)

    def _numpy_observe(self, state: np.ndarray) -> np.ndarray:
        # Four row copies into the columns: ~3× faster than one transposing copy at large N.
        obs = np.empty((self.num_envs, 4), dtype=np.float32)
        for j in range(4):
            obs[:, j] = state[j]
        return obs

    def _floor(self) -> float:
        return -1.0 if self.sutton_barto_reward else 0.0

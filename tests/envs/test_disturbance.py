"""Per-step disturbances: where each task's force enters, bit-identity at zero, every step path, validation."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from robustrl.envs import NATIVE_ENVS, make_env

IDS = list(NATIVE_ENVS)
PATHS = ["default", "torch", "fused"]


def _make(env_id: str, n: int, path: str, **kwargs: Any) -> Any:
    """A native env on one step path: its default, the eager torch path (no NumPy kernel), or the fused one."""
    env: Any = make_env(env_id, n, seed=3, max_episode_steps=25, **kwargs)
    if path == "torch":
        env._numpy_path = False
    if path == "fused":
        env._fused = True
    return env


def _actions(env: Any, g: torch.Generator) -> torch.Tensor:
    space = env.action_space
    if isinstance(space, gym.spaces.Discrete):
        return torch.randint(0, int(space.n), (env.num_envs,), generator=g)
    return torch.rand((env.num_envs, 1), generator=g) * 4 - 2


def _same(a: tuple, b: tuple) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a[:4], b[:4])) and torch.equal(a[4]["final_obs"], b[4]["final_obs"])


@pytest.mark.parametrize("env_id", IDS)
def test_disturbance_space(env_id: str) -> None:
    env: Any = make_env(env_id, 3)
    assert env.disturbance_space == gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    assert NATIVE_ENVS[env_id].DISTURBANCE_DOC  # units and where it enters are written down


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("env_id", IDS)
def test_zero_disturbance_is_bit_identical(env_id: str, path: str) -> None:
    plain, zero = _make(env_id, 6, path), _make(env_id, 6, path)
    plain.reset(seed=1)
    zero.reset(seed=1)
    g = torch.Generator().manual_seed(0)
    d = torch.zeros(6, 1, dtype=torch.float64)
    for _ in range(60):  # autoresets included (time limit 25)
        a = _actions(plain, g)
        assert _same(plain.step(a), zero.step(a, disturbance=d))
    assert torch.equal(plain.state, zero.state)


@pytest.mark.parametrize("env_id", IDS)
def test_disturbed_paths_agree(env_id: str) -> None:
    envs = [_make(env_id, 5, path) for path in PATHS]
    for env in envs:
        env.reset(seed=2)
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        a = _actions(envs[0], g)
        d = torch.randn(5, 1, generator=g, dtype=torch.float64) * 0.5
        out = [env.step(a, disturbance=d) for env in envs]
        assert _same(out[0], out[1]) and _same(out[0], out[2])


def _stepped_state(
    env_id: str, action: torch.Tensor, disturbance: torch.Tensor | None, **params: float
) -> torch.Tensor:
    env: Any = make_env(env_id, 2, seed=0, params=params or None)
    env.reset()
    env.step(action, disturbance=disturbance)
    return env.state


def test_cartpole_disturbance_is_a_force_on_the_cart() -> None:
    # Pushing right (+force_mag = 10 N) with 5 N more is exactly a push of 15 N.
    right = torch.ones(2, dtype=torch.int64)
    pushed = _stepped_state("CartPole-v1", right, torch.full((2, 1), 5.0))
    assert torch.equal(pushed, _stepped_state("CartPole-v1", right, None, force_mag=15.0))
    # Pushing left (-10 N) against a 20 N disturbance is exactly pushing right.
    left = torch.zeros(2, dtype=torch.int64)
    assert torch.equal(
        _stepped_state("CartPole-v1", left, torch.full((2, 1), 20.0)), _stepped_state("CartPole-v1", right, None)
    )


def test_mountain_car_disturbance_is_a_push() -> None:
    # "No push" plus a disturbance of +force is exactly "push right".
    push = _stepped_state(
        "MountainCar-v0", torch.ones(2, dtype=torch.int64), torch.full((2, 1), 0.001, dtype=torch.float64)
    )
    assert torch.equal(push, _stepped_state("MountainCar-v0", torch.full((2,), 2), None))


def test_acrobot_disturbance_is_a_joint_torque() -> None:
    # The zero-torque action plus a disturbance of +1 N·m is exactly the +1 torque action.
    torqued = _stepped_state("Acrobot-v1", torch.ones(2, dtype=torch.int64), torch.ones(2, 1))
    assert torch.equal(torqued, _stepped_state("Acrobot-v1", torch.full((2,), 2), None))


def test_pendulum_disturbance_is_an_unclipped_torque_outside_the_cost() -> None:
    env: Any = make_env("Pendulum-v1", 1, seed=0)
    env.reset()
    env.state = torch.tensor([[0.5, 0.0]], dtype=torch.float64)
    # The action 3 is clipped to max_torque = 2; the disturbance of 3 N·m is not: 5 N·m in all.
    _, reward, *_ = env.step(torch.tensor([[3.0]]), disturbance=torch.tensor([[3.0]]))
    expected = (3 * 10.0 / 2 * math.sin(0.5) + 3.0 * 5.0) * 0.05  # newthdot = (3g/2l sin th + 3/(ml²) u) dt
    assert float(env.state[0, 1]) == pytest.approx(expected, rel=1e-6)
    assert float(reward[0]) == pytest.approx(-(0.5**2 + 0.001 * 2.0**2), rel=1e-6)  # cost of the clipped action


def test_mountain_car_continuous_disturbance_adds_to_the_force_term() -> None:
    env: Any = make_env("MountainCarContinuous-v0", 1, seed=0)
    env.reset()
    env.state = torch.tensor([[-0.5, 0.0]], dtype=torch.float64)
    env.step(torch.zeros(1, 1))  # leave the first step's float64 special case behind
    env.state = torch.tensor([[-0.5, 0.0]], dtype=torch.float64)
    _, reward, *_ = env.step(torch.zeros(1, 1), disturbance=torch.tensor([[0.001]]))
    expected = 0.001 - 0.0025 * math.cos(3 * -0.5)
    assert float(env.state[0, 1]) == pytest.approx(expected, rel=1e-6)
    assert float(reward[0]) == 0.0  # the reward penalises the action only


def test_disturbance_acts_for_one_step_only() -> None:
    a: Any = make_env("CartPole-v1", 4, seed=0)
    b: Any = make_env("CartPole-v1", 4, seed=0)
    a.reset()
    b.reset()
    right = torch.ones(4, dtype=torch.int64)
    a.step(right, disturbance=torch.full((4, 1), 20.0))
    b.step(right)
    assert not torch.equal(a.state, b.state)
    b.state = a.state
    assert _same(a.step(right), b.step(right))


@pytest.mark.parametrize(
    ("disturbance", "match"),
    [
        (torch.zeros(4), r"CartPole-v1: disturbance must have shape \(4, 1\)"),
        (torch.zeros(4, 2), r"shape \(4, 1\), got \(4, 2\)"),
        (torch.zeros(4, 1, dtype=torch.int64), "CartPole-v1: disturbance must be a floating-point"),
        (np.zeros((4, 1)), "CartPole-v1: disturbance must be a torch.Tensor of shape"),
        (torch.tensor([[0.0], [math.nan], [0.0], [0.0]]), r"CartPole-v1: disturbance of shape \(4, 1\).*NaN"),
        (torch.tensor([[0.0], [0.0], [math.inf], [0.0]]), "NaN or inf"),
    ],
)
@pytest.mark.parametrize("path", PATHS)
def test_bad_disturbances_raise_and_leave_the_env_unchanged(disturbance: object, match: str, path: str) -> None:
    env = _make("CartPole-v1", 4, path)
    env.reset()
    before = env.state
    with pytest.raises(ValueError, match=match):
        env.step(torch.ones(4, dtype=torch.int64), disturbance=disturbance)  # type: ignore[arg-type]
    assert torch.equal(env.state, before) and not env.elapsed_steps.any()


def test_native_ids_reject_disturbance_bodies() -> None:
    with pytest.raises(ValueError, match=r"disturbance_bodies is for MuJoCo envs.*CartPole-v1.*\(1,\)"):
        make_env("CartPole-v1", 2, disturbance_bodies=["cart"])


# ---------------------------------------------------------------- the Gymnasium adapter (MuJoCo forces)
def _hopper(n: int = 2, **kwargs: Any) -> Any:
    return make_env("Hopper-v5", n, seed=0, **kwargs)


def _xfrc(env: Any) -> list[np.ndarray]:
    return [np.array(e.unwrapped.data.xfrc_applied) for e in env._vec.envs]


def test_hopper_zero_disturbance_equals_none_and_forces_are_zeroed_after() -> None:
    plain, pushed = _hopper(), _hopper(disturbance_bodies=["torso", "foot"])
    assert plain.disturbance_space is None
    assert pushed.disturbance_space == gym.spaces.Box(-np.inf, np.inf, (2, 6), np.float64)
    plain.reset(seed=0)
    pushed.reset(seed=0)
    g = torch.Generator().manual_seed(0)
    for t in range(20):
        a = torch.rand((2, 3), generator=g) * 2 - 1
        d = torch.zeros(2, 2, 6) if t < 10 else torch.randn(2, 2, 6, generator=g) * 20
        op, *_ = plain.step(a)
        od, *_ = pushed.step(a, disturbance=d)
        assert torch.equal(op, od) == (t < 10)  # identical until the first non-zero force
        assert all(not x.any() for x in _xfrc(pushed))  # each force lasted one step
    plain.close()
    pushed.close()


def test_hopper_weight_cancelling_force_equals_zero_gravity() -> None:
    # An upward force m_b·g at each body's centre of mass cancels gravity exactly: like a model without it.
    bodies = ["torso", "thigh", "leg", "foot"]
    pushed, weightless = _hopper(1, disturbance_bodies=bodies), _hopper(1)
    model = pushed._vec.envs[0].unwrapped.model
    g_z = float(model.opt.gravity[2])
    weightless._vec.envs[0].unwrapped.model.opt.gravity[:] = 0.0
    lift = torch.zeros(1, 4, 6, dtype=torch.float64)
    lift[0, :, 2] = torch.tensor([-float(model.body(b).mass[0]) * g_z for b in bodies], dtype=torch.float64)
    a = torch.zeros(1, 3)
    ref = _hopper(1)
    obs_p, _ = pushed.reset(seed=0)
    obs_w, _ = weightless.reset(seed=0)
    ref.reset(seed=0)
    for _ in range(15):
        obs_p, *_ = pushed.step(a, disturbance=lift)
        obs_w, *_ = weightless.step(a)
        obs_r, *_ = ref.step(a)
    assert torch.allclose(obs_p, obs_w, atol=1e-5)
    assert (obs_p - obs_r).abs().max() > 1e-2  # gravity does matter over these steps
    for env in (pushed, weightless, ref):
        env.close()


def test_adapter_disturbance_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown body 'tosro'.*did you mean \['torso'\].*'thigh'"):
        _hopper(disturbance_bodies=["tosro"])
    with pytest.raises(ValueError, match="distinct body names"):
        _hopper(disturbance_bodies="torso")
    with pytest.raises(ValueError, match="disturbance_bodies needs a MuJoCo env"):
        make_env("CartPole-v1", 2, backend="gymnasium", disturbance_bodies=["pole"])
    env = _hopper(disturbance_bodies=["torso"])
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"Hopper-v5: disturbance must have shape \(2, 1, 6\)"):
        env.step(torch.zeros(2, 3), disturbance=torch.zeros(2, 6))
    with pytest.raises(ValueError, match="NaN or inf"):
        env.step(torch.zeros(2, 3), disturbance=torch.full((2, 1, 6), math.nan))
    assert all(not x.any() for x in _xfrc(env))
    env.close()
    plain = _hopper()
    with pytest.raises(ValueError, match="takes no disturbance: make it with disturbance_bodies"):
        plain.step(torch.zeros(2, 3), disturbance=torch.zeros(2, 1, 6))
    plain.close()
    cart: Any = make_env("CartPole-v1", 2, backend="gymnasium", seed=0)
    assert cart.disturbance_space is None
    cart.reset()
    with pytest.raises(ValueError, match=r"CartPole-v1 takes no disturbance \(its disturbance_space is None\)"):
        cart.step(torch.ones(2, dtype=torch.int64), disturbance=torch.zeros(2, 1))
    cart.close()

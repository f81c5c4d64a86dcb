"""The Gymnasium adapter: classic ids via backend="gymnasium", MuJoCo scales, user envs, ALE, errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from robustrl.envs import VecEnv, make_env
from robustrl.envs.adapter import GymnasiumVecEnv, check_env_id


def _sync_states(adapter: GymnasiumVecEnv) -> torch.Tensor:
    vec = adapter._vec
    assert isinstance(vec, gym.vector.SyncVectorEnv)
    return torch.tensor(np.stack([np.asarray(e.unwrapped.state, dtype=np.float64) for e in vec.envs]))


@pytest.mark.parametrize("params", [None, {"length": torch.tensor([0.5, 0.8, 0.3], dtype=torch.float64)}])
def test_cartpole_adapter_equals_native(params: dict | None) -> None:
    ad = make_env("CartPole-v1", 3, backend="gymnasium", seed=0, params=params)
    nat = make_env("CartPole-v1", 3, seed=0, params=params)
    assert isinstance(ad, GymnasiumVecEnv) and isinstance(ad, VecEnv)
    assert ad.observation_space == nat.observation_space and ad.action_space == nat.action_space
    assert ad.max_episode_steps == 500 and ad.return_floor is None
    obs_a, _ = ad.reset()
    nat.reset()
    nat.state = _sync_states(ad)
    assert torch.equal(nat.observe(), obs_a)
    g = torch.Generator().manual_seed(0)
    finished = 0
    for _ in range(120):
        act = torch.randint(0, 2, (3,), generator=g)
        oa, ra, ta, ua, ia = ad.step(act)
        _on, rn, tn, un, i_n = nat.step(act)
        assert oa.dtype == torch.float32 and ra.dtype == torch.float32 and ta.dtype == torch.bool
        assert torch.allclose(ia["final_obs"], i_n["final_obs"], atol=1e-6)
        assert torch.equal(ra, rn) and torch.equal(ta, tn) and torch.equal(ua, un)
        done = ta | ua
        finished += int(done.sum())
        assert torch.equal(oa[~done], ia["final_obs"][~done])
        nat.state = _sync_states(ad)  # the two envs draw reset states from different generators
        assert torch.allclose(nat.observe(), oa)
    assert finished > 3
    ad.close()


def test_adapter_seeding_is_deterministic() -> None:
    def run(seed: int) -> list[torch.Tensor]:
        env = make_env("CartPole-v1", 2, backend="gymnasium", seed=seed)
        out = [env.reset()[0]]
        for t in range(40):
            out.append(env.step(torch.tensor([t % 2, 1 - t % 2]))[0])
        env.close()
        return out

    a, b, c = run(1), run(1), run(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])


def test_adapter_bad_inputs() -> None:
    env = make_env("CartPole-v1", 2, backend="gymnasium", seed=0)
    env.reset()
    with pytest.raises(ValueError, match="int64"):
        env.step(torch.zeros(2))
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        env.step(torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="unknown parameter 'lenght'"):
        env.reset(params={"lenght": 0.3})
    with pytest.raises(ValueError, match="finite"):
        env.reset(params={"length": float("nan")})
    env.close()
    pend = make_env("Pendulum-v1", 2, backend="gymnasium")
    pend.reset(seed=0)
    with pytest.raises(ValueError, match="NaN"):
        pend.step(torch.tensor([[0.0], [float("nan")]]))
    with pytest.raises(ValueError, match="floating-point"):
        pend.step(torch.zeros(2, 1, dtype=torch.int64))
    pend.close()
    with pytest.raises(ValueError, match="vectorization_mode"):
        make_env("CartPole-v1", backend="gymnasium", vectorization_mode="threads")


def test_missing_extras_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import robustrl.envs.adapter as adapter

    monkeypatch.setattr(adapter, "_register_ale", lambda: False)
    with pytest.raises(ValueError, match=r"pip install robustrl\[atari\]"):
        check_env_id("ALE/NotAGame-v5")

    def no_mujoco(*args: object, **kwargs: object) -> None:
        raise gym.error.DependencyNotInstalled("No module named 'mujoco'")

    monkeypatch.setattr(gym, "make_vec", no_mujoco)
    with pytest.raises(ValueError, match=r"pip install robustrl\[mujoco\]"):
        make_env("Hopper-v5")


class _Counter(gym.Env[np.ndarray, np.int64]):
    """Counts up by the action; terminates at 3."""

    observation_space = gym.spaces.Box(0.0, 10.0, (1,), np.float64)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.n = 0
        return np.array([0.0]), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.n += int(action)
        return np.array([float(self.n)]), 1.0, self.n >= 3, False, {}


def test_user_registered_env() -> None:
    gym.register(id="RobustrlTest/Counter-v0", entry_point=_Counter, max_episode_steps=5)
    try:
        env = make_env("RobustrlTest/Counter-v0", 2, seed=0, return_floor=0.0)
        assert env.return_floor == 0.0 and env.max_episode_steps == 5
        assert env.observation_space.dtype == np.float32
        obs, _ = env.reset()
        assert obs.dtype == torch.float32 and obs.tolist() == [[0.0], [0.0]]
        for _ in range(2):
            obs, *_ = env.step(torch.tensor([1, 0]))
        obs, r, term, trunc, info = env.step(torch.tensor([1, 0]))
        assert r.tolist() == [1.0, 1.0] and r.dtype == torch.float32
        assert term.tolist() == [True, False] and trunc.tolist() == [False, False]
        assert info["final_obs"].tolist() == [[3.0], [0.0]] and obs.tolist() == [[0.0], [0.0]]
        env.step(torch.tensor([0, 0]))
        _, _, term, trunc, _ = env.step(torch.tensor([0, 0]))
        assert trunc.tolist() == [False, True] and not term.any()  # copy 1 hit the registration's time limit
        env.close()
    finally:
        del gym.registry["RobustrlTest/Counter-v0"]


def test_async_mode_with_params() -> None:
    env = make_env("CartPole-v1", 2, backend="gymnasium", vectorization_mode="async", seed=0, params={"force_mag": 0.0})
    try:
        env.reset()
        obs = env.reset(params={"force_mag": torch.tensor([0.0, 30.0], dtype=torch.float64)}, seed=0)[0]
        for _ in range(3):
            obs, *_ = env.step(torch.ones(2, dtype=torch.int64))
        # Both copies start from the same seeded state only if seeds match; compare velocities' sign instead.
        assert float(obs[1, 1]) > 0.5 and abs(float(obs[0, 1])) < 0.2
        with pytest.raises(ValueError, match="unknown parameter"):
            env.set_params({"no_such_attr": 1.0})
    finally:
        env.close()


def _hopper_rollout(env: VecEnv, steps: int, params: dict | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    out = [env.reset(seed=0, params=params)[0]]
    for _ in range(steps):
        out.append(env.step(torch.rand((env.num_envs, 3), generator=g) * 2 - 1)[0])
    return torch.stack(out)


def test_hopper_mass_and_friction_scales() -> None:
    env = make_env("Hopper-v5", 2, seed=0)
    assert torch.equal(env.params["mass_scale"], torch.ones(2, dtype=torch.float64))
    nominal = _hopper_rollout(env, 30)
    # Default scale 1 equals plain Gymnasium (same seeds, same actions).
    plain = gym.make_vec(
        "Hopper-v5",
        2,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
    )
    g = torch.Generator().manual_seed(0)
    pobs, _ = plain.reset(seed=0)
    ref = [torch.as_tensor(pobs, dtype=torch.float32)]
    for _ in range(30):
        pobs, *_ = plain.step((torch.rand((2, 3), generator=g) * 2 - 1).numpy())
        ref.append(torch.as_tensor(pobs, dtype=torch.float32))
    plain.close()
    assert torch.equal(nominal, torch.stack(ref))
    # A heavier copy moves differently; the nominal copy does not change.
    heavy = _hopper_rollout(env, 30, {"mass_scale": torch.tensor([1.0, 2.0], dtype=torch.float64)})
    assert torch.equal(heavy[:, 0], nominal[:, 0])
    assert (heavy[:, 1] - nominal[:, 1]).abs().max() > 1e-2
    masses = [np.array(e.unwrapped.model.body_mass) for e in env._vec.envs]
    assert np.allclose(masses[1], 2 * masses[0])
    # Scales are relative to the nominal model, never compounded.
    env.set_params({"mass_scale": 1.0, "friction_scale": 0.5})
    back = [np.array(e.unwrapped.model.body_mass) for e in env._vec.envs]
    assert np.array_equal(back[0], back[1]) and np.array_equal(back[0], masses[0])
    slippery = _hopper_rollout(env, 30)
    assert (slippery - nominal).abs().max() > 1e-3
    with pytest.raises(ValueError, match="mass_scale.*> 0"):
        env.set_params({"mass_scale": -1.0})
    env.close()
    with pytest.raises(ValueError, match="needs a MuJoCo env"):
        make_env("CartPole-v1", backend="gymnasium", params={"mass_scale": 2.0})


def test_ale_pong() -> None:
    pytest.importorskip("ale_py")
    env = make_env("ALE/Pong-v5", 2, seed=0)
    obs, _ = env.reset()
    assert obs.shape == (2, 210, 160, 3) and obs.dtype == torch.uint8
    assert env.action_space == gym.spaces.Discrete(6)
    g = torch.Generator().manual_seed(0)
    total = torch.zeros(2)
    for _ in range(50):
        obs, r, _term, _trunc, info = env.step(torch.randint(0, 6, (2,), generator=g))
        total += r
        assert info["final_obs"].shape == obs.shape
    assert obs.dtype == torch.uint8 and total.le(0).all()  # a random player does not score first in 200 frames
    env.close()

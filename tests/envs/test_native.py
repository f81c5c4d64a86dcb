"""Native env semantics: autoreset, time limit, seeding, parameters, state, bad input, floors, CLI."""

from __future__ import annotations

import math

import pytest
import torch

from robustrl.envs import NATIVE_ENVS, VecEnv, list_envs, make_env

IDS = list(NATIVE_ENVS)


def _random_actions(env: VecEnv, g: torch.Generator) -> torch.Tensor:
    space = env.action_space
    if hasattr(space, "n"):
        return torch.randint(0, int(space.n), (env.num_envs,), generator=g)
    low, high = float(space.low[0]), float(space.high[0])
    return torch.rand((env.num_envs, *space.shape), generator=g) * (high - low) + low


def _rollout(env: VecEnv, steps: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        obs, reward, term, trunc, info = env.step(_random_actions(env, g))
        out += [obs, reward, term, trunc, info["final_obs"]]
    return out


@pytest.mark.parametrize("env_id", IDS)
def test_protocol_shapes_and_dtypes(env_id: str) -> None:
    env = make_env(env_id, 5, seed=0)
    assert isinstance(env, VecEnv)
    obs, info = env.reset()
    assert info == {}
    assert obs.shape == (5, *env.observation_space.shape) and obs.dtype == torch.float32
    obs, reward, term, trunc, info = env.step(_random_actions(env, torch.Generator().manual_seed(0)))
    assert reward.shape == (5,) and reward.dtype == torch.float32
    assert term.dtype == torch.bool and trunc.dtype == torch.bool and term.shape == trunc.shape == (5,)
    assert info["final_obs"].shape == obs.shape and info["final_obs"].dtype == torch.float32


def test_cartpole_autoreset_same_step() -> None:
    lengths = torch.tensor([0.5, 0.6, 0.7], dtype=torch.float64)
    env = make_env("CartPole-v1", 3, seed=0, params={"length": lengths})
    env.reset()
    state = env.state
    state[1] = torch.tensor([2.399, 1.0, 0.0, 0.0], dtype=torch.float64)  # copy 1 leaves the track this step
    env.state = state
    obs, reward, term, trunc, info = env.step(torch.ones(3, dtype=torch.int64))
    assert term.tolist() == [False, True, False] and not trunc.any()
    assert reward.tolist() == [1.0, 1.0, 1.0]  # Gymnasium pays +1 on the terminating step too
    final = info["final_obs"]
    assert final[1, 0] > 2.4  # the last observation of the finished episode
    assert obs[1].abs().max() <= 0.05  # already the first observation of the next episode
    assert torch.equal(env.state[1].float(), obs[1])
    assert torch.equal(obs[[0, 2]], final[[0, 2]])
    assert env.elapsed_steps.tolist() == [1, 0, 1]
    assert torch.equal(env.params["length"], lengths)


@pytest.mark.parametrize("env_id", IDS)
def test_truncation_at_time_limit(env_id: str) -> None:
    env = make_env(env_id, 4, seed=1, max_episode_steps=3)
    assert env.max_episode_steps == 3
    env.reset()
    g = torch.Generator().manual_seed(0)
    for t in range(1, 7):
        _, _, term, trunc, _ = env.step(_random_actions(env, g))
        assert bool(trunc.all()) == (t % 3 == 0) or bool(term.any())
    full = make_env(env_id, 1)
    assert full.max_episode_steps == NATIVE_ENVS[env_id].MAX_EPISODE_STEPS


def test_terminated_and_truncated_on_the_same_step() -> None:
    env = make_env("CartPole-v1", 1, seed=0, max_episode_steps=2)
    env.reset()
    env.step(torch.ones(1, dtype=torch.int64))
    env.state = torch.tensor([[2.399, 1.0, 0.0, 0.0]], dtype=torch.float64)
    _, _, term, trunc, _ = env.step(torch.ones(1, dtype=torch.int64))
    assert bool(term[0]) and bool(trunc[0])  # as Gymnasium's TimeLimit: both flags, kept separate


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_same_trajectories(env_id: str) -> None:
    a, b, c = (make_env(env_id, 6, seed=s) for s in (3, 3, 4))
    for env in (a, b, c):
        env.reset()
    ra, rb, rc = (_rollout(env, 60, seed=9) for env in (a, b, c))
    assert all(torch.equal(x, y) for x, y in zip(ra, rb))
    assert not torch.equal(ra[0], rc[0])


def test_reset_seed_reseeds() -> None:
    env = make_env("CartPole-v1", 8, seed=0)
    first, _ = env.reset(seed=11)
    _rollout(env, 30, seed=0)
    again, _ = env.reset(seed=11)
    other, _ = env.reset(seed=12)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    fresh, _ = make_env("CartPole-v1", 8, seed=5).reset(seed=11)
    assert torch.equal(first, fresh)


def test_initial_state_distributions() -> None:
    n = 4000
    cp, _ = make_env("CartPole-v1", n, seed=0).reset()
    assert cp.abs().max() <= 0.05 and cp.std() > 0.025
    pend = make_env("Pendulum-v1", n, seed=0)
    pend.reset()
    th, thdot = pend.state.unbind(1)
    assert th.abs().max() <= math.pi and th.abs().max() > 3.0 and thdot.abs().max() <= 1.0
    mc = make_env("MountainCar-v0", n, seed=0)
    mc.reset()
    assert mc.state[:, 0].min() >= -0.6 and mc.state[:, 0].max() <= -0.4 and not mc.state[:, 1].any()
    ac = make_env("Acrobot-v1", n, seed=0)
    ac.reset()
    s = ac.state
    assert s.abs().max() <= 0.1 and torch.equal(s, s.float().double())  # Gymnasium stores it as float32


def test_params_at_make_and_reset() -> None:
    env = make_env("CartPole-v1", 3, params={"length": 0.75, "masspole": torch.tensor([0.1, 0.2, 0.3])})
    p = env.params
    assert torch.equal(p["length"], torch.full((3,), 0.75, dtype=torch.float64))
    assert torch.allclose(p["masspole"], torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
    assert float(p["gravity"][0]) == 9.8
    p["length"][0] = 99.0  # a copy: the env is unchanged
    assert float(env.params["length"][0]) == 0.75
    env.reset(params={"gravity": 3.0})
    assert torch.equal(env.params["gravity"], torch.full((3,), 3.0, dtype=torch.float64))
    assert float(env.params["length"][0]) == 0.75


def test_params_change_dynamics_per_copy() -> None:
    env = make_env("Pendulum-v1", 2, seed=0, params={"g": torch.tensor([10.0, 0.0])})
    env.reset()
    env.state = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    env.step(torch.zeros(2, 1))
    thdot = env.state[:, 1]
    assert float(thdot[1]) == 0.0  # no gravity: no torque, no motion
    assert float(thdot[0]) == pytest.approx(3 * 10.0 / 2 * math.sin(1.0) * 0.05)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"lenght": 0.5}, "lenght.*did you mean.*length"),
        ({"masspole": -0.1}, "masspole.*> 0"),
        ({"length": 0.0}, "length.*> 0"),
        ({"gravity": float("nan")}, "gravity.*finite"),
        ({"force_mag": torch.tensor([1.0, float("inf")])}, "force_mag.*finite"),
        ({"masscart": torch.ones(3)}, "masscart.*shape"),
        ({"gravity": -1.0}, "gravity.*>= 0"),
        ({"length": "long"}, "length"),
    ],
)
def test_bad_params(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_env("CartPole-v1", 2, params=params)
    env = make_env("CartPole-v1", 2)
    with pytest.raises(ValueError, match=match):
        env.reset(params=params)


def test_state_get_set() -> None:
    env = make_env("CartPole-v1", 2, seed=0)
    env.reset()
    s = torch.tensor([[0.1, 0.2, 0.03, 0.4], [-0.1, 0.0, -0.02, 0.1]], dtype=torch.float64)
    env.state = s
    assert torch.equal(env.state, s)
    assert torch.equal(env.observe(), s.float())
    got = env.state
    got[0, 0] = 5.0  # a copy
    assert float(env.state[0, 0]) == 0.1
    with pytest.raises(ValueError, match="state must have shape"):
        env.state = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="finite"):
        env.state = torch.full((2, 4), float("nan"))


@pytest.mark.parametrize(
    ("env_id", "action", "match"),
    [
        ("CartPole-v1", torch.ones(3, dtype=torch.int64), "shape"),
        ("CartPole-v1", torch.ones(2, 1, dtype=torch.int64), "shape"),
        ("CartPole-v1", torch.ones(2), "int64"),
        ("CartPole-v1", torch.tensor([0, 2]), r"\[0, 2\)"),
        ("CartPole-v1", torch.tensor([-1, 0]), r"\[0, 2\)"),
        ("CartPole-v1", [0, 1], "torch.Tensor"),
        ("Pendulum-v1", torch.zeros(2), "shape"),
        ("Pendulum-v1", torch.zeros(2, 1, dtype=torch.int64), "floating-point"),
        ("Pendulum-v1", torch.tensor([[0.0], [float("nan")]]), "NaN"),
        ("MountainCarContinuous-v0", torch.tensor([[float("inf")], [0.0]]), "NaN or inf"),
        ("Acrobot-v1", torch.tensor([0, 3]), r"\[0, 3\)"),
    ],
)
def test_bad_actions(env_id: str, action: object, match: str) -> None:
    env = make_env(env_id, 2, seed=0)
    env.reset()
    with pytest.raises(ValueError, match=match):
        env.step(action)  # type: ignore[arg-type]


def test_validate_actions_off_skips_value_checks_only() -> None:
    env = make_env("Pendulum-v1", 2, seed=0, validate_actions=False)
    env.reset()
    env.step(torch.tensor([[0.0], [float("nan")]]))  # no check, no sync
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.zeros(2))


def test_unknown_ids_and_options() -> None:
    with pytest.raises(ValueError, match=r"unknown env id 'CartPol-v1'.*CartPole-v1"):
        make_env("CartPol-v1")
    with pytest.raises(ValueError, match="backend"):
        make_env("CartPole-v1", backend="jax")
    with pytest.raises(ValueError, match="no native implementation"):
        make_env("Hopper-v5", backend="native")
    with pytest.raises(ValueError, match="num_envs"):
        make_env("CartPole-v1", 0)
    with pytest.raises(ValueError, match="bad option.*colour"):
        make_env("CartPole-v1", colour="red")
    with pytest.raises(ValueError, match="book_or_nips"):
        make_env("Acrobot-v1", book_or_nips="paper")
    with pytest.raises(ValueError, match="max_episode_steps"):
        make_env("Pendulum-v1", max_episode_steps=0)


def test_return_floors() -> None:
    floors = {i.id: i.return_floor for i in list_envs("native")}
    assert floors == {
        "CartPole-v1": 0.0,
        "Pendulum-v1": pytest.approx(-(math.pi**2 + 0.1 * 8**2 + 0.001 * 2**2) * 200),
        "MountainCar-v0": -200.0,
        "MountainCarContinuous-v0": pytest.approx(-0.1 * 999),
        "Acrobot-v1": -500.0,
    }
    # The floor follows the parameters and the time limit.
    env = make_env("Pendulum-v1", 2, params={"max_speed": torch.tensor([8.0, 10.0])}, max_episode_steps=100)
    assert env.return_floor == pytest.approx(-(math.pi**2 + 0.1 * 100 + 0.001 * 4) * 100)


@pytest.mark.parametrize("env_id", IDS)
def test_returns_never_below_floor(env_id: str) -> None:
    env = make_env(env_id, 64, seed=0, max_episode_steps=60)
    env.reset()
    floor = env.return_floor  # at this time limit (60 steps)
    g = torch.Generator().manual_seed(0)
    ret = torch.zeros(64, dtype=torch.float64)
    worst = math.inf
    for _ in range(180):
        _, r, term, trunc, _ = env.step(_random_actions(env, g))
        ret += r
        done = term | trunc
        if done.any():
            worst = min(worst, float(ret[done].min()))
            ret[done] = 0.0
    assert worst >= floor - 1e-3


def test_list_envs_kinds() -> None:
    native = list_envs("native")
    assert [i.id for i in native] == IDS
    assert all(i.kind == "native" for i in native)
    cartpole = native[0]
    assert cartpole.params == {"gravity": 9.8, "masscart": 1.0, "masspole": 0.1, "length": 0.5, "force_mag": 10.0}
    gym_ids = {i.id: i for i in list_envs("gymnasium")}
    assert "CartPole-v1" not in gym_ids and "Hopper-v5" in gym_ids
    hopper = gym_ids["Hopper-v5"].params  # the scales, the floor friction, then each body's mass (kg)
    assert list(hopper)[:3] == ["mass_scale", "friction_scale", "world_friction"]
    assert hopper["mass_scale"] == hopper["friction_scale"] == hopper["world_friction"] == 1.0
    assert list(hopper)[3:] == ["torso_mass", "thigh_mass", "leg_mass", "foot_mass"]
    assert hopper["torso_mass"] == pytest.approx(3.6651914, abs=1e-6)
    assert gym_ids["Hopper-v5"].return_floor is None
    with pytest.raises(ValueError, match="kind"):
        list_envs("mujoco")  # type: ignore[arg-type]


def test_float32_state_option_close_to_float64() -> None:
    a = make_env("CartPole-v1", 16, seed=0)
    b = make_env("CartPole-v1", 16, seed=0, dtype=torch.float32)
    a.reset()
    b.reset()
    b.state = a.state.float()
    assert b.state.dtype == torch.float32
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        act = torch.randint(0, 2, (16,), generator=g)
        _, _, ta, ua, ia = a.step(act)
        _, _, tb, ub, ib = b.step(act)
        assert torch.allclose(ia["final_obs"], ib["final_obs"], atol=1e-4)
        assert torch.equal(ta, tb) and torch.equal(ua, ub)
        b.state = a.state.float()  # autoreset draws differ between dtypes


def test_cli_lists_native_envs(capsys: pytest.CaptureFixture[str]) -> None:
    from robustrl.cli import main

    assert main(["envs", "--kind", "native"]) == 0
    out = capsys.readouterr().out
    assert "CartPole-v1" in out and "-3254.72" in out and "Hopper" not in out
    assert "gravity=9.8" in out
    assert main(["envs", "--match", "hopper-v5"]) == 0
    out = capsys.readouterr().out
    assert "Hopper-v5" in out and "mass_scale=1" in out and "CartPole" not in out


def _paired_rollout(a: VecEnv, b: VecEnv, steps: int, exact: bool = True) -> None:
    """Step two envs with the same actions; results bit-identical (or equal to 1e-6 when not ``exact``)."""
    same = torch.equal if exact else lambda x, y: torch.allclose(x, y, rtol=1e-6, atol=1e-6)
    a.reset(seed=5)
    b.reset(seed=5)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        act = _random_actions(a, g)
        ra, rb = a.step(act), b.step(act)
        assert same(ra[0], rb[0]) and same(ra[1], rb[1]) and same(ra[4]["final_obs"], rb[4]["final_obs"])
        assert torch.equal(ra[2], rb[2]) and torch.equal(ra[3], rb[3])
    assert same(a.state, b.state)


@pytest.mark.parametrize("env_id", IDS)
def test_fused_path_equals_eager_path(env_id: str) -> None:
    # The branch-free path (CUDA, compile=True) hands out the same pool rows in the same order.
    eager = make_env(env_id, 32, seed=1, max_episode_steps=40)
    fused = make_env(env_id, 32, seed=1, max_episode_steps=40)
    fused._fused = True  # type: ignore[attr-defined]
    _paired_rollout(eager, fused, 120)


def test_fused_path_rejects_bad_actions_without_stepping() -> None:
    env = make_env("CartPole-v1", 4, seed=0)
    env._fused = True  # type: ignore[attr-defined]
    env.reset()
    before = env.state
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        env.step(torch.tensor([0, 1, 2, 0]))
    assert torch.equal(env.state, before)


@pytest.mark.slow
def test_compiled_cartpole_equals_eager() -> None:
    eager = make_env("CartPole-v1", 16, seed=2, validate_actions=False)
    compiled = make_env("CartPole-v1", 16, seed=2, validate_actions=False, compile=True)
    # Inductor's vectorised sin/cos may differ from eager's in the last bit of the float64 state.
    _paired_rollout(eager, compiled, 80, exact=False)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("env_id", IDS)
def test_cuda_matches_cpu(env_id: str) -> None:
    cpu = make_env(env_id, 32, seed=0)
    gpu = make_env(env_id, 32, seed=0, device="cuda")
    cpu.reset()
    gpu.reset()
    gpu.state = cpu.state.cuda()
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        act = _random_actions(cpu, g)
        _oc, rc, tc, uc, ic = cpu.step(act)
        og, rg, tg, ug, ig = gpu.step(act.cuda())
        assert og.device.type == "cuda"
        assert torch.allclose(ic["final_obs"], ig["final_obs"].cpu(), atol=1e-5)
        assert torch.allclose(rc, rg.cpu(), atol=1e-5)
        assert torch.equal(tc, tg.cpu()) and torch.equal(uc, ug.cpu())
        gpu.state = torch.where((tc | uc)[:, None], cpu.state, gpu.state.cpu()).cuda()


@pytest.mark.parametrize("n", [10**9, 10**12])
def test_make_env_sizes_the_request_before_allocating(n: int) -> None:
    import robustrl

    with pytest.raises(ValueError, match=r"num_envs=\d+ copies of CartPole-v1 needs about .* available"):
        robustrl.make_env("CartPole-v1", n)
    with pytest.raises(ValueError, match="Gymnasium adapter"):
        robustrl.make_env("CartPole-v1", 5000, backend="gymnasium")

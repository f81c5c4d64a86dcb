"""Per-episode parameter samplers: the samplers themselves, native envs on every path, the Gymnasium adapter."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from robustrl.envs import ChoiceParamSampler, ParamSampler, UniformParamSampler, make_env

RANGES = {"masspole": (0.05, 0.5), "length": (0.3, 0.9)}


# ---------------------------------------------------------------- the samplers
def test_uniform_sampler_values_and_determinism() -> None:
    s = UniformParamSampler(RANGES)
    assert isinstance(s, ParamSampler) and s.names == ("masspole", "length")
    v = s(torch.arange(5000), torch.Generator().manual_seed(0))
    for name, (lo, hi) in RANGES.items():
        assert v[name].shape == (5000,) and v[name].dtype == torch.float64
        assert lo <= float(v[name].min()) and float(v[name].max()) <= hi
        assert float(v[name].mean()) == pytest.approx((lo + hi) / 2, abs=0.01)  # uniform: mean (lo + hi) / 2
    again = s(torch.arange(5000), torch.Generator().manual_seed(0))
    assert all(torch.equal(v[k], again[k]) for k in v)
    fixed = UniformParamSampler({"length": (0.7, 0.7)})(torch.arange(3), torch.Generator().manual_seed(1))
    assert fixed["length"].tolist() == [0.7, 0.7, 0.7]


def test_choice_sampler_draws_only_its_points_and_all_of_them() -> None:
    s = ChoiceParamSampler.grid({"masspole": [0.1, 0.2], "length": [0.5, 1.0, 1.5]})
    assert s.names == ("masspole", "length") and len(s.points) == 6
    assert s.points[:2] == ({"masspole": 0.1, "length": 0.5}, {"masspole": 0.1, "length": 1.0})  # last axis fastest
    v = s(torch.arange(600), torch.Generator().manual_seed(0))
    drawn = set(zip(v["masspole"].tolist(), v["length"].tolist()))
    assert drawn == {(p["masspole"], p["length"]) for p in s.points}
    listed = ChoiceParamSampler([{"length": 0.4}, {"length": 0.6}])
    assert set(listed(torch.arange(50), torch.Generator().manual_seed(0))["length"].tolist()) == {0.4, 0.6}


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: UniformParamSampler({}), "non-empty"),
        (lambda: UniformParamSampler({"length": (0.9, 0.3)}), "low <= high"),
        (lambda: UniformParamSampler({"length": (0.3, float("nan"))}), "finite"),
        (lambda: UniformParamSampler({"length": 0.3}), "pair"),  # type: ignore[dict-item]
        (lambda: ChoiceParamSampler([]), "non-empty"),
        (lambda: ChoiceParamSampler([{"length": 0.5}, {"masspole": 0.1}]), "point 1 must name exactly"),
        (lambda: ChoiceParamSampler({"length": 0.5}), "sequence"),  # type: ignore[arg-type]
    ],
)
def test_bad_samplers(make: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()  # type: ignore[operator]


# ---------------------------------------------------------------- native envs
PATHS = ["numpy", "torch", "fused"]


def _cartpole(path: str, sampler: ParamSampler | None = None, n: int = 8, seed: int = 0) -> Any:
    env: Any = make_env("CartPole-v1", n, seed=seed, max_episode_steps=30, param_sampler=sampler)
    if path == "torch":
        env._numpy_path = False
    if path == "fused":
        env._fused = True
    return env


def _episodes(env: Any, steps: int) -> tuple[list[list[dict[str, float]]], list[tuple]]:
    """Run random actions; per copy, the sampled parameters of each finished episode (checked constant)."""
    names = list(env.param_sampler.names)
    g = torch.Generator().manual_seed(1)
    episodes: list[list[dict[str, float]]] = [[] for _ in range(env.num_envs)]
    outputs = []
    for _ in range(steps):
        before = env.params
        out = env.step(torch.randint(0, 2, (env.num_envs,), generator=g))
        outputs.append(out)
        used = out[4]["final_params"]
        done = out[2] | out[3]
        after = env.params
        for k in names:
            assert torch.equal(used[k], before[k])  # what the step ran with
            assert torch.equal(after[k][~done], before[k][~done])  # fixed within an episode
        for i in done.nonzero().view(-1).tolist():
            episodes[i].append({k: float(used[k][i]) for k in names})
    return episodes, outputs


@pytest.mark.parametrize("path", PATHS)
def test_native_sampler_draws_per_episode(path: str) -> None:
    env = _cartpole(path, UniformParamSampler(RANGES))
    env.reset(seed=4)
    episodes, _ = _episodes(env, 150)
    flat = [e for per_copy in episodes for e in per_copy]
    assert len(flat) > 40
    for e in flat:
        assert all(RANGES[k][0] <= v <= RANGES[k][1] for k, v in e.items())
    assert len({e["length"] for e in flat}) == len(flat)  # a new draw for every episode
    assert all(len({e["masspole"] for e in per_copy}) == len(per_copy) > 1 for per_copy in episodes)
    assert torch.equal(env.params["gravity"], torch.full((8,), 9.8, dtype=torch.float64))  # not sampled: kept


def test_native_sampler_same_seed_same_sequence_on_every_path() -> None:
    runs = [_cartpole(path, UniformParamSampler(RANGES), seed=s) for path, s in zip(PATHS, (0, 1, 2))]
    results = []
    for env in runs:
        env.reset(seed=9)
        results.append(_episodes(env, 90))
    first_eps, first_out = results[0]
    for eps, out in results[1:]:  # three paths, reset(seed=9): same parameters, same trajectories
        assert eps == first_eps
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[2], b[2]) for a, b in zip(first_out, out))
    other = _cartpole("numpy", UniformParamSampler(RANGES))
    other.reset(seed=10)
    assert _episodes(other, 90)[0] != first_eps


def test_sampled_parameters_drive_the_dynamics() -> None:
    # Each step equals an unsampled env given the same state and the parameters the step reports it used.
    env = _cartpole("numpy", ChoiceParamSampler.grid({"force_mag": [5.0, 15.0], "length": [0.3, 0.8]}))
    ref = _cartpole("numpy")
    env.reset(seed=0)
    g = torch.Generator().manual_seed(0)
    for _ in range(80):
        ref.state = env.state
        ref.set_params(env.params)
        a = torch.randint(0, 2, (8,), generator=g)
        out = env.step(a)
        assert torch.equal(out[4]["final_obs"], ref.step(a)[4]["final_obs"])


def test_pendulum_sampler_on_the_eager_path() -> None:
    env: Any = make_env(
        "Pendulum-v1", 4, seed=0, max_episode_steps=10, param_sampler=UniformParamSampler({"m": (0.5, 2.0)})
    )
    masses = [env.params["m"]]
    for _ in range(30):
        _, _, _, trunc, info = env.step(torch.zeros(4, 1))
        assert torch.equal(info["final_params"]["m"], masses[-1])
        masses.append(env.params["m"])
        assert bool(trunc.all()) == (not torch.equal(masses[-1], masses[-2]))  # new masses exactly at resets
    assert all(((m >= 0.5) & (m <= 2.0)).all() for m in masses)


def test_reset_resamples_every_copy_over_explicit_params() -> None:
    env: Any = make_env("CartPole-v1", 6, seed=0, param_sampler=UniformParamSampler({"length": (0.3, 0.4)}))
    first = env.params["length"]
    env.reset(params={"length": 2.0, "masscart": 3.0})
    assert not torch.equal(env.params["length"], first)
    assert bool((env.params["length"] <= 0.4).all())  # the sampler's name wins
    assert torch.equal(env.params["masscart"], torch.full((6,), 3.0, dtype=torch.float64))  # the others stay
    env.reset(seed=3)
    a = env.params["length"]
    env.reset(seed=3)
    assert torch.equal(env.params["length"], a)


def test_sampler_removed_or_rejected() -> None:
    env = _cartpole("numpy", UniformParamSampler(RANGES))
    env.reset(seed=0)
    env.set_param_sampler(None)
    kept = env.params
    for _ in range(60):
        info = env.step(torch.ones(8, dtype=torch.int64))[4]
        assert "final_params" not in info
    assert all(torch.equal(kept[k], v) for k, v in env.params.items())
    with pytest.raises(ValueError, match=r"unknown parameter 'lenght' for CartPole-v1; did you mean \['length'\]"):
        env.set_param_sampler(UniformParamSampler({"lenght": (0.3, 0.4)}))
    with pytest.raises(ValueError, match="unknown parameter 'mass'"):
        make_env("Pendulum-v1", 2, param_sampler=UniformParamSampler({"mass": (1.0, 2.0)}))
    with pytest.raises(ValueError, match="must be a ParamSampler"):
        env.set_param_sampler({"length": (0.3, 0.4)})
    assert env.param_sampler is None
    with pytest.raises(ValueError, match=r"'masspole' \(from the param_sampler\) must be > 0"):
        make_env("CartPole-v1", 2, param_sampler=UniformParamSampler({"masspole": (-1.0, -0.5)}))


def test_fused_env_goes_back_to_the_fused_path() -> None:
    fused, eager = _cartpole("fused", UniformParamSampler(RANGES)), _cartpole("torch", UniformParamSampler(RANGES))
    for env in (fused, eager):
        env.reset(seed=2)
        _episodes(env, 40)
        env.set_param_sampler(None)
    g = torch.Generator().manual_seed(3)
    for _ in range(60):  # the fused path picks up the pool where the eager one left it
        a = torch.randint(0, 2, (8,), generator=g)
        assert torch.equal(fused.step(a)[0], eager.step(a)[0])


# ---------------------------------------------------------------- the Gymnasium adapter
def _sub_envs(env: Any) -> list[Any]:
    return env._vec.envs


def test_adapter_sampler_per_sub_env() -> None:
    sampler = UniformParamSampler({"length": (0.3, 0.9)})
    env: Any = make_env("CartPole-v1", 3, backend="gymnasium", seed=0, max_episode_steps=20, param_sampler=sampler)
    env.reset(seed=5)
    g = torch.Generator().manual_seed(0)
    episodes: list[list[float]] = [[] for _ in range(3)]
    for _ in range(120):
        before = env.params["length"]
        _, _, term, trunc, info = env.step(torch.randint(0, 2, (3,), generator=g))
        done = term | trunc
        assert torch.equal(info["final_params"]["length"], before)
        after = env.params["length"]
        assert torch.equal(after[~done], before[~done])
        for i, sub in enumerate(_sub_envs(env)):  # each sub-env runs what env.params reports
            assert sub.unwrapped.length == float(after[i])
            assert sub.unwrapped.polemass_length == pytest.approx(sub.unwrapped.masspole * float(after[i]))
        for i in done.nonzero().view(-1).tolist():
            episodes[i].append(float(before[i]))
    flat = [x for e in episodes for x in e]
    assert len(flat) > 15 and len(set(flat)) == len(flat) and all(0.3 <= x <= 0.9 for x in flat)
    env.close()
    again: Any = make_env("CartPole-v1", 3, backend="gymnasium", seed=0, max_episode_steps=20, param_sampler=sampler)
    again.reset(seed=5)
    g = torch.Generator().manual_seed(0)
    replay: list[list[float]] = [[] for _ in range(3)]
    for _ in range(120):
        before = again.params["length"]
        _, _, term, trunc, _ = again.step(torch.randint(0, 2, (3,), generator=g))
        for i in (term | trunc).nonzero().view(-1).tolist():
            replay[i].append(float(before[i]))
    assert replay == episodes  # same seed, same sequence
    again.close()


def test_adapter_sampler_mujoco_masses_applied_before_the_first_observation() -> None:
    sampler = ChoiceParamSampler([{"torso_mass": 2.0}, {"torso_mass": 6.0}])
    env: Any = make_env("Hopper-v5", 2, seed=0, max_episode_steps=5, param_sampler=sampler)
    env.reset(seed=0)
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(40):
        env.step(torch.rand((2, 3), generator=g) * 2 - 1)
        for i, sub in enumerate(_sub_envs(env)):
            mass = float(sub.unwrapped.model.body("torso").mass[0])
            assert mass == float(env.params["torso_mass"][i])
            seen.add(mass)
    assert seen == {2.0, 6.0}
    with pytest.raises(ValueError, match="unknown parameter 'torso_mas'.*did you mean"):
        env.set_param_sampler(UniformParamSampler({"torso_mas": (1.0, 2.0)}))
    with pytest.raises(ValueError, match="torso_mass.*> 0"):
        env.set_param_sampler(UniformParamSampler({"torso_mass": (-2.0, -1.0)}))
    assert env.param_sampler is sampler  # a rejected sampler changes nothing
    assert all(sub.get_wrapper_attr("robustrl_pending_params")["torso_mass"] > 0 for sub in _sub_envs(env))
    env.close()

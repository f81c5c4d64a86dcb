"""SB3 VecNormalize statistics: read without running the pickle, applied inside the policy exactly as SB3 does."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from robustrl.policies import (
    PolicyFileError,
    QNetworkPolicy,
    VecNormalizeStats,
    load_policy,
    read_vec_normalize,
    save_policy,
)

sb3 = pytest.importorskip("stable_baselines3")
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize  # noqa: E402

ALGOS = {"td3": "TD3", "ppo": "PPO", "sac": "SAC"}


@dataclass(frozen=True)
class Run:
    """A model trained under VecNormalize, saved the SB3/RL-Zoo way (``model.save`` + ``venv.save``)."""

    model_path: Path
    stats_path: Path
    venv: VecNormalize
    """The training wrapper, holding the statistics SB3 normalises with."""


def _train(name: str, root: Path) -> Run:
    venv = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]), clip_obs=5.0, epsilon=1e-6)
    venv.seed(0)
    off = {"learning_starts": 100, "batch_size": 32, "buffer_size": 1000, "policy_kwargs": {"net_arch": [32]}}
    kwargs = {"n_steps": 128, "batch_size": 64, "n_epochs": 1} if name == "ppo" else off
    model = getattr(sb3, ALGOS[name])("MlpPolicy", venv, seed=0, **kwargs)
    model.learn(256)
    model.save(root / f"{name}.zip")
    venv.save(str(root / f"{name}_vec_normalize.pkl"))
    return Run(root / f"{name}.zip", root / f"{name}_vec_normalize.pkl", venv)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    root = tmp_path_factory.mktemp("vec-normalize")
    return {name: _train(name, root) for name in ALGOS}


def raw_obs(n: int = 256, seed: int = 0, dtype: Any = np.float32) -> np.ndarray:
    """Raw Pendulum observations, some far outside the statistics (so that the clip is exercised)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 3)) * np.array([1.0, 1.0, 6.0]) * rng.choice([1.0, 30.0], size=(n, 1))).astype(dtype)


# ------------------------------------------------------------------------------------------------ parity


def test_statistics_equal_sb3s(runs: dict[str, Run]) -> None:
    for run in runs.values():
        stats = read_vec_normalize(run.stats_path)
        rms = run.venv.obs_rms
        assert stats.norm_obs is True and stats.clip_obs == 5.0 and stats.epsilon == 1e-6
        assert stats.mean is not None and stats.var is not None
        assert np.array_equal(stats.mean, rms.mean) and np.array_equal(stats.var, rms.var)
        assert stats.mean.dtype == np.float64 and stats.count == rms.count > 200
        obs = raw_obs()
        np.testing.assert_array_equal(stats.normalize(obs), run.venv.normalize_obs(obs))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(ALGOS))
def test_policy_on_raw_observations_acts_exactly_like_sb3(name: str, dtype: Any, runs: dict[str, Run]) -> None:
    run = runs[name]
    model = getattr(sb3, ALGOS[name]).load(run.model_path, device="cpu")
    policy = load_policy(run.model_path, vec_normalize=run.stats_path)
    raw = raw_obs(dtype=dtype)
    normalised = run.venv.normalize_obs(raw)
    assert np.abs(normalised).max() == 5.0  # some observations were clipped
    expected, _ = model.predict(normalised, deterministic=True)
    with torch.no_grad():
        got = policy.act(torch.as_tensor(raw)).numpy()
    np.testing.assert_array_equal(got, expected)
    assert len(np.unique(expected)) > 10
    with torch.no_grad():  # without the statistics the policy acts differently: they matter
        assert not np.array_equal(load_policy(run.model_path).act(torch.as_tensor(raw)).numpy(), expected)


def test_normaliser_is_the_policys_obs_norm_and_differentiable(runs: dict[str, Run]) -> None:
    run = runs["td3"]
    policy = load_policy(run.model_path, vec_normalize=run.stats_path)
    plain = load_policy(run.model_path)
    norm = policy.obs_norm
    assert norm is not None and norm.mean.dtype == torch.float64 and norm.clip == 5.0 and norm.eps == 1e-6
    assert torch.equal(norm.var, torch.as_tensor(run.venv.obs_rms.var))
    raw = torch.as_tensor(raw_obs(64) / 30).requires_grad_()  # small: inside the clip, so the chain rule applies
    action = torch.as_tensor(raw_obs(64, seed=1)[:, :1]).clamp(-2, 2)
    (grad,) = torch.autograd.grad(policy.critic(raw, action).sum(), raw)
    inner = torch.as_tensor(run.venv.normalize_obs(raw.detach().numpy())).requires_grad_()
    (inner_grad,) = torch.autograd.grad(plain.critic(inner, action).sum(), inner)
    std = torch.sqrt(norm.var + norm.eps).float()
    torch.testing.assert_close(grad, inner_grad / std)  # d/d raw = d/d normalised · 1/std


def test_vec_normalized_policy_round_trips(runs: dict[str, Run], tmp_path: Path) -> None:
    run = runs["sac"]
    policy = load_policy(run.model_path, vec_normalize=run.stats_path)
    again = load_policy(save_policy(policy, tmp_path / "p.zip", env_id="Pendulum-v1"))
    assert again.spec() == policy.spec() and again.spec()["obs_norm_dtype"] == "float64"
    raw = torch.as_tensor(raw_obs())
    with torch.no_grad():
        assert torch.equal(again.act(raw), policy.act(raw))


def test_norm_obs_false_changes_nothing(runs: dict[str, Run], tmp_path: Path) -> None:
    run = runs["ppo"]
    state = unpickled(run.stats_path)
    state.norm_obs = False
    path = tmp_path / "vn.pkl"
    path.write_bytes(pickle.dumps(state))
    stats = read_vec_normalize(path)
    assert stats.norm_obs is False and stats.mean is None
    policy = load_policy(run.model_path, vec_normalize=path)
    assert policy.obs_norm is None
    raw = torch.as_tensor(raw_obs())
    with torch.no_grad():
        assert torch.equal(policy.act(raw), load_policy(run.model_path).act(raw))


def test_statistics_must_fit_the_policy(runs: dict[str, Run], tmp_path: Path) -> None:
    run = runs["ppo"]
    model = sb3.DQN("MlpPolicy", "CartPole-v1", seed=0)
    model.save(tmp_path / "dqn.zip")
    with pytest.raises(PolicyFileError, match=r"shape \(3,\).*shape \(4,\)") as err:
        load_policy(tmp_path / "dqn.zip", vec_normalize=run.stats_path)
    assert err.value.path == run.stats_path
    ours = save_policy(QNetworkPolicy(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2)), tmp_path / "q.zip")
    with pytest.raises(ValueError, match="vec_normalize applies to Stable-Baselines3 zips"):
        load_policy(ours, vec_normalize=run.stats_path)
    with pytest.raises(FileNotFoundError, match="nope.pkl"):
        load_policy(run.model_path, vec_normalize=tmp_path / "nope.pkl")


def test_reading_never_unpickles(runs: dict[str, Run], monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pickle was used")

    for name in ("load", "loads", "Unpickler", "_Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    run = runs["td3"]
    assert read_vec_normalize(run.stats_path).norm_obs
    load_policy(run.model_path, vec_normalize=run.stats_path)


# ------------------------------------------------------------------------------------------ hostile files


class Payload:
    """Unpickling this creates ``sentinel`` (through ``os.system``, or ``Path.touch``)."""

    def __init__(self, sentinel: Path, via: str) -> None:
        self.sentinel = sentinel
        self.via = via

    def __reduce__(self) -> tuple[Any, ...]:
        if self.via == "system":
            return (os.system, (f"touch {self.sentinel}",))
        if self.via == "eval":
            return (eval, (f"open({str(self.sentinel)!r}, 'w')",))
        return (Path.touch, (self.sentinel,))


def expect_bad(path: Path, match: str) -> PolicyFileError:
    with pytest.raises(PolicyFileError, match=match) as err:
        read_vec_normalize(path)
    assert err.value.path == path and str(path) in str(err.value)
    return err.value


def unpickled(path: Path) -> VecNormalize:
    """The VecNormalize object of our own file, ready to be edited and pickled again."""
    vn = pickle.loads(path.read_bytes())
    vn.set_venv(DummyVecEnv([lambda: gym.make("Pendulum-v1")]))  # what pickling it again needs
    return vn


@pytest.fixture
def reference(runs: dict[str, Run]) -> VecNormalize:
    """A fresh copy of a real VecNormalize object to edit."""
    return unpickled(runs["td3"].stats_path)


def dumped(tmp_path: Path, obj: Any, protocol: int = pickle.DEFAULT_PROTOCOL) -> Path:
    path = tmp_path / "vec_normalize.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


@pytest.mark.parametrize("via", ["system", "eval", "touch"])
@pytest.mark.parametrize("where", ["top", "inside"])
def test_code_in_the_pickle_is_never_run(
    via: str, where: str, reference: VecNormalize, runs: dict[str, Run], tmp_path: Path
) -> None:
    sentinel = tmp_path / "pwned"
    payload = Payload(sentinel, via)
    assert not sentinel.exists()
    if where == "inside":  # a valid VecNormalize whose reward clip is the payload
        reference.clip_reward = payload
        obj: Any = reference
    else:
        obj = payload
    path = dumped(tmp_path, obj)
    err = expect_bad(path, r"refers to the global '(posix|os|builtins|pathlib)\.[\w.]+', which is not allowed")
    with pytest.raises(PolicyFileError, match="not allowed"):
        load_policy(runs["td3"].model_path, vec_normalize=path)
    assert not sentinel.exists() and "never run" in str(err)
    pickle.loads(path.read_bytes())  # the control: unpickling it does create the file
    assert sentinel.exists()


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda vn: setattr(vn.obs_rms, "mean", np.full(3, np.nan)), "obs_rms.mean contains NaN"),
        (lambda vn: setattr(vn.obs_rms, "var", -vn.obs_rms.var), r"obs_rms.var must be ≥ 0"),
        (lambda vn: setattr(vn.obs_rms, "var", vn.obs_rms.var[:2]), r"obs_rms.mean has shape \(3,\) but"),
        (lambda vn: setattr(vn.obs_rms, "mean", vn.obs_rms.mean.astype(np.float32)), "dtype float32"),
        (lambda vn: setattr(vn.obs_rms, "mean", np.array(["a", "b"], dtype=object)), "dtype 'O8' that is not read"),
        (lambda vn: setattr(vn.obs_rms, "mean", [0.0, 0.0, 0.0]), "obs_rms.mean is not a numpy array"),
        (lambda vn: setattr(vn.obs_rms, "count", float("inf")), "obs_rms.count is not a finite number"),
        (lambda vn: setattr(vn, "clip_obs", 0.0), r"clip_obs must be > 0"),
        (lambda vn: setattr(vn, "epsilon", True), "epsilon is not a finite number"),
        (lambda vn: delattr(vn, "epsilon"), "epsilon is not a finite number"),
        (lambda vn: setattr(vn, "norm_obs", 1), "norm_obs is not a bool"),
        (lambda vn: setattr(vn, "obs_rms", {"x": vn.obs_rms}), r"MultiInputPolicy \(dict observations\)"),
        (lambda vn: setattr(vn, "obs_rms", vn.ret_rms.mean), "obs_rms is a float, not SB3's RunningMeanStd"),
        (lambda vn: setattr(vn, "obs_rms", {1, 2}), "obs_rms is a set, not SB3's RunningMeanStd"),
    ],
)
def test_malformed_statistics(edit: Callable[[Any], None], match: str, reference: Any, tmp_path: Path) -> None:
    edit(reference)
    expect_bad(dumped(tmp_path, reference), match)


def test_other_objects_and_globals_are_refused(tmp_path: Path) -> None:
    expect_bad(dumped(tmp_path, {"obs_rms": 1}), "the pickled object is a dict, not SB3's VecNormalize")
    expect_bad(dumped(tmp_path, np.zeros(3)), "the pickled object is a numpy array, not SB3's VecNormalize")
    expect_bad(dumped(tmp_path, gym.spaces.Box(-1, 1, (2,))), "is a gymnasium.spaces.box.Box, not SB3's Vec")
    for obj in [object(), Path("x"), gym.make, np.load, np.float64]:
        expect_bad(dumped(tmp_path, obj), "is not allowed")
    expect_bad(dumped(tmp_path, np.datetime64("2020-01-01")), "numpy dtype 'M8' that is not read")


class _DictObsEnv(gym.Env[dict[str, np.ndarray], int]):
    observation_space = gym.spaces.Dict({"a": gym.spaces.Box(-1, 1, (2,)), "b": gym.spaces.Box(-1, 1, (3,))})
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return self.observation_space.sample(), {}

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        return self.observation_space.sample(), 0.0, False, False, {}


def test_dict_observations_are_refused(tmp_path: Path) -> None:
    venv = VecNormalize(DummyVecEnv([_DictObsEnv]))
    venv.reset()
    venv.save(str(tmp_path / "vn.pkl"))
    expect_bad(tmp_path / "vn.pkl", r"normalises dict observations \(MultiInputPolicy \(dict observations\) is not")


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickle_protocols(protocol: int, reference: Any, tmp_path: Path) -> None:
    path = dumped(tmp_path, reference, protocol)
    if protocol == 2:  # bytes are pickled through codecs.encode: a call, refused
        expect_bad(path, r"refers to the global '_codecs.encode'")
        return
    stats = read_vec_normalize(path)
    assert stats.mean is not None and np.array_equal(stats.mean, reference.obs_rms.mean)


def test_seeded_spaces_and_odd_arrays_are_read_as_data(reference: Any, tmp_path: Path) -> None:
    reference.observation_space.seed(3)
    reference.observation_space.sample()  # a space holding a numpy Generator, as after SB3's exploration
    reference.action_space._np_random = np.random.RandomState(0)  # gym < 0.22 kept a RandomState
    mean = reference.obs_rms.mean.copy()
    reference.obs_rms.mean = mean.astype(">f8")[::-1][::-1]  # big-endian
    reference.obs_rms.var = np.asfortranarray(np.tile(reference.obs_rms.var, (1, 1)))[0]
    stats = read_vec_normalize(dumped(tmp_path, reference))
    assert stats.mean is not None and np.array_equal(stats.mean, mean) and stats.mean.dtype == np.dtype("<f8")


def raw_pickle(body: bytes) -> bytes:
    return b"\x80\x04" + body + b"."


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"N" + b"r\xff\xff\xff\xff", "the pickled object is a NoneType"),  # LONG_BINPUT 2**32-1: no allocation
        (b"]" * 200_000 + b"a" * 199_999, "the pickled object is a list"),  # deep nesting: no recursion
        (b"}(]]tN" + b"s", "uses a tuple as a dict key"),
        (b"\x8f(]\x90", "uses a list as a set item"),
        (b"N" * 10 + b"(" * 5, "does not end with one value"),
        (b"\x8c\x01xQ", "uses the pickle opcode BINPERSID"),
        (b"\x82\x01", "uses the pickle opcode EXT1"),
        (b"(i__main__\nX\n", "uses the pickle opcode INST"),
        (b"\x8c\x05numpy\x94\x8c\x07ndarray\x93)\x81", "instantiates the global 'numpy.ndarray'"),
        (b"\x8c\x05numpy\x94\x8c\x07ndarray\x93N\x62", "sets the state of the global 'numpy.ndarray'"),
        (
            b"\x8c\x05numpy\x94\x8c\x05dtype\x93\x8c\x02f8\x89\x88\x87R\x94\x8c\x02f8\x89\x88\x87R",
            "calls a numpy dtype",
        ),
        (b"h\x05", "memo entry 5 is missing"),
        (b"0", "pops from an empty stack|reads an empty stack|no MARK"),
        (b"\x8a\xff" + b"\x01" * 255, "the pickled object is a int"),
    ],
)
def test_hostile_opcode_streams(body: bytes, match: str, tmp_path: Path) -> None:
    path = tmp_path / "vn.pkl"
    path.write_bytes(raw_pickle(body))
    expect_bad(path, match)


def test_huge_shapes_allocate_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from robustrl.policies import vec_normalize

    class FakeArray:  # pickles like an ndarray of shape (2**40,) with 8 bytes of data
        def __reduce__(self) -> tuple[Any, ...]:
            real = np.zeros(1)
            func, args, state = real.__reduce__()
            return (func, args, (state[0], (1 << 40,), state[2], state[3], state[4]))

    expect_bad(dumped(tmp_path, FakeArray()), r"shape \(1099511627776,\).* in 8 bytes")
    path = dumped(tmp_path, np.zeros(64))
    monkeypatch.setattr(vec_normalize, "MAX_VEC_NORMALIZE_BYTES", 100)
    expect_bad(path, r"larger than the limit of 100 bytes .*MAX_VEC_NORMALIZE_BYTES")
    monkeypatch.setattr(vec_normalize, "MAX_VEC_NORMALIZE_BYTES", 1 << 20)
    monkeypatch.setattr(vec_normalize, "MAX_PICKLE_OPS", 5)
    expect_bad(path, "more than 5 pickle opcodes")


def test_truncated_and_foreign_files(runs: dict[str, Run], tmp_path: Path) -> None:
    data = runs["td3"].stats_path.read_bytes()
    path = tmp_path / "vn.pkl"
    for cut in sorted({0, 1, 2, 11, 60, len(data) // 3, len(data) // 2, len(data) - 2, len(data) - 1}):
        path.write_bytes(data[:cut])
        expect_bad(path, "truncated|not a readable pickle|corrupt")
    path.write_bytes(runs["td3"].model_path.read_bytes())
    expect_bad(path, "is a zip archive")
    path.write_bytes(np.random.default_rng(0).bytes(512))
    expect_bad(path, "pickle")
    expect_bad(tmp_path, "is not a regular file")
    with pytest.raises(FileNotFoundError):
        read_vec_normalize(tmp_path / "missing.pkl")


def test_stats_normalize_matches_sb3_formula() -> None:
    stats = VecNormalizeStats(Path("x"), np.array([1.0, -2.0]), np.array([4.0, 0.0]), 3.0, 10.0, 1e-8, True)
    obs = np.array([[5.0, -2.0], [100.0, -1.0]], dtype=np.float32)
    expected = np.clip((obs - stats.mean) / np.sqrt(stats.var + 1e-8), -10, 10).astype(np.float32)
    np.testing.assert_array_equal(stats.normalize(obs), expected)


def test_cli_evaluate_and_certify_apply_the_statistics(runs: dict[str, Run], tmp_path: Path) -> None:
    from robustrl.cli import main
    from robustrl.results import load_result

    run = runs["ppo"]
    args = ["--policy", str(run.model_path), "--env", "Pendulum-v1", "--episodes", "2", "--seed", "0"]
    for flag in ([], ["--vec-normalize", str(run.stats_path)]):
        out = tmp_path / f"eval{len(flag)}.json"
        assert main(["evaluate", *args, "--threat", "none", "--budgets", "0", "--out", str(out), *flag]) == 0
    plain, normed = (load_result(tmp_path / f"eval{k}.json") for k in (0, 2))
    assert normed.config["vec_normalize"] == str(run.stats_path)  # type: ignore[attr-defined]
    assert plain.clean.returns.tolist() != normed.clean.returns.tolist()  # type: ignore[attr-defined]
    cert = tmp_path / "cert.json"
    assert main(["certify", *args[:4], "--sigma", "0.1", "--episodes", "100", "--budgets", "0", "0.1",
                 "--vec-normalize", str(run.stats_path), "--out", str(cert), "--no-progress"]) == 0
    assert load_result(cert).config["vec_normalize"] == str(run.stats_path)  # type: ignore[attr-defined]

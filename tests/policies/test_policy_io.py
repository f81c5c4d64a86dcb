"""Our single-file policy format: round trips, metadata, atomic saving."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

import robustrl
from robustrl.policies import (
    ActorCriticPolicy,
    CriticPolicy,
    DeterministicActorPolicy,
    DistributionPolicy,
    Policy,
    QNetworkPolicy,
    QPolicy,
    SquashedGaussianActorPolicy,
    ValuePolicy,
    load_policy,
    read_policy_info,
    save_policy,
)
from robustrl.policies.spaces import space_from_json, space_to_json, spaces_equal

CARTPOLE_OBS = gym.spaces.Box(
    np.array([-4.8, -np.inf, -0.41887903, -np.inf], dtype=np.float32),
    np.array([4.8, np.inf, 0.41887903, np.inf], dtype=np.float32),
)
BOX3 = gym.spaces.Box(np.float32(-1.0), np.float32(3.0), (3,))
OBS_IMG = gym.spaces.Box(0, 255, (2, 3, 2), dtype=np.uint8)
IMG_HWC = gym.spaces.Box(0, 255, (36, 40, 3), dtype=np.uint8)
IMG_CHW = gym.spaces.Box(0, 255, (4, 36, 36), dtype=np.uint8)

FACTORIES: dict[str, Callable[[], nn.Module]] = {
    "ac_discrete_norm": lambda: ActorCriticPolicy(CARTPOLE_OBS, gym.spaces.Discrete(2), normalize_obs=True),
    "ac_box": lambda: ActorCriticPolicy(CARTPOLE_OBS, BOX3, pi_hidden=[8], vf_hidden=[5, 7], activation="relu"),
    "ac_discrete_obs": lambda: ActorCriticPolicy(gym.spaces.Discrete(5), gym.spaces.Discrete(3), pi_hidden=[]),
    "q_discrete_obs_start": lambda: QNetworkPolicy(gym.spaces.Discrete(4, start=-2), gym.spaces.Discrete(2)),
    "ac_uint8_obs": lambda: ActorCriticPolicy(OBS_IMG, gym.spaces.Discrete(3), pi_hidden=[4], vf_hidden=[4]),
    "q_regression": lambda: QNetworkPolicy(CARTPOLE_OBS, gym.spaces.Discrete(2), hidden=[16], normalize_obs=True),
    "q_hl_gauss": lambda: QNetworkPolicy(CARTPOLE_OBS, gym.spaces.Discrete(3), num_bins=11, v_min=-5.0, v_max=7.0),
    "sac": lambda: SquashedGaussianActorPolicy(CARTPOLE_OBS, BOX3, hidden=[16, 16], critic_hidden=[8], n_critics=3),
    "sac_no_critic": lambda: SquashedGaussianActorPolicy(CARTPOLE_OBS, BOX3, hidden=[16], with_critic=False),
    "td3": lambda: DeterministicActorPolicy(CARTPOLE_OBS, BOX3, hidden=[16], normalize_obs=True),
    "td3_float64_norm": lambda: DeterministicActorPolicy(
        CARTPOLE_OBS,
        BOX3,
        hidden=[8],
        normalize_obs=True,
        obs_norm_clip=5.0,
        obs_norm_eps=1e-6,
        obs_norm_dtype="float64",
    ),
    "ac_cnn_separate": lambda: ActorCriticPolicy(
        IMG_HWC,
        gym.spaces.Discrete(3),
        pi_hidden=[8],
        vf_hidden=[],
        features_extractor="nature_cnn",
        features_dim=16,
        normalize_images=True,
        channels_last=True,
        share_features_extractor=False,
    ),
    "q_cnn": lambda: QNetworkPolicy(
        IMG_CHW, gym.spaces.Discrete(2), hidden=[], features_extractor="nature_cnn", features_dim=8
    ),
}


def randomize(policy: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter seeded random values (the constructor's init uses the global RNG)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        norm = getattr(policy, "obs_norm", None)
        if norm is not None and not isinstance(policy.observation_space, gym.spaces.Discrete):
            norm.update(torch.randn(64, *policy.observation_space.shape, generator=g) * 3 + 1)
            norm.update(torch.randn(32, *policy.observation_space.shape, generator=g))
    return policy


def sample_obs(space: gym.Space[Any], n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if isinstance(space, gym.spaces.Discrete):
        return torch.randint(int(space.start), int(space.start + space.n), (n,), generator=g)
    if space.dtype == np.uint8:
        return torch.randint(0, 256, (n, *space.shape), generator=g, dtype=torch.uint8)
    return torch.randn(n, *space.shape, generator=g) * 2


@dataclass(frozen=True)
class ToyConfig:
    """A config dataclass, saved as a dict."""

    lr: float = 3e-4
    """Learning rate."""
    hidden: tuple[int, ...] = (64, 64)
    """Widths."""


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_round_trip_preserves_everything(name: str, tmp_path: Path) -> None:
    policy = randomize(FACTORIES[name]())
    path = save_policy(policy, tmp_path / "p.zip", env_id="CartPole-v1", config=ToyConfig())
    loaded = load_policy(path)

    assert type(loaded) is type(policy)
    assert isinstance(loaded, Policy)
    assert not loaded.training
    assert loaded.spec() == policy.spec()
    assert spaces_equal(loaded.observation_space, policy.observation_space)
    assert spaces_equal(loaded.action_space, policy.action_space)
    ours, theirs = policy.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys()
    for k in ours:
        assert ours[k].dtype == theirs[k].dtype and torch.equal(ours[k], theirs[k]), k

    obs = sample_obs(policy.observation_space, 33)
    with torch.no_grad():
        assert torch.equal(loaded.act(obs), policy.act(obs))
        a1 = loaded.act(obs, deterministic=False, generator=torch.Generator().manual_seed(5))
        a2 = policy.act(obs, deterministic=False, generator=torch.Generator().manual_seed(5))
        assert torch.equal(a1, a2)
        if isinstance(policy, ValuePolicy):
            assert torch.equal(loaded.value(obs), policy.value(obs))
        if isinstance(policy, QPolicy):
            assert torch.equal(loaded.q_values(obs), policy.q_values(obs))
        if isinstance(policy, CriticPolicy) and getattr(policy, "critics", None) is not None:
            act = policy.act(obs)
            assert torch.equal(loaded.critic(obs, act), policy.critic(obs, act))
        if isinstance(policy, DistributionPolicy):
            act = policy.act(obs, deterministic=False, generator=torch.Generator().manual_seed(2))
            if isinstance(policy, SquashedGaussianActorPolicy):
                act = torch.atanh(((act - policy.action_low) / (policy.action_high - policy.action_low)) * 2 - 1)
            assert torch.equal(loaded.dist(obs).log_prob(act), policy.dist(obs).log_prob(act))

    info = read_policy_info(path)
    assert info.format == "robustrl" and info.kind == policy.kind
    assert info.env_id == "CartPole-v1"
    assert info.config == {"lr": 3e-4, "hidden": [64, 64]}
    assert info.provenance is not None and info.provenance["torch"] == torch.__version__


def test_obs_normalizer_stats_survive(tmp_path: Path) -> None:
    policy = randomize(FACTORIES["ac_discrete_norm"]())
    norm = policy.obs_norm
    assert norm is not None and float(norm.count) > 90  # the updates happened
    loaded = load_policy(save_policy(policy, tmp_path / "p.zip"))
    for buf in ("mean", "var", "count"):
        assert torch.equal(getattr(loaded.obs_norm, buf), getattr(norm, buf))
    assert loaded.obs_norm.count.dtype == torch.float64


def test_top_level_reexports_and_file_layout(tmp_path: Path) -> None:
    policy = randomize(FACTORIES["q_regression"]())
    path = robustrl.save_policy(policy, tmp_path / "sub" / "dir" / "q.policy", config={"seed": 3})
    assert path == tmp_path / "sub" / "dir" / "q.policy"  # any name works, parents are created
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["policy.json", "weights.pt"]
        meta = json.loads(zf.read("policy.json"))
        state = torch.load(zf.open("weights.pt"), weights_only=True)
    assert meta["format"] == "robustrl-policy" and meta["format_version"] == 1
    assert meta["kind"] == "q_network" and meta["env_id"] is None and meta["config"] == {"seed": 3}
    assert meta["observation_space"]["high"] == [4.8, "inf", 0.41887903, "inf"]
    assert set(state) == set(policy.state_dict())
    obs = sample_obs(policy.observation_space, 8)
    assert torch.equal(robustrl.load_policy(path).act(obs), policy.act(obs))


def test_env_id_mismatch_only_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = save_policy(randomize(FACTORIES["q_regression"]()), tmp_path / "p.zip", env_id="CartPole-v1")
    load_policy(path, env_id="CartPole-v0")
    assert "saved for env 'CartPole-v1'" in caplog.text


@pytest.mark.parametrize(
    "space",
    [
        gym.spaces.Discrete(4, start=-1),
        CARTPOLE_OBS,
        OBS_IMG,
        gym.spaces.Box(np.array([[0.1, -2.5], [1e-9, 3.0]]), np.array([[0.2, 1.0], [1e-8, np.inf]]), dtype=np.float64),
        gym.spaces.Box(-1, 1, (0,)),
    ],
)
def test_space_json_round_trip(space: gym.Space[Any]) -> None:
    data = json.loads(json.dumps(space_to_json(space)))  # strict JSON: inf stored as a string
    assert spaces_equal(space_from_json(data), space)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"type": "Discrete", "n": 0}, "n ≥ 1"),
        ({"type": "MultiBinary", "n": 3}, "expected"),
        ({"type": "Box", "shape": [2], "low": [0, 1, 2], "high": 1.0}, "bound has shape"),
        ({"type": "Box", "shape": [2], "low": 2.0, "high": 1.0}, "low ≤ high"),
        ({"type": "Box", "shape": [2], "low": "nan", "high": 1.0}, "NaN"),
        ({"type": "Box", "shape": [2], "dtype": "object"}, "dtype"),
        ({"type": "Box", "shape": [1 << 30]}, "shape"),
        ({"type": "Box", "shape": [1], "low": [{"a": 1}], "high": 1.0}, "not a number"),
    ],
)
def test_space_json_rejects_malformed(data: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        space_from_json(data, what="field x")


def test_save_refuses_non_policies_and_bad_config(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="POLICY_CLASSES"):
        save_policy(nn.Linear(2, 2), tmp_path / "a.zip")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        save_policy(FACTORIES["q_regression"](), tmp_path / "b.zip", config={"f": object()})
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_write_leaves_no_file_and_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "p.zip"
    old = save_policy(randomize(FACTORIES["q_regression"](), seed=1), target)
    old_bytes = old.read_bytes()
    real_writestr = zipfile.ZipFile.writestr

    def failing_writestr(self: zipfile.ZipFile, name: Any, data: Any, *args: Any, **kwargs: Any) -> None:
        if str(getattr(name, "filename", name)) == "weights.pt":
            raise OSError("disk full")
        real_writestr(self, name, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing_writestr)
    with pytest.raises(OSError, match="disk full"):
        save_policy(randomize(FACTORIES["q_regression"](), seed=2), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.zip"]  # no temporary file left
    assert target.read_bytes() == old_bytes


def test_unwritable_target_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    with pytest.raises(OSError):
        save_policy(FACTORIES["q_regression"](), blocker / "p.zip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_dir"]


@pytest.mark.gpu
def test_load_onto_cuda(tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    policy = randomize(FACTORIES["sac"]())
    loaded = load_policy(save_policy(policy, tmp_path / "p.zip"), device="cuda")
    obs = sample_obs(policy.observation_space, 16)
    assert next(loaded.parameters()).device.type == "cuda"
    torch.testing.assert_close(loaded.act(obs.cuda()).cpu(), policy.act(obs), rtol=1e-5, atol=1e-5)

"""Corrupt, truncated, unsupported and hostile files: a clear ValueError naming the file, nothing unpickled."""

from __future__ import annotations

import base64
import json
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from robustrl.policies import QNetworkPolicy, load_policy, read_policy_info, save_policy

OBS = gym.spaces.Box(-1.0, 1.0, (4,))


class Payload:
    """Unpickling this touches a file: the tests check that it never happens."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.sentinel,))


@pytest.fixture
def good(tmp_path: Path) -> Path:
    policy = QNetworkPolicy(OBS, gym.spaces.Discrete(2), hidden=[8])
    return save_policy(policy, tmp_path / "good.zip", env_id="CartPole-v1")


def meta_of(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("policy.json"))


def expect_bad(path: Path, match: str) -> None:
    with pytest.raises(ValueError, match=match) as err:
        load_policy(path)
    assert str(path) in str(err.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.zip"):
        load_policy(tmp_path / "nope.zip")
    expect_bad(tmp_path, "is a directory")


@pytest.mark.parametrize("content", [b"", b"\x00", np.random.default_rng(0).bytes(4096), b"PK\x03\x04garbage" * 10])
def test_random_bytes(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "policy.zip"
    path.write_bytes(content)
    expect_bad(path, "not a zip archive")


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pickle_file_is_refused_unopened(tmp_path: Path, protocol: int) -> None:
    sentinel = tmp_path / "pwned"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"policy": Payload(sentinel)}, protocol=protocol))
    expect_bad(path, "pickle")
    assert not sentinel.exists()


def test_torch_save_checkpoint_is_refused(tmp_path: Path, torch_bytes: Callable[[Any], bytes]) -> None:
    path = tmp_path / "ckpt.pt"
    path.write_bytes(torch_bytes({"q_net.0.weight": torch.zeros(2, 2)}))
    expect_bad(path, r"torch\.save checkpoint")


def test_zip_without_known_members(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    expect_bad(path, "without the members of any known policy format")


@pytest.mark.parametrize("fraction", [0.3, 0.9])
def test_truncated_policy(good: Path, tmp_path: Path, fraction: float) -> None:
    data = good.read_bytes()
    path = tmp_path / "cut.zip"
    path.write_bytes(data[: int(len(data) * fraction)])
    expect_bad(path, "truncated or corrupt")


def test_flipped_bytes_fail_the_crc(good: Path, tmp_path: Path) -> None:
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo("weights.pt")
    middle = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    data[middle] ^= 0xFF
    path = tmp_path / "flipped.zip"
    path.write_bytes(bytes(data))
    expect_bad(path, "corrupt or truncated")


def _edited(good: Path, tmp_path: Path, rewrite_zip: Callable[..., Path], **changes: Any) -> Path:
    meta = meta_of(good)
    meta.update(changes)
    return rewrite_zip(good, tmp_path / "edited.zip", {"policy.json": json.dumps(meta).encode()})


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"kind": "mystery"}, "unknown policy kind 'mystery'"),
        ({"format_version": 99}, "format_version 99 is not supported"),
        ({"format": "other"}, "does not describe"),
        ({"spec": {"hidden": [8], "bogus": 1}}, "cannot build QNetworkPolicy"),
        ({"spec": {"hidden": [9]}}, r"weights do not fit QNetworkPolicy.*q_net\.0\.weight: \(8, 4\) != \(9, 4\)"),
        ({"spec": {"hidden": [1 << 40]}}, "weights do not fit"),  # checked on the meta device, nothing allocated
        ({"spec": [1, 2]}, "'spec' must be an object"),
        ({"observation_space": {"type": "Box", "shape": [5]}}, "do not fit"),
        ({"observation_space": {"type": "Box", "shape": [4], "low": 1, "high": 0}}, "low ≤ high"),
        ({"action_space": {"type": "Discrete", "n": 0}}, "n ≥ 1"),
        ({"env_id": 3}, "env_id must be a string"),
    ],
)
def test_bad_metadata(
    good: Path, tmp_path: Path, rewrite_zip: Callable[..., Path], changes: dict[str, Any], match: str
) -> None:
    expect_bad(_edited(good, tmp_path, rewrite_zip, **changes), match)


def test_metadata_not_json(good: Path, tmp_path: Path, rewrite_zip: Callable[..., Path]) -> None:
    expect_bad(rewrite_zip(good, tmp_path / "e.zip", {"policy.json": b"{not json"}), "not valid JSON")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_policy_info(tmp_path / "e.zip")


def test_missing_weights(good: Path, tmp_path: Path, rewrite_zip: Callable[..., Path]) -> None:
    expect_bad(rewrite_zip(good, tmp_path / "e.zip", {"weights.pt": None}), "no member 'weights.pt'")


def test_pickled_object_in_weights_is_never_run(
    good: Path, tmp_path: Path, rewrite_zip: Callable[..., Path], torch_bytes: Callable[[Any], bytes]
) -> None:
    sentinel = tmp_path / "pwned"
    path = rewrite_zip(good, tmp_path / "e.zip", {"weights.pt": torch_bytes({"w": Payload(sentinel)})})
    expect_bad(path, "not a tensor-only torch file")
    assert not sentinel.exists()


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ([torch.zeros(2)], "not a state dict"),
        ({"q_net.0.weight": torch.full((8, 4), float("nan"))}, "NaN or infinite"),
    ],
)
def test_weights_not_a_clean_state_dict(
    good: Path,
    tmp_path: Path,
    rewrite_zip: Callable[..., Path],
    torch_bytes: Callable[[Any], bytes],
    weights: Any,
    match: str,
) -> None:
    expect_bad(rewrite_zip(good, tmp_path / "e.zip", {"weights.pt": torch_bytes(weights)}), match)


# ------------------------------------------------------------------------------------------------ SB3


class _ImageEnv(gym.Env[np.ndarray, int]):
    observation_space = gym.spaces.Box(0, 255, (36, 36, 1), dtype=np.uint8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
        return np.zeros((36, 36, 1), np.uint8), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        return np.zeros((36, 36, 1), np.uint8), 0.0, True, False, {}


def test_sb3_cnn_policy_is_refused(tmp_path: Path) -> None:
    sb3 = pytest.importorskip("stable_baselines3")
    path = tmp_path / "cnn.zip"
    sb3.PPO("CnnPolicy", _ImageEnv(), n_steps=8, batch_size=8, seed=0).save(path)
    expect_bad(path, "CNN or custom features extractor")


def test_sb3_gsde_is_refused(tmp_path: Path) -> None:
    sb3 = pytest.importorskip("stable_baselines3")
    path = tmp_path / "sde.zip"
    sb3.PPO("MlpPolicy", "Pendulum-v1", use_sde=True, n_steps=8, batch_size=8, seed=0).save(path)
    expect_bad(path, "gSDE")


def test_sb3_unsupported_activation_is_refused(tmp_path: Path) -> None:
    sb3 = pytest.importorskip("stable_baselines3")
    path = tmp_path / "elu.zip"
    kwargs = {"activation_fn": torch.nn.ELU}
    sb3.A2C("MlpPolicy", "CartPole-v1", policy_kwargs=kwargs, seed=0).save(path)
    expect_bad(path, "activation 'ELU' is not supported")


def test_sb3_multidiscrete_is_refused(tmp_path: Path) -> None:
    sb3 = pytest.importorskip("stable_baselines3")
    env = gym.make("CartPole-v1")
    env.action_space = gym.spaces.MultiDiscrete([2, 3])
    path = tmp_path / "md.zip"
    sb3.A2C("MlpPolicy", env, seed=0).save(path)
    expect_bad(path, "only Box and Discrete")


def test_sb3_hostile_or_broken_members(
    sb3_zips: dict[str, Path],
    tmp_path: Path,
    rewrite_zip: Callable[..., Path],
    torch_bytes: Callable[[Any], bytes],
) -> None:
    src = sb3_zips["dqn"]
    sentinel = tmp_path / "pwned"
    expect_bad(
        rewrite_zip(src, tmp_path / "a.zip", {"policy.pth": torch_bytes(Payload(sentinel))}),
        "not a tensor-only torch file",
    )
    assert not sentinel.exists()
    expect_bad(rewrite_zip(src, tmp_path / "b.zip", {"data": b"\x80\x04garbage"}), "not valid JSON")
    with zipfile.ZipFile(src) as zf:
        data = json.loads(zf.read("data"))
    data["observation_space"]["_shape"] = [5]
    data["observation_space"]["low"] = data["observation_space"]["high"] = "[0. 0. 0. 0. 0.]"
    expect_bad(
        rewrite_zip(src, tmp_path / "c.zip", {"data": json.dumps(data).encode()}),
        r"weights do not fit QNetworkPolicy.*\(64, 4\) != \(64, 5\)|\(32, 4\) != \(32, 5\)",
    )
    cut = tmp_path / "d.zip"
    cut.write_bytes(src.read_bytes()[:2000])
    expect_bad(cut, "truncated or corrupt")


def test_sb3_load_never_unpickles(sb3_zips: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    cloudpickle = pytest.importorskip("cloudpickle")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("unpickling or decoding a serialized field was attempted")

    for module, name in [(pickle, "loads"), (pickle, "load"), (cloudpickle, "loads"), (base64, "b64decode")]:
        monkeypatch.setattr(module, name, refuse)
    for path in sb3_zips.values():
        load_policy(path)
        read_policy_info(path)

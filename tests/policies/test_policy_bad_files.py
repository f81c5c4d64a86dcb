"""Corrupt, truncated, unsupported and hostile files: a clear ValueError naming the file, nothing unpickled."""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from robustrl.policies import PolicyFileError, QNetworkPolicy, load_policy, read_policy_info, save_policy

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
    assert isinstance(err.value, PolicyFileError) and err.value.path == path


def deflated_zip(members: dict[str, bytes]) -> bytes:
    """A zip of ``members``, each deflated at the highest level."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def deflated_torch_file(obj: Any) -> bytes:
    """``torch.save(obj)`` with its records deflated (torch's reader inflates them: a zip bomb inside a zip)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    with zipfile.ZipFile(buf) as zf:
        return deflated_zip({name: zf.read(name) for name in zf.namelist()})


def with_declared_size(path: Path, member: str, size: int) -> Path:
    """Rewrite the central directory so that ``member`` declares ``size`` uncompressed bytes."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        pos = zf.start_dir
    while data[pos : pos + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack("<HHH", data[pos + 28 : pos + 34])
        if data[pos + 46 : pos + 46 + name_len].decode() == member:
            data[pos + 24 : pos + 28] = struct.pack("<I", size)
        pos += 46 + name_len + extra_len + comment_len
    path.write_bytes(bytes(data))
    return path


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.zip"):
        load_policy(tmp_path / "nope.zip")
    expect_bad(tmp_path, "is a directory")


def test_pipe_is_refused_unopened(tmp_path: Path) -> None:
    fifo = tmp_path / "policy.zip"
    os.mkfifo(fifo)  # opening it for reading would block until a writer appears
    expect_bad(fifo, "is not a regular file")


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


@pytest.mark.parametrize("cut", [22, 40, 100])
def test_truncated_tail_is_not_mistaken_for_the_embedded_weights(good: Path, tmp_path: Path, cut: int) -> None:
    # Without its own directory, the file still ends with the directory of weights.pt (a torch zip).
    path = tmp_path / "cut.zip"
    path.write_bytes(good.read_bytes()[:-cut])
    expect_bad(path, r"is a truncated or corrupt zip archive: .*embedded at byte")
    with pytest.raises(PolicyFileError, match="truncated or corrupt"):
        read_policy_info(path)


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
        ({"kind": ["q_network"]}, r"unknown policy kind \['q_network'\]"),
        ({"format_version": True}, "format_version True is not supported"),
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


@pytest.mark.parametrize("key", ["observation_space", "action_space"])
def test_spec_cannot_override_the_spaces(
    good: Path, tmp_path: Path, rewrite_zip: Callable[..., Path], key: str
) -> None:
    expect_bad(_edited(good, tmp_path, rewrite_zip, spec={"hidden": [8], key: 5}), rf"'spec' must not set \['{key}'\]")


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"hidden": [8], "activation": "gelu"}, r"activation='gelu' is not one of 'tanh', 'relu'"),
        ({"hidden": "8"}, r"hidden='8' is not a list of a int"),
        ({"hidden": [8] * 65}, r"at most 64 long .*MAX_SPEC_LENGTH"),
        ({"hidden": [8], "num_bins": 1.5}, "num_bins=1.5 is not a int"),
        ({"hidden": [8], "v_min": None}, "v_min=None is not a finite number"),
        ({"hidden": [-3]}, r"cannot build QNetworkPolicy .*RuntimeError"),
    ],
)
def test_bad_constructor_arguments(
    good: Path, tmp_path: Path, rewrite_zip: Callable[..., Path], spec: dict[str, Any], match: str
) -> None:
    expect_bad(_edited(good, tmp_path, rewrite_zip, spec=spec), match)


@pytest.mark.parametrize("depth", [65, 900, 100_000])
def test_deep_json_is_refused(good: Path, tmp_path: Path, rewrite_zip: Callable[..., Path], depth: int) -> None:
    path = rewrite_zip(good, tmp_path / "e.zip", {"policy.json": ("[" * depth + "]" * depth).encode()})
    expect_bad(path, r"nests JSON deeper than 64 levels .*MAX_JSON_DEPTH")
    with pytest.raises(PolicyFileError, match="deeper than 64"):
        read_policy_info(path)
    meta = meta_of(good)
    meta["config"] = {"a": json.loads("[" * 70 + "]" * 70)}
    expect_bad(rewrite_zip(good, tmp_path / "f.zip", {"policy.json": json.dumps(meta).encode()}), "deeper than 64")


def test_json_integer_past_the_digit_limit(good: Path, tmp_path: Path, rewrite_zip: Callable[..., Path]) -> None:
    raw = (json.dumps(meta_of(good))[:-1] + ', "extra": ' + "9" * 5000 + "}").encode()
    expect_bad(rewrite_zip(good, tmp_path / "e.zip", {"policy.json": raw}), "not valid JSON")


@pytest.mark.parametrize(
    ("space", "match"),
    [
        ({"type": "Discrete", "n": 1 << 40}, "at most 2147483648"),
        ({"type": "Discrete", "n": 2, "start": True}, "integer start"),
        ({"type": "Box", "shape": [1 << 21]}, r"at most 1048576 elements .*MAX_SPACE_ELEMENTS"),
        ({"type": "Box", "shape": [1] * 40}, "at most 32"),
    ],
)
def test_oversize_spaces_are_refused(
    good: Path, tmp_path: Path, rewrite_zip: Callable[..., Path], space: dict[str, Any], match: str
) -> None:
    expect_bad(_edited(good, tmp_path, rewrite_zip, observation_space=space), match)


def test_duplicate_members_are_refused(good: Path, tmp_path: Path, torch_bytes: Callable[[Any], bytes]) -> None:
    with zipfile.ZipFile(good) as zin:
        state = torch.load(zin.open("weights.pt"), weights_only=True)
        members = {name: zin.read(name) for name in zin.namelist()}
    path = tmp_path / "dup.zip"
    with zipfile.ZipFile(path, "w") as zout:
        for name, data in members.items():
            zout.writestr(name, data)
        with pytest.warns(UserWarning, match="Duplicate name"):  # zipfile only warns; the last one used to win
            zout.writestr("weights.pt", torch_bytes({k: v + 1 for k, v in state.items()}))
    expect_bad(path, r"has duplicate zip members \['weights.pt'\]")
    with pytest.raises(PolicyFileError, match="duplicate"):
        read_policy_info(path)


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


def _good_state(good: Path) -> dict[str, torch.Tensor]:
    with zipfile.ZipFile(good) as zf:
        return torch.load(zf.open("weights.pt"), weights_only=True)


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ([torch.zeros(2)], "not a state dict"),
        ({"q_net.0.weight": torch.full((8, 4), float("nan"))}, "NaN or infinite"),
        ({"q_net.0.weight": torch.zeros(8, 4).to_sparse()}, "'q_net.0.weight' .*sparse_coo tensor; only dense"),
        ({"q_net.0.weight": torch.full((8, 4), complex(float("nan"), 0))}, "'q_net.0.weight' .* dtype torch.complex64"),
        ({"q_net.0.weight": torch.zeros(8, 4, dtype=torch.int64)}, "'q_net.0.weight' .* dtype torch.int64"),
        ({"q_net.0.weight": torch.zeros(8, 4, dtype=torch.bool)}, "'q_net.0.weight' .* dtype torch.bool"),
        ({"q_net.0.weight": torch.zeros(1).expand(1 << 31)}, r"address more than the limit .*MAX_WEIGHTS_BYTES"),
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


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64, torch.bfloat16])
def test_weights_of_another_float_dtype_are_not_cast(
    good: Path,
    tmp_path: Path,
    rewrite_zip: Callable[..., Path],
    torch_bytes: Callable[[Any], bytes],
    dtype: torch.dtype,
) -> None:
    state = _good_state(good)
    state["q_net.2.bias"] = state["q_net.2.bias"].to(dtype)
    path = rewrite_zip(good, tmp_path / "e.zip", {"weights.pt": torch_bytes(state)})
    expect_bad(path, rf"weight 'q_net.2.bias' has dtype {dtype}, but QNetworkPolicy stores it as torch.float32")


def test_legacy_torch_format_is_refused(
    good: Path, tmp_path: Path, rewrite_zip: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    buf = io.BytesIO()
    torch.save(_good_state(good), buf, _use_new_zipfile_serialization=False)
    path = rewrite_zip(good, tmp_path / "e.zip", {"weights.pt": buf.getvalue()})
    loads: list[Any] = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a))
    expect_bad(path, "not a tensor-only torch file .*legacy")
    assert loads == []


# ------------------------------------------------------------------------------------------ zip bombs


def test_weights_zip_bomb_is_refused_before_torch_reads_it(
    good: Path, tmp_path: Path, rewrite_zip: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = deflated_torch_file({"q_net.0.weight": torch.zeros(4 << 20)})  # 16 MiB of zeros in ~16 KB
    assert len(bomb) < 100_000
    path = rewrite_zip(good, tmp_path / "bomb.zip", {"weights.pt": bomb})
    loads: list[Any] = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a))
    expect_bad(path, r"record 'archive/data/0' of member 'weights.pt' expands .* ratio above 200 .*zip bomb")
    outer = tmp_path / "outer.zip"  # the same one level up: the policy file's own member is the bomb
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(outer, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        zout.writestr("policy.json", zin.read("policy.json"))
        zout.writestr("weights.pt", b"PK\x03\x04" + b"\0" * (4 << 20))
    expect_bad(outer, r"member 'weights.pt' expands from \d+ to 4194308 bytes, a compression ratio above 200")
    assert loads == []


def test_json_zip_bomb_and_declared_sizes(good: Path, tmp_path: Path, rewrite_zip: Callable[..., Path]) -> None:
    with zipfile.ZipFile(good) as zin:
        weights = zin.read("weights.pt")
    meta = meta_of(good)
    meta["config"] = {"padding": " " * (4 << 20)}
    path = tmp_path / "bomb.zip"
    path.write_bytes(deflated_zip({"policy.json": json.dumps(meta).encode(), "weights.pt": weights}))
    expect_bad(path, r"member 'policy.json' expands .* ratio above 200")
    with pytest.raises(PolicyFileError, match="ratio above 200"):
        read_policy_info(path)  # metadata is capped too
    big = with_declared_size(rewrite_zip(good, tmp_path / "big.zip", {}), "weights.pt", 3 << 30)
    expect_bad(big, r"member 'weights.pt' declares 3221225472 bytes, more than the limit of 1073741824 bytes "
                    r"\(robustrl.policies.reading.MAX_WEIGHTS_BYTES\)")  # fmt: skip
    big = with_declared_size(rewrite_zip(good, tmp_path / "big2.zip", {}), "policy.json", 17 << 20)
    with pytest.raises(PolicyFileError, match=r"declares 17825792 bytes, more than the limit of 16777216 bytes"):
        read_policy_info(big)


def test_limits_are_read_when_used(
    good: Path, tmp_path: Path, rewrite_zip: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("robustrl.policies.reading.MAX_WEIGHTS_BYTES", 1000)
    expect_bad(good, r"member 'weights.pt' declares \d+ bytes, more than the limit of 1000 bytes")
    monkeypatch.setattr("robustrl.policies.reading.MAX_JSON_BYTES", 100)
    with pytest.raises(PolicyFileError, match=r"member 'policy.json' declares \d+ bytes, more than the limit of 100"):
        read_policy_info(good)


def test_a_member_bigger_than_declared_is_cut_off(good: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # zipfile stops at the declared size; should a reader not, the streamed count still refuses the member.
    real_open = zipfile.ZipFile.open

    def open_longer(self: zipfile.ZipFile, name: Any, *args: Any, **kwargs: Any) -> Any:
        if str(getattr(name, "filename", name)) == "policy.json":
            return io.BytesIO(real_open(self, name).read() + b" " * 10)
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", open_longer)
    expect_bad(good, r"member 'policy.json' decompresses to more than its declared \d+ bytes")


# ------------------------------------------------------------------------------------------------ SB3


class _ImageEnv(gym.Env[np.ndarray, int]):
    observation_space = gym.spaces.Box(0, 255, (36, 36, 1), dtype=np.uint8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
        return np.zeros((36, 36, 1), np.uint8), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        return np.zeros((36, 36, 1), np.uint8), 0.0, True, False, {}


class _DictEnv(_ImageEnv):
    observation_space = gym.spaces.Dict({"image": _ImageEnv.observation_space, "x": gym.spaces.Box(-1, 1, (2,))})

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[Any, dict[str, Any]]:
        return self.observation_space.sample(), {}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        return self.observation_space.sample(), 0.0, True, False, {}


class _ImageBoxActionEnv(_ImageEnv):
    action_space = gym.spaces.Box(-1.0, 1.0, (1,))  # type: ignore[assignment]


def test_sb3_multi_input_custom_extractors_and_sac_cnn_are_refused(tmp_path: Path) -> None:
    sb3 = pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor

    class TinyExtractor(BaseFeaturesExtractor):
        def __init__(self, observation_space: gym.spaces.Box) -> None:
            super().__init__(observation_space, 3)
            self.linear = torch.nn.Linear(4, 3)

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return self.linear(obs)

    class MyFlatten(FlattenExtractor):  # no weights: only policy_kwargs tells it apart
        pass

    for name, make in [
        ("ppo", lambda: sb3.PPO("MultiInputPolicy", _DictEnv(), n_steps=8, batch_size=8, seed=0)),
        ("dqn", lambda: sb3.DQN("MultiInputPolicy", _DictEnv(), buffer_size=10, seed=0)),
    ]:
        path = tmp_path / f"{name}-dict.zip"
        make().save(path)
        expect_bad(path, r"MultiInputPolicy \(dict observations\) is not supported")
    for name, extractor in [("tiny", TinyExtractor), ("flat", MyFlatten)]:
        path = tmp_path / f"{name}.zip"
        kwargs = {"features_extractor_class": extractor}
        sb3.PPO("MlpPolicy", "CartPole-v1", policy_kwargs=kwargs, n_steps=8, batch_size=8, seed=0).save(path)
        expect_bad(path, "uses a custom features extractor")
    path = tmp_path / "sac-cnn.zip"
    sb3.SAC("CnnPolicy", _ImageBoxActionEnv(), buffer_size=10, seed=0).save(path)
    expect_bad(path, "CnnPolicy is supported for PPO, A2C and DQN only")


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


def test_sb3_weights_are_capped_and_checked(
    sb3_zips: dict[str, Path],
    tmp_path: Path,
    rewrite_zip: Callable[..., Path],
    torch_bytes: Callable[[Any], bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = sb3_zips["dqn"]
    with zipfile.ZipFile(src) as zf:
        state = torch.load(zf.open("policy.pth"), weights_only=True)
    bomb = rewrite_zip(src, tmp_path / "bomb.zip", {"policy.pth": deflated_torch_file({"w": torch.zeros(4 << 20)})})
    loads: list[Any] = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    expect_bad(bomb, "ratio above 200")
    with pytest.raises(PolicyFileError, match="ratio above 200"):
        read_policy_info(bomb)  # reading the info needs the weight names: capped the same way
    assert loads == []
    half = {k: v.half() for k, v in state.items()}
    expect_bad(rewrite_zip(src, tmp_path / "half.zip", {"policy.pth": torch_bytes(half)}), "dtype torch.float16")
    path = tmp_path / "dup.zip"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, zin.read(item.filename))
        with pytest.warns(UserWarning, match="Duplicate name"):
            zout.writestr("data", b"{}")
    expect_bad(path, r"duplicate zip members \['data'\]")

"""Fuzzing: mutated policy files either load correctly or raise a PolicyFileError naming the file.

Each case mutates a valid file (our zip, an SB3 zip, a TorchScript archive) with byte flips, truncation,
member renames and duplicates, lying declared sizes, hostile JSON values (oversize shapes, deep nesting,
wrong types), substituted weights (wrong dtypes, sparse, stride-0 giants) or pickle payloads, then calls
``load_policy`` (``trust_code`` left False) and ``read_policy_info``. Allowed outcomes: a
``PolicyFileError`` whose message names the file, or a load that is correct (equal to the original for
mutations that do not change what the file means). Never another exception, never a file written, never
code run (TorchScript loaders are replaced by functions that record the call), each case under a hard time
limit. Runs are derandomized (reproducible in the default suite); set ``ROBUSTRL_FUZZ_EXAMPLES`` to run
more, randomized, examples.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from fuzzutil import fuzz_settings, time_limit
from robustrl.policies import (
    ActorCriticPolicy,
    Policy,
    PolicyFileError,
    QNetworkPolicy,
    TorchScriptPolicy,
    export_torchscript,
    load_policy,
    read_policy_info,
    save_policy,
)
from robustrl.policies.spaces import spaces_equal

pytestmark = pytest.mark.filterwarnings("ignore")  # zipfile warns on duplicate names; torch.jit is deprecated

FUZZ = fuzz_settings(5000)  # ms per case; a legitimate case takes < 0.1 s
CASE_SECONDS = 30
"""Hard limit per case (a hang fails the test instead of stalling the suite)."""


class Payload:
    """Unpickling this touches a file."""

    def __init__(self, sentinel: str) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.sentinel),))


@dataclass(frozen=True)
class Seed:
    """A valid file to mutate, and what loading it gives."""

    name: str
    data: bytes
    reference: Policy | None
    """The policy the unmutated file loads into (None for TorchScript: never loaded here)."""

    def __repr__(self) -> str:
        return f"Seed({self.name!r}, {len(self.data)} bytes)"


# --------------------------------------------------------------------------------------------- zip edits


def members(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


def build_zip(items: list[tuple[str, bytes]], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names
        with zipfile.ZipFile(buf, "w", compression=compression) as zf:
            for name, content in items:
                zf.writestr(name, content)
    return buf.getvalue()


def torch_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


TRICKY_NAMES = ["x", "../evil", "/abs/path", "data", "policy.pth", "policy.json", "weights.pt", "archive/data.pkl",
                "archive/data/0", "archive/constants.pkl", "archive/code/__torch__.py", "m/code/__torch__.py",
                "m/constants.pkl", "m/extra/robustrl.json"]  # fmt: skip
"""Names a renamed member may take: other formats' members and records, path tricks."""


def is_json_member(name: str) -> bool:
    return name in ("policy.json", "data") or name.endswith("/extra/robustrl.json")


def is_weights_member(name: str) -> bool:
    return name in ("weights.pt", "policy.pth")


NASTY_JSON = st.one_of(
    st.sampled_from([None, True, 0, -1, 1.5, "gelu", "", "inf", "nan", [], {}, [-1], [0], [1 << 40], 1 << 40,
                     (1 << 63) + 1, 10**30, 1e308, {"type": "Box", "shape": [1 << 30]}, {"type": "Discrete", "n": 0},
                     {"type": "Discrete", "n": 1 << 62}, [[1, 2], [3]], ["[1. 2.]"], "[0. 0. 0. 0. 0.]"]),
    st.integers(min_value=-(1 << 70), max_value=1 << 70),
    st.lists(st.integers(min_value=-2, max_value=1 << 33), max_size=70),
    st.text(max_size=20),
)  # fmt: skip


def json_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside parsed JSON (the root included)."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += json_paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:8]):
            out += json_paths(v, (*prefix, i))
    return out


def set_path(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node[path[0]] = set_path(node[path[0]], path[1:], value)
    return node


def declare_size(data: bytes, index: int, size: int, field: int) -> bytes:
    """Rewrite member ``index``'s size in the central directory (``field`` 20: compressed, 24: uncompressed)."""
    buf = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        pos = zf.start_dir
    for i in range(index + 1):
        if buf[pos : pos + 4] != b"PK\x01\x02":
            return data
        name_len, extra_len, comment_len = struct.unpack("<HHH", buf[pos + 28 : pos + 34])
        if i == index:
            buf[pos + field : pos + field + 4] = struct.pack("<I", size)
        pos += 46 + name_len + extra_len + comment_len
    return bytes(buf)


def weights_variant(state: dict[str, torch.Tensor], draw: st.DrawFn) -> Any:
    """A hostile replacement for a state dict."""
    key = draw(st.sampled_from(sorted(state)))
    tensor = state[key]
    kind = draw(st.sampled_from(["dtype", "shape", "stride0", "sparse", "nan", "drop", "extra", "not_dict"]))
    new = dict(state)
    if kind == "dtype":
        dtype = draw(st.sampled_from([torch.float16, torch.float64, torch.bfloat16, torch.int64, torch.int8,
                                      torch.bool, torch.complex64, torch.uint8]))  # fmt: skip
        new[key] = tensor.to(dtype)
    elif kind == "shape":
        new[key] = torch.zeros(tuple(draw(st.lists(st.integers(0, 9), max_size=3))))
    elif kind == "stride0":
        new[key] = torch.zeros(1).expand(draw(st.sampled_from([1 << 20, 1 << 31, 1 << 40])))
    elif kind == "sparse":
        new[key] = tensor.reshape(-1, 1).to_sparse() if tensor.numel() else tensor
    elif kind == "nan":
        new[key] = torch.full_like(tensor, float("nan"))
    elif kind == "drop":
        del new[key]
    elif kind == "extra":
        new["extra.weight"] = torch.zeros(2)
    else:
        return [tensor]
    return new


ZIP_OPS = ["flip", "truncate", "rename", "duplicate", "declared_size", "deflate"]
"""Mutations of a zip's bytes or layout (applied to the file, or to the torch archive inside a weights member)."""
CONTENT_OPS = ["member_flip", "inner_zip", "json_value", "deep_json", "weights", "pickle"]
"""Mutations of a member's content, written back with a valid CRC so that the readers behind the zip see them."""
SEMANTIC_OPS = {"member_flip", "inner_zip", "json_value", "deep_json", "weights"}
"""Mutations that may change what a file means: a load need not equal the original."""


def zip_mutation(draw: st.DrawFn, data: bytes, op: str) -> bytes:
    """One of :data:`ZIP_OPS` applied to the zip ``data``."""
    if op == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            out[draw(st.integers(0, len(out) - 1))] ^= draw(st.integers(1, 255))
        return bytes(out)
    if op == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    items = members(data)
    if op == "deflate":
        return build_zip(items, zipfile.ZIP_DEFLATED)
    index = draw(st.integers(0, len(items) - 1))
    name, content = items[index]
    if op == "rename":
        new_name = draw(st.sampled_from([*(n for n, _ in items), *TRICKY_NAMES, name + "/", name.upper()]))
        items[index] = (new_name, content)
        return build_zip(items)
    if op == "duplicate":
        other = draw(st.sampled_from(items))[1]
        items.insert(draw(st.integers(0, len(items))), (name, draw(st.sampled_from([content, other, b"{}"]))))
        return build_zip(items)
    size = draw(st.sampled_from([0, 1, len(content) - 1, len(content) + 1, 1 << 24, (1 << 32) - 1]))
    return declare_size(data, index, max(size, 0), draw(st.sampled_from([20, 24])))


@st.composite
def mutated(draw: st.DrawFn, seed: Seed, sentinel: str) -> tuple[str, bytes]:
    """``(operation, bytes)``: one mutation of ``seed``'s file."""
    op = draw(st.sampled_from(ZIP_OPS + CONTENT_OPS))
    if op in ZIP_OPS:
        return op, zip_mutation(draw, seed.data, op)
    items = members(seed.data)
    json_items = [i for i, (n, _) in enumerate(items) if is_json_member(n)]
    weight_items = [i for i, (n, _) in enumerate(items) if is_weights_member(n)]
    if op in ("inner_zip", "weights") and not weight_items:
        op = "json_value"  # TorchScript archives have no weights member
    if op == "member_flip":
        index = draw(st.integers(0, len(items) - 1))
        content = bytearray(items[index][1])
        for _ in range(draw(st.integers(1, 4))):
            if content:
                content[draw(st.integers(0, len(content) - 1))] ^= draw(st.integers(1, 255))
        items[index] = (items[index][0], bytes(content))
    elif op == "pickle":
        index = draw(st.integers(0, len(items) - 1))
        payload = Payload(sentinel)
        items[index] = (items[index][0], draw(st.sampled_from([pickle.dumps(payload), torch_bytes({"w": payload}),
                                                                torch_bytes(payload)])))  # fmt: skip
    elif op == "inner_zip":
        index = draw(st.sampled_from(weight_items))
        items[index] = (items[index][0], zip_mutation(draw, items[index][1], draw(st.sampled_from(ZIP_OPS))))
    elif op == "weights":
        index = draw(st.sampled_from(weight_items))
        state = torch.load(io.BytesIO(items[index][1]), weights_only=True)
        items[index] = (items[index][0], torch_bytes(weights_variant(state, draw)))
    else:
        index = draw(st.sampled_from(json_items))
        doc = json.loads(items[index][1])
        where = draw(st.sampled_from(json_paths(doc)))
        if op == "deep_json":  # spliced in as text: the test itself must not recurse
            depth = draw(st.sampled_from([65, 200, 990, 5000, 50_000]))
            text = json.dumps(set_path(doc, where, "@deep@")).replace('"@deep@"', "[" * depth + "]" * depth)
        else:
            text = json.dumps(set_path(doc, where, draw(NASTY_JSON)))
        items[index] = (items[index][0], text.encode())
    return op, build_zip(items)


# ----------------------------------------------------------------------------------------------- checks


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def assert_same_policy(loaded: Any, reference: Any) -> None:
    assert type(loaded) is type(reference)
    assert spaces_equal(loaded.observation_space, reference.observation_space)
    assert spaces_equal(loaded.action_space, reference.action_space)
    ours, theirs = loaded.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(ours[k].dtype == theirs[k].dtype and torch.equal(ours[k], theirs[k]) for k in ours)


def assert_acts(policy: Any) -> None:
    space = policy.observation_space
    space.seed(0)
    obs = torch.as_tensor(np.stack([space.sample() for _ in range(3)]))
    with torch.no_grad():
        action = policy.act(obs)
    assert tuple(action.shape) == (3, *tuple(policy.action_space.shape or ()))


def note(outcome: str) -> None:
    if currently_in_test_context():
        event(outcome)


def check_case(seed: Seed, op: str, data: bytes, sentinels: Path) -> None:
    """Load the mutated file both ways; assert an allowed outcome and no side effect.

    Outcomes are reported as Hypothesis events (``--hypothesis-show-statistics``).
    """
    with tempfile.TemporaryDirectory(prefix="robustrl-fuzz-") as tmp:
        folder = Path(tmp)
        path = folder / "policy.zip"
        path.write_bytes(data)
        before = snapshot(folder)
        jit_calls: list[Any] = []

        def record(*args: Any, **kwargs: Any) -> Any:
            jit_calls.append(args)
            raise AssertionError("a TorchScript module was loaded")

        with (
            mock.patch.object(torch.jit, "load", record),
            mock.patch.object(torch._C, "import_ir_module", record),
            time_limit(CASE_SECONDS),
        ):
            for reader in (load_policy, read_policy_info):
                try:
                    result = reader(path)
                except PolicyFileError as err:
                    assert str(path) in str(err), err
                    note(f"{reader.__name__} {op}: refused")
                    continue
                note(f"{reader.__name__} {op}: read")
                if reader is read_policy_info:
                    continue
                assert not isinstance(result, TorchScriptPolicy), "TorchScript loaded without trust_code"
                assert_acts(result)
                if seed.reference is not None and op not in SEMANTIC_OPS:
                    assert_same_policy(result, seed.reference)
        assert jit_calls == []
        assert snapshot(folder) == before
        assert list(sentinels.iterdir()) == []


# ------------------------------------------------------------------------------------------------ seeds


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder a payload writes into if it is ever run; it must stay empty."""
    return tmp_path_factory.mktemp("fuzz-sentinels")


def _seed(name: str, path: Path) -> Seed:
    return Seed(name, path.read_bytes(), load_policy(path))


@pytest.fixture(scope="module")
def our_seeds(tmp_path_factory: pytest.TempPathFactory) -> list[Seed]:
    root = tmp_path_factory.mktemp("fuzz-ours")
    box = gym.spaces.Box(np.float32(-1.0), np.float32(3.0), (2,))
    q = QNetworkPolicy(gym.spaces.Box(-1.0, 1.0, (4,)), gym.spaces.Discrete(3), hidden=[8], normalize_obs=True)
    ac = ActorCriticPolicy(gym.spaces.Discrete(5), box, pi_hidden=[4], vf_hidden=[3])
    return [
        _seed("q", save_policy(q, root / "q.zip", env_id="CartPole-v1", config={"lr": 1e-3, "net": [8]})),
        _seed("ac", save_policy(ac, root / "ac.zip")),
    ]


@pytest.fixture(scope="module")
def sb3_seeds(sb3_zips: dict[str, Path]) -> list[Seed]:
    return [_seed(name, sb3_zips[name]) for name in ("dqn", "ppo_box", "td3")]


@pytest.fixture(scope="module")
def torchscript_seeds(
    tmp_path_factory: pytest.TempPathFactory, sentinels: Path, hostile_torchscript: Callable[[Path, Path], Path]
) -> list[Seed]:
    root = tmp_path_factory.mktemp("fuzz-ts")
    q = QNetworkPolicy(gym.spaces.Box(-1.0, 1.0, (4,)), gym.spaces.Discrete(3), hidden=[8])
    exported = export_torchscript(q, root / "exported.pt", env_id="CartPole-v1")
    hostile = hostile_torchscript(root / "hostile.pt", sentinels)
    return [Seed("exported", exported.read_bytes(), None), Seed("hostile", hostile.read_bytes(), None)]


def _fuzz(seeds: list[Seed], sentinels: Path, data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(seeds), label="seed")
    op, mutated_bytes = data.draw(mutated(seed, str(sentinels / "unpickled")), label="mutation")
    check_case(seed, op, mutated_bytes, sentinels)


@FUZZ
@given(data=st.data())
def test_fuzz_robustrl_files(our_seeds: list[Seed], sentinels: Path, data: st.DataObject) -> None:
    _fuzz(our_seeds, sentinels, data)


@FUZZ
@given(data=st.data())
def test_fuzz_sb3_files(sb3_seeds: list[Seed], sentinels: Path, data: st.DataObject) -> None:
    _fuzz(sb3_seeds, sentinels, data)


@FUZZ
@given(data=st.data())
def test_fuzz_torchscript_files(torchscript_seeds: list[Seed], sentinels: Path, data: st.DataObject) -> None:
    _fuzz(torchscript_seeds, sentinels, data)


def test_seeds_are_valid(our_seeds: list[Seed], torchscript_seeds: list[Seed], sentinels: Path) -> None:
    # the unmutated files: ours load, TorchScript is refused without trust_code, nothing is written
    for seed in our_seeds:
        check_case(seed, "none", seed.data, sentinels)
        assert seed.reference is not None
    for seed in torchscript_seeds:
        check_case(seed, "none", seed.data, sentinels)

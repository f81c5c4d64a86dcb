"""The restricted pickle reader: plain data reads back equal to pickle's result, nothing else runs.

Two properties, fuzzed with Hypothesis (derandomized, as in ``test_policy_fuzz.py``): for data made of the
values it accepts, :func:`read_pickle_data` agrees with :func:`pickle.loads`; and for mutations of a real
``vec_normalize.pkl`` (byte flips, truncation, spliced payload pickles), :func:`read_vec_normalize` either
reads statistics or raises a ``PolicyFileError`` naming the file, never another exception, and no payload
ever writes its file.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from robustrl.policies import PolicyFileError, read_vec_normalize
from robustrl.policies.pickle_data import PickledArray, read_pickle_data

_EXAMPLES = int(os.environ.get("ROBUSTRL_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=_EXAMPLES or 150,
    derandomize=not _EXAMPLES,
    deadline=5000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(1 << 300), max_value=1 << 300),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
ARRAYS = hnp.arrays(
    st.sampled_from(["bool", "int8", "uint16", "<i4", ">i8", "float16", "<f4", ">f8"]),
    hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
)


def plain_values(binary: bool, sets: bool) -> st.SearchStrategy[Any]:
    """Nested values the reader accepts (bytes only from protocol 3, sets only from protocol 4)."""
    leaves = st.one_of(SCALARS, st.binary(max_size=20)) if binary else SCALARS
    keys = st.one_of(st.text(max_size=8), st.integers(), st.none())

    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        options = [
            st.lists(children, max_size=4),
            st.lists(children, max_size=4).map(tuple),
            st.dictionaries(keys, children, max_size=4),
        ]
        if sets:
            options += [st.frozensets(keys, max_size=4), st.sets(keys, max_size=4)]
        return st.one_of(*options)

    return st.recursive(leaves, extend, max_leaves=20)


def unwrap(value: Any) -> Any:
    """The reader's :class:`PickledArray` as its array, numpy scalars as Python numbers (shallow data only)."""
    if isinstance(value, PickledArray):
        return value.array
    if isinstance(value, np.generic):  # the reader gives numpy scalars as Python numbers
        return value.item()
    if isinstance(value, list | tuple):
        return type(value)(unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    return value


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype.newbyteorder("=") == b.dtype.newbyteorder("=")  # numpy reads big-endian data as native
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=True)
        )
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


PLAIN = {protocol: plain_values(binary=protocol >= 3, sets=protocol >= 4) for protocol in (2, 3, 4, 5)}


@FUZZ
@given(data=st.data())
def test_plain_data_reads_back_as_pickle_gives_it(data: st.DataObject) -> None:
    protocol = data.draw(st.sampled_from(sorted(PLAIN)), label="protocol")
    value = data.draw(PLAIN[protocol], label="value")
    raw = pickle.dumps(value, protocol=protocol)
    assert same(read_pickle_data(raw, Path("x.pkl"), records=(), max_ops=1 << 20), pickle.loads(raw))


@FUZZ
@given(arrays=st.lists(ARRAYS, min_size=1, max_size=3), protocol=st.sampled_from([3, 4, 5]))
def test_numpy_arrays_read_back_equal(arrays: list[np.ndarray], protocol: int) -> None:
    value = {"arrays": arrays, "fortran": [np.asfortranarray(a) for a in arrays], "scalar": arrays[0].dtype.type(1)}
    raw = pickle.dumps(value, protocol=protocol)
    got = unwrap(read_pickle_data(raw, Path("x.pkl"), records=(), max_ops=1 << 20))
    assert same(got, unwrap(pickle.loads(raw)))


@pytest.fixture(scope="module")
def real_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real ``vec_normalize.pkl`` whose spaces hold numpy generators (VecNormalize.save after stepping)."""
    gym = pytest.importorskip("gymnasium")
    vec_env = pytest.importorskip("stable_baselines3.common.vec_env")
    venv = vec_env.VecNormalize(vec_env.DummyVecEnv([lambda: gym.make("Pendulum-v1")]))
    venv.reset()
    venv.action_space.seed(0)
    for _ in range(20):
        venv.step(np.stack([venv.action_space.sample()]))
    path = tmp_path_factory.mktemp("vn") / "vec_normalize.pkl"
    venv.save(str(path))
    assert read_vec_normalize(path).count > 20
    return path.read_bytes()


class Payload:
    """Unpickling this creates the file ``sentinel``."""

    def __init__(self, sentinel: str) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.sentinel),))


@FUZZ
@given(data=st.data())
def test_fuzzed_vec_normalize_files(real_file: bytes, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory(prefix="robustrl-vn-fuzz-") as tmp:
        folder = Path(tmp)
        sentinel = folder / "sentinels" / "pwned"
        sentinel.parent.mkdir()
        payload = pickle.dumps(Payload(str(sentinel)), protocol=data.draw(st.sampled_from([2, 4, 5])))
        out = bytearray(real_file)
        op = data.draw(st.sampled_from(["flip", "truncate", "splice", "replace_tail"]), label="op")
        if op == "flip":
            for _ in range(data.draw(st.integers(1, 6))):
                out[data.draw(st.integers(0, len(out) - 1))] ^= data.draw(st.integers(1, 255))
        elif op == "truncate":
            del out[data.draw(st.integers(0, len(out) - 1)) :]
        elif op == "splice":  # a payload's opcodes (without PROTO/FRAME/STOP) inside the real stream
            at = data.draw(st.integers(2, len(out) - 1))
            out[at:at] = payload[payload.index(b"\x8c") if b"\x8c" in payload else 2 : -1]
        else:
            at = data.draw(st.integers(0, len(out) - 1))
            out[at:] = payload
        path = folder / "vec_normalize.pkl"
        path.write_bytes(bytes(out))
        try:
            stats = read_vec_normalize(path)
        except PolicyFileError as err:
            assert err.path == path and str(path) in str(err)
        else:
            assert stats.clip_obs > 0 and (stats.mean is None or stats.mean.shape == (3,))
        assert not sentinel.exists()

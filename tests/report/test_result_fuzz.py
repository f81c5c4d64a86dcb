"""Fuzzing result files: mutated JSON of every kind either loads correctly or raises the documented error.

``robustrl.results.load_result`` (and so the report, a results database, ``load_evaluation``...) promises one
error family for a bad file: a ``ValueError`` subclass (``ResultFileError``) whose message names the file.
Hypothesis mutates valid files of every kind — byte flips, truncation, values of the wrong type, huge
numbers and long arrays where sizes are declared — and every case must end in that error or in a load whose
result writes back to a loadable file, within a time limit. ``ROBUSTRL_FUZZ_EXAMPLES=N`` runs N random
examples per test instead of the fixed derandomized set.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzutil import fuzz_settings, time_limit
from robustrl.report import load_result as report_load_result
from robustrl.results import ResultFileError, load_result


def _samples() -> Any:
    """``tests/results/result_samples.py``: one hand-made valid result of every kind (``MADE``)."""
    if "result_samples" in sys.modules:
        return sys.modules["result_samples"]
    path = Path(__file__).parents[1] / "results" / "result_samples.py"
    spec = importlib.util.spec_from_file_location("result_samples", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["result_samples"] = module
    spec.loader.exec_module(module)
    return module


pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")  # a known bug

MADE = _samples().MADE
SEEDS: dict[str, dict[str, Any]] = {kind: make().to_dict() for kind, make in MADE.items()}
"""The valid JSON object of every result kind (evaluation, dynamics, certificate, train)."""

FUZZ = fuzz_settings(None)  # bounded by CASE_SECONDS (the first case pays for imports)
CASE_SECONDS = 10
"""Hard limit per case: a hang fails the test instead of stalling the suite."""


def check_outcome(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path`` and load it: the documented error naming the file, or a correct load."""
    path.write_bytes(data)
    with time_limit(CASE_SECONDS):
        try:
            result = load_result(path)
        except ResultFileError as err:  # the documented family: a ValueError naming the file
            assert isinstance(err, ValueError) and str(path) in str(err), err
            return "refused"
        # a correct load is consistent: the result writes back and reads back as itself
        again = result.save(path.with_name("again.json"))
        assert load_result(again) == result
    return "loaded"


# ------------------------------------------------------------------------------------------------ mutations
def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location in a JSON value (keys of objects, indices of arrays), the root first."""
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node[:4]):  # the first few items of an array stand for the rest
            out += _paths(value, (*prefix, i))
    return out


def _replace(doc: Any, where: tuple[Any, ...], value: Any) -> Any:
    if not where:
        return value
    out = copy.deepcopy(doc)
    node = out
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    return out


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
"""Any JSON value, of any type, a few levels deep."""
HUGE = st.sampled_from([2**31, 2**53 + 1, 10**12, 2**63, 10**30, -(10**18), 1e308, -1e308, 1e-320])
"""Numbers where a size, a count or a value is declared."""


@st.composite
def wrong_types(draw: st.DrawFn, doc: dict[str, Any]) -> bytes:
    """One location replaced by a value of any type."""
    where = draw(st.sampled_from(_paths(doc)))
    return json.dumps(_replace(doc, where, draw(JSON_VALUES))).encode()


@st.composite
def huge_sizes(draw: st.DrawFn, doc: dict[str, Any]) -> bytes:
    """A number replaced by a huge one, or an array replaced by a long one (sizes that are declared)."""
    where = draw(st.sampled_from(_paths(doc)))
    if draw(st.booleans()):
        value: Any = draw(HUGE)
    else:
        value = [draw(HUGE) if draw(st.booleans()) else 1.0] * draw(st.sampled_from([1000, 100_000]))
    return json.dumps(_replace(doc, where, value)).encode()


@st.composite
def byte_edits(draw: st.DrawFn, doc: dict[str, Any]) -> bytes:
    """A few bytes flipped, or the file cut short."""
    data = bytearray(json.dumps(doc, indent=2).encode())
    if draw(st.booleans()):
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, str, bytes]:
    kind = draw(st.sampled_from(sorted(SEEDS)))
    op, strategy = draw(st.sampled_from([("types", wrong_types), ("huge", huge_sizes), ("bytes", byte_edits)]))
    return kind, op, draw(strategy(SEEDS[kind]))


# ------------------------------------------------------------------------------------------------ tests
def test_every_seed_loads(tmp_path: Path) -> None:
    for kind, doc in SEEDS.items():
        assert check_outcome(tmp_path / f"{kind}.json", json.dumps(doc).encode()) == "loaded", kind


@FUZZ
@given(case=cases())
def test_mutated_result_files_load_or_raise_the_documented_error(case: tuple[str, str, bytes], tmp_path: Path) -> None:
    kind, op, data = case
    check_outcome(tmp_path / f"{kind}-{op}.json", data)


def _nested(depth: int) -> bytes:
    return (b"[" * depth) + (b"]" * depth)


@pytest.mark.parametrize("depth", [10_000, 1_000_000])
def test_deeply_nested_json_is_refused_by_the_report_loader(tmp_path: Path, depth: int) -> None:
    doc = dict(SEEDS["evaluation"])
    text = json.dumps({**doc, "config": None}).replace('"config": null', '"config": ' + _nested(depth).decode())
    for data in (_nested(depth), text.encode()):
        path = tmp_path / "deep.json"
        path.write_bytes(data)
        with time_limit(CASE_SECONDS), pytest.raises(ResultFileError, match=r"deep\.json.*nested too deeply"):
            report_load_result(path)


# Loader bugs the fuzzer found (read_json, load_result, integer arrays): each is a regression test now.
def _seed_with(seed: str = "evaluation", /, **fields: Any) -> bytes:
    return json.dumps({**SEEDS[seed], **fields}).encode()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_nested(100_000), id="deep-nesting"),
        pytest.param(_seed_with(kind=["evaluation"]), id="unhashable-kind"),
        pytest.param(_seed_with(seed=None).replace(b'"seed": null', b'"seed": ' + b"1" * 5000), id="5000-digits"),
        pytest.param(_seed_with("certificate", lengths=[1e300] * 4), id="int-array-1e300"),
        pytest.param(_seed_with("certificate", returns=[True] * 4), id="bool-in-float-array"),
    ],
)  # fmt: skip
def test_loader_bugs_found_by_fuzzing_stay_fixed(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(data)
    try:
        load_result(path)
    except ResultFileError as err:
        assert str(path) in str(err), err
    else:
        raise AssertionError("the file loaded")

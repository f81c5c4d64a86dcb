"""robustrl.results: round trips, load_result, refusals, long-format rows, old files, no recomputation."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from result_samples import (
    MADE,
    certificate,
    certificates,
    dynamics,
    dynamics_results,
    evaluation,
    evaluations,
    train,
    trains,
)

from robustrl.results import (
    RESULT_TYPES,
    Certificate,
    DynamicsResult,
    EvaluationResult,
    Result,
    ResultFileError,
    ResultRow,
    TrainResult,
    load_result,
)

DATA = Path(__file__).parent / "data"


@pytest.fixture(params=sorted(MADE))
def made(request):
    """One hand-made result of each kind."""
    return MADE[request.param]()


FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _json(result):
    """What a file holds: strict JSON (no NaN/inf literals)."""
    return json.loads(json.dumps(result.to_dict(), allow_nan=False))


# ------------------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("strategy", [evaluations(), dynamics_results(), certificates(), trains()])
@FAST
@given(data=st.data())
def test_to_dict_from_dict_round_trip_through_strict_json(strategy, data):
    result = data.draw(strategy)
    raw = _json(result)
    assert raw["kind"] == result.kind and raw["schema_version"] == result.schema_version
    back = type(result).from_dict(raw)
    assert back == result and back.to_dict() == result.to_dict()
    for f in ("returns", "lengths", "budgets", "bounds", "mean"):
        if isinstance(getattr(result, f, None), np.ndarray):
            assert (
                getattr(back, f).dtype == getattr(result, f).dtype
                and getattr(back, f).shape == getattr(result, f).shape
            )


def test_every_kind_saves_and_loads_by_its_kind(made, tmp_path):
    path = made.save(tmp_path / f"{made.kind}.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{made.kind}.json"]  # no temporary left
    back = load_result(path)
    assert type(back) is type(made) and back == made
    assert json.loads(path.read_text()) == made.to_dict()
    assert RESULT_TYPES[made.kind] is type(made)


def test_arrays_come_back_with_their_dtype_and_shape(tmp_path):
    ev = load_result(evaluation().save(tmp_path / "e.json"))
    assert isinstance(ev, EvaluationResult)
    assert ev.threats[0].returns.dtype == np.float64 and ev.threats[0].lengths.dtype == np.int64
    assert ev.threats[0].budgets == (0.0, 0.1) and isinstance(ev.clean.ci, tuple)
    dy = load_result(dynamics().save(tmp_path / "d.json"))
    assert isinstance(dy, DynamicsResult) and dy.returns.shape == (2, 3, 1) and dy.lengths.dtype == np.int64
    ce = load_result(certificate().save(tmp_path / "c.json"))
    assert isinstance(ce, Certificate) and ce.bounds[-1] == -np.inf and ce.quantile_bounds is not None


def test_non_finite_floats_are_written_as_strings():
    cert = certificate().to_dict()
    assert cert["bounds"] == [480.0, 300.0, "-inf"] and cert["quantile_bounds"][-1] == "-inf"
    tr = train().to_dict()
    assert tr["last_train_metrics"]["train/kl"] == "nan"
    json.dumps(cert, allow_nan=False)
    json.dumps(tr, allow_nan=False)


def test_train_result_keeps_policy_and_algo_config_in_memory_only():
    tr = train()
    data = tr.to_dict()
    assert "policy" not in data and "algo_config" not in data
    assert data["final_return"] == 480.0 and data["history"][1]["noisy_mean_return"] == 470.0
    back = TrainResult.from_dict(data)
    assert back.policy is None and back.algo_config is None and back == tr and back.final_return == 480.0
    assert math.isnan(TrainResult("E", "ppo", 0, 0, 0.0, 0.0, False).final_return)
    assert "trained 200 steps" in str(tr) and "target reached" in str(tr)


# ------------------------------------------------------------------------------------------ refusals
def test_unknown_kind_and_newer_schema_are_refused_naming_the_file(tmp_path):
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"kind": "sweep", "schema_version": 1}))
    with pytest.raises(
        ResultFileError, match=r"x\.json.*unknown kind 'sweep'.*evaluation, dynamics, certificate, train"
    ):
        load_result(p)
    for made in (evaluation(), dynamics(), certificate(), train()):
        data = {**made.to_dict(), "schema_version": made.schema_version + 1}
        p.write_text(json.dumps(data))
        with pytest.raises(ResultFileError, match=rf"x\.json' has schema_version {made.schema_version + 1}, newer"):
            load_result(p)
    p.write_text(json.dumps(evaluation().to_dict()))
    with pytest.raises(ResultFileError, match="its kind is 'evaluation'"):
        load_result(p, kinds=("certificate",))
    with pytest.raises(ResultFileError, match="kind 'evaluation', not 'certificate'"):
        Certificate.from_dict(evaluation().to_dict())
    p.write_text("[]")
    with pytest.raises(ResultFileError, match="expected a JSON object"):
        load_result(p)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_result(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.pop("env_id"), r"missing field 'env_id'"),
        (lambda d: d.__setitem__("episodes", "two"), r"field 'episodes' must be a whole number"),
        (lambda d: d["clean"].__setitem__("ci", [3.0, 1.0]), r"\(at clean\).*low <= high"),
        (lambda d: d["clean"].__setitem__("returns", [1.0, "nan"]), r"'clean\.returns' contains NaN"),
        (
            lambda d: d["threats"][0].__setitem__("lengths", [[1.5, 2], [1, 2]]),
            r"'threats\[0\]\.lengths' must hold whole",
        ),
        (lambda d: d["threats"][1].__setitem__("kind", "dynamics"), r"'threats\[1\]\.kind' must be one of"),
        (lambda d: d["threats"][0].__setitem__("returns", [1.0, 2.0]), r"'threats\[0\]\.returns' must be 2-D"),
        (lambda d: d["strongest"][0].__setitem__("threat", ["clean"]), r"strongest\[0\].*one threat per budget"),
        (lambda d: d.__setitem__("confidence", 1.5), r"'confidence' must be in \(0, 1\)"),
        (lambda d: d["threats"].append(d["threats"][0]), "labels repeat"),
    ],
)
def test_malformed_evaluations_are_refused_naming_the_field(edit, match):
    data = evaluation().to_dict()
    edit(data)
    with pytest.raises(ResultFileError, match=match):
        EvaluationResult.from_dict(data, source="e.json")


def test_malformed_dynamics_certificates_and_shapes_are_refused():
    d = dynamics().to_dict()
    d["mean"] = [[1.0, 2.0, 3.0]]
    with pytest.raises(ResultFileError, match=r"'mean' has shape \(1, 3\), expected \(2, 3\)"):
        DynamicsResult.from_dict(d)
    d = dynamics().to_dict()
    d["shape"] = [3, 2]
    with pytest.raises(ResultFileError, match=r"field 'shape' is \[3, 2\]"):
        DynamicsResult.from_dict(d)
    c = certificate().to_dict()
    c["bounds"] = [1.0]
    with pytest.raises(ResultFileError, match="'bounds' has 1 values for 3 budgets"):
        Certificate.from_dict(c)
    c = certificate().to_dict()
    c["budgets"] = [0.0, "inf", 1.0]
    with pytest.raises(ResultFileError, match="'budgets' contains inf"):
        Certificate.from_dict(c)


# ------------------------------------------------------------------------------------------ old files
def test_schema_version_1_files_still_load(tmp_path):
    ev = load_result(DATA / "evaluation_v1.json")
    assert isinstance(ev, EvaluationResult)
    assert ev.confidence == 0.9 and ev.smoothing_sigma == 0.2  # from version 1's config
    assert ev.clean.mean == 490.0 and ev.curve("pgd").mean.tolist() == [490.0, 20.0]
    dy = load_result(DATA / "dynamics_v1.json")
    assert isinstance(dy, DynamicsResult)
    assert dy.threat == "pgd[steps=3]" and dy.budget == 0.05 and dy.shape == (2, 3) and dy.lengths.dtype == np.int64
    ce = load_result(DATA / "certificate_v1.json")  # version 1 wrote "version", not "schema_version"
    assert isinstance(ce, Certificate)
    assert ce.policy == "ppo.zip" and ce.seed == 3 and ce.bounds[-1] == -np.inf and ce.quantile == 0.5
    # an old file read and saved again is a current file, with the same numbers
    again = load_result(ce.save(tmp_path / "c.json"))
    assert again == ce and json.loads((tmp_path / "c.json").read_text())["schema_version"] == 2
    shutil.copy(DATA / "evaluation_v1.json", tmp_path / "e.json")
    assert load_result(tmp_path / "e.json") == ev


# ------------------------------------------------------------------------------------------ rows
def test_evaluation_rows():
    rows = evaluation().to_rows()
    assert all(isinstance(r, ResultRow) for r in rows)
    assert rows[0] == ResultRow("CartPole-v1", "pi.zip", "clean", 0.0, 7, "return_mean", 15.0, 14.0, 16.0)
    table = {(r.threat, r.budget): (r.value, r.ci_low, r.ci_high) for r in rows}
    assert len(rows) == 1 + 2 * 2 + 2 * 2  # clean, two threats × two budgets, two strongest curves × two budgets
    assert table[("pgd", 0.1)] == (5.0, 4.0, 6.0)
    assert table[("action_replace", 0.5)] == (8.0, 7.0, 9.0)
    assert table[("strongest:obs/linf", 0.1)] == (5.0, 4.0, 6.0)
    assert {r.metric for r in rows} == {"return_mean"} and {r.task for r in rows} == {"CartPole-v1"}


def test_dynamics_certificate_and_train_rows():
    rows = dynamics().to_rows()
    assert len(rows) == 6 and {r.budget for r in rows} == {0.05}
    assert rows[0].threat == "pgd[steps=3]+dynamics[length=0.5,force_mag=5.0]" and rows[0].value == 500.0
    assert rows[-1].threat.endswith("dynamics[length=1.0,force_mag=20.0]") and rows[-1].ci_low == 9.0
    rows = certificate().to_rows()
    assert rows[0] == ResultRow("CartPole-v1", "pi.zip", "clean", 0.0, 3, "return_mean", 487.5, 475.0, 500.0)
    cert = [(r.budget, r.value) for r in rows if r.metric == "certified_return"]
    assert cert == [(0.0, 480.0), (0.5, 300.0), (10.0, -math.inf)]
    assert [r.value for r in rows if r.metric == "certified_quantile_0.5"] == [480.0, 200.0, -math.inf]
    assert all(r.threat == "any:obs/episode_l2" and r.ci_low is None and r.ci_high is None for r in rows[1:])
    rows = train().to_rows()
    assert [(r.metric, r.value) for r in rows] == [
        ("return_mean", 480.0),
        ("return_std", 5.0),
        ("length_mean", 480.0),
        ("noisy_return_mean", 470.0),
    ]
    assert {r.policy for r in rows} == {"ppo"} and TrainResult("E", "ppo", 0, 0, 0.0, 0.0, False).to_rows() == []


# ------------------------------------------------------------------------------------------ no recomputation
def test_saving_does_not_recompute_or_change_the_result(made, tmp_path, monkeypatch):
    import robustrl.stats

    def refuse(*args, **kwargs):
        raise AssertionError("saving a result must not recompute statistics")

    monkeypatch.setattr(robustrl.stats, "bootstrap_ci", refuse)
    before = made.to_dict()
    back = load_result(made.save(tmp_path / "r.json"))
    assert made.to_dict() == before and back == made
    if isinstance(made, EvaluationResult):
        assert back.clean.ci == made.clean.ci == (14.0, 16.0)  # stored, not bootstrapped again


def test_a_new_kind_written_as_a_plain_frozen_dataclass_compares_by_value():
    @dataclass(frozen=True)
    class AttackTime(Result):
        kind: ClassVar[str] = "attack_time"
        schema_version: ClassVar[int] = 1
        env_id: str
        seconds: np.ndarray

        def to_rows(self) -> list[ResultRow]:
            return [ResultRow(self.env_id, "pi", "pgd", 0.0, 0, "seconds", float(self.seconds.mean()), None, None)]

    a = AttackTime("CartPole-v1", np.array([1.0, 3.0]))
    back = AttackTime.from_dict(_json(a))
    assert back == a and back != AttackTime("CartPole-v1", np.array([1.0, 4.0]))
    assert back.seconds.dtype == np.float64 and back.to_rows()[0].value == 2.0

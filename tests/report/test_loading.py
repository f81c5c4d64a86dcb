import json

import numpy as np
import pytest

from robustrl.evaluate import load_evaluation
from robustrl.report import Loaded, ResultFileError, load_result, load_results
from robustrl.report.loading import nominal_params
from robustrl.results import Certificate, DynamicsResult, EvaluationResult


def test_evaluation_file_loads_with_the_producers_numbers(real_files):
    rec = load_result(real_files["evaluation"])
    raw = json.loads(real_files["evaluation"].read_text())
    res = load_evaluation(real_files["evaluation"])
    assert isinstance(rec, Loaded) and rec.path == real_files["evaluation"] and rec.runs == 1
    ev = rec.result
    assert isinstance(ev, EvaluationResult) and ev.kind == "evaluation" and ev == res
    assert ev.env_id == "CartPole-v1" and ev.seed == 0 and ev.confidence == 0.95
    assert ev.clean.mean == raw["clean"]["mean"] and list(ev.clean.ci) == raw["clean"]["ci"]
    assert ev.clean.returns.size == 8
    assert [c.label for c in ev.threats] == ["gaussian", "uniform"]
    for c, theirs in zip(ev.threats, raw["threats"]):
        assert c.threat_model == "obs/linf"
        assert list(c.budgets) == theirs["budgets"] and c.mean.tolist() == theirs["mean"]
        assert c.returns.shape == (3, 8)
    (strong,) = ev.strongest
    assert strong.threat[0] == "clean"
    # the strongest curve is the minimum over the threats at each budget
    np.testing.assert_array_equal(strong.mean, np.minimum(ev.threats[0].mean, ev.threats[1].mean))


def test_dynamics_file_loads_with_nominal_from_the_env(real_files):
    rec = load_result(real_files["dynamics"])
    dy = rec.result
    assert isinstance(dy, DynamicsResult)
    assert tuple(a.name for a in dy.params) == ("masspole", "length")
    assert dy.params[0].values == (0.05, 0.1, 0.5)
    assert dy.mean.shape == (3, 4) and (dy.ci_low <= dy.ci_high).all()
    assert nominal_params(dy.env_id, ("masspole", "length")) == (0.1, 0.5)  # CartPole's defaults
    assert dy.episodes == 4


def test_certificate_file_loads(real_files):
    rec = load_result(real_files["certificate"])
    raw = json.loads(real_files["certificate"].read_text())
    ce = rec.result
    assert isinstance(ce, Certificate)
    np.testing.assert_array_equal(ce.budgets, [0.0, 0.1, 0.2, 0.4])
    np.testing.assert_array_equal(ce.bounds, raw["bounds"])
    assert ce.sigma == 0.1 and ce.n == 100 and ce.floor == 0.0 and ce.method == "dkw"
    assert ce.clean_return == raw["clean_return"]
    assert ce.quantile == 0.5 and ce.quantile_bounds is not None and ce.quantile_bounds.size == 4
    assert ce.returns.size == 100 and ce.seed == 0 and ce.policy == "ActorCriticPolicy"
    assert (np.diff(ce.bounds) <= 1e-12).all()


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_result(tmp_path / "nope.json")


def test_not_json_is_named(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text("{not json")
    with pytest.raises(ResultFileError, match=r"broken\.json.*not valid JSON"):
        load_result(p)
    p.write_text("[1, 2]")
    with pytest.raises(ResultFileError, match=r"broken\.json.*expected a JSON object"):
        load_result(p)


def test_unknown_kind_is_named(tmp_path):
    p = tmp_path / "policy.json"
    p.write_text(json.dumps({"kind": "policy"}))
    with pytest.raises(
        ResultFileError, match=r"policy\.json.*unknown kind 'policy'.*evaluation, dynamics, certificate"
    ):
        load_result(p)
    p.write_text(json.dumps({"no": "kind"}))
    with pytest.raises(ResultFileError, match="unknown kind None"):
        load_result(p)
    p.write_text(json.dumps({"kind": "train", "schema_version": 1}))
    with pytest.raises(ResultFileError, match="its kind is 'train'"):  # a known kind the report does not show
        load_result(p)


def test_malformed_fields_are_named(real_files, tmp_path):
    data = json.loads(real_files["evaluation"].read_text())
    p = tmp_path / "e.json"

    bad = json.loads(json.dumps(data))
    del bad["clean"]
    p.write_text(json.dumps(bad))
    with pytest.raises(ResultFileError, match=r"e\.json.*missing field 'clean'"):
        load_result(p)

    bad = json.loads(json.dumps(data))
    bad["threats"][1]["mean"] = bad["threats"][1]["mean"][:2]
    p.write_text(json.dumps(bad))
    with pytest.raises(ResultFileError, match=r"threats\[1\].*'mean' has 2 values for 3 budgets"):
        load_result(p)

    bad = json.loads(json.dumps(data))
    bad["strongest"][0]["budgets"] = [0.0, 0.3, 0.1]
    p.write_text(json.dumps(bad))
    with pytest.raises(ResultFileError, match="increasing"):
        load_result(p)

    bad = json.loads(json.dumps(data))
    bad["threats"][0]["ci_low"][1] = "nan"
    p.write_text(json.dumps(bad))
    with pytest.raises(ResultFileError, match=r"'threats\[0\]\.ci_low' contains NaN"):
        load_result(p)

    cert = json.loads(real_files["certificate"].read_text())
    cert["bounds"] = ["x"] * 4
    p.write_text(json.dumps(cert))
    with pytest.raises(ResultFileError, match="'bounds' must be an array of numbers"):
        load_result(p)


def test_non_finite_bounds_round_trip_as_strings(real_files, tmp_path):
    cert = json.loads(real_files["certificate"].read_text())
    cert["quantile_bounds"] = ["-inf", 1.0, 0.0, "-inf"]  # how write_json stores -inf
    p = tmp_path / "c.json"
    p.write_text(json.dumps(cert))
    ce = load_result(p).result
    assert isinstance(ce, Certificate) and ce.quantile_bounds is not None
    assert ce.quantile_bounds[0] == -np.inf and ce.quantile_bounds[1] == 1.0
    assert ce.to_dict()["quantile_bounds"] == ["-inf", 1.0, 0.0, "-inf"]


def test_load_results_needs_files():
    with pytest.raises(ValueError, match="no result files"):
        load_results([])

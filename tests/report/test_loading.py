import json

import numpy as np
import pytest

from robustrl.evaluate import load_evaluation
from robustrl.report import CertificateRecord, EvaluationRecord, ResultFileError, load_result, load_results
from robustrl.report.loading import DynamicsRecord


def test_evaluation_file_loads_with_the_producers_numbers(real_files):
    rec = load_result(real_files["evaluation"])
    raw = json.loads(real_files["evaluation"].read_text())
    res = load_evaluation(real_files["evaluation"])
    assert isinstance(rec, EvaluationRecord) and rec.kind == "evaluation"
    assert rec.env_id == "CartPole-v1" and rec.seed == 0 and rec.confidence == 0.95
    assert rec.clean.point == raw["clean"]["mean"]
    assert (rec.clean.low, rec.clean.high) == tuple(raw["clean"]["ci"])
    assert rec.clean_episodes == 8
    assert [c.name for c in rec.curves] == ["gaussian", "uniform"]
    for mine, theirs in zip(rec.curves, res.threats):
        assert mine.unit == theirs.threat_model == "obs/linf"
        np.testing.assert_array_equal(mine.budgets, theirs.budgets)
        np.testing.assert_array_equal(mine.mean, theirs.mean)
        np.testing.assert_array_equal(mine.low, theirs.ci_low)
        np.testing.assert_array_equal(mine.high, theirs.ci_high)
        np.testing.assert_array_equal(mine.episodes, [8, 8, 8])
    (strong,) = rec.strongest
    np.testing.assert_array_equal(strong.mean, res.strongest[0].mean)
    assert strong.which == res.strongest[0].threat and strong.which[0] == "clean"
    # the strongest curve is the minimum over the threats at each budget
    np.testing.assert_array_equal(strong.mean, np.minimum(rec.curves[0].mean, rec.curves[1].mean))


def test_dynamics_file_loads_with_nominal_from_the_env(real_files):
    rec = load_result(real_files["dynamics"])
    assert isinstance(rec, DynamicsRecord)
    g = rec.grid
    assert g.params == ("masspole", "length")
    np.testing.assert_array_equal(g.values[0], [0.05, 0.1, 0.5])
    assert g.mean.shape == (3, 4) and g.low is not None and (g.low <= g.high).all()
    assert g.nominal == (0.1, 0.5)  # CartPole's defaults
    assert rec.episodes == 4


def test_certificate_file_loads(real_files):
    rec = load_result(real_files["certificate"])
    raw = json.loads(real_files["certificate"].read_text())
    assert isinstance(rec, CertificateRecord)
    np.testing.assert_array_equal(rec.budgets, [0.0, 0.1, 0.2, 0.4])
    np.testing.assert_array_equal(rec.bounds, raw["bounds"])
    assert rec.sigma == 0.1 and rec.n == 100 and rec.floor == 0.0 and rec.method == "dkw"
    assert rec.clean is not None and rec.clean.point == raw["clean_return"]
    assert rec.quantile == 0.5 and rec.quantile_bounds is not None and rec.quantile_bounds.size == 4
    assert rec.returns.size == 100 and rec.seed == 0
    assert (np.diff(rec.bounds) <= 1e-12).all()


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
    rec = load_result(p)
    assert rec.quantile_bounds is not None
    assert rec.quantile_bounds[0] == -np.inf and rec.quantile_bounds[1] == 1.0


def test_load_results_needs_files():
    with pytest.raises(ValueError, match="no result files"):
        load_results([])

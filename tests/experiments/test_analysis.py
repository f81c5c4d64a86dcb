"""Aggregates of stored rows: the right [runs × tasks] matrices, the same intervals as robustrl.stats, formats."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest

from robustrl.experiments.analysis import derived_rows, score_matrices, summarize
from robustrl.experiments.store import StoredRow
from robustrl.results import ResultRow
from robustrl.stats import aggregate_all, iqm, probability_of_improvement

NAN = math.nan


def stored(method: str, env: str, seed: int, threat: str, budget: float, value: float, *, stage: str = "evaluate",
           metric: str = "return_mean", **labels: object) -> StoredRow:  # fmt: skip
    row = ResultRow(env, "p.zip", threat, budget, seed, metric, value, NAN, NAN)
    labels = {"method": method, "env": env, "seed": seed, **labels}
    return StoredRow(f"{method}-{env}-{seed}-{stage}", stage, labels, row)


# scores[method][env] = one value per seed
SCORES = {
    "a": {"E1": [10.0, 20.0, 30.0, 40.0], "E2": [1.0, 2.0, 3.0, 4.0]},
    "b": {"E1": [15.0, 25.0, 35.0, 45.0], "E2": [0.5, 1.5, 2.5, 3.5]},
}


def rows() -> list[StoredRow]:
    out = []
    for m, envs in SCORES.items():
        for env, values in envs.items():
            for seed, v in enumerate(values):
                out += [stored(m, env, seed, "clean", 0.0, v), stored(m, env, seed, "pgd", 0.0, v),
                        stored(m, env, seed, "pgd", 0.1, v / 2)]  # fmt: skip
    return out


def test_matrices_are_seeds_by_envs_per_method_and_condition():
    mats = score_matrices(rows())
    assert [(m.group, m.condition.threat, m.condition.budget) for m in mats] == [
        (("a",), "clean", 0.0), (("b",), "clean", 0.0), (("a",), "pgd", 0.1), (("b",), "pgd", 0.1),
    ]  # a threat at budget 0 is the clean run: kept once, as clean
    a_clean = mats[0]
    assert a_clean.tasks == ("E1", "E2")
    np.testing.assert_array_equal(a_clean.scores, np.array([SCORES["a"]["E1"], SCORES["a"]["E2"]]).T)
    np.testing.assert_array_equal(mats[2].scores, a_clean.scores / 2)


def test_aggregates_equal_robustrl_stats_on_the_same_matrix():
    summary = summarize(rows(), reps=500, seed=3)
    agg = summary.aggregates[0]
    matrix = np.array([SCORES["a"]["E1"], SCORES["a"]["E2"]]).T
    expect = aggregate_all(matrix, ("iqm", "median", "mean"), reps=500, seed=3)
    assert (agg.iqm, agg.median, agg.mean) == (expect["iqm"], expect["median"], expect["mean"])
    assert agg.iqm.point == pytest.approx(float(iqm(matrix)))
    assert agg.runs == 4 and agg.tasks == ("E1", "E2")
    poi = summary.improvements[0]
    assert (poi.x, poi.y, poi.condition.threat) == (("a",), ("b",), "clean")
    b = np.array([SCORES["b"]["E1"], SCORES["b"]["E2"]]).T
    assert poi.probability == probability_of_improvement(matrix, b, reps=500, seed=3)


def test_group_by_env_makes_one_task_per_group_and_method_a_condition():
    summary = summarize(rows(), group_by=("env",), reps=200)
    first = summary.aggregates[0]
    assert first.group == ("E1",) and first.tasks == ("E1",) and first.runs == 4
    assert dict(first.condition.extra) == {"method": "a"}  # method varies within a group: never pooled
    assert {a.group for a in summary.aggregates} == {("E1",), ("E2",)}


def test_unequal_runs_are_cut_and_non_finite_values_dropped():
    data = [stored("a", "E1", s, "clean", 0.0, v) for s, v in enumerate([1.0, 2.0, 3.0])]
    data += [stored("a", "E2", s, "clean", 0.0, v) for s, v in enumerate([5.0, -math.inf])]
    (m,) = score_matrices(data)
    np.testing.assert_array_equal(m.scores, [[1.0, 5.0]])
    assert m.dropped == 3  # one -inf, two runs of E1 beyond E2's single finite run


def test_minmax_normalisation_and_its_bounds():
    data = [stored("a", "E1", s, "clean", 0.0, v) for s, v in enumerate([0.0, 50.0])]
    (m,) = score_matrices(data, normalize="minmax", score_bounds={"E1": (0.0, 100.0)})
    np.testing.assert_array_equal(m.scores[:, 0], [0.0, 0.5])
    with pytest.raises(ValueError, match="needs score bounds for \\['E1'\\]"):
        score_matrices(data, normalize="minmax")


def test_reference_normalisation_uses_the_references_mean_per_condition_and_task():
    # IWOCS's convention: nominal = 0, reference method = 1, each under the same condition and on the same task
    worst = {"td3": [100.0, 200.0], "m2td3": [300.0, 500.0], "dr": [250.0, 400.0]}
    data = [stored(m, "E1", s, "uncertainty[set]", 0.0, v, metric="worst_case")
            for m, vs in worst.items() for s, v in enumerate(vs)]  # fmt: skip
    data += [stored(m, "E1", s, "uncertainty[set]", 0.0, v * 2, metric="average")
             for m, vs in worst.items() for s, v in enumerate(vs)]  # fmt: skip
    data += [stored("td3", "E1", 0, "clean", 0.0, 7.0)]  # m2td3 has no clean row: that condition is left out
    summary = summarize(data, metrics=(), normalize="reference", references=("td3", "m2td3"), reps=50)
    mats = {(m.group[0], m.condition.metric): m.scores[:, 0].tolist()
            for m in score_matrices(data, metrics=(), normalize="reference", references=("td3", "m2td3"))}
    # worst case: r0 = 150, r1 = 400; average: r0 = 300, r1 = 800
    assert mats[("td3", "worst_case")] == pytest.approx([-0.2, 0.2])
    assert mats[("m2td3", "worst_case")] == pytest.approx([0.6, 1.4])
    assert mats[("dr", "worst_case")] == pytest.approx([0.4, 1.0])
    assert mats[("dr", "average")] == pytest.approx([0.4, 1.0])
    assert ("td3", "return_mean") not in mats
    assert "td3 = 0, m2td3 = 1; 1 conditions without two distinct reference scores left out" in str(summary)
    assert "uncertainty[set] worst_case" in str(summary)  # budget-free: no "@ 0"
    with pytest.raises(ValueError, match=r"references \['sac'\] are not groups"):
        score_matrices(data, normalize="reference", references=("td3", "sac"))
    with pytest.raises(ValueError, match="two different reference groups"):
        score_matrices(data, normalize="reference", references=("td3",))


def test_dynamics_grids_get_worst_and_average_rows():
    data = [stored("a", "E1", 0, f"dynamics[length={x}]", 0.0, v, stage="dynamics")
            for x, v in ((0.5, 100.0), (1.0, 40.0), (1.5, 10.0))]  # fmt: skip
    extra = derived_rows(data)[3:]
    assert [(r.row.threat, r.row.value) for r in extra] == [("dynamics:worst", 10.0), ("dynamics:average", 50.0)]


def test_bad_options_name_the_input():
    with pytest.raises(ValueError, match="cannot group by \\['colour'\\]"):
        summarize(rows(), group_by=("colour",))
    with pytest.raises(ValueError, match="unknown stages \\['eval'\\]"):
        summarize(rows(), stages=("eval",))
    with pytest.raises(ValueError, match="baseline 'c' is not a group"):
        summarize(rows(), baseline="c")


def test_formats_table_json_csv():
    summary = summarize(rows(), reps=100, baseline="b", cells={"done": 16})
    table = str(summary)
    assert "| method | condition | runs × tasks | IQM | median | mean |" in table
    assert "| a | evaluate clean return_mean" in table
    assert "| evaluate pgd @ 0.1 return_mean | a | b |" in table  # compared with the baseline
    data = json.loads(str(summarize(rows(), reps=100, fmt="json")))
    assert data["group_by"] == ["method"] and len(data["aggregates"]) == 4
    assert data["aggregates"][0]["iqm"]["point"] == summary.aggregates[0].iqm.point
    lines = list(csv.DictReader(io.StringIO(str(summarize(rows(), reps=100, fmt="csv")))))
    assert len(lines) == 4 and lines[0]["method"] == "a" and lines[0]["tasks"] == "E1 E2"
    assert float(lines[0]["iqm"]) == summary.aggregates[0].iqm.point


def test_wide_format_is_a_group_by_condition_grid_of_the_chosen_statistic():
    summary = summarize(rows(), reps=100, baseline="b", fmt="wide", statistic="median", digits=1)
    lines = str(summary).splitlines()
    assert "median with 95 % stratified-bootstrap CIs" in lines[1] and "stage evaluate, metric return_mean" in lines[1]
    assert lines[3] == "| method | clean | pgd @ 0.1 |"  # shared stage and metric left out of the names
    by_key = {(a.group, a.condition.threat): a.median for a in summary.aggregates}
    a_clean, a_pgd = by_key[(("a",), "clean")], by_key[(("a",), "pgd")]
    assert lines[5] == f"| a | {a_clean.point:.1f} [{a_clean.low:.1f}, {a_clean.high:.1f}] | " \
                       f"{a_pgd.point:.1f} [{a_pgd.low:.1f}, {a_pgd.high:.1f}] |"
    assert lines[6].startswith("| b | ")
    # probabilities of improvement against the baseline, one row per pair, at least two decimals
    (pair,) = [ln for ln in lines if ln.startswith("| a > b |")]
    p = next(i.probability for i in summary.improvements if i.condition.threat == "clean")
    assert pair.split(" | ")[1] == f"{p.point:.2f} [{p.low:.2f}, {p.high:.2f}]"
    assert summary.to_wide(statistic="iqm").splitlines()[1].startswith("iqm with")


@pytest.mark.parametrize(("changes", "match"), [({"statistic": "max"}, "statistic"), ({"digits": 11}, "digits"),
                                                ({"digits": True}, "digits")])
def test_wide_format_options_are_checked(changes, match):
    with pytest.raises(ValueError, match=match):
        summarize(rows(), reps=10, **changes)

"""Uncertainty sets (exact bounds, grids, nominals), the uncertainty result and its normalised score."""

from __future__ import annotations

import numpy as np
import pytest

from robustrl.envs.uncertainty import UNCERTAINTY_SETS, uncertainty_set
from robustrl.results import load_result
from robustrl.results.dynamics import GridAxis
from robustrl.results.uncertainty import UncertaintyResult, normalised_score


def test_m2td3_bounds_are_the_papers() -> None:
    hopper = uncertainty_set("hopper-2d-v1")
    assert hopper.env_id == "Hopper-v5" and hopper.names == ("world_friction", "torso_mass")
    assert hopper.low.tolist() == [0.1, 0.1] and hopper.high.tolist() == [3.0, 3.0]
    cheetah = uncertainty_set("halfcheetah-2d-v1")
    assert cheetah.names == ("world_friction", "torso_mass") and cheetah.high.tolist() == [4.0, 7.0]
    assert uncertainty_set("hopper-3d-v1").axes[2].high == 4.0
    assert uncertainty_set("walker2d-3d-v1").high.tolist() == [4.0, 5.0, 6.0]
    assert uncertainty_set("invertedpendulum-2d-v1").low.tolist() == [1.0, 1.0]
    assert hopper.force.bodies == ("foot",) and hopper.force.bound == 3.0 and hopper.force.verified


def test_grid_nominal_and_unit_maps_are_exact() -> None:
    s = uncertainty_set("cartpole-2d-v1")
    grid = s.grid(10)
    assert grid["length"][0] == 0.25 and grid["length"][-1] == 2.5 and len(grid["masspole"]) == 10
    assert grid["length"][1] == pytest.approx(0.5)
    assert s.nominal == {"length": 0.5, "masspole": 0.1}
    assert s.from_unit(np.array([0.0, 1.0])) == {"length": 0.25, "masspole": 1.0}
    assert s.to_unit({"length": 1.375, "masspole": 0.525}).tolist() == pytest.approx([0.5, 0.5])
    # Hopper's nominal torso (3.67 kg) lies outside its M2TD3 box, as in the paper
    assert uncertainty_set("hopper-2d-v1").nominal["torso_mass"] > 3.0
    with pytest.raises(ValueError, match="points per dimension"):
        s.grid(1)


def test_every_set_is_named_by_env_and_dimension() -> None:
    for name, s in UNCERTAINTY_SETS.items():
        assert name == s.name and name.endswith(f"-{len(s.axes)}d-v{s.version}")
        assert all(a.low < a.high for a in s.axes)


def test_mujoco_sets_name_real_parameters() -> None:
    from robustrl.envs.physical import mujoco_param_defaults

    for name in ("hopper-3d-v1", "halfcheetah-3d-v1"):
        s = uncertainty_set(name)
        defaults = mujoco_param_defaults(s.env_id)
        for a in s.axes:
            assert defaults[a.name] == pytest.approx(a.nominal)


def test_unknown_set_names_close_ones() -> None:
    with pytest.raises(ValueError, match="did you mean.*hopper-2d-v1"):
        uncertainty_set("hoper-2d-v1")


def test_normalised_score_is_exact() -> None:
    assert normalised_score(150.0, 100.0, 200.0) == 0.5
    assert normalised_score(100.0, 100.0, 200.0) == 0.0
    assert normalised_score(300.0, 200.0, 100.0) == 1.0  # |ref1 − ref0|: a worse ref1 still scales by the gap
    with pytest.raises(ValueError, match="different finite references"):
        normalised_score(1.0, 2.0, 2.0)


def _result(tmp_path: object = None) -> UncertaintyResult:
    mean = np.array([[10.0, 4.0, 8.0], [6.0, 12.0, 2.0]])
    refs = np.stack([mean - 2.0, mean * 0 + 20.0])
    return UncertaintyResult(
        env_id="CartPole-v1", policy="p", uncertainty_set="cartpole-2d-v1", set_version=1,
        params=(GridAxis("length", (0.25, 2.5)), GridAxis("masspole", (0.05, 0.5, 1.0))), episodes=1, seed=0,
        returns=mean[..., None], mean=mean, references=("r0", "r1"), reference_mean=refs,
    )  # fmt: skip


def test_result_statistics_and_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = _result()
    assert r.worst_case == 2.0 and r.average == pytest.approx(7.0)
    assert r.worst_point == {"length": 2.5, "masspole": 1.0}
    assert r.normalised("worst_case") == pytest.approx((2.0 - 0.0) / 20.0)
    assert r.normalised("average") == pytest.approx((7.0 - 5.0) / 15.0)
    metrics = {row.metric: row.value for row in r.to_rows()}
    assert metrics["worst_case"] == 2.0 and set(metrics) == {
        "worst_case", "average", "normalised_worst_case", "normalised_average"}
    r.save(tmp_path / "u.json")
    back = load_result(tmp_path / "u.json")
    assert isinstance(back, UncertaintyResult) and back.worst_point == r.worst_point
    with pytest.raises(ValueError, match="reference_mean"):
        UncertaintyResult(**{**{f: getattr(r, f) for f in ("env_id", "policy", "uncertainty_set", "set_version",
                                                            "params", "episodes", "seed", "returns", "mean",
                                                            "references")}, "reference_mean": np.zeros((2, 3))})

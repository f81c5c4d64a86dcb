import pathlib
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from matplotlib.colors import to_hex

from robustrl.report import figures as F
from robustrl.report.figures import Estimate, Series


def labelled_lines(ax):
    return {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}


def legend_labels(fig):
    return [t.get_text() for leg in fig.legends for t in leg.get_texts()]


B = np.array([0.0, 0.05, 0.1, 0.2])
PGD = Series(B, np.array([500.0, 400, 200, 50]), np.array([490.0, 380, 180, 40]), np.array([500.0, 420, 220, 60]))
NOISE = Series(B[:3], np.array([500.0, 495, 480]), np.array([495.0, 490, 470]), np.array([500.0, 500, 490]))


def test_return_vs_budget_draws_each_series_with_its_data():
    fig = F.return_vs_budget(
        {"pgd": PGD, "gaussian": NOISE},
        strongest=Series(B, PGD.y),
        clean=Estimate(500.0, 495.0, 500.0),
        xlabel="ε (ℓ∞ per step)",
        title="CartPole-v1",
    )
    (ax,) = fig.axes
    lines = labelled_lines(ax)
    assert set(lines) == {"pgd", "gaussian", "strongest attack", "clean"}
    np.testing.assert_array_equal(lines["pgd"].get_xdata(), B)
    np.testing.assert_array_equal(lines["pgd"].get_ydata(), PGD.y)
    np.testing.assert_array_equal(lines["gaussian"].get_xdata(), B[:3])
    np.testing.assert_array_equal(lines["gaussian"].get_ydata(), NOISE.y)
    np.testing.assert_array_equal(lines["clean"].get_ydata(), [500.0, 500.0])
    # the strongest curve is the thickest, black and drawn last (on top)
    strong = lines["strongest attack"]
    assert to_hex(strong.get_color()) == F.STRONGEST_COLOR
    assert strong.get_linewidth() > max(ln.get_linewidth() for k, ln in lines.items() if k != "strongest attack")
    assert ax.get_lines()[-1] is strong
    # one CI band per curve that has one (strongest has none here); the clean CI is a horizontal span
    assert len(ax.collections) == 2
    (span,) = ax.patches
    assert span.get_path().transformed(span.get_patch_transform()).vertices[:, 1].min() == pytest.approx(495.0)
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(40.0) and band[:, 1].max() == pytest.approx(500.0)
    assert ax.get_xlabel() == "ε (ℓ∞ per step)" and ax.get_ylabel() == "return"
    assert ax.get_title(loc="left") == "CartPole-v1"
    lo, hi = ax.get_ylim()
    assert lo <= 40.0 and hi >= 500.0
    assert set(legend_labels(fig)) == set(lines)
    anchored = F.return_vs_budget({"gaussian": NOISE}, ymin=0.0)
    assert anchored.axes[0].get_ylim()[0] == 0.0


def test_return_vs_budget_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        F.return_vs_budget({})
    with pytest.raises(ValueError, match="curve 'pgd': y has 3 values"):
        F.return_vs_budget({"pgd": Series(B, np.ones(3))})
    with pytest.raises(ValueError, match="NaN"):
        F.return_vs_budget({"pgd": Series(B, np.array([1.0, np.nan, 1, 1]))})
    with pytest.raises(ValueError, match="both low and high"):
        F.make_series(B, B, low=B)


def test_certificate_vs_attack_keeps_finite_bounds_and_shades_the_certified_region():
    budgets = [0.0, 0.5, 1.0, 2.0]
    bound = [480.0, 300.0, 150.0, -np.inf]
    attacked = Series(np.array([0.0, 1.0, 2.0]), np.array([495.0, 420.0, 300.0]))
    fig = F.certificate_vs_attack(budgets, bound, attacked=attacked, clean=Estimate(495, 480, 500), floor=0.0)
    (ax,) = fig.axes
    lines = labelled_lines(ax)
    assert set(lines) == {"certified lower bound", "strongest attack (empirical)", "clean (smoothed)"}
    np.testing.assert_array_equal(lines["certified lower bound"].get_xdata(), [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(lines["certified lower bound"].get_ydata(), [480.0, 300.0, 150.0])
    np.testing.assert_array_equal(lines["strongest attack (empirical)"].get_ydata(), attacked.y)
    region = [c for c in ax.collections if c.get_label() == "certified region"]
    assert len(region) == 1
    verts = region[0].get_paths()[0].vertices
    assert verts[:, 1].min() == pytest.approx(0.0) and verts[:, 1].max() == pytest.approx(480.0)
    assert ax.get_xlabel() == "total ℓ2 budget B"
    assert "certified lower bound" in legend_labels(fig)


def test_certificate_vs_attack_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        F.certificate_vs_attack([0, 1], [1.0])


def test_dynamics_shift_2d_heatmap_holds_the_grid():
    mean = np.arange(12.0).reshape(3, 4)
    fig = F.dynamics_shift(["masspole", "length"], [[0.05, 0.1, 0.2], [0.25, 0.5, 1, 2]], mean, nominal=[0.1, 0.5])
    heat = [ax for ax in fig.axes if ax.images]
    assert len(heat) == 1
    ax = heat[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), mean)
    assert ax.get_xlabel() == "length" and ax.get_ylabel() == "masspole"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.25", "0.5", "1", "2"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.05", "0.1", "0.2"]
    assert len(ax.texts) == 12 and ax.texts[5].get_text() == "5"
    (box,) = ax.patches  # nominal (masspole 0.1, length 0.5) is row 1, column 1
    assert box.get_xy() == (0.5, 0.5)
    assert ax.images[0].get_clim() == (0.0, 11.0)


def test_dynamics_shift_1d_is_a_line_with_band_and_nominal():
    fig = F.dynamics_shift(
        ["gravity"], [[5.0, 9.8, 15.0]], [480.0, 495.0, 300.0], low=[470, 490, 280], high=[490, 500, 320], nominal=[9.8]
    )
    (ax,) = fig.axes
    lines = labelled_lines(ax)
    np.testing.assert_array_equal(lines["mean return"].get_xdata(), [5.0, 9.8, 15.0])
    np.testing.assert_array_equal(lines["mean return"].get_ydata(), [480.0, 495.0, 300.0])
    np.testing.assert_array_equal(lines["nominal"].get_xdata(), [9.8, 9.8])
    assert len(ax.collections) == 1 and ax.get_xlabel() == "gravity"
    assert not ax.images
    anchored = F.dynamics_shift(["gravity"], [[5.0, 9.8]], [480.0, 495.0], vmin=0.0)
    lo, hi = anchored.axes[0].get_ylim()
    assert lo == 0.0 and hi >= 495.0


def test_dynamics_shift_3d_small_multiples_share_one_colour_scale():
    mean = np.arange(2 * 3 * 5, dtype=float).reshape(2, 3, 5)
    fig = F.dynamics_shift(["a", "b", "c"], [[1, 2], [1, 2, 3], [0, 1, 2, 3, 4]], mean, nominal=[1, 2, 3])
    heat = [ax for ax in fig.axes if ax.images]
    assert len(heat) == 5  # one per value of c (the sixth cell of the 2×4 layout is hidden)
    for k, ax in enumerate(heat):
        np.testing.assert_array_equal(ax.images[0].get_array(), mean[:, :, k])
        assert ax.images[0].get_clim() == (0.0, 29.0)
        assert ax.get_title() == f"c = {k}"
    assert [len(ax.patches) for ax in heat] == [0, 0, 0, 1, 0]  # nominal c = 3 boxed only there


def test_dynamics_shift_rejects_bad_grids():
    with pytest.raises(ValueError, match="1 to 3"):
        F.dynamics_shift(["a", "b", "c", "d"], [[1]] * 4, np.zeros((1, 1, 1, 1)))
    with pytest.raises(ValueError, match=r"expected \(2, 3\)"):
        F.dynamics_shift(["a", "b"], [[1, 2], [1, 2, 3]], np.zeros((3, 2)))


def test_aggregate_intervals_one_panel_per_metric_one_bar_per_condition():
    est = {
        "IQM": {"clean": Estimate(1.0, 0.9, 1.05), "ε = 0.1": Estimate(0.5, 0.3, 0.7)},
        "Median": {"clean": Estimate(1.0, 0.95, 1.0), "ε = 0.1": Estimate(0.4, 0.2, 0.6)},
    }
    fig = F.aggregate_intervals(est)
    assert [ax.get_title() for ax in fig.axes] == ["IQM", "Median"]
    ax = fig.axes[0]
    bars = ax.patches
    assert len(bars) == 2
    assert bars[0].get_x() == pytest.approx(0.9) and bars[0].get_width() == pytest.approx(0.15)
    assert bars[1].get_x() == pytest.approx(0.3) and bars[1].get_width() == pytest.approx(0.4)
    ticks = dict(zip(ax.get_yticks(), [t.get_text() for t in ax.get_yticklabels()]))
    assert ticks == {1.0: "clean", 0.0: "ε = 0.1"}  # first condition on top
    assert bars[0].get_y() + bars[0].get_height() / 2 == pytest.approx(1.0)
    with pytest.raises(ValueError, match="expected"):
        F.aggregate_intervals({"IQM": {"a": Estimate(1, 0, 2)}, "Mean": {"b": Estimate(1, 0, 2)}})


def test_performance_profiles_one_line_per_condition():
    taus = np.linspace(0, 1.2, 13)
    clean = Series(taus, (taus < 1).astype(float), np.zeros(13), np.ones(13))
    fig = F.performance_profiles({"clean": clean, "ε = 0.1": Series(taus, np.clip(1 - taus, 0, 1))})
    (ax,) = fig.axes
    lines = labelled_lines(ax)
    assert set(lines) == {"clean", "ε = 0.1"}
    np.testing.assert_array_equal(lines["clean"].get_ydata(), clean.y)
    assert ax.get_ylim() == (0.0, 1.02)
    assert len(ax.collections) == 1  # only "clean" has a band


def test_save_figure_writes_png_and_svg(tmp_path):
    fig = F.return_vs_budget({"pgd": PGD})
    files = F.save_figure(fig, tmp_path / "out", "attacks")
    assert files.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    root = ET.fromstring(files.svg.read_bytes())
    assert root.tag.endswith("svg")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["attacks.png", "attacks.svg"]
    # deterministic SVG (no date, fixed ids): the same figure renders to the same bytes
    assert F.render_figure(F.return_vs_budget({"pgd": PGD}))[1] == files.svg.read_bytes()


def test_save_figure_failure_leaves_no_file(tmp_path, monkeypatch):
    fig = F.return_vs_budget({"pgd": PGD})
    (tmp_path / "attacks.png").write_bytes(b"old")
    real = pathlib.Path.write_bytes
    calls = []

    def second_write_fails(self, data):
        calls.append(self)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", second_write_fails)
    with pytest.raises(OSError, match="disk full"):
        F.save_figure(fig, tmp_path, "attacks")
    monkeypatch.undo()
    # the PNG had been written to its temporary name: neither file moved into place, no temp left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attacks.png"]
    assert (tmp_path / "attacks.png").read_bytes() == b"old"
    with pytest.raises(ValueError, match="plain file name"):
        F.save_figure(fig, tmp_path, "../x")

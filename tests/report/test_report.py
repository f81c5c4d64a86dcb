import json

import numpy as np
import pytest

from robustrl import stats
from robustrl.cli import main
from robustrl.report import ReportConfig, load_results, report
from robustrl.report.formatting import FigureSink
from robustrl.report.html import external_references
from robustrl.report.scores import aggregate_section, parse_score_bounds, pool_runs, score_table


def test_report_of_real_results(real_files, tmp_path):
    files = [real_files["evaluation"], real_files["dynamics"], real_files["certificate"]]
    res = report(files, tmp_path / "out", title="CartPole robustness", seed=0)
    assert res.index == tmp_path / "out" / "index.html"
    assert res.sections == ("summary", "attacks", "certificates", "shifts", "numbers", "provenance")
    # one attack figure (one threat model), the certificate, the dynamics heatmap; PNG + SVG each
    assert len(res.figures) == 3
    for f in res.figures:
        assert f.png.read_bytes()[:4] == b"\x89PNG" and b"<svg" in f.svg.read_bytes()[:2000]
    page = res.index.read_text()
    assert external_references(page) == []
    assert page.count("<img ") == 3 and page.count('src="data:image/svg+xml;base64,') == 3
    ev = json.loads(real_files["evaluation"].read_text())
    ce = json.loads(real_files["certificate"].read_text())
    # headline numbers: clean return, the strongest attack at each budget, the certified bound
    assert f'<div class="value">{ev["clean"]["mean"]:,.0f}</div>' in page
    for b, m in zip(ev["strongest"][0]["budgets"][1:], ev["strongest"][0]["mean"][1:]):
        assert f'Worst case ε∞ = {b:g}</div><div class="value">{m:,.0f}' in page
    assert 'Certified B = 0.4</div><div class="value">≥ ' in page
    assert f"{ce['bounds'][1]:.1f}" in page or f"{ce['bounds'][1]:,.0f}" in page or f"{ce['bounds'][1]:.3g}" in page
    # configs, versions and seeds
    assert "Configs, versions and seeds" in page and ev["provenance"]["torch"] in page
    assert page.count("<details>") >= 6  # config + provenance of each file, plus the full threat table
    assert not list((tmp_path / "out").glob(".report-*"))


def test_missing_or_bad_file_writes_nothing(real_files, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError, match="missing.json"):
        report([real_files["evaluation"], tmp_path / "missing.json"], out)
    assert not out.exists()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "sweep"}))
    out.mkdir()
    (out / "index.html").write_text("old")
    with pytest.raises(ValueError, match=r"bad\.json.*unknown kind 'sweep'"):
        report([real_files["evaluation"], bad], out)
    assert sorted(p.name for p in out.iterdir()) == ["index.html"]
    assert (out / "index.html").read_text() == "old"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="afile.*a folder is expected"):
        report([real_files["evaluation"]], tmp_path / "afile")


def test_failed_write_keeps_the_old_page(real_files, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "index.html").write_text("old")
    import os

    real_replace = os.replace

    def fail_on_page(src, dst):
        if str(dst).endswith("index.html"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", fail_on_page)
    with pytest.raises(OSError, match="disk full"):
        report([real_files["evaluation"]], out)
    monkeypatch.undo()
    assert (out / "index.html").read_text() == "old"
    assert not list(out.glob(".report-*"))


def _runs(make_eval, tmp_path):
    a1 = make_eval(tmp_path / "a1.json", "TaskA-v0", 500.0, {"pgd": [250.0, 50.0], "noise": [480.0, 400.0]}, seed=1)
    a2 = make_eval(tmp_path / "a2.json", "TaskA-v0", 400.0, {"pgd": [100.0, 0.0], "noise": [380.0, 300.0]}, seed=2)
    b1 = make_eval(tmp_path / "b1.json", "TaskB-v0", 100.0, {"pgd": [100.0, 20.0]}, seed=1)
    b2 = make_eval(tmp_path / "b2.json", "TaskB-v0", 100.0, {"pgd": [50.0, 10.0]}, seed=2)
    return [a1, a2, b1, b2]


def test_score_table_normalises_by_the_task_clean_return(make_eval, tmp_path):
    evals = load_results(_runs(make_eval, tmp_path))
    table = score_table(evals)
    assert table is not None and table.tasks == ("TaskA-v0", "TaskB-v0") and table.runs == 2
    assert list(table.scores) == ["clean", "ε∞ = 0.1", "ε∞ = 0.2"]
    # task A's clean reference is (500 + 400) / 2 = 450, task B's is 100
    np.testing.assert_allclose(table.scores["clean"], [[500 / 450, 1.0], [400 / 450, 1.0]])
    np.testing.assert_allclose(table.scores["ε∞ = 0.1"], [[250 / 450, 1.0], [100 / 450, 0.5]])
    np.testing.assert_allclose(table.scores["ε∞ = 0.2"], [[50 / 450, 0.2], [0.0, 0.1]])

    mm = score_table(evals, normalize="minmax", score_bounds={"TaskA-v0": (0, 500), "TaskB-v0": (0, 200)})
    assert mm is not None
    np.testing.assert_allclose(mm.scores["ε∞ = 0.1"], [[0.5, 0.5], [0.2, 0.25]])
    raw = score_table(evals, normalize="none")
    assert raw is not None
    np.testing.assert_allclose(raw.scores["clean"], [[500, 100], [400, 100]])


def test_score_table_errors_and_edge_cases(make_eval, tmp_path):
    neg = load_results([
        make_eval(tmp_path / "n1.json", "Pendulum-v1", -150.0, {"pgd": [-400.0, -900.0]}),
        make_eval(tmp_path / "n2.json", "Pendulum-v1", -170.0, {"pgd": [-500.0, -1000.0]}),
    ])  # fmt: skip
    with pytest.raises(ValueError, match="Pendulum-v1.*minmax"):
        score_table(neg)
    with pytest.raises(ValueError, match=r"score bounds for task\(s\) \['Pendulum-v1'\]"):
        score_table(neg, normalize="minmax")
    t = score_table(neg, normalize="minmax", score_bounds=parse_score_bounds(["Pendulum-v1=-1600:0"]))
    assert t is not None
    np.testing.assert_allclose(t.scores["clean"][:, 0], [1 - 150 / 1600, 1 - 170 / 1600])
    assert score_table(neg[:1]) is None  # one run of one task: nothing to aggregate
    for bad in ("Pendulum-v1", "x=1", "x=2:1", "=0:1", "x=a:b"):
        with pytest.raises(ValueError, match="ENV_ID=MIN:MAX"):
            parse_score_bounds([bad])
    unequal = score_table(load_results(_runs(make_eval, tmp_path)[:3]))
    assert unequal is not None and unequal.runs == 1
    assert "different numbers of runs" in unequal.notes[0]


def test_aggregate_section_over_runs_and_tasks(make_eval, tmp_path):
    files = _runs(make_eval, tmp_path)
    res = report(files, tmp_path / "out", seed=5, reps=500)
    assert "aggregate" in res.sections
    page = res.index.read_text()
    assert "Aggregate over 2 runs × 2 tasks" in page
    # the IQM shown is robustrl.stats' on the normalised matrix, with the same seed and resamples
    table = score_table(load_results(files))
    assert table is not None
    iv = stats.aggregate(table.scores["ε∞ = 0.1"], "iqm", reps=500, seed=_seed(5, 1))
    assert iv.point == pytest.approx((0.5 + 250 / 450) / 2)  # middle two of 100/450, 0.5, 250/450, 1
    assert f'IQM ε∞ = 0.1</div><div class="value">{iv.point:.3f}</div>' in page
    assert f"CI [{iv.low:.3f}, {iv.high:.3f}]" in page
    assert external_references(page) == []
    names = {f.png.name for f in res.figures}
    assert {"aggregate-intervals.png", "performance-profiles.png"} <= names


def _seed(seed, k):
    from robustrl.common.seeding import derive_seed

    return derive_seed(seed, k)


def test_same_seed_same_aggregate(make_eval, tmp_path, monkeypatch):
    table = score_table(load_results(_runs(make_eval, tmp_path)))
    assert table is not None
    one = aggregate_section(table, FigureSink(), seed=3, reps=300)
    two = aggregate_section(table, FigureSink(), seed=3, reps=300)
    assert one == two
    # the report's seed reaches every bootstrap, one derived seed per condition
    seen = []
    real = stats.aggregate_all

    def spy(scores, metrics, **kw):
        seen.append(kw["seed"])
        return real(scores, metrics, **kw)

    monkeypatch.setattr(stats, "aggregate_all", spy)
    aggregate_section(table, FigureSink(), seed=4, reps=300)
    assert seen == [_seed(4, k) for k in range(3)]


def test_cli_report(real_files, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["report", str(real_files["evaluation"]), str(real_files["certificate"]), "--out", str(out)])
    assert code == 0
    assert "report written to" in capsys.readouterr().out
    assert (out / "index.html").is_file()
    code = main(["report", str(tmp_path / "absent.json"), "--out", str(out)])
    assert code == 1
    assert "absent.json" in capsys.readouterr().err


def test_report_config_defaults():
    cfg = ReportConfig(results=())
    assert cfg.seed == 0 and cfg.normalize == "clean" and str(cfg.out) == "report"


def test_pool_runs_means_over_runs(make_eval, tmp_path):
    a1, a2 = load_results(_runs(make_eval, tmp_path)[:2])
    loaded = pool_runs([a1, a2], reps=500, seed=0)
    pooled = loaded.result
    assert loaded.runs == 2 and loaded.path.name == "2 runs" and pooled.env_id == "TaskA-v0"
    assert pooled.clean.mean == pytest.approx(450.0)
    low, high = pooled.clean.ci
    assert low <= 450.0 <= high and 400.0 <= low
    pgd = pooled.curve("pgd")
    np.testing.assert_allclose(pgd.mean, [450.0, 175.0, 25.0])
    assert pgd.returns.shape == (3, 8) and pooled.episodes == 8  # the two runs' episodes side by side
    (strong,) = pooled.strongest
    np.testing.assert_allclose(strong.mean, [450.0, 175.0, 25.0])
    assert strong.threat == ("clean", "pgd", "pgd")
    assert (strong.ci_low <= strong.mean).all() and (strong.mean <= strong.ci_high).all()
    with pytest.raises(ValueError, match="one task"):
        pool_runs(load_results(_runs(make_eval, tmp_path)[1:3]))


def test_report_shows_each_task_once_when_pooled(make_eval, tmp_path):
    res = report(_runs(make_eval, tmp_path), tmp_path / "out", reps=300)
    page = res.index.read_text()
    assert "<h3>TaskA-v0 · 2 runs</h3>" in page and "<h3>TaskB-v0 · 2 runs</h3>" in page
    attack_figs = [f for f in res.figures if "attacks" in f.png.name]
    assert len(attack_figs) == 2  # one per task, not one per run
    assert "Each of the 2 runs" in page and "a1.json" in page


def test_escaped_text_that_looks_like_an_attribute_is_not_an_external_reference(make_eval, tmp_path):
    path = make_eval(tmp_path / "e.json", "TaskA-v0", 500.0, {"pgd": [250.0, 50.0]})
    data = json.loads(path.read_text())
    data["policy"] = "data=v2/policy.zip"  # e.g. a run folder named data=v2
    data["config"] = {"note": "src=a.png href=b.html data=c url(d.css) @import e.css <script>"}
    path.write_text(json.dumps(data))
    page = report([path], tmp_path / "out", reps=200).index.read_text()
    assert "data=v2/policy.zip" in page and "&lt;script&gt;" in page
    assert external_references(page) == []
    # real attributes and tags are still found, whatever the text around them says
    assert external_references(page.replace("</main>", '<img src="https://x.org/a.png"></main>')) == [
        "https://x.org/a.png"
    ]
    assert external_references('<p onload="x()">data=1</p><style>a{background:url(//c/x.png)}</style>') == [
        "onload=",
        "//c/x.png",
    ]


def test_a_file_given_twice_counts_once_and_the_page_says_so(make_eval, tmp_path):
    a1, a2 = _runs(make_eval, tmp_path)[:2]
    copy = tmp_path / "copy-of-a1.json"
    copy.write_bytes(a1.read_bytes())
    again = tmp_path / "." / a1.name
    page = report([a1, a2, a1, again, copy], tmp_path / "out", reps=300).index.read_text()
    assert "<h3>Aggregate over 2 runs × 1 task</h3>" in page and "5 runs" not in page
    assert "given more than once (counted once)" in page
    assert f"the same content as {a1} (counted once)" in page
    assert page.count("(counted once)") == 3


def test_report_options_are_checked_before_loading(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTRL_MAX_MEMORY", "1G")
    absent = tmp_path / "absent.json"  # never read: the options fail first
    for kwargs, match in (
        ({"dpi": 100_000}, r"--dpi=100000 is too large \(the limit is 1200\)"),
        ({"reps": 10**12}, r"--reps 1000000000000 needs .* available"),
        ({"seed": -1}, r"--seed must be a whole number"),
        ({"confidence": 1.5}, r"--confidence"),
    ):
        with pytest.raises(ValueError, match=match):
            report([absent], tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_report_shows_uncertainty_set_results(linear_policy, tmp_path):
    from robustrl.evaluate.config import EvaluateConfig
    from robustrl.evaluate.uncertainty import evaluate_uncertainty

    cfg = EvaluateConfig(
        policy="linear", env="CartPole-v1", uncertainty_set="cartpole-2d-v1", grid_points=3, episodes=2, seed=0
    )
    unc = evaluate_uncertainty(cfg, policy=linear_policy)
    path = unc.save(tmp_path / "unc.json")
    res = report([path], tmp_path / "out", seed=0)
    assert "uncertainty" in res.sections and len(res.figures) == 1
    page = res.index.read_text()
    assert 'id="uncertainty-table"' in page and "cartpole-2d-v1 (v1)" in page
    assert f"{unc.worst_case:,.0f}" in page or f"{unc.worst_case:.3g}" in page
    point = ", ".join(f"{k} = {v:g}" for k, v in unc.worst_point.items())
    assert point in page and "1 uncertainty set" in page


def test_certificate_table_reports_the_tightness_of_the_strongest_episode_attack(real_files, linear_policy, tmp_path):
    import re

    import robustrl
    from robustrl.certify import attack_tightness, load_certificate
    from robustrl.report.formatting import fmt

    ce = load_certificate(real_files["certificate"])
    ev = robustrl.evaluate_policy(
        linear_policy, "CartPole-v1", threats=(("episode_l2", {"objective": "targeted", "steps": 3}),),
        budgets=(0.0, 0.2, 0.4), episodes=8, seed=0, smoothing_sigma=ce.sigma, bootstrap_reps=200,
    )  # fmt: skip
    res = report([real_files["certificate"], ev.save(tmp_path / "ev.json")], tmp_path / "out", seed=0)
    page = res.index.read_text()
    assert '<th class="num">tightness</th>' in page and "share of the certified drop" in page
    strong = next(c for c in ev.strongest if c.threat_model == "obs/episode_l2")
    for b in (0.2, 0.4):
        j = int(np.flatnonzero(np.isclose(ce.budgets, b))[0])
        attacked = float(strong.mean[int(np.flatnonzero(np.isclose(strong.budgets, b))[0])])
        share = attack_tightness(ce.clean_return, float(ce.bounds[j]), attacked)
        row = re.search(rf'<tr><td class="num">{b:g}</td>(.*?)</tr>', page).group(1)
        assert f">{share:.2f}<" in row and f">{fmt(attacked)}<" in row
    row = re.search(r'<tr><td class="num">0</td>(.*?)</tr>', page).group(1)
    assert row.endswith('<td class="num">—</td>')  # no attack at B = 0: no tightness


def test_attack_tightness():
    from robustrl.certify import attack_tightness

    assert attack_tightness(200.0, 50.0, 200.0) == 0.0  # the attack costs nothing: no power
    assert attack_tightness(200.0, 50.0, 50.0) == 1.0  # it reaches the bound
    assert np.isnan(attack_tightness(100.0, 100.0, 90.0))  # no certified drop
    with pytest.raises(ValueError, match="attacked must be a finite return"):
        attack_tightness(1.0, 0.0, float("nan"))

"""``robustrl demo`` end to end, in its reduced size."""

import itertools
import json

from robustrl.cli import main


def test_demo_quick_writes_policy_results_and_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--size", "quick", "--out", str(out), "--no-progress", "--dynamics"]) == 0
    printed = capsys.readouterr().out
    assert "robustrl demo finished" in printed and "certified" in printed
    kinds = {json.loads(p.read_text())["kind"] for p in out.glob("*.json")}
    assert kinds == {"evaluation", "certificate"}
    cert = json.loads((out / "certificate.json").read_text())
    bounds = cert["bounds"]
    assert all(a >= b for a, b in itertools.pairwise(bounds))  # certified return never rises with the budget
    page = (out / "report" / "index.html").read_text()
    assert "Certified robustness" in page
    assert page.count('<img src="data:image/') >= 3  # figures are embedded, the page stands alone
    assert (out / "train" / "policy.zip").is_file()
    assert not list(out.rglob("*.tmp"))


def test_demo_rejects_bad_sigma(tmp_path, capsys):
    assert main(["demo", "--size", "quick", "--out", str(tmp_path / "d"), "--sigma", "0"]) == 1
    assert "sigma" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_demo_checks_every_stage_before_training(tmp_path, capsys, monkeypatch):
    import robustrl.agents

    def no_training(cfg):
        raise AssertionError("training started before every stage was checked")

    monkeypatch.setattr(robustrl.agents, "train", no_training)
    out = tmp_path / "d"
    for args, message in (
        (["--alpha", "0.9"], "demo stage certify: --alpha must be in (0, 0.5)"),
        (["--threats", "pgdd"], "demo stage evaluate: unknown threat 'pgdd'"),
        (["--dynamics-episodes", "0"], "demo stage evaluate-dynamics: --episodes must be ≥ 1"),
        (["--cert-budgets", "-1"], "demo stage evaluate: --threat-budgets episode_l2 must be finite numbers ≥ 0"),
        (["--train-steps", "0"], "--train-steps must be ≥ 1"),
    ):
        assert main(["demo", "--size", "quick", "--out", str(out), "--no-progress", *args]) == 1
        assert message in capsys.readouterr().err
        assert not out.exists()  # nothing half-built

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

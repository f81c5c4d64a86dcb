"""The study page: its sections and numbers, its links, the ``robustrl report`` dispatch, and real headless Chromium.

The browser test is skipped when no Chromium is installed, unless ``ROBUSTRL_REQUIRE_BROWSER=1`` (CI sets it).
"""

from __future__ import annotations

import pytest
from studyutil import tiny_spec

from browserutil import find_browser, render
from robustrl.experiments.cli import ResultsConfig, SweepConfig, run_results, run_sweep
from robustrl.experiments.report import StudyReportConfig, headline_condition, report_or_study, study_report
from robustrl.report import ReportConfig
from robustrl.report.html import external_references
from robustrl.stats import format_interval

WINDOW = (1280, 2400)
SELECTORS = ["h1", "#summary .card", "figure img", "#cells-table tbody tr", "#leaderboard-table tbody tr",
             "#conditions-table tbody tr", "nav.toc a"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A finished tiny study (12 cells, run in this process)."""
    root = tmp_path_factory.mktemp("swept")
    res = run_sweep(SweepConfig(tiny_spec(root / "tiny.toml"), root / "study", workers=0, progress=False))
    assert res.complete
    return root / "study"


@pytest.fixture
def browser() -> str:
    return find_browser()


def test_study_page_sections_numbers_and_links(swept):
    res = study_report(StudyReportConfig(swept, reps=200))
    html = res.index.read_text()
    assert res.index == swept / "report" / "index.html"
    assert res.sections == ("summary", "leaderboard", "curves", "profiles", "improvement", "cells", "provenance")
    assert len(res.figures) == 4 and all(f.png.is_file() and f.svg.is_file() for f in res.figures)
    # self-contained but for relative links to the cells' result files, each of which exists
    refs = external_references(html)
    assert refs and all(r.startswith("../artefacts/") for r in refs)
    assert all((res.index.parent / r).is_file() for r in refs) and len(refs) == 12
    # the leaderboard shows what robustrl results computes, under the headline condition
    summary = run_results(ResultsConfig(swept, reps=200))
    head = headline_condition(summary)
    assert head is not None and head.threat == "strongest:obs/linf" and head.budget == 0.1
    for a in (a for a in summary.aggregates if a.condition == head):
        assert format_interval(a.iqm, 2) in html
    # and every group under every condition, one column each, as robustrl results --format wide
    header, rows, _ = summary.grid("iqm", 2)
    assert 'id="conditions-table"' in html and len(header) > 2
    assert all(cell in html for row in rows for cell in row)


def test_report_command_dispatches_on_a_study_folder(swept, tmp_path):
    res = report_or_study(ReportConfig(results=(swept,), out=tmp_path / "page"))
    assert res.index == tmp_path / "page" / "index.html" and "leaderboard" in res.sections
    result_file = next((swept / "artefacts").glob("*/result.json"))
    single = report_or_study(ReportConfig(results=(result_file,), out=tmp_path / "one"))
    assert "leaderboard" not in single.sections and single.index.is_file()


def test_study_page_renders_in_headless_chromium(browser, swept, tmp_path):
    res = study_report(StudyReportConfig(swept, out=tmp_path / "page", title="Study check", reps=200))
    page = render(browser, res.index, SELECTORS, tmp_path, WINDOW)
    pixels, boxes = page.pixels, page.boxes
    assert pixels.shape == (WINDOW[1], WINDOW[0], 3)
    assert pixels[:60].mean(axis=(0, 1)).max() < 80  # the dark title bar
    assert (pixels.mean(axis=2) > 240).mean() > 0.2  # light page
    assert ((pixels.max(axis=2) - pixels.min(axis=2)) > 60).mean() > 0.005  # coloured cards and curves

    assert "<h1>Study check</h1>" in page.dom and len(boxes["h1"]) == 1
    assert len(boxes["figure img"]) == len(res.figures) == 4
    assert len(boxes["#summary .card"]) == 4 + 2  # study cards, then one headline card per method
    assert len(boxes["#cells-table tbody tr"]) == 12 and len(boxes["#leaderboard-table tbody tr"]) == 2
    assert len(boxes["#conditions-table tbody tr"]) == 2  # one row per method
    assert len(boxes["nav.toc a"]) == len(res.sections)
    for q, items in boxes.items():
        for b in items:
            assert b["visible"] and b["w"] > 0 and b["h"] > 0, (q, b)
    for img in boxes["figure img"]:
        assert img["natural"] > 300 and img["w"] >= 600  # the SVG decoded, shown large enough to read

"""The report as a person sees it: rendered by real headless Chromium.

Skipped when no Chromium is installed, unless ``ROBUSTRL_REQUIRE_BROWSER=1`` (CI sets it), then it fails.
"""

from __future__ import annotations

import pytest

from browserutil import find_browser, render
from robustrl.report import report

WINDOW = (1280, 2000)

SELECTORS = ["h1", "#summary .card", "#summary .verdict li", "figure img", "table:not(details table)", "nav.toc a"]


@pytest.fixture
def browser() -> str:
    """The Chromium executable (checked before any result file is computed)."""
    return find_browser()


def test_report_renders_in_headless_chromium(browser, real_files, tmp_path):
    files = [real_files["evaluation"], real_files["dynamics"], real_files["certificate"]]
    res = report(files, tmp_path / "out", title="Browser check")
    page = render(browser, res.index, SELECTORS, tmp_path, WINDOW)
    dom, pixels, boxes = page.dom, page.pixels, page.boxes

    # the screenshot is the page, not a blank or error page
    assert pixels.shape == (WINDOW[1], WINDOW[0], 3)
    gray = pixels.mean(axis=2)
    assert gray.std() > 25.0
    header = pixels[:60, :, :].mean(axis=(0, 1))
    assert header.max() < 80  # the dark title bar rendered at the top
    colourful = (pixels.max(axis=2) - pixels.min(axis=2)) > 60
    assert colourful.mean() > 0.005  # coloured cards and curves, not just text
    assert (gray > 240).mean() > 0.2  # light page background

    # the DOM holds the headline, the figures, the tables; all of them visible and laid out
    assert "<h1>Browser check</h1>" in dom
    assert len(boxes["h1"]) == 1
    assert len(boxes["figure img"]) == len(res.figures) == 3
    assert len(boxes["#summary .card"]) >= 6
    assert len(boxes["#summary .verdict li"]) == 1
    # certificate table, strongest-attack table, provenance table (the full threat table sits in <details>)
    assert len(boxes["table:not(details table)"]) == 3
    assert '<table id="provenance-table">' in dom and "<summary>Every threat and budget</summary>" in dom
    assert len(boxes["nav.toc a"]) == len(res.sections)
    for q, items in boxes.items():
        for b in items:
            assert b["visible"] and b["w"] > 0 and b["h"] > 0, (q, b)
    for img in boxes["figure img"]:
        assert img["natural"] > 300  # the embedded SVG decoded to a real image
        assert img["w"] >= 600  # and is shown large enough to read

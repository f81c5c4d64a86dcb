"""The report as a person sees it: rendered by real headless Chromium.

Skipped when no Chromium is installed, unless ``ROBUSTRL_REQUIRE_BROWSER=1`` (CI sets it), then it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from robustrl.report import report

WINDOW = (1280, 2000)

# A test-only probe appended to a copy of the page (the report itself has no scripts): after load, it
# records the size, visibility and decoded state of the elements a reader must see.
PROBE = """<script>
window.addEventListener('load', function () {
  var out = {};
  ['h1', '#summary .card', '#summary .verdict li', 'figure img', 'table:not(details table)', 'nav.toc a']
  .forEach(function (q) {
    out[q] = Array.prototype.map.call(document.querySelectorAll(q), function (e) {
      var r = e.getBoundingClientRect(), cs = getComputedStyle(e);
      return {w: r.width, h: r.height, visible: cs.visibility === 'visible' && cs.display !== 'none',
              natural: e.tagName === 'IMG' ? e.naturalWidth : -1};
    });
  });
  var pre = document.createElement('pre');
  pre.id = 'probe-result';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


@pytest.fixture
def browser() -> str:
    """The Chromium executable (checked before any result file is computed)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("ROBUSTRL_REQUIRE_BROWSER") == "1":
        pytest.fail("ROBUSTRL_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)")
    pytest.skip("headless Chromium not installed (set ROBUSTRL_REQUIRE_BROWSER=1 to make this a failure)")


def _render(browser: str, page, tmp_path) -> tuple[str, np.ndarray]:
    shot = tmp_path / "shot.png"
    cmd = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing may load from the network anyway
        f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--virtual-time-budget=5000", f"--screenshot={shot}", "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"chromium did not finish in 90 s: {err}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.is_file(), proc.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    return proc.stdout, pixels


def test_report_renders_in_headless_chromium(browser, real_files, tmp_path):
    files = [real_files["evaluation"], real_files["dynamics"], real_files["certificate"]]
    res = report(files, tmp_path / "out", title="Browser check")
    probe = tmp_path / "out" / "probe.html"
    probe.write_text(res.index.read_text().replace("</body>", PROBE + "</body>"))

    dom, pixels = _render(browser, probe, tmp_path)

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
    m = re.search(r'<pre id="probe-result">(.*?)</pre>', dom, re.S)
    assert m, "the probe did not run"
    boxes = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
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

"""Render a robustrl page in real headless Chromium: the screenshot, the DOM, and the boxes of chosen elements.

``find_browser()`` is the Chromium executable; a missing one skips the test, unless
``ROBUSTRL_REQUIRE_BROWSER=1`` (CI sets it), then it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# A test-only probe appended to a copy of the page (the pages have no scripts): after load, it records the
# size, visibility and decoded state of the elements a reader must see.
_PROBE = """<script>
window.addEventListener('load', function () {
  var out = {};
  %s.forEach(function (q) {
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


def find_browser() -> str:
    """The Chromium executable (skip, or fail under ``ROBUSTRL_REQUIRE_BROWSER=1``, when there is none)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("ROBUSTRL_REQUIRE_BROWSER") == "1":
        pytest.fail("ROBUSTRL_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)")
    pytest.skip("headless Chromium not installed (set ROBUSTRL_REQUIRE_BROWSER=1 to make this a failure)")


@dataclass(frozen=True)
class Rendered:
    """What Chromium made of a page."""

    dom: str
    """The DOM after load (``--dump-dom``)."""
    pixels: np.ndarray
    """``[H, W, 3]`` float64 screenshot."""
    boxes: dict[str, list[dict]]
    """Per selector, each element's ``w``, ``h``, ``visible`` and (images) ``natural`` width."""


def render(browser: str, index: Path, selectors: list[str], tmp_path: Path, window: tuple[int, int]) -> Rendered:
    """Render a copy of page ``index`` (with the probe) at ``window`` = (width, height) pixels."""
    probe = index.parent / "probe.html"
    probe.write_text(index.read_text().replace("</body>", _PROBE % json.dumps(selectors) + "</body>"))
    shot = tmp_path / "shot.png"
    cmd = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing may load from the network anyway
        f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={window[0]},{window[1]}",
        "--virtual-time-budget=5000", f"--screenshot={shot}", "--dump-dom", probe.as_uri(),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"chromium did not finish in 90 s: {err}")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    m = re.search(r'<pre id="probe-result">(.*?)</pre>', proc.stdout, re.S)
    assert m, "the probe did not run"
    boxes = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    return Rendered(proc.stdout, pixels, boxes)

"""What the report's sections share.

Units and budget labels, number formatting, the figure sink, and how a drop in return is judged.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
from matplotlib.figure import Figure

from robustrl.report.figures import Estimate, render_figure
from robustrl.report.html import Tone, figure_html
from robustrl.report.loading import Loaded, Reportable
from robustrl.results import Certificate, DynamicsResult, EvaluationResult, StrongestCurve

Eval = Loaded[EvaluationResult]
"""An evaluation and its file."""
Dyn = Loaded[DynamicsResult]
"""A dynamics grid and its file."""
Cert = Loaded[Certificate]
"""A certificate and its file."""


UNIT_LABELS: dict[str, str] = {
    "obs/linf": "ε (ℓ∞ per step)",
    "obs/l2": "ε (ℓ2 per step)",
    "obs/episode_l2": "B (total ℓ2 per episode)",
    "obs/none": "budget (no attack)",
    "action/noise": "action noise σ",
    "action/replace": "action replacement probability p",
    "action/pr": "adversary takeover probability α (PR-MDP)",
    "action/nr": "adversarial action mix α (NR-MDP)",
}
"""Axis label per threat model (the unit of its budget); others read ``budget (<threat model>)``."""

EPISODE_L2_UNITS = ("obs/episode_l2",)
"""Threat models whose budgets are a Policy Smoothing certificate's total ℓ2 budget B."""

UNIT_SYMBOLS: dict[str, str] = {
    "obs/linf": "ε∞",
    "obs/l2": "ε₂",
    "obs/episode_l2": "B",
    "action/noise": "σₐ",
    "action/replace": "p",
    "action/pr": "α",
    "action/nr": "α",
}
"""Short budget symbol per threat model, used in cards and tables (``"ε∞ = 0.1"``)."""


def unit_label(unit: str) -> str:
    """The axis label of a budget unit."""
    return UNIT_LABELS.get(unit, f"budget ({unit})")


def unit_symbol(unit: str) -> str:
    """The short symbol of a budget unit (the unit name itself when unknown)."""
    return UNIT_SYMBOLS.get(unit, unit)


def fmt(x: float) -> str:
    """A return or bound as it should read: 3–4 significant digits, no exponent for returns."""
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    a = abs(x)
    if a >= 100:
        return f"{x:,.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}" if a >= 0.0005 else "0"


def fmt_ci(e: Estimate) -> str:
    """``[low, high]``."""
    return f"[{fmt(e.low)}, {fmt(e.high)}]"


def slug(text: str) -> str:
    """A file-name-safe lower-case slug."""
    s = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return s or "x"


@dataclass(frozen=True)
class RenderedFigure:
    """A figure rendered to bytes, waiting to be written."""

    stem: str
    """File name without extension."""
    png: bytes
    """PNG bytes."""
    svg: bytes
    """SVG bytes."""
    figure: Figure
    """The matplotlib figure (kept for inspection)."""


@dataclass
class FigureSink:
    """Collects rendered figures; :meth:`add` returns the ``<figure>`` HTML embedding one."""

    dpi: int = 110
    """PNG resolution."""
    items: list[RenderedFigure] = field(default_factory=list)
    """Figures in page order."""

    def add(self, fig: Figure, stem: str, *, alt: str, caption: str = "") -> str:
        """Render ``fig`` (unique file stem derived from ``stem``) and return its embedded HTML."""
        base = slug(stem)
        taken = {it.stem for it in self.items}
        name, k = base, 2
        while name in taken:
            name, k = f"{base}-{k}", k + 1
        png, svg = render_figure(fig, dpi=self.dpi)
        self.items.append(RenderedFigure(name, png, svg, fig))
        return figure_html(svg, None, alt=alt, caption=caption, fig_id=f"fig-{name}")


# --------------------------------------------------------------------------------------------------
# judging a drop
# --------------------------------------------------------------------------------------------------
def relative_drop(clean: float, attacked: float) -> float:
    """``(clean − attacked) / |clean|`` (0: no loss, 1: all of a positive return lost); NaN when clean = 0."""
    return (clean - attacked) / abs(clean) if clean != 0 else math.nan


def tone(drop: float) -> Tone:
    """``good`` (≤ 10 % lost), ``warn`` (≤ 50 %), ``bad`` (more), ``neutral`` when unknown."""
    if math.isnan(drop):
        return "neutral"
    return "good" if drop <= 0.10 else "warn" if drop <= 0.50 else "bad"


def versus_clean(clean: float, attacked: float) -> str:
    """``"42 % of clean"`` for a positive clean return, else the difference."""
    if clean > 0 and attacked >= 0:
        return f"{100 * attacked / clean:.0f} % of clean"
    return f"Δ {fmt(attacked - clean)} vs clean"


def pick_budgets(budgets: np.ndarray, k: int = 3) -> list[int]:
    """Indices of up to ``k`` non-zero budgets spread over the range, always including the largest."""
    nz = np.flatnonzero(budgets > 0)
    if nz.size <= k:
        return nz.tolist()
    pos = np.unique(np.round(np.linspace(0, nz.size - 1, k)).astype(int))
    return nz[pos].tolist()


def result_label(rec: Loaded[Reportable], many: bool) -> str:
    """The env id, with the file name when the report shows ``many`` results."""
    return f"{rec.result.env_id} · {rec.path.name}" if many else rec.result.env_id


def clean_estimate(res: EvaluationResult) -> Estimate:
    """The clean mean return with its CI."""
    return Estimate(res.clean.mean, res.clean.ci[0], res.clean.ci[1])


def curve_budgets(curve: StrongestCurve) -> np.ndarray:
    """A strongest-attack curve's budgets as a float64 array."""
    return np.asarray(curve.budgets, dtype=np.float64)

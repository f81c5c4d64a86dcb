"""Report figures: pure functions from plain arrays to matplotlib Figures, and an atomic PNG+SVG saver.

Each figure function takes NumPy-compatible arrays (no result files, no statistics) and returns a
:class:`matplotlib.figure.Figure` built without ``pyplot`` (no global figure registry, no GUI backend:
PNG goes through Agg, SVG through the SVG backend), so tests can inspect its axes, lines and images.
:func:`save_figure` writes a figure as PNG and SVG, both atomically.

Figures follow the reporting advice of Agarwal et al., "Deep RL at the Edge of the Statistical
Precipice" (NeurIPS 2021): every estimate is drawn with its confidence interval.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, ParamSpec, TypeVar

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from numpy.typing import ArrayLike

from robustrl.common.io import atomic_path

__all__ = [
    "CLEAN_COLOR",
    "STRONGEST_COLOR",
    "Estimate",
    "FigureFiles",
    "Series",
    "aggregate_intervals",
    "certificate_vs_attack",
    "condition_colors",
    "dynamics_shift",
    "make_series",
    "performance_profiles",
    "render_figure",
    "return_vs_budget",
    "save_figure",
    "threat_colors",
]

STRONGEST_COLOR = "#1a1a1a"
"""Colour of the strongest-attack curve (min over threats), drawn on top of the others."""
CLEAN_COLOR = "#2c7bb6"
"""Colour of the clean (unattacked) return."""
CERT_COLOR = "#1a9641"
"""Colour of certified lower bounds."""
_PALETTE = ("#d7191c", "#fdae61", "#984ea3", "#e66101", "#4dac26", "#b2182b", "#8c510a", "#01665e", "#c51b7d")
_HEATMAP_CMAP = "RdYlBu"  # red = low return (bad), blue = high return (good); colour-blind safe

_STYLE: Any = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 9,
    "svg.hashsalt": "robustrl",  # deterministic SVG ids
}

P = ParamSpec("P")
R = TypeVar("R")


class Series(NamedTuple):
    """A curve ``y(x)`` with an optional confidence band ``[low, high]`` (all ``float64 [K]``)."""

    x: np.ndarray
    """``[K]`` abscissae (budgets, parameter values, score thresholds τ), increasing."""
    y: np.ndarray
    """``[K]`` point estimates."""
    low: np.ndarray | None = None
    """``[K]`` lower confidence bounds, or None for no band."""
    high: np.ndarray | None = None
    """``[K]`` upper confidence bounds, or None for no band."""


class Estimate(NamedTuple):
    """A point estimate with its confidence interval (same fields as ``robustrl.stats.Interval``)."""

    point: float
    """The estimate."""
    low: float
    """Lower end of the confidence interval."""
    high: float
    """Upper end of the confidence interval."""


class FigureFiles(NamedTuple):
    """Where :func:`save_figure` wrote a figure."""

    png: Path
    """The PNG file."""
    svg: Path
    """The SVG file."""


def _vector(values: ArrayLike, name: str, size: int | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if size is not None and arr.size != size:
        raise ValueError(f"{name} has {arr.size} values, expected {size}")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    return arr


def make_series(
    x: ArrayLike, y: ArrayLike, low: ArrayLike | None = None, high: ArrayLike | None = None, *, name: str = "series"
) -> Series:
    """Build a :class:`Series`, checking that all arrays are 1-D, of one length and NaN-free.

    Args:
        x: ``[K]`` abscissae.
        y: ``[K]`` point estimates.
        low: ``[K]`` lower bounds (give both ``low`` and ``high`` or neither).
        high: ``[K]`` upper bounds.
        name: how errors refer to this series.

    Returns:
        The validated series (``float64`` arrays).

    Example:
        >>> make_series([0, 1], [10.0, 5.0]).y.tolist()
        [10.0, 5.0]

    """
    xs = _vector(x, f"{name}: x")
    ys = _vector(y, f"{name}: y", xs.size)
    if (low is None) != (high is None):
        raise ValueError(f"{name}: give both low and high, or neither")
    lo = None if low is None else _vector(low, f"{name}: low", xs.size)
    hi = None if high is None else _vector(high, f"{name}: high", xs.size)
    return Series(xs, ys, lo, hi)


def _as_series(s: Series | Sequence[Any], name: str) -> Series:
    if isinstance(s, Series):
        return make_series(s.x, s.y, s.low, s.high, name=name)
    return make_series(*s, name=name)


def _styled(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a figure builder under the report's matplotlib style (rcParams are read at artist creation)."""

    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with mpl.rc_context(_STYLE):
            return fn(*args, **kwargs)

    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
    wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    return wrapper


def threat_colors(names: Sequence[str]) -> dict[str, str]:
    """A fixed colour per threat name, in the order given (the palette repeats past nine threats)."""
    return {n: _PALETTE[i % len(_PALETTE)] for i, n in enumerate(names)}


def condition_colors(names: Sequence[str]) -> dict[str, str]:
    """Colours of aggregate conditions: ``clean`` blue, the others light to dark red in the order given.

    Conditions come as clean, then the strongest attack at increasing budgets: a darker red is a
    stronger attack.
    """
    others = [n for n in names if n != "clean"]
    shades = mpl.colormaps["Reds"](np.linspace(0.45, 0.95, max(len(others), 1)))
    out = {n: mpl.colors.to_hex(shades[i]) for i, n in enumerate(others)}
    if "clean" in names:
        out["clean"] = CLEAN_COLOR
    return {n: out[n] for n in names}


def _band(ax: Axes, s: Series, color: str, alpha: float = 0.18) -> None:
    if s.low is not None and s.high is not None:
        ax.fill_between(s.x, s.low, s.high, color=color, alpha=alpha, linewidth=0)


def _clean_line(ax: Axes, clean: Estimate, label: str = "clean") -> None:
    ax.axhspan(clean.low, clean.high, color=CLEAN_COLOR, alpha=0.12, linewidth=0)
    ax.axhline(clean.point, color=CLEAN_COLOR, linestyle="--", linewidth=1.4, label=label)


def _finish(fig: Figure, ax: Axes, xlabel: str, ylabel: str, title: str | None) -> None:
    """Label the axes and put the legend below them, where it never hides a curve."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, loc="left")
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=_legend_columns(labels, fig.get_figwidth()))


def _legend_columns(labels: Sequence[str], width_in: float) -> int:
    """As many columns (≤ 4) as fit the figure width (≈ 15 characters per inch at the legend font size)."""
    room = 15.0 * width_in
    longest = max(len(lab) for lab in labels) + 6  # the handle and padding take about 6 characters
    return max(1, min(4, len(labels), int(room // longest)))


@_styled
def return_vs_budget(
    curves: Mapping[str, Series],
    *,
    strongest: Series | None = None,
    clean: Estimate | None = None,
    xlabel: str = "attack budget ε",
    ylabel: str = "return",
    title: str | None = None,
    ymin: float | None = None,
) -> Figure:
    """Return vs attack budget, one line with a CI band per threat, the strongest attack highlighted.

    Args:
        curves: ``threat name -> Series(budgets [K], mean return [K], CI low [K], CI high [K])``;
            each threat may have its own budgets.
        strongest: the strongest-attack curve (per budget, the threat with the lowest mean return),
            drawn thick and black, labelled ``"strongest attack"``.
        clean: the clean return with its CI, drawn as a dashed horizontal line with a band.
        xlabel: x-axis label (say the threat model: ``"ε (ℓ∞ per step)"``).
        ylabel: y-axis label.
        title: axes title (left-aligned), or None.
        ymin: bottom of the y axis (e.g. 0 for non-negative returns, so drops read at their true size);
            None: automatic.

    Returns:
        A one-axes figure. Lines carry their series name as label (``"clean"`` for the clean line).

    """
    if not curves and strongest is None:
        raise ValueError("return_vs_budget needs at least one curve")
    fig = Figure(figsize=(7.0, 4.2), layout="constrained")
    ax = fig.add_subplot()
    if clean is not None:
        _clean_line(ax, Estimate(*clean))
    colors = threat_colors(list(curves))
    for name, raw in curves.items():
        s = _as_series(raw, f"curve {name!r}")
        _band(ax, s, colors[name])
        ax.plot(s.x, s.y, color=colors[name], marker="o", markersize=3.5, linewidth=1.4, label=name)
    if strongest is not None:
        s = _as_series(strongest, "strongest")
        _band(ax, s, STRONGEST_COLOR, alpha=0.12)
        ax.plot(
            s.x,
            s.y,
            color=STRONGEST_COLOR,
            marker="s",
            markersize=4.5,
            linewidth=2.4,
            linestyle=(0, (4, 2)),
            label="strongest attack",
        )
    if ymin is not None:
        ax.set_ylim(bottom=ymin)
    _finish(fig, ax, xlabel, ylabel, title)
    return fig


@_styled
def certificate_vs_attack(
    budgets: ArrayLike,
    bound: ArrayLike,
    *,
    attacked: Series | None = None,
    attacked_label: str = "strongest attack (empirical)",
    clean: Estimate | None = None,
    floor: float | None = None,
    xlabel: str = "total ℓ2 budget B",
    ylabel: str = "return",
    title: str | None = None,
) -> Figure:
    """Certified lower bound vs budget beside the empirical attacked return.

    The band between ``floor`` and the bound is shaded as the certified region: no attack of that
    budget can push the expected return below it (with the certificate's confidence). The gap between
    the bound and the empirical attacked curve is what neither side has settled.

    Args:
        budgets: ``[K]`` total ℓ2 budgets B.
        bound: ``[K]`` certified lower bounds (non-finite entries, e.g. ``-inf`` where no bound holds,
            are left out of the line).
        attacked: empirical attacked return at (possibly other) budgets, with its CI.
        attacked_label: legend label of ``attacked``.
        clean: the clean smoothed return with its CI.
        floor: the least return the task allows (``v_0``): bottom of the shaded region.
        xlabel: x-axis label.
        ylabel: y-axis label.
        title: axes title, or None.

    Returns:
        A one-axes figure whose line labelled ``"certified lower bound"`` has exactly the finite
        ``(budget, bound)`` pairs.

    """
    b = _vector(budgets, "budgets")
    lb = np.asarray(bound, dtype=np.float64)
    if lb.shape != b.shape:
        raise ValueError(f"bound has shape {lb.shape}, budgets {b.shape}")
    if np.isnan(lb).any():
        raise ValueError("bound contains NaN")
    fig = Figure(figsize=(7.0, 4.2), layout="constrained")
    ax = fig.add_subplot()
    if clean is not None:
        _clean_line(ax, Estimate(*clean), label="clean (smoothed)")
    if attacked is not None:
        s = _as_series(attacked, "attacked")
        _band(ax, s, STRONGEST_COLOR, alpha=0.12)
        ax.plot(s.x, s.y, color=STRONGEST_COLOR, marker="s", markersize=4, linewidth=2.0, label=attacked_label)
    ok = np.isfinite(lb)
    if ok.any():
        if floor is not None and math.isfinite(floor):
            ax.fill_between(b[ok], floor, lb[ok], color=CERT_COLOR, alpha=0.15, linewidth=0, label="certified region")
        ax.plot(b[ok], lb[ok], color=CERT_COLOR, marker="o", markersize=4, linewidth=2.2, label="certified lower bound")
    _finish(fig, ax, xlabel, ylabel, title)
    return fig


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _text_color(rgba: Any) -> str:
    r, g, b = rgba[:3]
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "#ffffff"


def _heatmap(
    ax: Axes,
    grid: np.ndarray,
    xvals: np.ndarray,
    yvals: np.ndarray,
    vmin: float,
    vmax: float,
    nominal: tuple[float, float] | None,
) -> Any:
    im = ax.imshow(grid, origin="lower", aspect="auto", cmap=_HEATMAP_CMAP, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(xvals.size), [_fmt(v) for v in xvals])
    ax.set_yticks(range(yvals.size), [_fmt(v) for v in yvals])
    ax.grid(False)
    if grid.size <= 225:
        fontsize = 8 if max(grid.shape) <= 8 else 6
        for (i, j), v in np.ndenumerate(grid):
            color = _text_color(im.cmap(im.norm(v)))
            ax.text(j, i, _fmt(v), ha="center", va="center", fontsize=fontsize, color=color)
    if nominal is not None:
        jx = np.flatnonzero(np.isclose(xvals, nominal[0]))
        iy = np.flatnonzero(np.isclose(yvals, nominal[1]))
        if jx.size and iy.size:
            ax.add_patch(Rectangle((jx[0] - 0.5, iy[0] - 0.5), 1, 1, fill=False, edgecolor="#000000", linewidth=2.2))
    return im


@_styled
def dynamics_shift(
    params: Sequence[str],
    values: Sequence[ArrayLike],
    mean: ArrayLike,
    *,
    low: ArrayLike | None = None,
    high: ArrayLike | None = None,
    nominal: Sequence[float] | None = None,
    value_label: str = "mean return",
    title: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
) -> Figure:
    """Return over a grid of 1–3 physical parameters (RRLS-style dynamics-shift evaluation).

    * 1 parameter: a line of ``mean`` over ``values[0]`` with the CI band (``low``/``high``).
    * 2 parameters: a heatmap, rows ``values[0]`` (y axis), columns ``values[1]`` (x axis), each cell
      annotated with its value (grids up to 15×15).
    * 3 parameters: small multiples, one heatmap per value of ``values[2]``, one shared colour scale.

    The nominal parameter point (the env's default) is marked: a dashed vertical line in 1-D, a black
    box around its cell in 2-D/3-D when it lies on the grid.

    Args:
        params: parameter names, 1 to 3.
        values: per parameter the grid values ``[n_i]``.
        mean: mean return on the grid ``[n_1, ..., n_d]``.
        low: CI lower bounds on the grid (drawn in 1-D only).
        high: CI upper bounds on the grid (drawn in 1-D only).
        nominal: the nominal value of each parameter, or None.
        value_label: what ``mean`` is (colour-bar / y-axis label).
        title: figure title, or None.
        vmin: lower end of the colour scale, and of the y axis in 1-D (default: the data's minimum).
        vmax: upper end of the colour scale, and of the y axis in 1-D (default: the data's maximum).

    Returns:
        The figure: one axes in 1-D/2-D, ``n_3`` heatmap axes (plus a colour bar) in 3-D.

    """
    d = len(params)
    if not 1 <= d <= 3:
        raise ValueError(f"dynamics_shift takes 1 to 3 parameters, got {d}: {list(params)}")
    if len(values) != d:
        raise ValueError(f"{d} parameters but {len(values)} value arrays")
    vals = [_vector(v, f"values of {p!r}") for v, p in zip(values, params)]
    grid = np.asarray(mean, dtype=np.float64)
    shape = tuple(v.size for v in vals)
    if grid.shape != shape:
        raise ValueError(f"mean has shape {grid.shape}, expected {shape} from the parameter values")
    if not np.isfinite(grid).all():
        raise ValueError("mean contains NaN or inf")
    if nominal is not None and len(nominal) != d:
        raise ValueError(f"nominal has {len(nominal)} values for {d} parameters")
    lo = float(grid.min()) if vmin is None else vmin
    hi = float(grid.max()) if vmax is None else vmax
    if hi <= lo:
        hi = lo + 1.0
    if d == 1:
        s = make_series(vals[0], grid, low, high, name="dynamics shift")
        fig = Figure(figsize=(7.0, 4.0), layout="constrained")
        ax = fig.add_subplot()
        _band(ax, s, CLEAN_COLOR)
        ax.plot(s.x, s.y, color=CLEAN_COLOR, marker="o", markersize=4, linewidth=1.8, label=value_label)
        if nominal is not None:
            ax.axvline(nominal[0], color="#555555", linestyle="--", linewidth=1.2, label="nominal")
        if vmin is not None or vmax is not None:
            ax.set_ylim(vmin, vmax)
        _finish(fig, ax, params[0], value_label, None)
        if title:
            fig.suptitle(title, x=0.02, ha="left", fontweight="bold")
        return fig
    nom2 = None if nominal is None else (float(nominal[1]), float(nominal[0]))
    if d == 2:
        fig = Figure(figsize=(7.0, 4.8), layout="constrained")
        ax = fig.add_subplot()
        im = _heatmap(ax, grid, vals[1], vals[0], lo, hi, nom2)
        ax.set_xlabel(params[1])
        ax.set_ylabel(params[0])
        fig.colorbar(im, ax=ax, label=value_label)
    else:
        n3 = vals[2].size
        ncols = min(n3, 4)
        nrows = math.ceil(n3 / ncols)
        fig = Figure(figsize=(2.5 * ncols + 1.0, 2.6 * nrows + 0.5), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
        on_nominal = nominal is not None
        for k in range(nrows * ncols):
            ax = axes.flat[k]
            if k >= n3:
                ax.set_visible(False)
                continue
            here = nom2 if on_nominal and np.isclose(vals[2][k], nominal[2]) else None  # type: ignore[index]
            im = _heatmap(ax, grid[:, :, k], vals[1], vals[0], lo, hi, here)
            ax.set_title(f"{params[2]} = {_fmt(vals[2][k])}", fontsize=10)
            if k // ncols == nrows - 1 or k + ncols >= n3:
                ax.set_xlabel(params[1])
            if k % ncols == 0:
                ax.set_ylabel(params[0])
        fig.colorbar(im, ax=list(axes.flat[:n3]), label=value_label)
    if title:
        fig.suptitle(title, x=0.02, ha="left", fontweight="bold")
    return fig


@_styled
def aggregate_intervals(
    estimates: Mapping[str, Mapping[str, Estimate]],
    *,
    xlabel: str = "normalised score",
    title: str | None = None,
) -> Figure:
    """Aggregate metrics with their CIs, one panel per metric, one horizontal interval per condition.

    Drawn as in rliable's ``plot_interval_estimates``: a bar spans the confidence interval, a black
    tick marks the point estimate.

    Args:
        estimates: ``metric name (e.g. "IQM") -> condition (e.g. "clean", "ε = 0.1") -> Estimate``;
            every metric must list the same conditions.
        xlabel: x-axis label of every panel.
        title: figure title, or None.

    Returns:
        A figure with one axes per metric; in each, one bar patch per condition with
        ``x = low`` and ``width = high − low`` (conditions top to bottom in the given order).

    """
    if not estimates:
        raise ValueError("aggregate_intervals needs at least one metric")
    metrics = list(estimates)
    conditions = list(estimates[metrics[0]])
    for m in metrics:
        if list(estimates[m]) != conditions:
            raise ValueError(f"metric {m!r} lists conditions {list(estimates[m])}, expected {conditions}")
    colors = condition_colors(conditions)
    fig = Figure(figsize=(2.4 * len(metrics) + 1.4, 0.55 * len(conditions) + 1.5), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False, sharey=True)[0]
    ypos = np.arange(len(conditions))[::-1]
    for ax, m in zip(axes, metrics):
        for y, c in zip(ypos, conditions):
            e = Estimate(*estimates[m][c])
            ax.barh(y, e.high - e.low, left=e.low, height=0.6, color=colors[c], alpha=0.75)
            ax.vlines(e.point, y - 0.3, y + 0.3, color="#000000", linewidth=2.0)
        ax.set_title(m, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(axis="y", visible=False)
        ax.set_yticks(ypos, conditions)
    if title:
        fig.suptitle(title, x=0.02, ha="left", fontweight="bold")
    return fig


@_styled
def performance_profiles(
    profiles: Mapping[str, Series],
    *,
    xlabel: str = "normalised score τ",
    ylabel: str = "fraction of runs with score > τ",
    title: str | None = None,
) -> Figure:
    """Score distributions (performance profiles) with CI bands, one curve per condition.

    Args:
        profiles: ``condition -> Series(taus [T], fraction of run×task scores > τ [T], CI low, CI high)``.
        xlabel: x-axis label.
        ylabel: y-axis label.
        title: axes title, or None.

    Returns:
        A one-axes figure with one labelled line per condition, y limited to [0, 1].

    """
    if not profiles:
        raise ValueError("performance_profiles needs at least one profile")
    colors = condition_colors(list(profiles))
    fig = Figure(figsize=(7.0, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for name, raw in profiles.items():
        s = _as_series(raw, f"profile {name!r}")
        _band(ax, s, colors[name])
        ax.plot(s.x, s.y, color=colors[name], linewidth=1.8, label=name)
    ax.set_ylim(0.0, 1.02)
    _finish(fig, ax, xlabel, ylabel, title)
    return fig


def render_figure(fig: Figure, *, dpi: int = 110) -> tuple[bytes, bytes]:
    """Render a figure to ``(PNG bytes, SVG bytes)`` in memory (SVG without a date: reproducible)."""
    png, svg = io.BytesIO(), io.BytesIO()
    with mpl.rc_context(_STYLE):
        fig.savefig(png, format="png", dpi=dpi, metadata={"Software": None})
        fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    return png.getvalue(), svg.getvalue()


@contextlib.contextmanager
def _atomic_pair(a: Path, b: Path) -> Iterator[tuple[Path, Path]]:
    with atomic_path(a) as ta, atomic_path(b) as tb:
        yield ta, tb


def save_figure(fig: Figure, directory: str | os.PathLike[str], stem: str, *, dpi: int = 110) -> FigureFiles:
    """Write ``fig`` as ``<directory>/<stem>.png`` and ``.svg``, each complete or absent.

    Both files are rendered to temporary names first; neither is renamed into place unless both
    rendered.

    Args:
        fig: the figure.
        directory: output folder (created if needed).
        stem: file name without extension.
        dpi: PNG resolution.

    Returns:
        :class:`FigureFiles` with both paths.

    """
    if not stem or "/" in stem or stem.startswith("."):
        raise ValueError(f"figure stem {stem!r} must be a plain file name")
    out = Path(directory)
    files = FigureFiles(out / f"{stem}.png", out / f"{stem}.svg")
    png, svg = render_figure(fig, dpi=dpi)
    with _atomic_pair(files.png, files.svg) as (tp, ts):
        tp.write_bytes(png)
        ts.write_bytes(svg)
    return files

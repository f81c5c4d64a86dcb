"""The report's sections, each built from loaded records: headline cards, figures, tables, provenance.

Figures are rendered once into a :class:`FigureSink` (PNG and SVG bytes in memory), embedded in the page
as SVG ``data:`` URIs, and written as files by :func:`robustrl.report.report` at the end.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from matplotlib.figure import Figure

from robustrl.report.figures import (
    Estimate,
    certificate_vs_attack,
    dynamics_shift,
    make_series,
    render_figure,
    return_vs_budget,
)
from robustrl.report.html import Card, Section, Tone, cards_html, esc, figure_html, json_details, table_html
from robustrl.report.loading import CertificateRecord, DynamicsRecord, EvaluationRecord, Record, ShiftGrid, ThreatCurve

__all__ = [
    "UNIT_LABELS",
    "FigureSink",
    "RenderedFigure",
    "attacks_section",
    "certificates_section",
    "fmt",
    "headline_section",
    "numbers_section",
    "provenance_section",
    "shifts_section",
]

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


def _label(rec: Record, many: bool) -> str:
    return f"{rec.env_id} · {rec.path.name}" if many else rec.env_id


# --------------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------------
Row = tuple[str, list[Card]]
"""A labelled row of headline cards."""

THREAT_MODEL_NAMES: dict[str, str] = {
    "obs/linf": "Per-step ℓ∞ observation attack",
    "obs/l2": "Per-step ℓ2 observation attack",
    "obs/episode_l2": "Episode-total ℓ2 observation attack",
    "action/noise": "Action noise",
    "action/replace": "Random action replacement",
    "action/pr": "Adversarial action takeover (PR-MDP)",
    "action/nr": "Adversarial action mix (NR-MDP)",
}
"""Row titles of the headline, per threat model."""


def _model_name(unit: str) -> str:
    return THREAT_MODEL_NAMES.get(unit, unit)


def _clean_card(ev: EvaluationRecord) -> Card:
    detail = f"{ev.confidence:.0%} CI {fmt_ci(ev.clean)} · {ev.clean_episodes} episodes"
    if ev.runs > 1:
        detail = f"mean of {ev.runs} runs · {ev.confidence:.0%} CI over runs {fmt_ci(ev.clean)}"
    if ev.smoothing_sigma > 0:
        detail += f" · smoothed σ = {ev.smoothing_sigma:g}"
    return Card("Clean return", fmt(ev.clean.point), detail, "neutral")


def _worst_cards(ev: EvaluationRecord, curve: ThreatCurve) -> list[Card]:
    cards = []
    for j in pick_budgets(curve.budgets):
        m = float(curve.mean[j])
        who = f" · {curve.which[j]}" if curve.which else ""
        ci = fmt_ci(Estimate(m, curve.low[j], curve.high[j]))
        cards.append(
            Card(
                f"Worst case {unit_symbol(curve.unit)} = {curve.budgets[j]:g}",
                fmt(m),
                f"{versus_clean(ev.clean.point, m)} · CI {ci}{who}",
                tone(relative_drop(ev.clean.point, m)),
            )
        )
    return cards


def verdict(ev: EvaluationRecord, curve: ThreatCurve) -> str:
    """One sentence: up to which budget the return holds, and where it ends at the largest budget."""
    sym = unit_symbol(curve.unit)
    drops = [relative_drop(ev.clean.point, float(m)) for m in curve.mean]
    held = [float(b) for b, d in zip(curve.budgets, drops) if b > 0 and d <= 0.10]
    first_bad = next((float(b) for b, d in zip(curve.budgets, drops) if b > 0 and not d <= 0.10), None)
    j = len(curve.budgets) - 1
    end = f"{versus_clean(ev.clean.point, float(curve.mean[j]))} at {sym} = {curve.budgets[j]:g}"
    if curve.which and curve.which[j] != "clean":
        end += f" ({curve.which[j]})"
    if first_bad is None:
        return f"{_model_name(curve.unit)}: within 10 % of the clean return at every budget tested; {end}."
    if held and max(held) < first_bad:
        return f"{_model_name(curve.unit)}: within 10 % of clean up to {sym} = {max(held):g}; {end}."
    return f"{_model_name(curve.unit)}: loses more than 10 % already at {sym} = {first_bad:g}; {end}."


def _dynamics_cards(dy: DynamicsRecord) -> list[Card]:
    g = dy.grid
    idx = np.unravel_index(int(np.argmin(g.mean)), g.mean.shape)
    worst = float(g.mean[idx])
    at = ", ".join(f"{p} = {g.values[k][idx[k]]:g}" for k, p in enumerate(g.params))
    label = "Worst shift"
    ref = _nominal_value(g)
    if ref is None:
        return [Card(label, fmt(worst), at, "neutral")]
    rel = f"{100 * worst / ref:.0f} % of nominal" if ref > 0 and worst >= 0 else f"Δ {fmt(worst - ref)} vs nominal"
    cards = [
        Card("At nominal parameters", fmt(ref), ", ".join(f"{p} = {v:g}" for p, v in zip(g.params, g.nominal or ())))
    ]
    return [*cards, Card(label, fmt(worst), f"{rel} · {at}", tone(relative_drop(ref, worst)))]


def _nominal_value(g: ShiftGrid) -> float | None:
    """Mean return at the nominal grid point, when the grid contains it."""
    if g.nominal is None:
        return None
    idx = []
    for vals, nom in zip(g.values, g.nominal):
        hit = np.flatnonzero(np.isclose(vals, nom))
        if not hit.size:
            return None
        idx.append(int(hit[0]))
    return float(g.mean[tuple(idx)])


def _cert_row(ce: CertificateRecord, with_clean: bool) -> Row:
    cards = []
    if with_clean and ce.clean is not None:
        cards.append(Card("Clean smoothed return", fmt(ce.clean.point), f"CI {fmt_ci(ce.clean)} · n = {ce.n}"))
    for j in pick_budgets(ce.budgets):
        cards.append(
            Card(
                f"Certified B = {ce.budgets[j]:g}",
                f"≥ {fmt(float(ce.bounds[j]))}",
                f"{ce.confidence:.0%} confidence · n = {ce.n}",
                "cert",
            )
        )
    return f"Certified (Policy Smoothing, σ = {ce.sigma:g})", cards


def _group_html(title: str, rows: Sequence[Row], verdicts: Sequence[str]) -> str:
    out = f'<div class="group"><h3>{esc(title)}</h3>'
    if verdicts:
        out += '<ul class="verdict">' + "".join(f"<li>{esc(v)}</li>" for v in verdicts) + "</ul>"
    for label, cards in rows:
        out += f'<div class="row"><div class="rowlabel">{esc(label)}</div>{cards_html(cards)}</div>'
    return out + "</div>"


def headline_section(
    evals: Sequence[EvaluationRecord],
    certs: Sequence[CertificateRecord],
    dynamics: Sequence[DynamicsRecord] = (),
    extra: Sequence[str] = (),
) -> Section:
    """The "At a glance" section: clean return, strongest attack at a few budgets, certified bounds, shifts.

    One group per evaluation file: a sentence per threat model, then a labelled row of cards per threat
    model. Certificates and dynamics grids join the first evaluation of their task, or form their own
    group when no evaluation of the task was given.
    """
    many = len(evals) + len(certs) + len(dynamics) > 1
    home: dict[str, int] = {}
    groups: list[tuple[str, list[Row], list[str]]] = []
    for ev in evals:
        home.setdefault(ev.env_id, len(groups))
        rows: list[Row] = [("Clean", [_clean_card(ev)])]
        rows += [(_model_name(c.unit), _worst_cards(ev, c)) for c in ev.strongest]
        groups.append((_label(ev, many), rows, [verdict(ev, c) for c in ev.strongest]))
    for ce in certs:
        if ce.env_id in home:
            groups[home[ce.env_id]][1].append(_cert_row(ce, with_clean=False))
        else:
            groups.append((_label(ce, many), [_cert_row(ce, with_clean=True)], []))
    for dy in dynamics:
        row = (f"Dynamics shift ({' × '.join(dy.grid.params)})", _dynamics_cards(dy))
        if dy.env_id in home:
            groups[home[dy.env_id]][1].append(row)
        else:
            groups.append((_label(dy, many), [row], []))
    blocks = [*extra, *(_group_html(t, rows, v) for t, rows, v in groups)]
    lead = ""
    if evals:
        lead = (
            "Worst case: the strongest attack in the evaluation (lowest mean return over all threats) at that budget. "
        )
    if evals or dynamics:
        lead += "Green: at most 10 % of the clean (or nominal) return lost; amber: up to 50 %; red: more."
    if certs:
        lead += " Certified: a lower bound that holds against every attack of that budget, at the stated confidence."
    return Section("summary", "At a glance", "".join(blocks), lead)


def attacks_section(evals: Sequence[EvaluationRecord], sink: FigureSink) -> Section | None:
    """Return vs budget per threat with CI bands, the strongest attack dashed black; one figure per unit."""
    many = len(evals) > 1
    parts = []
    for i, ev in enumerate(evals):
        units = list(dict.fromkeys([c.unit for c in ev.curves] + [c.unit for c in ev.strongest]))
        for unit in units:
            curves = {
                c.name: make_series(c.budgets, c.mean, c.low, c.high, name=c.name) for c in ev.curves if c.unit == unit
            }
            strong = next((c for c in ev.strongest if c.unit == unit), None)
            if len(curves) == 1:
                strong = None  # one threat: it is the strongest; a second line on top would only hide it
            if not curves and strong is None:
                continue
            values = [ev.clean.low] + [float(c.low.min()) for c in ev.curves if c.unit == unit]
            fig = return_vs_budget(
                curves,
                # no band: at each budget it is the band of the threat achieving the minimum, drawn already
                strongest=None if strong is None else make_series(strong.budgets, strong.mean),
                clean=ev.clean,
                xlabel=unit_label(unit),
                title=f"{_label(ev, many)} · {_model_name(unit)}",
                ymin=0.0 if min(values) >= 0 else None,
            )
            what = (
                f"Mean over {ev.runs} runs of each run's mean return at each budget, {ev.confidence:.0%} bootstrap "
                "CI bands over runs"
                if ev.runs > 1
                else f"Mean return over episodes at each budget, {ev.confidence:.0%} CI bands"
            )
            caption = f"{what}; dashed line and band: clean return."
            if strong is not None:
                caption += " Black dashed: the strongest attack (minimum over threats at each budget)."
            parts.append(
                sink.add(fig, f"{i:02d}-{ev.env_id}-attacks-{unit}", alt=f"return vs {unit} budget", caption=caption)
            )
    if not parts:
        return None
    return Section(
        "attacks", "Return under attack", "".join(parts), "How the return falls as the attacker's budget grows."
    )


def _attacked_for(
    ce: CertificateRecord, evals: Sequence[EvaluationRecord]
) -> tuple[ThreatCurve, EvaluationRecord] | None:
    """The strongest episode-total ℓ2 curve of an evaluation of the same task.

    Preferred: an evaluation of the same smoothed policy (same σ), then the same policy name.
    """
    same = [ev for ev in evals if ev.env_id == ce.env_id]
    same.sort(key=lambda ev: (not math.isclose(ev.smoothing_sigma, ce.sigma), ev.policy != ce.policy))
    for ev in same:
        for c in ev.strongest:
            if c.unit in EPISODE_L2_UNITS:
                return c, ev
    return None


def certificates_section(
    certs: Sequence[CertificateRecord], evals: Sequence[EvaluationRecord], sink: FigureSink
) -> Section | None:
    """Certified lower bound vs budget beside the strongest empirical attack of the same budget."""
    if not certs:
        return None
    many = len(certs) > 1
    parts = []
    for i, ce in enumerate(certs):
        found = _attacked_for(ce, evals)
        attacked = None
        if found is not None:
            c, _ = found
            attacked = make_series(c.budgets, c.mean, c.low, c.high, name="attacked")
        fig = certificate_vs_attack(
            ce.budgets,
            ce.bounds,
            attacked=attacked,
            clean=ce.clean,
            floor=ce.floor,
            title=f"{_label(ce, many)}: certified return (σ = {ce.sigma:g})",
        )
        caption = (
            f"Green: Policy Smoothing lower bound on the expected return of the smoothed policy under any "
            f"total-ℓ2 observation attack of budget B, holding with probability ≥ {ce.confidence:.0%} "
            f"({ce.method}, n = {ce.n})."
        )
        if found is not None:
            ev = found[1]
            caption += f" Black: the strongest episode-total ℓ2 attack measured in {ev.path.name}"
            if math.isclose(ev.smoothing_sigma, ce.sigma):
                caption += f" on the same smoothed policy (σ = {ev.smoothing_sigma:g}): the bound must stay below it."
            else:
                caption += (
                    f" on a policy smoothed with σ = {ev.smoothing_sigma:g}, not the certified σ = {ce.sigma:g}: "
                    "a reference, not a check of the bound."
                )
        else:
            caption += " No evaluation with episode-total ℓ2 attacks on this task was given."
        parts.append(
            sink.add(fig, f"{i:02d}-{ce.env_id}-certificate", alt="certified bound vs budget", caption=caption)
        )
        header = ["budget B", "certified E[R] ≥"]
        if ce.quantile_bounds is not None:
            header.append(f"certified {ce.quantile:g}-quantile ≥")
        if found is not None:
            header.append("strongest attack (measured)")
        rows = []
        for j, b in enumerate(ce.budgets):
            row: list[str] = [f"{b:g}", fmt(float(ce.bounds[j]))]
            if ce.quantile_bounds is not None:
                row.append(fmt(float(ce.quantile_bounds[j])))
            if found is not None:
                hit = np.flatnonzero(np.isclose(found[0].budgets, b))
                row.append(fmt(float(found[0].mean[hit[0]])) if hit.size else "—")
            rows.append(row)
        parts.append(table_html(header, rows, numeric=[True] * len(header)))
    return Section(
        "certificates",
        "Certified robustness",
        "".join(parts),
        "A guarantee, not a measurement: no attack of the given total budget can push the expected return lower.",
    )


def _shift_caption(g: ShiftGrid) -> str:
    idx = np.unravel_index(int(np.argmin(g.mean)), g.mean.shape)
    at = ", ".join(f"{p} = {g.values[k][idx[k]]:g}" for k, p in enumerate(g.params))
    text = f"Lowest mean return {fmt(float(g.mean[idx]))} at {at}."
    if g.nominal is not None:
        mark = "dashed line" if len(g.params) == 1 else "boxed"
        text += " Nominal: " + ", ".join(f"{p} = {v:g}" for p, v in zip(g.params, g.nominal)) + f" ({mark})."
    return text


def shifts_section(dynamics: Sequence[DynamicsRecord], sink: FigureSink) -> Section | None:
    """One figure per dynamics-shift grid (line in 1-D, heatmap in 2-D, small multiples in 3-D)."""
    many = len(dynamics) > 1
    parts = []
    for i, dy in enumerate(dynamics):
        g = dy.grid
        threat = dy.config.get("threat")
        extra = ""
        if isinstance(threat, list | tuple) and threat:
            extra = f", under {threat[0]} at budget {dy.config.get('budget', 0):g}"
        sigma = dy.config.get("smoothing_sigma") or 0
        if sigma:
            extra += f", smoothed σ = {sigma:g}"
        fig = dynamics_shift(
            g.params,
            g.values,
            g.mean,
            low=g.low if len(g.params) == 1 else None,
            high=g.high if len(g.params) == 1 else None,
            nominal=g.nominal,
            title=f"{_label(dy, many)}: return under dynamics shift{extra}",
            vmin=0.0 if float(g.mean.min()) >= 0 else None,  # non-negative returns: colours from 0 (red) up
        )
        caption = _shift_caption(g) + f" {dy.episodes} episodes per grid point."
        if len(g.params) == 1:
            caption += f" Band: {dy.confidence:.0%} CI."
        parts.append(
            sink.add(fig, f"{i:02d}-{dy.env_id}-shift-{'-'.join(g.params)}", alt="dynamics shift", caption=caption)
        )
    if not parts:
        return None
    return Section(
        "shifts", "Dynamics shifts", "".join(parts), "Return when physical parameters differ from the nominal ones."
    )


def _numbers_tables(ev: EvaluationRecord) -> str:
    header = ["threat", "budget", "mean return", "CI", "vs clean", "episodes"]
    numeric = [False, False, True, True, True, True]
    rows: list[list[str]] = [["clean", "0", fmt(ev.clean.point), fmt_ci(ev.clean), "", str(ev.clean_episodes)]]
    cls = [[""] * 6]
    for c in ev.strongest:
        for j, b in enumerate(c.budgets):
            if b == 0 and c.which and c.which[j] == "clean":
                continue  # the clean row says it already
            m = float(c.mean[j])
            rows.append(
                [
                    f"strongest ({c.which[j]})" if c.which else "strongest",
                    f"{unit_symbol(c.unit)} = {b:g}",
                    fmt(m),
                    fmt_ci(Estimate(m, c.low[j], c.high[j])),
                    versus_clean(ev.clean.point, m),
                    str(int(c.episodes[j])),
                ]
            )
            cls.append(["", "", tone(relative_drop(ev.clean.point, m)), "", "", ""])
    out = table_html(header, rows, numeric=numeric, cell_classes=cls)
    full = [
        [
            c.name,
            f"{unit_symbol(c.unit)} = {b:g}",
            fmt(float(c.mean[j])),
            fmt_ci(Estimate(float(c.mean[j]), c.low[j], c.high[j])),
            versus_clean(ev.clean.point, float(c.mean[j])),
            str(int(c.episodes[j])),
        ]
        for c in ev.curves
        for j, b in enumerate(c.budgets)
    ]
    if full:
        out += (
            "<details><summary>Every threat and budget</summary>"
            + table_html(header, full, numeric=numeric)
            + "</details>"
        )
    return out


def numbers_section(evals: Sequence[EvaluationRecord], per_run: Sequence[EvaluationRecord] = ()) -> Section | None:
    """The strongest attack per budget (visible) and every threat × budget (collapsible), per evaluation.

    Args:
        evals: the evaluations shown (a task with several runs appears once, pooled).
        per_run: the individual runs behind pooled records, listed in a collapsible block per task.

    """
    if not evals:
        return None
    many = len(evals) > 1
    parts = []
    for ev in evals:
        parts.append(f"<h3>{esc(_label(ev, many))}</h3>")
        if ev.runs > 1:
            parts.append(
                f'<p class="note">Mean over {ev.runs} runs of each run\'s mean return; CI: '
                f"{ev.confidence:.0%} bootstrap interval over runs.</p>"
            )
        parts.append(_numbers_tables(ev))
        runs = [r for r in per_run if r.env_id == ev.env_id] if ev.runs > 1 else []
        if runs:
            inner = "".join(f"<h3>{esc(r.path.name)}</h3>{_numbers_tables(r)}" for r in runs)
            parts.append(f"<details><summary>Each of the {len(runs)} runs</summary>{inner}</details>")
    return Section("numbers", "Numbers", "".join(parts), "Mean returns with confidence intervals.")


def provenance_section(records: Sequence[Record]) -> Section:
    """Which file, task, policy, seed and versions produced each result; full configs collapsible."""
    header = ["file", "kind", "task", "policy", "seed", "robustrl", "torch", "commit", "created"]
    rows = []
    for r in records:
        p = r.provenance
        commit = str(p.get("commit") or "—")
        rows.append(
            [
                str(r.path.name),
                r.kind,
                r.env_id,
                r.policy or "—",
                "—" if r.seed is None else str(r.seed),
                str(p.get("robustrl") or "—"),
                str(p.get("torch") or "—"),
                commit[:10],
                str(p.get("created") or "—"),
            ]
        )
    parts = [table_html(header, rows, table_id="provenance-table")]
    for r in records:
        parts.append(json_details(f"{r.path.name}: config", dict(r.config)))
        parts.append(json_details(f"{r.path.name}: provenance", dict(r.provenance)))
    return Section(
        "provenance", "Configs, versions and seeds", "".join(parts), "Everything needed to reproduce each result."
    )

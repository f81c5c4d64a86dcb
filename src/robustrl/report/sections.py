"""The report's sections, each built from loaded results: headline cards, figures, tables, provenance.

Figures are rendered once into a :class:`FigureSink` (PNG and SVG bytes in memory), embedded in the page
as SVG ``data:`` URIs, and written as files by :func:`robustrl.report.report` at the end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from robustrl.certify.smoothing import attack_tightness
from robustrl.report.figures import (
    Estimate,
    certificate_vs_attack,
    dynamics_shift,
    make_series,
    return_vs_budget,
)
from robustrl.report.formatting import (
    EPISODE_L2_UNITS,
    Cert,
    Dyn,
    Eval,
    FigureSink,
    clean_estimate,
    curve_budgets,
    fmt,
    fmt_ci,
    pick_budgets,
    relative_drop,
    result_label,
    tone,
    unit_label,
    unit_symbol,
    versus_clean,
)
from robustrl.report.html import Card, Section, cards_html, esc, json_details, table_html
from robustrl.report.loading import Loaded, Reportable, nominal_params
from robustrl.results import Certificate, DynamicsResult, EvaluationResult, StrongestCurve

__all__ = [
    "attacks_section",
    "certificates_section",
    "headline_section",
    "numbers_section",
    "provenance_section",
    "shifts_section",
]
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


def _clean_card(item: Eval) -> Card:
    ev, clean = item.result, clean_estimate(item.result)
    detail = f"{ev.confidence:.0%} CI {fmt_ci(clean)} · {ev.clean.returns.size} episodes"
    if item.runs > 1:
        detail = f"mean of {item.runs} runs · {ev.confidence:.0%} CI over runs {fmt_ci(clean)}"
    if ev.smoothing_sigma > 0:
        detail += f" · smoothed σ = {ev.smoothing_sigma:g}"
    return Card("Clean return", fmt(clean.point), detail, "neutral")


def _worst_cards(ev: EvaluationResult, curve: StrongestCurve) -> list[Card]:
    cards = []
    for j in pick_budgets(curve_budgets(curve)):
        m = float(curve.mean[j])
        ci = fmt_ci(Estimate(m, curve.ci_low[j], curve.ci_high[j]))
        cards.append(
            Card(
                f"Worst case {unit_symbol(curve.threat_model)} = {curve.budgets[j]:g}",
                fmt(m),
                f"{versus_clean(ev.clean.mean, m)} · CI {ci} · {curve.threat[j]}",
                tone(relative_drop(ev.clean.mean, m)),
            )
        )
    return cards


def verdict(ev: EvaluationResult, curve: StrongestCurve) -> str:
    """One sentence: up to which budget the return holds, and where it ends at the largest budget."""
    sym = unit_symbol(curve.threat_model)
    drops = [relative_drop(ev.clean.mean, float(m)) for m in curve.mean]
    held = [float(b) for b, d in zip(curve.budgets, drops) if b > 0 and d <= 0.10]
    first_bad = next((float(b) for b, d in zip(curve.budgets, drops) if b > 0 and not d <= 0.10), None)
    j = len(curve.budgets) - 1
    end = f"{versus_clean(ev.clean.mean, float(curve.mean[j]))} at {sym} = {curve.budgets[j]:g}"
    if curve.threat[j] != "clean":
        end += f" ({curve.threat[j]})"
    name = _model_name(curve.threat_model)
    if first_bad is None:
        return f"{name}: within 10 % of the clean return at every budget tested; {end}."
    if held and max(held) < first_bad:
        return f"{name}: within 10 % of clean up to {sym} = {max(held):g}; {end}."
    return f"{name}: loses more than 10 % already at {sym} = {first_bad:g}; {end}."


def _grid_names(dy: DynamicsResult) -> tuple[str, ...]:
    return tuple(a.name for a in dy.params)


def _grid_values(dy: DynamicsResult) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(a.values, dtype=np.float64) for a in dy.params)


def _dynamics_cards(dy: DynamicsResult) -> list[Card]:
    names, values = _grid_names(dy), _grid_values(dy)
    idx = np.unravel_index(int(np.argmin(dy.mean)), dy.mean.shape)
    worst = float(dy.mean[idx])
    at = ", ".join(f"{p} = {values[k][idx[k]]:g}" for k, p in enumerate(names))
    label = "Worst shift"
    nominal = nominal_params(dy.env_id, names)
    ref = _nominal_value(dy, nominal)
    if ref is None:
        return [Card(label, fmt(worst), at, "neutral")]
    rel = f"{100 * worst / ref:.0f} % of nominal" if ref > 0 and worst >= 0 else f"Δ {fmt(worst - ref)} vs nominal"
    cards = [Card("At nominal parameters", fmt(ref), ", ".join(f"{p} = {v:g}" for p, v in zip(names, nominal or ())))]
    return [*cards, Card(label, fmt(worst), f"{rel} · {at}", tone(relative_drop(ref, worst)))]


def _nominal_value(dy: DynamicsResult, nominal: tuple[float, ...] | None) -> float | None:
    """Mean return at the nominal grid point, when the grid contains it."""
    if nominal is None:
        return None
    idx = []
    for vals, nom in zip(_grid_values(dy), nominal):
        hit = np.flatnonzero(np.isclose(vals, nom))
        if not hit.size:
            return None
        idx.append(int(hit[0]))
    return float(dy.mean[tuple(idx)])


def _cert_estimate(ce: Certificate) -> Estimate:
    return Estimate(ce.clean_return, ce.clean_return_ci[0], ce.clean_return_ci[1])


def _cert_row(ce: Certificate, with_clean: bool) -> Row:
    cards = []
    if with_clean:
        clean = _cert_estimate(ce)
        cards.append(Card("Clean smoothed return", fmt(clean.point), f"CI {fmt_ci(clean)} · n = {ce.n}"))
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
    evals: Sequence[Eval],
    certs: Sequence[Cert],
    dynamics: Sequence[Dyn] = (),
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
    for item in evals:
        ev = item.result
        home.setdefault(ev.env_id, len(groups))
        rows: list[Row] = [("Clean", [_clean_card(item)])]
        rows += [(_model_name(c.threat_model), _worst_cards(ev, c)) for c in ev.strongest]
        groups.append((result_label(item, many), rows, [verdict(ev, c) for c in ev.strongest]))
    for ce in certs:
        if ce.result.env_id in home:
            groups[home[ce.result.env_id]][1].append(_cert_row(ce.result, with_clean=False))
        else:
            groups.append((result_label(ce, many), [_cert_row(ce.result, with_clean=True)], []))
    for dy in dynamics:
        row = (f"Dynamics shift ({' × '.join(_grid_names(dy.result))})", _dynamics_cards(dy.result))
        if dy.result.env_id in home:
            groups[home[dy.result.env_id]][1].append(row)
        else:
            groups.append((result_label(dy, many), [row], []))
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


def attacks_section(evals: Sequence[Eval], sink: FigureSink) -> Section | None:
    """Return vs budget per threat with CI bands, the strongest attack dashed black; one figure per unit."""
    many = len(evals) > 1
    parts = []
    for i, item in enumerate(evals):
        ev, clean = item.result, clean_estimate(item.result)
        units = list(dict.fromkeys([c.threat_model for c in ev.threats] + [c.threat_model for c in ev.strongest]))
        for unit in units:
            curves = {
                c.label: make_series(c.budgets, c.mean, c.ci_low, c.ci_high, name=c.label)
                for c in ev.threats
                if c.threat_model == unit
            }
            strong = next((c for c in ev.strongest if c.threat_model == unit), None)
            if len(curves) == 1:
                strong = None  # one threat: it is the strongest; a second line on top would only hide it
            if not curves and strong is None:
                continue
            values = [clean.low] + [float(c.ci_low.min()) for c in ev.threats if c.threat_model == unit]
            fig = return_vs_budget(
                curves,
                # no band: at each budget it is the band of the threat achieving the minimum, drawn already
                strongest=None if strong is None else make_series(strong.budgets, strong.mean),
                clean=clean,
                xlabel=unit_label(unit),
                title=f"{result_label(item, many)} · {_model_name(unit)}",
                ymin=0.0 if min(values) >= 0 else None,
            )
            what = (
                f"Mean over {item.runs} runs of each run's mean return at each budget, {ev.confidence:.0%} bootstrap "
                "CI bands over runs"
                if item.runs > 1
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


def _attacked_for(ce: Certificate, evals: Sequence[Eval]) -> tuple[StrongestCurve, Eval] | None:
    """The strongest episode-total ℓ2 curve of an evaluation of the same task.

    Preferred: an evaluation of the same smoothed policy (same σ), then the same policy name.
    """
    same = [ev for ev in evals if ev.result.env_id == ce.env_id]
    same.sort(key=lambda ev: (not math.isclose(ev.result.smoothing_sigma, ce.sigma), ev.result.policy != ce.policy))
    for ev in same:
        for c in ev.result.strongest:
            if c.threat_model in EPISODE_L2_UNITS:
                return c, ev
    return None


def certificates_section(certs: Sequence[Cert], evals: Sequence[Eval], sink: FigureSink) -> Section | None:
    """Certified lower bound vs budget beside the strongest empirical attack of the same budget."""
    if not certs:
        return None
    many = len(certs) > 1
    parts = []
    for i, item in enumerate(certs):
        ce = item.result
        found = _attacked_for(ce, evals)
        attacked = None
        if found is not None:
            c, _ = found
            attacked = make_series(c.budgets, c.mean, c.ci_low, c.ci_high, name="attacked")
        fig = certificate_vs_attack(
            ce.budgets,
            ce.bounds,
            attacked=attacked,
            clean=_cert_estimate(ce),
            floor=ce.floor,
            title=f"{result_label(item, many)}: certified return (σ = {ce.sigma:g})",
        )
        caption = (
            f"Green: Policy Smoothing lower bound on the expected return of the smoothed policy under any "
            f"total-ℓ2 observation attack of budget B, holding with probability ≥ {ce.confidence:.0%} "
            f"({ce.method}, n = {ce.n})."
        )
        if found is not None:
            ev_path, ev_sigma = found[1].path, found[1].result.smoothing_sigma
            caption += f" Black: the strongest episode-total ℓ2 attack measured in {ev_path.name}"
            if math.isclose(ev_sigma, ce.sigma):
                caption += f" on the same smoothed policy (σ = {ev_sigma:g}): the bound must stay below it."
            else:
                caption += (
                    f" on a policy smoothed with σ = {ev_sigma:g}, not the certified σ = {ce.sigma:g}: "
                    "a reference, not a check of the bound."
                )
            caption += (
                " Tightness in the table: (clean − attacked) / (clean − certified), the share of the certified "
                "drop the attack realises (1: the bound is reached; near 0: the check has little power)."
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
            header += ["strongest attack (measured)", "tightness"]
        rows = []
        for j, b in enumerate(ce.budgets):
            row: list[str] = [f"{b:g}", fmt(float(ce.bounds[j]))]
            if ce.quantile_bounds is not None:
                row.append(fmt(float(ce.quantile_bounds[j])))
            if found is not None:
                hit = np.flatnonzero(np.isclose(curve_budgets(found[0]), b))
                if hit.size:
                    attacked_mean = float(found[0].mean[hit[0]])
                    share = attack_tightness(ce.clean_return, float(ce.bounds[j]), attacked_mean) if b > 0 else math.nan
                    row += [fmt(attacked_mean), "—" if math.isnan(share) else f"{share:.2f}"]
                else:
                    row += ["—", "—"]
            rows.append(row)
        parts.append(table_html(header, rows, numeric=[True] * len(header)))
    return Section(
        "certificates",
        "Certified robustness",
        "".join(parts),
        "A guarantee, not a measurement: no attack of the given total budget can push the expected return lower.",
    )


def _shift_caption(dy: DynamicsResult, nominal: tuple[float, ...] | None) -> str:
    names, values = _grid_names(dy), _grid_values(dy)
    idx = np.unravel_index(int(np.argmin(dy.mean)), dy.mean.shape)
    at = ", ".join(f"{p} = {values[k][idx[k]]:g}" for k, p in enumerate(names))
    text = f"Lowest mean return {fmt(float(dy.mean[idx]))} at {at}."
    if nominal is not None:
        mark = "dashed line" if len(names) == 1 else "boxed"
        text += " Nominal: " + ", ".join(f"{p} = {v:g}" for p, v in zip(names, nominal)) + f" ({mark})."
    return text


def shifts_section(dynamics: Sequence[Dyn], sink: FigureSink) -> Section | None:
    """One figure per dynamics-shift grid (line in 1-D, heatmap in 2-D, small multiples in 3-D)."""
    many = len(dynamics) > 1
    parts = []
    for i, item in enumerate(dynamics):
        dy = item.result
        names, one = _grid_names(dy), len(dy.params) == 1
        nominal = nominal_params(dy.env_id, names)
        extra = f", under {dy.threat} at budget {dy.budget:g}" if dy.threat else ""
        if dy.smoothing_sigma:
            extra += f", smoothed σ = {dy.smoothing_sigma:g}"
        fig = dynamics_shift(
            names,
            _grid_values(dy),
            dy.mean,
            low=dy.ci_low if one else None,
            high=dy.ci_high if one else None,
            nominal=nominal,
            title=f"{result_label(item, many)}: return under dynamics shift{extra}",
            vmin=0.0 if float(dy.mean.min()) >= 0 else None,  # non-negative returns: colours from 0 (red) up
        )
        caption = _shift_caption(dy, nominal) + f" {dy.episodes} episodes per grid point."
        if one:
            caption += f" Band: {dy.confidence:.0%} CI."
        parts.append(
            sink.add(fig, f"{i:02d}-{dy.env_id}-shift-{'-'.join(names)}", alt="dynamics shift", caption=caption)
        )
    if not parts:
        return None
    return Section(
        "shifts", "Dynamics shifts", "".join(parts), "Return when physical parameters differ from the nominal ones."
    )


def _numbers_tables(ev: EvaluationResult) -> str:
    header = ["threat", "budget", "mean return", "CI", "vs clean", "episodes"]
    numeric = [False, False, True, True, True, True]
    clean = clean_estimate(ev)
    rows: list[list[str]] = [["clean", "0", fmt(clean.point), fmt_ci(clean), "", str(ev.clean.returns.size)]]
    cls = [[""] * 6]
    for s in ev.strongest:
        for j, b in enumerate(s.budgets):
            if b == 0 and s.threat[j] == "clean":
                continue  # the clean row says it already
            m = float(s.mean[j])
            rows.append(
                [
                    f"strongest ({s.threat[j]})",
                    f"{unit_symbol(s.threat_model)} = {b:g}",
                    fmt(m),
                    fmt_ci(Estimate(m, s.ci_low[j], s.ci_high[j])),
                    versus_clean(clean.point, m),
                    str(ev.episodes),
                ]
            )
            cls.append(["", "", tone(relative_drop(clean.point, m)), "", "", ""])
    out = table_html(header, rows, numeric=numeric, cell_classes=cls)
    full = [
        [
            c.label,
            f"{unit_symbol(c.threat_model)} = {b:g}",
            fmt(float(c.mean[j])),
            fmt_ci(Estimate(float(c.mean[j]), c.ci_low[j], c.ci_high[j])),
            versus_clean(clean.point, float(c.mean[j])),
            str(c.returns.shape[1]),
        ]
        for c in ev.threats
        for j, b in enumerate(c.budgets)
    ]
    if full:
        out += (
            "<details><summary>Every threat and budget</summary>"
            + table_html(header, full, numeric=numeric)
            + "</details>"
        )
    return out


def numbers_section(evals: Sequence[Eval], per_run: Sequence[Eval] = ()) -> Section | None:
    """The strongest attack per budget (visible) and every threat × budget (collapsible), per evaluation.

    Args:
        evals: the evaluations shown (a task with several runs appears once, pooled).
        per_run: the individual runs behind pooled records, listed in a collapsible block per task.

    """
    if not evals:
        return None
    many = len(evals) > 1
    parts = []
    for item in evals:
        parts.append(f"<h3>{esc(result_label(item, many))}</h3>")
        if item.runs > 1:
            parts.append(
                f'<p class="note">Mean over {item.runs} runs of each run\'s mean return; CI: '
                f"{item.result.confidence:.0%} bootstrap interval over runs.</p>"
            )
        parts.append(_numbers_tables(item.result))
        runs = [r for r in per_run if r.result.env_id == item.result.env_id] if item.runs > 1 else []
        if runs:
            inner = "".join(f"<h3>{esc(r.path.name)}</h3>{_numbers_tables(r.result)}" for r in runs)
            parts.append(f"<details><summary>Each of the {len(runs)} runs</summary>{inner}</details>")
    return Section("numbers", "Numbers", "".join(parts), "Mean returns with confidence intervals.")


def provenance_section(records: Sequence[Loaded[Reportable]]) -> Section:
    """Which file, task, policy, seed and versions produced each result; full configs collapsible."""
    header = ["file", "kind", "task", "policy", "seed", "robustrl", "torch", "commit", "created"]
    rows = []
    for item in records:
        r = item.result
        p = r.provenance
        commit = str(p.get("commit") or "—")
        rows.append(
            [
                str(item.path.name),
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
    for item in records:
        parts.append(json_details(f"{item.path.name}: config", dict(item.result.config)))
        parts.append(json_details(f"{item.path.name}: provenance", dict(item.result.provenance)))
    return Section(
        "provenance", "Configs, versions and seeds", "".join(parts), "Everything needed to reproduce each result."
    )

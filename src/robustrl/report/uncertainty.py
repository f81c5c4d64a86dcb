"""The report's "Uncertainty sets" section: worst case, average and normalised scores over a set's grid."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robustrl.report.figures import dynamics_shift
from robustrl.report.formatting import FigureSink, fmt, result_label
from robustrl.report.html import Section, table_html
from robustrl.report.loading import Loaded, nominal_params
from robustrl.results.uncertainty import UncertaintyResult

Unc = Loaded[UncertaintyResult]


def _point(res: UncertaintyResult) -> str:
    return ", ".join(f"{k} = {v:g}" for k, v in res.worst_point.items())


def _score(res: UncertaintyResult, statistic: str) -> str:
    value = res.normalised(statistic)
    return "—" if value is None else f"{value:.2f}"


def uncertainty_section(items: Sequence[Unc], sink: FigureSink) -> Section | None:
    """A table of every uncertainty result and one grid figure (line, heatmap or small multiples) each."""
    if not items:
        return None
    many = len(items) > 1
    header = ["result", "set", "worst case", "at", "average", "normalised worst case", "normalised average",
              "episodes per point"]  # fmt: skip
    rows = [
        [result_label(it, many), f"{it.result.uncertainty_set} (v{it.result.set_version})", fmt(it.result.worst_case),
         _point(it.result), fmt(it.result.average), _score(it.result, "worst_case"), _score(it.result, "average"),
         str(it.result.episodes)]
        for it in items
    ]  # fmt: skip
    parts = [table_html(header, rows, numeric=[False, False, True, False, True, True, True, True],
                        table_id="uncertainty-table")]  # fmt: skip
    for i, it in enumerate(items):
        res = it.result
        names = tuple(a.name for a in res.params)
        values = tuple(np.asarray(a.values, dtype=np.float64) for a in res.params)
        nominal = nominal_params(res.env_id, names)
        fig = dynamics_shift(
            names, values, res.mean, nominal=nominal,
            title=f"{result_label(it, many)}: return over {res.uncertainty_set}",
            vmin=0.0 if float(res.mean.min()) >= 0 else None,
        )  # fmt: skip
        caption = (f"Mean return at each grid point ({res.episodes} episodes each); worst case "
                   f"{fmt(res.worst_case)} at {_point(res)}.")
        if res.references:
            caption += f" References (score 0 and 1): {', '.join(res.references)}."
        parts.append(sink.add(fig, f"{i:02d}-{res.env_id}-uncertainty-{res.uncertainty_set}",
                              alt="uncertainty set grid", caption=caption))
    return Section(
        "uncertainty", "Uncertainty sets", "".join(parts),
        "Return over a named set of physical parameters: its worst case, average and (with two reference "
        "policies) IWOCS's normalised score (v − v_ref0) / |v_ref1 − v_ref0|.",
    )  # fmt: skip

"""Certificates: pure functions from smoothed samples to bounds, and the smoothed sampler.

* Policy Smoothing (Kumar, Levine & Feizi, ICLR 2022): :func:`expected_return_bound`,
  :func:`percentile_bound`, :func:`per_step_budget`.
* CROP per-state action certificate (Wu et al., ICLR 2022): :func:`action_certificate`.
"""

from robustrl.certify.crop import ActionCertificate, action_certificate, hoeffding_margin
from robustrl.certify.smoothing import (
    PercentileBound,
    ReturnBound,
    clopper_pearson_lower,
    dkw_margin,
    expected_return_bound,
    integer_grid,
    order_statistic_index,
    per_step_budget,
    percentile_bound,
)

__all__ = [
    "ActionCertificate",
    "PercentileBound",
    "ReturnBound",
    "action_certificate",
    "clopper_pearson_lower",
    "dkw_margin",
    "expected_return_bound",
    "hoeffding_margin",
    "integer_grid",
    "order_statistic_index",
    "per_step_budget",
    "percentile_bound",
]

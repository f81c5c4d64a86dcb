"""Certificates: pure functions from smoothed samples to bounds, and the smoothed sampler.

* Policy Smoothing (Kumar, Levine & Feizi, ICLR 2022): :func:`expected_return_bound`,
  :func:`percentile_bound`, :func:`per_step_budget` (pure maths); :class:`SmoothedPolicy` and
  :func:`sample_smoothed_returns` (the sampler on the shared rollout engine); :func:`certify`
  ``(CertifyConfig) -> Certificate`` end to end (:func:`certify_policy` is its keyword form; the
  :class:`~robustrl.results.Certificate` saves to JSON and loads back with :func:`load_certificate`).
* CROP per-state action certificate (Wu et al., ICLR 2022): :func:`action_certificate`.

``robustrl.certify`` is also callable as :func:`certify` (``robustrl.certify(cfg)``), the way
``robustrl.rollout`` is callable as the rollout function.
"""

import sys
import types
from typing import Any

from robustrl.certify.certificate import Certificate, certify, certify_policy, load_certificate
from robustrl.certify.config import CertifyConfig
from robustrl.certify.crop import ActionCertificate, action_certificate, hoeffding_margin
from robustrl.certify.sampler import SmoothedPolicy, sample_smoothed_returns, smoothing_transform
from robustrl.certify.smoothing import (
    PercentileBound,
    ReturnBound,
    attack_tightness,
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
    "Certificate",
    "CertifyConfig",
    "PercentileBound",
    "ReturnBound",
    "SmoothedPolicy",
    "action_certificate",
    "attack_tightness",
    "certify",
    "certify_policy",
    "clopper_pearson_lower",
    "dkw_margin",
    "expected_return_bound",
    "hoeffding_margin",
    "integer_grid",
    "load_certificate",
    "order_statistic_index",
    "per_step_budget",
    "percentile_bound",
    "sample_smoothed_returns",
    "smoothing_transform",
]


class _CallableModule(types.ModuleType):
    """This package, callable as :func:`certify`."""

    def __call__(self, cfg: CertifyConfig, **kwargs: Any) -> Certificate:
        return certify(cfg, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

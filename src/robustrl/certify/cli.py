"""``robustrl certify``: the config the console script parses, and its entry point.

The subcommand calls :func:`robustrl.certify.certify` directly (see :data:`robustrl.cli.COMMANDS`);
:func:`run_certify` is the same call under its older name.
"""

from __future__ import annotations

from robustrl.certify.certificate import certify
from robustrl.certify.config import CertifyConfig, parse_budgets
from robustrl.results import Certificate

__all__ = ["CertifyConfig", "parse_budgets", "run_certify"]


def run_certify(cfg: CertifyConfig) -> Certificate:
    """:func:`~robustrl.certify.certify` (saves to ``cfg.out`` when set)."""
    return certify(cfg)

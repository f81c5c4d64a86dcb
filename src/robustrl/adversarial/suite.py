"""The pinned strongest-attack suites: ``robustrl evaluate --suite sa-mdp-v2`` (and the older ``sa-mdp-v1``).

Papers on state-adversarial robustness each report their own attack suite, so their numbers do not
compare. A suite here is a definition versioned in code (:data:`SUITES`): which attacks, their optimiser
settings, and the training budget of the learned adversaries. :func:`evaluate_suite` runs every attack of
the suite at every budget of an :class:`~robustrl.evaluate.config.EvaluateConfig` (same seed, so the same
initial states for every attack), records each attack's curve and, per budget, the minimum over the suite
(the result's ``strongest`` curve of threat model ``obs/<norm>``), and writes the full definition into the
result (``provenance["suite"]``). Budgets are in the victim's normalised units wherever it normalises its
observations (as SA-PPO reports them), raw units otherwise.

Trained adversaries are cached beside the result (``<out folder>/adversaries/``), keyed by the victim's
weights hash, ε, the units and the adversary's config, so a second evaluation of the same policy reuses them.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.adversarial.learned import (
    ADVERSARY_PPO,
    ADVERSARY_PPO_PRESETS,
    AdversaryConfig,
    cached_adversary,
    victim_hash,
)
from robustrl.adversarial.sarsa import RobustSarsaConfig, cached_sarsa_attack
from robustrl.common.config import config_to_dict
from robustrl.common.provenance import provenance
from robustrl.defenses.smoothing import smoothing_transform
from robustrl.envs import make_env
from robustrl.evaluate import evaluate
from robustrl.evaluate.common import mean_ci, resolve_policy
from robustrl.evaluate.config import EvaluateConfig, plan_evaluation
from robustrl.evaluate.evaluate import _strongest
from robustrl.policies.base import Policy
from robustrl.results import EvaluationResult, ThreatCurve
from robustrl.rollout import rollout

logger = logging.getLogger(__name__)

__all__ = ["SA_MDP_V1", "SA_MDP_V2", "SUITES", "SuiteDefinition", "evaluate_suite"]


@dataclass(frozen=True)
class SuiteDefinition:
    """One pinned attack suite: its gradient attacks, learned adversaries and robust-Sarsa attack."""

    name: str
    """Versioned name (a changed definition gets a new name)."""
    threats: tuple[tuple[str, str], ...]
    """``(label, NAME[FIELD=VALUE,...])`` of each attack that needs no training."""
    learned: tuple[tuple[str, AdversaryConfig], ...]
    """``(label, config)`` of each learned adversary (trained per victim and budget, then cached)."""
    sarsa: RobustSarsaConfig | None
    """The robust-Sarsa attack's settings (None: not in the suite)."""
    learned_steps: tuple[tuple[str, int], ...] = ()
    """``(env id, total_steps)``: the learned adversaries' training budget on those envs (others: their config's)."""

    def learned_for(self, env_id: str) -> tuple[tuple[str, AdversaryConfig], ...]:
        """The learned adversaries as they train on ``env_id`` (with its budget from :attr:`learned_steps`)."""
        steps = dict(self.learned_steps).get(env_id)
        if steps is None:
            return self.learned
        return tuple((label, dataclasses.replace(cfg, total_steps=steps)) for label, cfg in self.learned)

    def describe(self) -> dict[str, Any]:
        """JSON-ready definition, written into every result."""
        return {
            "name": self.name,
            "threats": {label: text for label, text in self.threats},
            "learned": {label: config_to_dict(cfg) for label, cfg in self.learned},
            "learned_steps": dict(self.learned_steps),
            "robust_sarsa": None if self.sarsa is None else config_to_dict(self.sarsa),
            "adversary_ppo": {"default": config_to_dict(ADVERSARY_PPO),
                              **{env: config_to_dict(c) for env, c in ADVERSARY_PPO_PRESETS.items()}},
        }


SA_MDP_V1 = SuiteDefinition(
    name="sa-mdp-v1",
    threats=(
        ("random", "uniform"),
        ("critic", "critic[restarts=1,steps=10]"),
        ("mad", "mad[restarts=1,steps=10]"),
    ),
    learned=(
        ("sa-rl", AdversaryConfig(kind="sa-rl", total_steps=60_000)),
        ("pa-ad", AdversaryConfig(kind="pa-ad", total_steps=60_000, pgd_steps=10)),
    ),
    sarsa=RobustSarsaConfig(),
)
"""SA-MDP suite, version 1: random (uniform in the ε-ball), critic and MAD (10 PGD steps), robust Sarsa
(Q^π by Sarsa with a robustness regulariser, then 10 PGD steps on it), SA-RL and PA-AD (PPO adversaries,
60k steps each: enough for classic control; MuJoCo needs a later suite version with millions)."""

SA_MDP_V2 = SuiteDefinition(
    name="sa-mdp-v2",
    threats=SA_MDP_V1.threats,
    learned=(
        ("sa-rl", AdversaryConfig(kind="sa-rl", total_steps=200_000)),
        ("pa-ad", AdversaryConfig(kind="pa-ad", total_steps=200_000, pgd_steps=10)),
    ),
    sarsa=RobustSarsaConfig(),
    learned_steps=tuple((env_id, 2_000_000) for env_id in ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Ant-v5")),
)
"""SA-MDP suite, version 2: v1's attacks with learned adversaries trained longer. On the test suite's CartPole
victim 60k steps left SA-RL at 421 and PA-AD at 277 at ε = 0.1 (uniform noise: 458), 200k steps at 132 and 129
(docs/adversarial.md). On the four MuJoCo envs each adversary trains for 2M steps, SA-PPO's agent budget on
Hopper (not yet shown to be enough)."""

SUITES: dict[str, SuiteDefinition] = {SA_MDP_V1.name: SA_MDP_V1, SA_MDP_V2.name: SA_MDP_V2}
"""Every pinned suite by name."""


def _curve(label: str, name: str, threat_model: str, options: dict[str, Any], budgets: tuple[float, ...],
           runs: list[tuple[np.ndarray, np.ndarray]], cfg: EvaluateConfig) -> ThreatCurve:
    stats = np.array([mean_ci(r, cfg.confidence, cfg.bootstrap_reps, cfg.seed) for r, _ in runs])
    return ThreatCurve(
        label=label, name=name, kind="obs", threat_model=threat_model, options=options, budgets=budgets,
        returns=np.stack([r for r, _ in runs]), lengths=np.stack([ln for _, ln in runs]),
        mean=stats[:, 0], ci_low=stats[:, 1], ci_high=stats[:, 2],
    )  # fmt: skip


def evaluate_suite(
    cfg: EvaluateConfig,
    *,
    policy: Policy | None = None,
    cache_dir: str | Path | None = None,
    definition: SuiteDefinition | None = None,
) -> EvaluationResult:
    """Run the pinned suite ``cfg.suite`` on a policy at ``cfg.budgets``.

    Args:
        cfg: what to evaluate; ``suite`` names the suite, ``threat`` stays the default (the suite fixes the
            attacks), ``budgets`` are the per-step ε.
        policy: an already loaded policy instead of loading ``cfg.policy``.
        cache_dir: folder of trained adversaries (default: ``adversaries/`` beside ``cfg.out``; none
            without ``out``: adversaries are trained and dropped).
        definition: run this definition instead of ``SUITES[cfg.suite]`` (a study's own variant, smaller
            tests); the result records the definition that ran.

    Returns:
        An :class:`~robustrl.results.EvaluationResult` with one curve per suite attack (labels ``random``,
        ``critic``, ``mad``, ``robust-sarsa``, ``sa-rl``, ``pa-ad``), the suite minimum per budget as its
        ``strongest`` curve, and the suite's definition in ``provenance["suite"]``.

    Raises:
        ValueError: no suite, an unknown one, a suite combined with explicit threats, or any bad option
            (checked before any work).
    """
    plan_evaluation(cfg)
    if cfg.suite is None or cfg.suite not in SUITES:
        raise ValueError(f"--suite must be one of {sorted(SUITES)}, got {cfg.suite!r}")
    suite = SUITES[cfg.suite] if definition is None else definition
    pol, pol_name = resolve_policy(
        cfg.policy if policy is None else policy, cfg.env, cfg.device, trust_code=cfg.trust_code,
        vec_normalize=cfg.vec_normalize if policy is None else None,
    )  # fmt: skip
    if policy is not None and cfg.policy:
        pol_name = cfg.policy
    normalized = getattr(pol, "obs_norm", None) is not None
    sha = victim_hash(cfg.policy) if policy is None and Path(cfg.policy).is_file() else victim_hash(pol)
    if cache_dir is None and cfg.out is not None:
        cache_dir = Path(cfg.out).parent / "adversaries"
    base_cfg = dataclasses.replace(
        cfg, suite=None, threat=tuple(text for _, text in suite.threats), option=(), threat_budgets=(),
        normalized=normalized, out=None,
    )  # fmt: skip
    base = evaluate(base_cfg, policy=pol)
    curves = [dataclasses.replace(c, label=label) for c, (label, _) in zip(base.threats, suite.threats)]
    budgets, norm = curves[0].budgets, curves[0].threat_model
    n_env, sigma = int(base.config["num_envs"]), base.smoothing_sigma
    env = make_env(cfg.env, n_env, device=cfg.device, seed=cfg.seed, **dict(cfg.env_kwargs))

    def run(attack: Any) -> tuple[np.ndarray, np.ndarray]:
        obs_t = smoothing_transform(sigma, attack=attack) if sigma > 0 else attack
        res = rollout(pol, env, cfg.episodes, seed=cfg.seed, obs_transform=obs_t, deterministic=cfg.deterministic,
                      progress=cfg.progress)
        return res.returns.numpy(), res.lengths.numpy()

    learned = suite.learned_for(cfg.env)
    plan = ", ".join([f"{label} {adv.total_steps:,} steps" for label, adv in learned]
                     + ([f"robust-sarsa {suite.sarsa.total_steps:,} steps"] if suite.sarsa is not None else []))
    logger.info("suite %s on %s: %d attacks at %d budget(s) > 0; trains per budget %s (cached in %s)",
                suite.name, cfg.env, len(suite.threats) + len(learned) + (suite.sarsa is not None),
                sum(b > 0 for b in budgets), plan,
                cache_dir if cache_dir is not None else "no folder: dropped after use")  # fmt: skip
    common: dict[str, Any] = {"cache_dir": cache_dir, "victim_sha": sha, "normalized": normalized, "device": cfg.device,
              "env_kwargs": dict(cfg.env_kwargs), "progress": cfg.progress}
    try:
        trained: list[tuple[str, str, dict[str, Any], Any]] = []
        if suite.sarsa is not None:
            trained.append(("robust-sarsa", "robust_sarsa", config_to_dict(suite.sarsa),
                            lambda b, s=suite.sarsa: cached_sarsa_attack(pol, cfg.env, b, s, **common)))
        for label, adv_cfg in learned:
            trained.append((label, adv_cfg.kind.replace("-", "_"), config_to_dict(adv_cfg),
                            lambda b, a=adv_cfg: cached_adversary(pol, cfg.env, b, a, **common)))
        for label, name, options, make in trained:
            runs, files = [], []
            for i, b in enumerate(budgets):
                if b == 0:
                    runs.append((base.clean.returns, curves[0].lengths[i]))
                    continue
                made = make(b)
                files.append({"budget": b, "file": None if made.path is None else str(made.path),
                              "reused": made.reused})
                runs.append(run(made.attack))
            opts = {**options, "normalized": normalized, "adversaries": files}
            curves.append(_curve(label, name, norm, opts, budgets, runs, cfg))
    finally:
        env.close()
    resolved = dataclasses.replace(
        cfg, policy=pol_name, threat=(), option=(), num_envs=n_env, smoothing_sigma=sigma, normalized=normalized,
        trust_code=False,
    )  # fmt: skip
    clean_stats = (base.clean.mean, base.clean.ci[0], base.clean.ci[1])
    result = EvaluationResult(
        env_id=cfg.env, policy=pol_name, episodes=cfg.episodes, seed=cfg.seed, clean=base.clean,
        threats=tuple(curves), strongest=_strongest(curves, clean_stats), confidence=cfg.confidence,
        smoothing_sigma=sigma, config=config_to_dict(resolved),
        provenance={**provenance(), "suite": suite.describe()},
    )  # fmt: skip
    if cfg.out is not None:
        result.save(cfg.out)
    return result


"""The main job: train a smoothed policy, attack it, certify it, and write the report.

``robustrl demo`` is the first thing a new user runs (``scripts/demo.sh``). On a 2-core CPU it takes a
few minutes: PPO with observation noise σ on CartPole-v1, evaluation of the Gaussian-smoothed policy
clean and under the attack suite (per-step ℓ∞ attacks with expectation over the smoothing noise, and the
episode-total ℓ2 attack of Policy Smoothing), a dynamics-shift grid, the Policy Smoothing certificate,
and the HTML report that puts them side by side.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, cast

import numpy as np

from robustrl.agents import TrainConfig
from robustrl.policies.base import Policy

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    """A quick robustness study of a smoothed PPO policy, ending with an HTML report."""

    out: Path = Path("robustrl-demo")
    """Folder for the policy, the result JSON files and the report."""
    env: str = "CartPole-v1"
    """Environment id (a native classic-control env keeps the demo fast)."""
    sigma: float = 0.2
    """Gaussian smoothing noise σ: used in training, in every evaluation and in the certificate."""
    train_steps: int = 300_000
    """Most PPO environment steps (training stops early once the noisy return reaches 475)."""
    threats: tuple[str, ...] = ("uniform", "gaussian", "fgsm", "pgd", "mad", "critic")
    """Per-step observation threats of the suite."""
    budgets: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)
    """Per-step ℓ∞ budgets ε of the suite (0 is the clean run)."""
    cert_budgets: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
    """Episode-total ℓ2 budgets B of the certificate and of the episode-budget attack."""
    episodes: int = 200
    """Episodes per threat and budget."""
    cert_episodes: int = 10_000
    """Smoothed episodes behind the certificate."""
    dynamics: tuple[str, ...] = ("length=0.25:1.0:4", "force_mag=5:15:3")
    """Dynamics-shift grid axes as NAME=LOW:HIGH:COUNT (empty: skip the dynamics study)."""
    dynamics_episodes: int = 20
    """Episodes per dynamics grid point."""
    alpha: float = 0.05
    """Failure probability of the certificate."""
    seed: int = 0
    """Seed of training, evaluation, certification and the report's bootstrap."""
    size: Literal["full", "quick"] = "full"
    """``quick`` shrinks every step (seconds instead of minutes: for smoke tests, not for conclusions)."""
    progress: bool = True
    """Show progress bars."""

    def resolved(self) -> DemoConfig:
        """The config actually run (``quick`` shrinks the work)."""
        if self.size == "full":
            return self
        return replace(
            self,
            size="full",
            train_steps=min(self.train_steps, 20_000),
            threats=self.threats[:2] + tuple(t for t in self.threats if t == "pgd"),
            budgets=self.budgets[:3],
            cert_budgets=self.cert_budgets[:4],
            episodes=min(self.episodes, 16),
            cert_episodes=min(self.cert_episodes, 400),
            dynamics_episodes=min(self.dynamics_episodes, 2),
        )


@dataclass(frozen=True)
class DemoResult:
    """Where the demo wrote its artefacts, and the headline numbers."""

    out: Path
    """The demo folder."""
    policy: Path
    """The trained policy checkpoint."""
    results: tuple[Path, ...]
    """The result JSON files the report was made from."""
    report: Path
    """The report's ``index.html``."""
    clean_return: float
    """Mean return of the smoothed policy without attack."""
    worst_return: float
    """Mean return under the strongest per-step attack at the largest budget."""
    certified: tuple[tuple[float, float], ...]
    """``(B, certified lower bound on the expected return)`` pairs."""
    seconds: float
    """Wall-clock time of the whole demo."""

    def __str__(self) -> str:
        cert = ", ".join(f"B={b:g}: ≥{v:.1f}" for b, v in self.certified)
        return (
            f"robustrl demo finished in {self.seconds:.0f}s\n"
            f"  clean smoothed return   {self.clean_return:.1f}\n"
            f"  worst per-step attack   {self.worst_return:.1f}\n"
            f"  certified (expected)    {cert}\n"
            f"  policy                  {self.policy}\n"
            f"  report                  {self.report}"
        )


def smoothed_ppo_config(
    env: str,
    sigma: float,
    *,
    seed: int = 0,
    total_steps: int = 300_000,
    out: Path | None = None,
    progress: bool = False,
) -> TrainConfig:
    """The recipe for a PPO policy that stays good under N(0, σ²) observation noise (Policy Smoothing).

    Training stops as soon as an evaluation under that noise reaches a mean return of 475 (CartPole's
    "solved"); the critic sees clean observations while the actor acts and learns on noisy ones.
    """
    return TrainConfig(
        algo="ppo",
        env=env,
        seed=seed,
        total_steps=total_steps,
        num_envs=64,
        eval_every=10_240,
        eval_episodes=64,
        stop_at_return=475.0,
        obs_noise=sigma,
        set=("gamma=0.99", "gae_lambda=0.9", "num_minibatches=2"),
        out=out,
        progress=progress,
    )


def demo(cfg: DemoConfig) -> DemoResult:
    """Run the whole study and return where everything is (see :class:`DemoConfig`)."""
    from robustrl.agents import train
    from robustrl.certify import certify_policy
    from robustrl.evaluate import evaluate_policy
    from robustrl.evaluate.dynamics import evaluate_dynamics
    from robustrl.report import report

    cfg = cfg.resolved()
    if cfg.sigma <= 0:
        raise ValueError(f"sigma must be > 0 (the certificate needs smoothing noise), got {cfg.sigma}")
    start = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = 5 if cfg.dynamics else 4

    logger.info("[1/%d] training PPO on %s with observation noise σ=%g", steps, cfg.env, cfg.sigma)
    trained = train(
        smoothed_ppo_config(
            cfg.env, cfg.sigma, seed=cfg.seed, total_steps=cfg.train_steps, out=out / "train", progress=cfg.progress
        )
    )
    logger.info("      %s", trained)
    policy = cast(Policy, trained.policy)
    policy_path = out / "train" / "policy.zip"

    logger.info(
        "[2/%d] attacking the smoothed policy: %s at ε ∈ %s, episode-total ℓ2 at B ∈ %s",
        steps,
        ", ".join(cfg.threats),
        list(cfg.budgets),
        list(cfg.cert_budgets),
    )
    evaluation = evaluate_policy(
        policy,
        cfg.env,
        threats=(*cfg.threats, "episode_l2"),
        budgets={"default": cfg.budgets, "episode_l2": cfg.cert_budgets},
        episodes=cfg.episodes,
        seed=cfg.seed,
        smoothing_sigma=cfg.sigma,
        progress=cfg.progress,
    )
    results = [evaluation.save(out / "evaluation.json")]

    if cfg.dynamics:
        logger.info("[3/%d] dynamics shifts over %s", steps, " × ".join(cfg.dynamics))
        dyn = evaluate_dynamics(
            policy,
            cfg.env,
            list(cfg.dynamics),
            episodes=cfg.dynamics_episodes,
            seed=cfg.seed,
            smoothing_sigma=cfg.sigma,
            progress=cfg.progress,
        )
        results.append(dyn.save(out / "dynamics.json"))

    logger.info("[%d/%d] certifying with %d smoothed episodes", steps - 1, steps, cfg.cert_episodes)
    cert = certify_policy(
        policy,
        cfg.env,
        sigma=cfg.sigma,
        budgets=cfg.cert_budgets,
        episodes=cfg.cert_episodes,
        alpha=cfg.alpha,
        seed=cfg.seed,
        progress=cfg.progress,
    )
    results.append(cert.save(out / "certificate.json"))

    logger.info("[%d/%d] writing the report", steps, steps)
    page = report(results, out / "report", title=f"robustrl demo: smoothed PPO on {cfg.env}", seed=cfg.seed)

    per_step = [s for s in evaluation.strongest if s.threat_model == "obs/linf"]
    worst = float(per_step[0].mean[-1]) if per_step else float("nan")
    return DemoResult(
        out=out,
        policy=Path(policy_path),
        results=tuple(Path(r) for r in results),
        report=page.index,
        clean_return=float(np.mean(evaluation.clean)),
        worst_return=worst,
        certified=tuple(zip(map(float, cert.budgets), map(float, cert.bounds))),
        seconds=time.perf_counter() - start,
    )

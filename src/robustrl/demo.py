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
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, NamedTuple, cast

from robustrl.agents import TrainConfig
from robustrl.certify.config import CertifyConfig
from robustrl.evaluate.config import DynamicsConfig, EvaluateConfig
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
            threats=tuple(dict.fromkeys(self.threats[:2] + tuple(t for t in self.threats if t == "pgd"))),
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


class _Stages(NamedTuple):
    """The config of every stage of the demo, built (and checked) before the first one runs."""

    train: TrainConfig
    evaluate: EvaluateConfig
    dynamics: DynamicsConfig | None
    certify: CertifyConfig


def _stages(cfg: DemoConfig, out: Path) -> _Stages:
    """Build every stage's config and check it, so a bad option fails before training, not after it.

    Raises:
        ValueError: naming the stage and the option.
    """
    from robustrl.agents.train import resolve_algo_config
    from robustrl.certify.config import budget_texts
    from robustrl.common.limits import check_count
    from robustrl.report import check_report_options

    check_count(cfg.train_steps, "--train-steps")
    train_cfg = smoothed_ppo_config(
        cfg.env, cfg.sigma, seed=cfg.seed, total_steps=cfg.train_steps, out=out / "train", progress=cfg.progress
    )
    policy_path = out / "train" / "policy.zip"
    # every result names the saved policy file, so its config reruns alone (robustrl.cli.run_command)
    eval_cfg = EvaluateConfig(
        policy=str(policy_path),
        env=cfg.env,
        threat=(*cfg.threats, "episode_l2"),
        budgets=cfg.budgets,
        threat_budgets=("episode_l2=" + ",".join(budget_texts(cfg.cert_budgets)),),
        episodes=cfg.episodes,
        seed=cfg.seed,
        smoothing_sigma=cfg.sigma,
        progress=cfg.progress,
        out=str(out / "evaluation.json"),
    )
    dyn_cfg = None
    if cfg.dynamics:
        dyn_cfg = DynamicsConfig(
            policy=str(policy_path),
            env=cfg.env,
            param=cfg.dynamics,
            episodes=cfg.dynamics_episodes,
            seed=cfg.seed,
            smoothing_sigma=cfg.sigma,
            progress=cfg.progress,
            out=str(out / "dynamics.json"),
        )
    cert_cfg = CertifyConfig(
        policy=str(policy_path),
        env=cfg.env,
        sigma=cfg.sigma,
        budgets=budget_texts(cfg.cert_budgets),
        episodes=cfg.cert_episodes,
        alpha=cfg.alpha,
        seed=cfg.seed,
        progress=cfg.progress,
        out=str(out / "certificate.json"),
    )
    # the output files are checked without their folder, which the demo makes once every check passed
    checks: list[tuple[str, Callable[[], object]]] = [
        ("train", lambda: resolve_algo_config(train_cfg)),
        ("evaluate", replace(eval_cfg, out=None).validate),
        *([("evaluate-dynamics", replace(dyn_cfg, out=None).validate)] if dyn_cfg is not None else []),
        ("certify", replace(cert_cfg, out=None).validate),
        ("report", lambda: check_report_options(seed=cfg.seed, confidence=0.95, reps=2000, dpi=110)),
    ]
    for stage, check in checks:
        try:
            check()
        except ValueError as err:
            raise ValueError(f"demo stage {stage}: {err}") from err
    return _Stages(train_cfg, eval_cfg, dyn_cfg, cert_cfg)


def demo(cfg: DemoConfig) -> DemoResult:
    """Run the whole study and return where everything is (see :class:`DemoConfig`).

    Every stage's config is built and checked first (:func:`_stages`), and the output folder with it: a
    bad option fails in a second, before training, and leaves nothing behind.

    Raises:
        ValueError: a bad option (naming the stage and the option), or an output folder that cannot be
            written.
    """
    from robustrl.agents import train
    from robustrl.certify import certify
    from robustrl.common.io import check_output_path
    from robustrl.common.seeding import check_seed
    from robustrl.defenses import check_sigma
    from robustrl.evaluate import evaluate, evaluate_dynamics
    from robustrl.report import report

    cfg = cfg.resolved()
    check_sigma(cfg.sigma, "sigma")  # > 0: the certificate needs smoothing noise
    check_seed(cfg.seed, "--seed")
    out = check_output_path(cfg.out, what="--out", kind="dir", allow_missing_parents=True)
    stages = _stages(cfg, out)
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    steps = 5 if cfg.dynamics else 4

    logger.info("[1/%d] training PPO on %s with observation noise σ=%g", steps, cfg.env, cfg.sigma)
    trained = train(stages.train)
    logger.info("      %s", trained)
    policy = cast(Policy, trained.policy)
    policy_path = Path(stages.evaluate.policy)

    logger.info(
        "[2/%d] attacking the smoothed policy: %s at ε ∈ %s, episode-total ℓ2 at B ∈ %s",
        steps,
        ", ".join(cfg.threats),
        list(cfg.budgets),
        list(cfg.cert_budgets),
    )
    evaluation = evaluate(stages.evaluate, policy=policy)
    results = [out / "evaluation.json"]

    if stages.dynamics is not None:
        logger.info("[3/%d] dynamics shifts over %s", steps, " × ".join(cfg.dynamics))
        evaluate_dynamics(stages.dynamics, policy=policy)
        results.append(out / "dynamics.json")

    logger.info("[%d/%d] certifying with %d smoothed episodes", steps - 1, steps, cfg.cert_episodes)
    cert = certify(stages.certify, policy=policy)
    results.append(out / "certificate.json")

    logger.info("[%d/%d] writing the report", steps, steps)
    page = report(results, out / "report", title=f"robustrl demo: smoothed PPO on {cfg.env}", seed=cfg.seed)

    per_step = [s for s in evaluation.strongest if s.threat_model == "obs/linf"]
    worst = float(per_step[0].mean[-1]) if per_step else float("nan")
    return DemoResult(
        out=out,
        policy=Path(policy_path),
        results=tuple(Path(r) for r in results),
        report=page.index,
        clean_return=evaluation.clean.mean,
        worst_return=worst,
        certified=tuple(zip(map(float, cert.budgets), map(float, cert.bounds))),
        seconds=time.perf_counter() - start,
    )

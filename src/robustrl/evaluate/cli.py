r"""``robustrl evaluate``: a policy file under threats (or over a dynamics grid), saved as JSON.

Examples::

    robustrl evaluate --policy pi.zip --env CartPole-v1 --threat pgd mad --budgets 0 0.05 0.1 \
        --episodes 100 --out eval.json
    robustrl evaluate --policy pi.zip --env CartPole-v1 --param length=0.25:1.0:4 force_mag=5,10,15 \
        --episodes 20 --out dynamics.json
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustrl.threats.registry import threat_spec


@dataclass(frozen=True)
class EvaluateConfig:
    """Evaluate a policy under observation/action threats, or over a grid of physical parameters."""

    policy: Path
    """Policy file (robustrl zip, Stable-Baselines3 zip or TorchScript)."""
    env: str
    """Environment id (see `robustrl envs`)."""
    threat: tuple[str, ...] = ()
    """Threats (pgd mad critic fgsm uniform gaussian episode_l2 action_noise action_replace pr_mdp); default pgd."""
    budgets: tuple[float, ...] = (0.0, 0.05, 0.1)
    """Budgets for every threat (0 = clean)."""
    episodes: int = 100
    """Episodes per threat and budget (per grid point with --param)."""
    seed: int = 0
    """Seed of every rollout."""
    out: Path | None = None
    """Write the result JSON here."""
    option: tuple[str, ...] = ()
    """Threat options THREAT.FIELD=VALUE, or FIELD=VALUE for every threat that has FIELD (e.g. pgd.steps=20)."""
    normalized: bool = False
    """Attack in the policy's normalised observation units (its obs_norm std), as SA-PPO."""
    smoothing_sigma: float = 0.0
    """Evaluate the Gaussian-smoothed policy with this sigma (attacks use EOT through the noise)."""
    eot: bool = True
    """With smoothing, attack through the noise (expectation over noise samples)."""
    deterministic: bool = True
    """Greedy actions (true) or sampled ones."""
    num_envs: int = 0
    """Env copies stepping together (0: automatic)."""
    device: str = "cpu"
    """Where the env and the policy run."""
    param: tuple[str, ...] = ()
    """Dynamics grid axes NAME=LOW:HIGH:COUNT or NAME=V1,V2 (1 to 3): evaluates over the grid instead of threats."""
    confidence: float = 0.95
    """Level of the bootstrap confidence intervals."""
    bootstrap_reps: int = 2000
    """Bootstrap resamples."""
    progress: bool = False
    """Show progress bars."""


def parse_value(text: str) -> Any:
    """A command-line option value: int, float, true/false, else the string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def threat_options(threats: tuple[str, ...], options: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    """Attach ``THREAT.FIELD=VALUE`` / ``FIELD=VALUE`` options to the threats they belong to.

    Raises:
        ValueError: a malformed option, or one no listed threat has.
    """
    out: list[tuple[str, dict[str, Any]]] = [(t, {}) for t in threats]
    for opt in options:
        key, sep, value = opt.partition("=")
        if not sep or not key:
            raise ValueError(f"bad --option {opt!r}: expected THREAT.FIELD=VALUE or FIELD=VALUE")
        target, _, fld = key.rpartition(".")
        hits = 0
        for name, opts in out:
            spec = threat_spec(name)
            fields = {f.name for f in dataclasses.fields(spec.config)} if spec.config is not None else set()
            if (not target or target == name) and fld in fields:
                opts[fld] = parse_value(value)
                hits += 1
        if not hits:
            raise ValueError(f"--option {opt!r} matches no field of the threats {list(threats)}")
    return out


def run_evaluate(cfg: EvaluateConfig) -> str:
    """Run the evaluation the config describes; save it to ``cfg.out``; return a readable summary."""
    if cfg.param:
        if cfg.threat:
            raise ValueError("give either --threat (attacks) or --param (dynamics grid), not both")
        from robustrl.evaluate.dynamics import evaluate_dynamics

        if cfg.option:
            raise ValueError("--option applies to threats; it has no effect with --param")
        result: Any = evaluate_dynamics(
            cfg.policy,
            cfg.env,
            cfg.param,
            episodes=cfg.episodes,
            seed=cfg.seed,
            smoothing_sigma=cfg.smoothing_sigma,
            deterministic=cfg.deterministic,
            max_copies=cfg.num_envs or None,
            device=cfg.device,
            confidence=cfg.confidence,
            bootstrap_reps=cfg.bootstrap_reps,
            progress=cfg.progress,
        )
    else:
        from robustrl.evaluate.evaluate import evaluate_policy

        result = evaluate_policy(
            cfg.policy,
            cfg.env,
            threat_options(cfg.threat or ("pgd",), cfg.option),
            cfg.budgets,
            cfg.episodes,
            cfg.seed,
            normalized=cfg.normalized,
            smoothing_sigma=cfg.smoothing_sigma,
            eot=cfg.eot,
            deterministic=cfg.deterministic,
            num_envs=cfg.num_envs or None,
            device=cfg.device,
            confidence=cfg.confidence,
            bootstrap_reps=cfg.bootstrap_reps,
            progress=cfg.progress,
        )
    text = str(result)
    if cfg.out is not None:
        text += f"\nwrote {result.save(cfg.out)}"
    return text

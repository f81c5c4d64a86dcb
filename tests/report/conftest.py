"""Result files for the report tests, made with the producers' real APIs.

* ``real_files``: one evaluation (``robustrl.evaluate_policy``), one dynamics grid
  (``robustrl.evaluate.evaluate_dynamics``) and one certificate (``robustrl.certify_policy``) of a linear
  CartPole policy, computed once per session (≈ 5 s).
* ``write_evaluation``: an ``EvaluationResult`` built from given per-episode returns and saved with its
  own ``save`` (the producer's schema, without rollouts): fast inputs for multi-run / multi-task tests.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from robustrl.evaluate import CleanRun, EvaluationResult, StrongestCurve, ThreatCurve


def linear_cartpole_policy():
    """A differentiable CartPole policy that balances: push right when θ + θ̇/2 > 0."""
    from robustrl.policies.networks import ActorCriticPolicy

    env = gym.make("CartPole-v1")
    pol = ActorCriticPolicy(env.observation_space, env.action_space, pi_hidden=(), vf_hidden=())
    env.close()
    with torch.no_grad():
        pol.action_net.weight.zero_()
        pol.action_net.bias.zero_()
        pol.action_net.weight[1] = torch.tensor([0.0, 0.0, 10.0, 5.0])
    return pol


@pytest.fixture(scope="session")
def real_files(tmp_path_factory) -> dict[str, Path]:
    import robustrl
    from robustrl.evaluate import evaluate_dynamics

    out = tmp_path_factory.mktemp("results")
    pol = linear_cartpole_policy()
    ev = robustrl.evaluate_policy(
        pol, "CartPole-v1", threats=("gaussian", "uniform"), budgets=(0, 0.1, 0.3), episodes=8, seed=0,
        bootstrap_reps=200,
    )  # fmt: skip
    dy = evaluate_dynamics(
        pol, "CartPole-v1", {"masspole": [0.05, 0.1, 0.5], "length": [0.25, 0.5, 1.0, 2.0]}, episodes=4, seed=0,
        bootstrap_reps=200,
    )  # fmt: skip
    ce = robustrl.certify_policy(
        pol, "CartPole-v1", sigma=0.1, budgets=[0.0, 0.1, 0.2, 0.4], episodes=100, seed=0, quantile=0.5
    )
    return {
        "evaluation": ev.save(out / "eval.json"),
        "dynamics": dy.save(out / "dynamics.json"),
        "certificate": ce.save(out / "cert.json"),
    }


def _stats(r: np.ndarray) -> tuple[float, float, float]:
    m = float(r.mean())
    return m, m - 5.0, m + 5.0


def write_evaluation(
    path: Path,
    env_id: str,
    clean: float,
    threats: dict[str, list[float]],
    budgets: tuple[float, ...] = (0.0, 0.1, 0.2),
    *,
    threat_model: str = "obs/linf",
    episodes: int = 4,
    seed: int = 0,
) -> Path:
    """Save an ``EvaluationResult`` whose every episode of (threat, budget) returned exactly the given mean.

    ``threats[name][j]`` is the mean return at ``budgets[j + 1]`` (budget 0 is the clean run); CIs are
    ``mean ± 5`` (the clean one too). The strongest curve is the minimum over threats at each budget, as the
    producer defines it.
    """
    curves = []
    for name, means in threats.items():
        rows = np.array([[clean] * episodes] + [[m] * episodes for m in means], dtype=np.float64)
        st = np.array([_stats(r) for r in rows])
        curves.append(
            ThreatCurve(
                label=name,
                name=name,
                kind="obs",
                threat_model=threat_model,
                options={},
                budgets=budgets,
                returns=rows,
                lengths=np.full(rows.shape, 10, dtype=np.int64),
                mean=st[:, 0],
                ci_low=st[:, 1],
                ci_high=st[:, 2],
            )
        )
    mean = np.min([c.mean for c in curves], axis=0)
    who = np.argmin([c.mean for c in curves], axis=0)
    strongest = StrongestCurve(
        threat_model=threat_model, budgets=budgets, mean=mean, ci_low=mean - 5, ci_high=mean + 5,
        threat=("clean", *(curves[k].label for k in who[1:])),
    )  # fmt: skip
    result = EvaluationResult(
        env_id=env_id, policy="synthetic", episodes=episodes, seed=seed,
        clean=CleanRun(np.full(episodes, clean), clean, (clean - 5.0, clean + 5.0)),
        threats=tuple(curves), strongest=(strongest,),
        config={"confidence": 0.95, "bootstrap_reps": 100, "smoothing_sigma": 0.0},
        provenance={"robustrl": "test"},
    )  # fmt: skip
    return result.save(path)


@pytest.fixture
def make_eval():
    """The :func:`write_evaluation` builder."""
    return write_evaluation


@pytest.fixture
def linear_policy():
    """:func:`linear_cartpole_policy` (a fixed, good CartPole policy)."""
    return linear_cartpole_policy()

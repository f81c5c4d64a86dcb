"""Hand-made results of every kind (small, exact numbers) and hypothesis strategies that build valid ones."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from robustrl.results import (
    Certificate,
    CleanRun,
    DynamicsResult,
    EvalRecord,
    EvaluationResult,
    GridAxis,
    StrongestCurve,
    ThreatCurve,
    TrainResult,
)

PROVENANCE = {"robustrl": "0.1.0", "torch": "2.13.0", "commit": "abc", "created": "2025-01-01T00:00:00+00:00"}


def evaluation() -> EvaluationResult:
    """Two episodes; pgd at (0, 0.1), action_replace at (0, 0.5); CIs are mean ± 1."""
    clean = CleanRun(np.array([10.0, 20.0]), 15.0, (14.0, 16.0))
    pgd = ThreatCurve(
        "pgd",
        "pgd",
        "obs",
        "obs/linf",
        {"steps": 2, "normalized": False},
        (0.0, 0.1),
        np.array([[10.0, 20.0], [4.0, 6.0]]),
        np.array([[10, 20], [4, 6]]),
        np.array([15.0, 5.0]),
        np.array([14.0, 4.0]),
        np.array([16.0, 6.0]),
    )
    rep = ThreatCurve(
        "action_replace",
        "action_replace",
        "action",
        "action/replace",
        {"adversary": "worst"},
        (0.0, 0.5),
        np.array([[10.0, 20.0], [7.0, 9.0]]),
        np.array([[10, 20], [7, 9]]),
        np.array([15.0, 8.0]),
        np.array([14.0, 7.0]),
        np.array([16.0, 9.0]),
    )
    strongest = (
        StrongestCurve("obs/linf", (0.0, 0.1), pgd.mean, pgd.ci_low, pgd.ci_high, ("clean", "pgd")),
        StrongestCurve("action/replace", (0.0, 0.5), rep.mean, rep.ci_low, rep.ci_high, ("clean", "action_replace")),
    )
    return EvaluationResult(
        "CartPole-v1",
        "pi.zip",
        2,
        7,
        clean,
        (pgd, rep),
        strongest,
        confidence=0.9,
        smoothing_sigma=0.2,
        config={"policy": "pi.zip", "threat": ["pgd[steps=2]", "action_replace"]},
        provenance=PROVENANCE,
    )


def dynamics() -> DynamicsResult:
    """A 2 × 3 grid, one episode per point, under pgd at budget 0.05."""
    mean = np.array([[500.0, 400.0, 300.0], [30.0, 20.0, 10.0]])
    return DynamicsResult(
        "CartPole-v1",
        "pi.zip",
        (GridAxis("length", (0.5, 1.0)), GridAxis("force_mag", (5.0, 10.0, 20.0))),
        1,
        3,
        mean[..., None],
        mean[..., None].astype(np.int64),
        mean,
        mean - 1,
        mean + 1,
        threat="pgd[steps=3]",
        budget=0.05,
        config={"param": ["length=0.5,1.0"]},
        provenance=PROVENANCE,
    )


def certificate() -> Certificate:
    """Three budgets, the last certifying nothing (−inf), with a median certificate."""
    return Certificate(
        "CartPole-v1",
        0.2,
        np.array([0.0, 0.5, 10.0]),
        np.array([480.0, 300.0, -np.inf]),
        0.95,
        "dkw",
        4,
        0.0,
        487.5,
        (475.0, 500.0),
        np.array([500.0, 475.0, 500.0, 475.0]),
        np.array([500, 475, 500, 475]),
        quantile=0.5,
        quantile_bounds=np.array([480.0, 200.0, -np.inf]),
        policy="pi.zip",
        seed=3,
        config={"sigma": 0.2},
        provenance=PROVENANCE,
    )


def train() -> TrainResult:
    """Two evaluations, the last with a noisy return; a policy object that is not saved."""
    history = (EvalRecord(100, 1.0, 0.8, 20.0, 2.0, 20.0, 15.0), EvalRecord(200, 2.0, 1.6, 480.0, 5.0, 480.0, 470.0))
    return TrainResult(
        "CartPole-v1",
        "ppo",
        0,
        200,
        2.0,
        1.6,
        True,
        history,
        config={"train": {"algo": "ppo"}},
        provenance=PROVENANCE,
        last_train_metrics={"train/loss": 0.5, "train/kl": math.nan},
        run_dir="runs/ppo",
        policy=object(),
        algo_config=object(),
    )


MADE = {"evaluation": evaluation, "dynamics": dynamics, "certificate": certificate, "train": train}
"""The hand-made result of each kind, by kind."""


# -------------------------------------------------------------------------------------------- strategies
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
names = st.text("abcdefghij_", min_size=1, max_size=8)
json_dicts = st.dictionaries(
    names, st.one_of(st.none(), st.booleans(), st.integers(-100, 100), finite, names), max_size=3
)


@st.composite
def curves(draw: st.DrawFn, k: int) -> tuple[tuple[float, ...], np.ndarray, np.ndarray, np.ndarray]:
    """Budgets ``[k]`` (0 first, increasing), mean and a CI around it."""
    steps = draw(st.lists(st.floats(1e-3, 10.0), min_size=k - 1, max_size=k - 1))
    budgets = tuple(float(x) for x in np.cumsum([0.0, *steps]))
    mean = np.array(draw(st.lists(finite, min_size=k, max_size=k)))
    half = np.array(draw(st.lists(st.floats(0.0, 100.0), min_size=k, max_size=k)))
    return budgets, mean, mean - half, mean + half


@st.composite
def evaluations(draw: st.DrawFn) -> EvaluationResult:
    """Any valid evaluation result."""
    n, k = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    returns = np.array(draw(st.lists(finite, min_size=n, max_size=n)))
    lo, hi = sorted(draw(st.lists(finite, min_size=2, max_size=2)))
    threats = []
    for i in range(draw(st.integers(0, 2))):
        budgets, mean, low, high = draw(curves(k))
        r = np.array(draw(st.lists(finite, min_size=n * k, max_size=n * k))).reshape(k, n)
        threats.append(
            ThreatCurve(
                f"t{i}",
                "pgd",
                draw(st.sampled_from(["obs", "action"])),
                "obs/linf",
                draw(json_dicts),
                budgets,
                r,
                np.abs(r).astype(np.int64),
                mean,
                low,
                high,
            )
        )
    budgets, mean, low, high = draw(curves(k))
    strong = StrongestCurve("obs/linf", budgets, mean, low, high, tuple(draw(st.lists(names, min_size=k, max_size=k))))
    return EvaluationResult(
        draw(names),
        draw(names),
        n,
        draw(st.integers(0, 2**31)),
        CleanRun(returns, draw(finite), (lo, hi)),
        tuple(threats),
        (strong,),
        confidence=draw(st.floats(0.01, 0.99)),
        smoothing_sigma=draw(st.floats(0, 2)),
        config=draw(json_dicts),
        provenance=draw(json_dicts),
    )


@st.composite
def dynamics_results(draw: st.DrawFn) -> DynamicsResult:
    """Any valid dynamics result (1–3 axes)."""
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    axes = tuple(GridAxis(f"p{i}", tuple(draw(st.lists(finite, min_size=s, max_size=s)))) for i, s in enumerate(sizes))
    episodes = draw(st.integers(1, 3))
    size = int(np.prod(sizes))
    mean = np.array(draw(st.lists(finite, min_size=size, max_size=size))).reshape(sizes)
    r = np.array(draw(st.lists(finite, min_size=size * episodes, max_size=size * episodes))).reshape(*sizes, episodes)
    return DynamicsResult(
        draw(names),
        draw(names),
        axes,
        episodes,
        draw(st.integers(0, 100)),
        r,
        np.abs(r).astype(np.int64),
        mean,
        mean - 1.0,
        mean + 1.0,
        threat=draw(st.one_of(st.none(), names)),
        budget=draw(st.floats(0, 1)),
        smoothing_sigma=draw(st.floats(0, 1)),
        confidence=draw(st.floats(0.01, 0.99)),
        config=draw(json_dicts),
    )


@st.composite
def certificates(draw: st.DrawFn) -> Certificate:
    """Any valid certificate, with ±inf bounds allowed."""
    k, n = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    budgets = np.array(draw(st.lists(st.floats(0, 10), min_size=k, max_size=k)))
    bound = st.one_of(finite, st.just(-math.inf))
    bounds = np.array(draw(st.lists(bound, min_size=k, max_size=k)))
    returns = np.array(draw(st.lists(finite, min_size=n, max_size=n)))
    quantile = draw(st.one_of(st.none(), st.floats(0.01, 0.99)))
    qb = None if quantile is None else np.array(draw(st.lists(bound, min_size=k, max_size=k)))
    lo, hi = sorted(draw(st.lists(finite, min_size=2, max_size=2)))
    return Certificate(
        draw(names),
        draw(st.floats(1e-3, 5)),
        budgets,
        bounds,
        draw(st.floats(0.5, 0.999)),
        draw(st.sampled_from(["dkw", "cp"])),
        n,
        draw(finite),
        draw(finite),
        (lo, hi),
        returns,
        np.abs(returns).astype(np.int64),
        quantile=quantile,
        quantile_bounds=qb,
        policy=draw(names),
        seed=draw(st.one_of(st.none(), st.integers(0, 100))),
        config=draw(json_dicts),
    )


@st.composite
def trains(draw: st.DrawFn) -> TrainResult:
    """Any valid train result (NaN statistics allowed in the history)."""
    stat = st.one_of(finite, st.just(math.nan))
    history = tuple(
        EvalRecord(
            draw(st.integers(0, 10**6)),
            draw(finite),
            draw(finite),
            draw(stat),
            draw(stat),
            draw(stat),
            draw(st.one_of(st.none(), stat)),
        )
        for _ in range(draw(st.integers(0, 3)))
    )
    return TrainResult(
        draw(names),
        draw(names),
        draw(st.integers(0, 100)),
        draw(st.integers(0, 10**6)),
        draw(finite),
        draw(finite),
        draw(st.booleans()),
        history,
        config=draw(json_dicts),
        last_train_metrics=draw(json_dicts),
        run_dir=draw(st.one_of(st.none(), names)),
    )

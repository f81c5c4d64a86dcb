"""M2TD3: config checks, the particles' descent on a toy critic, and a tiny Pendulum run."""

from __future__ import annotations

import math

import pytest
import torch

from robustrl.agents.train import TrainConfig
from robustrl.defenses.model_error import M2TD3Config
from robustrl.envs.uncertainty import uncertainty_set
from robustrl.jobs import train
from robustrl.model_robust.m2td3 import OmegaParticles, restart_mask
from robustrl.policies import load_policy


@pytest.mark.parametrize(("field", "value"), [("num_omegas", 0), ("omega_lr", -1.0), ("actor_objective", "max"),
                                              ("omega_std", math.nan), ("prob_rate", 0.0), ("min_prob", 0.5)])
def test_config_names_the_bad_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        M2TD3Config(**{field: value}).validate()  # type: ignore[arg-type]


def test_particle_descends_a_toy_critic() -> None:
    """Q(ω) = Σ_j (u_j − c_j)²: the stepped particle's Q falls to ~0, the other particle never moves."""
    parts = OmegaParticles(2, 2, torch.Generator().manual_seed(0))
    target = torch.tensor([0.8, 0.2])
    other = parts.units()[1].clone()
    mask = torch.tensor([True, False])
    start = float((parts.units()[0] - target).square().sum())
    for _ in range(400):
        logits = parts.logits.clone().requires_grad_(True)
        q = (torch.sigmoid(logits) - target).square().sum(1)
        (g,) = torch.autograd.grad(q.sum(), logits)
        parts.descend_(g, mask, 0.05)
    end = float((parts.units()[0] - target).square().sum())
    assert start > 0.05 and end < 1e-3
    assert torch.equal(parts.units()[1], other)


def test_restart_mask_and_restart() -> None:
    u = torch.tensor([[0.1, 0.1], [0.11, 0.1], [0.9, 0.9]])
    mask = restart_mask(u, torch.tensor([0.5, 0.48, 0.02]), 0.05, 0.05)
    assert mask.tolist() == [True, False, True]
    parts = OmegaParticles(3, 2, torch.Generator().manual_seed(1))
    parts.probs.copy_(torch.tensor([0.6, 0.38, 0.02]))
    before = parts.units().clone()
    parts.restart_(torch.tensor([False, False, True]), torch.Generator().manual_seed(2))
    assert torch.equal(parts.units()[:2], before[:2]) and not torch.equal(parts.units()[2], before[2])
    assert parts.probs.tolist() == pytest.approx([0.6 / 1.47, 0.38 / 1.47, 0.49 / 1.47])


def test_m2td3_pendulum_run_uses_the_explored_omega(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The stored ω of each transition is the mass that produced it: Gymnasium's Pendulum step recomputed."""
    uset = uncertainty_set("pendulum-1d-v1")
    held = []
    import robustrl.model_robust.m2td3 as m2

    real = m2.M2TD3

    class Spy(real):  # type: ignore[misc,valid-type]
        def __init__(self, *a, **k):  # type: ignore[no-untyped-def]
            super().__init__(*a, **k)
            held.append(self)

    m2.M2TD3 = Spy  # type: ignore[misc]
    try:
        res = train(TrainConfig(algo="td3", env="Pendulum-v1", total_steps=1600, eval_every=0, eval_episodes=2,
                                defense="m2td3", uncertainty_set=uset.name, out=tmp_path / "run",
                                set=("learning_starts=400",)))
    finally:
        m2.M2TD3 = real  # type: ignore[misc]
    learner = held[0]
    buf = learner.buffer
    n = buf.size
    obs, nxt, act, mass = buf.obs[:n, :3], buf.next_obs[:n, :3], buf.actions[:n, 0], buf.obs[:n, 3]
    assert bool(((mass >= 0.5) & (mass <= 2.0)).all()) and float(mass.std()) > 0.1
    th, thdot = torch.atan2(obs[:, 1], obs[:, 0]), obs[:, 2]
    g, length, dt = 10.0, 1.0, 0.05

    def next_speed(m: torch.Tensor) -> torch.Tensor:
        u = act.clamp(-2, 2)
        return (thdot + (3 * g / (2 * length) * torch.sin(th) + 3.0 / (m * length**2) * u) * dt).clamp(-8, 8)

    err = (next_speed(mass) - nxt[:, 2]).abs()
    err_nominal = (next_speed(torch.ones_like(mass)) - nxt[:, 2]).abs()
    assert float(err.max()) < 1e-3 < float(err_nominal.max())
    rec = res.config["m2td3"]
    assert len(rec["particles"]) == 5 and sum(rec["probabilities"]) == pytest.approx(1.0)
    assert all(0.5 <= p["m"] <= 2.0 for p in rec["particles"])
    policy = load_policy(tmp_path / "run")
    assert policy.act(torch.zeros(4, 3)).shape == (4, 1)


def test_m2td3_refuses_discrete_actions_and_other_algorithms() -> None:
    with pytest.raises(ValueError, match="continuous actions"):
        train(TrainConfig(algo="td3", env="CartPole-v1", total_steps=100, defense="m2td3",
                          uncertainty_set="cartpole-1d-v1"))
    with pytest.raises(ValueError, match="--algo td3"):
        train(TrainConfig(algo="sac", env="Pendulum-v1", total_steps=100, defense="m2td3",
                          uncertainty_set="pendulum-1d-v1"))

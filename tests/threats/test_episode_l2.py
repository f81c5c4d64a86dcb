"""Policy Smoothing's episode-total ℓ2 attack: never more than B per episode; unused budget carries over."""

import math

import pytest
import torch

from robustrl.defenses import smoothing_transform
from robustrl.envs import make_env
from robustrl.rollout import rollout
from robustrl.threats import EpisodeL2Attack, EpisodeL2Config, make_threat
from robustrl.threats.episode_l2 import step_radius


class Recorder:
    """Wrap an obs transform; sum ‖δ_t‖² per episode per copy (float64), closing episodes at episode_start."""

    def __init__(self, inner):
        self.inner = inner
        self.totals = []
        self.current = None

    def __call__(self, obs, ctx):
        adv = self.inner(obs, ctx)
        spent = (adv.double() - obs.double()).square().sum(1)
        if self.current is None:
            self.current = torch.zeros_like(spent)
        self.totals += self.current[ctx.episode_start].tolist()
        self.current = torch.where(ctx.episode_start, spent, self.current + spent)
        return adv


@pytest.mark.parametrize(("allocation", "budget"), [("flip", 0.05), ("flip", 1.0), ("even", 0.3)])
def test_an_episode_never_spends_more_than_the_budget(theta_policy, allocation, budget):
    cfg = EpisodeL2Config(allocation=allocation, horizon=100, steps=3, search_steps=5)
    rec = Recorder(EpisodeL2Attack(budget, cfg))
    rollout(theta_policy, make_env("CartPole-v1", 16, max_episode_steps=100), episodes=32, seed=0, obs_transform=rec)
    totals = torch.tensor(rec.totals[1:] + rec.current.tolist(), dtype=torch.float64)
    assert len(totals) >= 32
    assert torch.all(totals.sqrt() <= budget), totals.sqrt().max().item()
    # the attack does use its budget: most episodes spend well over half of it
    assert (totals.sqrt() > 0.5 * budget).float().mean() > 0.5


def test_flip_allocation_destroys_the_controller_and_scales_with_budget(theta_policy):
    env = make_env("CartPole-v1", 32, max_episode_steps=200)
    means = [
        rollout(theta_policy, env, 32, seed=0, obs_transform=make_threat("episode_l2", b, steps=5))
        .returns.mean()
        .item()
        for b in (0.0, 0.3, 1.0)
    ]
    assert means[0] == 200 and means[2] < 100 and means[2] < means[1] <= 200


def test_unused_budget_carries_over_and_resets_at_episode_start(theta_policy, make_ctx):
    # z = 20·(θ + 0.5 θ̇); the ℓ2 distance of obs to the decision boundary is |θ + 0.5 θ̇| / sqrt(1.25).
    def obs_at(distance):
        return torch.tensor([[0.0, 0.0, distance * math.sqrt(1.25), 0.0]])

    budget = 0.1
    attack = EpisodeL2Attack(budget, EpisodeL2Config(allocation="flip", search_steps=20))
    spent = []
    for t, d in enumerate([0.3, 0.3, 0.3, 0.3, 0.3, 0.08, 0.05, 0.05]):
        ctx = make_ctx(theta_policy, 1, step=t, start=t == 0)
        adv = attack(obs_at(d), ctx)
        spent.append((adv - obs_at(d)).norm().item())
        if t < 5:  # too far to flip with B: nothing spent, budget kept
            assert spent[-1] == 0 and attack.left_sq.item() == pytest.approx(budget**2)
    # step 5 spends ≈ 0.08, far more than an even share B/sqrt(8) ≈ 0.035: the unused budget carried over
    assert spent[5] == pytest.approx(0.08, rel=1e-3)
    # step 6 needs 0.05 ≤ sqrt(0.1² − 0.08²) = 0.06: flips; step 7 needs 0.05 > what is left: spends nothing
    assert spent[6] == pytest.approx(0.05, rel=1e-3) and spent[7] == 0
    assert math.sqrt(sum(s * s for s in spent)) <= budget
    # a new episode restores the whole budget
    adv = attack(obs_at(0.08), make_ctx(theta_policy, 1, step=0, start=True))
    assert (adv - obs_at(0.08)).norm().item() == pytest.approx(0.08, rel=1e-3)


def test_even_allocation_spreads_what_is_left_over_the_remaining_steps():
    cfg = EpisodeL2Config(allocation="even", horizon=4)
    left = torch.tensor([1.0, 1.0, 0.25], dtype=torch.float64)
    r = step_radius(left, torch.tensor([0, 1, 3]), 1.0, cfg)
    torch.testing.assert_close(r, torch.tensor([0.5, math.sqrt(1 / 3), 0.5], dtype=torch.float64), rtol=1e-5, atol=0)
    # steps past the horizon may spend everything that is left
    assert step_radius(left[:1], torch.tensor([9]), 1.0, cfg).item() == pytest.approx(1.0, rel=1e-5)
    capped = EpisodeL2Config(allocation="flip", max_step_fraction=0.25)
    assert step_radius(left[:1], torch.tensor([0]), 1.0, capped).item() == pytest.approx(0.25, rel=1e-5)


def test_episode_attack_bad_input():
    with pytest.raises(ValueError, match="budget"):
        EpisodeL2Attack(-1.0)
    with pytest.raises(ValueError, match="max_step_fraction"):
        EpisodeL2Config(max_step_fraction=0.0)
    with pytest.raises(ValueError, match="horizon"):
        step_radius(torch.ones(1, dtype=torch.float64), torch.zeros(1), 1.0, EpisodeL2Config(allocation="even"))


def test_smoothed_victim_episode_attack_keeps_the_budget(theta_policy):
    threat = make_threat("episode_l2", 0.5, smoothing_sigma=0.05, eot_samples=4, steps=3)
    assert threat.config.smoothing_sigma == 0.05  # EOT through the victim's noise
    rec = Recorder(threat)  # the threat perturbs only; the victim's noise is composed after it
    env = make_env("CartPole-v1", 16, max_episode_steps=100)
    res = rollout(theta_policy, env, 16, seed=1, obs_transform=smoothing_transform(0.05, rec))
    totals = torch.tensor(rec.totals[1:] + rec.current.tolist(), dtype=torch.float64)
    assert torch.all(totals.sqrt() <= 0.5) and res.returns.shape == (16,)


class TwoBoundaries(torch.nn.Module):
    """Three actions on the plane: 0 at the origin, 1 past x = 0.5 (steep logit), 2 past y = 0.3 (shallow)."""

    def __init__(self):
        super().__init__()
        import gymnasium as gym

        self.observation_space = gym.spaces.Box(-math.inf, math.inf, (2,))
        self.action_space = gym.spaces.Discrete(3)

    def logits(self, obs):
        zero = torch.zeros_like(obs[:, 0])
        return torch.stack([zero, 40.0 * (obs[:, 0] - 0.5), 2.0 * (obs[:, 1] - 0.3)], -1)

    def act(self, obs, *, deterministic=True, generator=None):
        return self.logits(obs).argmax(-1)


@pytest.mark.parametrize(("target_action", "cost", "flipped_to"), [(-1, 0.3, 2), (1, 0.5, 1)])
def test_targeted_attack_spends_the_cheapest_flip(make_ctx, target_action, cost, flipped_to):
    pi = TwoBoundaries()
    cfg = EpisodeL2Config(allocation="flip", objective="targeted", target_action=target_action, search_steps=30)
    attack = EpisodeL2Attack(2.0, cfg)
    obs = torch.zeros(1, 2)
    adv = attack(obs, make_ctx(pi, 1))
    # the least ℓ2 move that changes the action: the nearer boundary (y = 0.3), or the one it is told to reach
    assert (adv - obs).norm().item() == pytest.approx(cost, rel=2e-3)
    assert pi.act(adv).item() == flipped_to
    assert attack.left_sq.item() == pytest.approx(4.0 - cost**2, rel=1e-3)


def test_targeted_attack_on_the_cartpole_controller_keeps_the_budget_and_hurts(theta_policy):
    cfg = EpisodeL2Config(allocation="flip", objective="targeted", steps=5, search_steps=8)
    rec = Recorder(EpisodeL2Attack(1.0, cfg))
    env = make_env("CartPole-v1", 16, max_episode_steps=200)
    res = rollout(theta_policy, env, 32, seed=0, obs_transform=rec)
    totals = torch.tensor(rec.totals[1:] + rec.current.tolist(), dtype=torch.float64)
    assert torch.all(totals.sqrt() <= 1.0)
    assert res.returns.mean().item() < 100  # undisturbed it balances all 200 steps


def test_targeted_attack_bad_config(theta_policy, make_ctx):
    with pytest.raises(ValueError, match="allocation='flip'"):
        EpisodeL2Config(allocation="even", objective="targeted")
    with pytest.raises(ValueError, match="target_action"):
        EpisodeL2Config(objective="targeted", target_action=-2)
    attack = EpisodeL2Attack(1.0, EpisodeL2Config(objective="targeted", target_action=5))
    with pytest.raises(ValueError, match="target_action=5 is not an action of Discrete\\(2\\)"):
        attack(torch.zeros(1, 4), make_ctx(theta_policy, 1))

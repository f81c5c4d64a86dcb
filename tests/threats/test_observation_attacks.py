"""Observation attacks: the ℓp bound, observation bounds, batching, determinism, bad input."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustrl.threats import (
    CriticConfig,
    FGSMConfig,
    GaussianConfig,
    MADConfig,
    PGDConfig,
    UniformConfig,
    critic,
    fgsm,
    gaussian,
    mad,
    pgd,
    uniform,
)
from robustrl.threats.projection import flat_norm

ATTACKS = {
    "uniform": (uniform, UniformConfig),
    "gaussian": (gaussian, GaussianConfig),
    "fgsm": (fgsm, FGSMConfig),
    "pgd": (pgd, PGDConfig),
    "mad": (mad, MADConfig),
    "critic": (critic, CriticConfig),
}


def _units(adv, obs, scale):
    d = adv.double() - obs.double()
    return d if scale is None else d / scale.double()


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(sorted(ATTACKS)),
    norm=st.sampled_from(["linf", "l2"]),
    n=st.integers(1, 6),
    shape=st.sampled_from([(1,), (4,), (7,), (2, 3)]),
    budget=st.floats(0.0, 3.0),
    scaled=st.booleans(),
    bounded=st.booleans(),
    continuous=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_every_attack_stays_in_the_ball_and_in_the_bounds(
    make_linear, name, norm, n, shape, budget, scaled, bounded, continuous, seed
):
    fn, cfg_cls = ATTACKS[name]
    policy = make_linear(shape, act_dim=2 if continuous else 0, bounds=(-1.0, 1.0) if bounded else None, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn((n, *shape), generator=gen) * 2
    if bounded:  # some rows start outside the declared bounds: clipping must still never grow δ
        obs[0] = obs[0].clamp(-1, 1)
    scale = torch.rand(shape, generator=gen) + 0.1 if scaled else None
    cfg = cfg_cls(norm=norm)
    adv = fn(policy, obs, budget, gen, cfg, scale=scale)
    assert adv.shape == obs.shape and adv.dtype == obs.dtype
    norms = flat_norm(_units(adv, obs, scale), norm)
    slack = 1e-6 * (1 + obs.abs().max().item()) / (scale.min().item() if scaled else 1.0)
    assert torch.all(norms <= budget + slack), (norms.max().item(), budget)
    if bounded:
        inside = (obs >= -1) & (obs <= 1)
        assert torch.all(((adv >= -1) & (adv <= 1)) | ~inside)
        # out-of-bounds coordinates never move further out
        assert torch.all(adv.abs() <= torch.maximum(obs.abs(), torch.ones_like(obs)) + 1e-6)
    assert not any(p.grad is not None for p in policy.parameters())


@pytest.mark.parametrize(
    "fn,cfg",
    [
        (pgd, PGDConfig(random_start=False, steps=7)),
        (pgd, PGDConfig(random_start=False, norm="l2", loss="margin")),
        (fgsm, FGSMConfig()),
        (critic, CriticConfig(random_start=False)),
    ],
)
def test_batched_attack_equals_per_sample_attack(make_linear, fn, cfg):
    policy = make_linear((5,), n_actions=4, seed=3)
    obs = torch.randn(16, 5, generator=torch.Generator().manual_seed(1))
    batched = fn(policy, obs, 0.3, torch.Generator().manual_seed(0), cfg)
    single = torch.cat([fn(policy, obs[i : i + 1], 0.3, torch.Generator().manual_seed(0), cfg) for i in range(16)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


def test_per_sample_budgets_equal_separate_calls(make_linear):
    policy = make_linear((3,), seed=1)
    obs = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    budgets = torch.tensor([0.0, 0.1, 0.5, 2.0])
    cfg = PGDConfig(random_start=False)
    together = pgd(policy, obs, budgets, None, cfg)
    apart = torch.cat([pgd(policy, obs[i : i + 1], float(budgets[i]), None, cfg) for i in range(4)])
    torch.testing.assert_close(together, apart, atol=1e-6, rtol=0)
    assert torch.equal(together[0], obs[0])


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_same_generator_seed_same_perturbation(make_linear, name):
    fn, cfg_cls = ATTACKS[name]
    policy = make_linear((4,), seed=0)
    obs = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    a = fn(policy, obs, 0.2, torch.Generator().manual_seed(5), cfg_cls())
    b = fn(policy, obs, 0.2, torch.Generator().manual_seed(5), cfg_cls())
    assert torch.equal(a, b)


def test_pgd_flips_a_linear_policy_exactly_when_the_margin_allows(make_linear):
    # logits = obs @ w with 2 actions: the ℓ∞ distance to the decision boundary is |z| / ‖w0 − w1‖₁.
    policy = make_linear((3,), n_actions=2, seed=4)
    obs = torch.randn(200, 3, generator=torch.Generator().manual_seed(0))
    w = policy.w.detach()
    margin = (obs @ (w[:, 0] - w[:, 1])).abs() / (w[:, 0] - w[:, 1]).abs().sum()
    eps = 0.3
    adv = pgd(policy, obs, eps, torch.Generator().manual_seed(0), PGDConfig(steps=20))
    flipped = policy.act(adv) != policy.act(obs)
    assert torch.all(flipped[margin < eps * 0.98])
    assert not torch.any(flipped[margin > eps * 1.02])


def test_fgsm_is_one_full_signed_step_for_a_linear_policy(make_linear):
    policy = make_linear((4,), n_actions=2, seed=6)
    obs = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
    adv = fgsm(policy, obs, 0.1, None)
    w = policy.w.detach()
    a = policy.act(obs)
    # cross-entropy of the clean action rises along ±(w_other − w_clean): the sign of that direction.
    direction = torch.where(a[:, None] == 0, (w[:, 1] - w[:, 0])[None], (w[:, 0] - w[:, 1])[None])
    torch.testing.assert_close(adv - obs, 0.1 * direction.sign(), atol=1e-6, rtol=0)


def test_gradient_attacks_raise_stronger_loss_than_noise(make_linear):
    policy = make_linear((6,), n_actions=3, seed=2)
    obs = torch.randn(256, 6, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    clean = policy.act(obs)
    flips = {
        name: (policy.act(fn(policy, obs, 0.2, gen, cfg())) != clean).float().mean().item()
        for name, (fn, cfg) in ATTACKS.items()
    }
    assert flips["pgd"] >= flips["fgsm"] >= flips["uniform"]
    assert flips["pgd"] > flips["uniform"] + 0.1
    assert flips["mad"] > flips["uniform"]


def test_mad_on_a_gaussian_policy_increases_the_kl(make_linear):
    policy = make_linear((4,), act_dim=2, seed=1)
    obs = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)

    def kl(x):
        return torch.distributions.kl_divergence(policy.dist(obs), policy.dist(x)).detach()

    assert kl(mad(policy, obs, 0.3, gen)).mean() > 2 * kl(uniform(policy, obs, 0.3, gen)).mean()


def test_eot_attack_differs_from_plain_and_keeps_the_bound(make_linear):
    policy = make_linear((4,), seed=0)
    obs = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    plain = pgd(policy, obs, 0.1, torch.Generator().manual_seed(0), PGDConfig())
    eot = pgd(policy, obs, 0.1, torch.Generator().manual_seed(0), PGDConfig(smoothing_sigma=0.5, eot_samples=4))
    assert not torch.equal(plain, eot)
    assert (eot - obs).abs().max() <= 0.1 + 1e-6


def test_zero_budget_returns_the_clean_observation(make_linear):
    policy = make_linear((4,))
    obs = torch.randn(5, 4)
    for fn, cfg in ATTACKS.values():
        assert torch.equal(fn(policy, obs, 0.0, torch.Generator().manual_seed(0), cfg()), obs)


@pytest.mark.parametrize("fn", [pgd, fgsm, uniform, mad])
def test_bad_inputs_raise_clear_errors(make_linear, fn):
    policy = make_linear((3,))
    obs = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="budget"):
        fn(policy, obs, -0.1, None)
    with pytest.raises(ValueError, match="budget"):
        fn(policy, obs, float("nan"), None)
    with pytest.raises(ValueError, match="NaN"):
        fn(policy, torch.tensor([[0.0, float("nan"), 0.0]]), 0.1, None)
    with pytest.raises(ValueError, match="scale"):
        fn(policy, obs, 0.1, None, scale=torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="batch"):
        fn(policy, torch.zeros(3), 0.1, None)


def test_bad_configs_and_undifferentiable_policies_raise():
    with pytest.raises(ValueError, match="norm"):
        PGDConfig(norm="l1")
    with pytest.raises(ValueError, match="steps"):
        PGDConfig(steps=0)

    class Numpy:
        observation_space = gym.spaces.Box(-1, 1, (2,))
        action_space = gym.spaces.Discrete(2)

        def logits(self, obs):
            return torch.as_tensor(np.stack([obs.detach().numpy()[:, 0], -obs.detach().numpy()[:, 0]], 1))

        def act(self, obs, *, deterministic=True, generator=None):
            return self.logits(obs).argmax(-1)

    with pytest.raises(ValueError, match="not differentiable"):
        pgd(Numpy(), torch.zeros(2, 2), 0.1, None)
    with pytest.raises(ValueError, match="critic"):
        critic(Numpy(), torch.zeros(2, 2), 0.1, None)


class Wiggly(torch.nn.Module):
    """1-D policy whose score x + 0.1·sin(50x) wiggles fast: pointwise gradients point anywhere, while the
    Gaussian-smoothed score (σ = 0.3 averages the wiggle out) increases with x."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def logits(self, obs):
        z = obs[:, 0] + 0.1 * torch.sin(50 * obs[:, 0])
        return torch.stack([-z, z], -1)

    def act(self, obs, *, deterministic=True, generator=None):
        return self.logits(obs).argmax(-1)


def test_eot_attacks_the_smoothed_policy_through_its_noise():
    policy = Wiggly()
    obs = torch.linspace(0.3, 0.5, 400)[:, None]  # the smoothed policy picks action 1 here
    gen = torch.Generator().manual_seed(0)
    plain = fgsm(policy, obs, 0.2, gen, FGSMConfig())
    eot = fgsm(policy, obs, 0.2, gen, FGSMConfig(smoothing_sigma=0.3, eot_samples=64))
    # lowering the smoothed score means moving left; EOT does so almost always, the plain gradient at random
    assert (eot < obs).float().mean() > 0.95
    assert 0.3 < (plain < obs).float().mean() < 0.7

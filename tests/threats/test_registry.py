"""make_threat, the Gymnasium wrappers, dynamics grids."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from robustrl.defenses import smoothing_transform
from robustrl.envs import make_env
from robustrl.rollout import rollout
from robustrl.threats import (
    THREATS,
    ActionThreatWrapper,
    ObservationThreatWrapper,
    ParamAxis,
    PGDConfig,
    grid_param_tensors,
    make_grid,
    make_threat,
    parse_param_axis,
    pgd,
)


def test_registry_builds_every_threat_with_its_config():
    for name, spec in THREATS.items():
        t = make_threat(name, 0.1)
        assert t.kind == spec.kind and t.name == name
        assert t.describe()["budget"] == 0.1
    t = make_threat("pgd", 0.1, steps=3, norm="l2", smoothing_sigma=0.2)
    assert t.config == PGDConfig(steps=3, norm="l2", smoothing_sigma=0.2)
    assert t.threat_model == "obs/l2" and t.config.smoothing_sigma == 0.2
    assert make_threat("pgd", 0.1, smoothing_sigma=0.2, eot=False).config.smoothing_sigma == 0
    assert make_threat("episode_l2", 1.0).threat_model == "obs/episode_l2"
    assert make_threat("pr_mdp", 0.1, mix="nr").threat_model == "action/nr"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: make_threat("pgdd", 0.1), "did you mean"),
        (lambda: make_threat("pgd", -0.1), "≥ 0"),
        (lambda: make_threat("pgd", float("inf")), "finite"),
        (lambda: make_threat("pgd", 0.1, stepz=3), "unknown PGDConfig fields"),
        (lambda: make_threat("action_replace", 1.5), "probability"),
        (lambda: make_threat("action_noise", 0.1, smoothing_sigma=0.1), "smoothing"),
        (lambda: make_threat("uniform", 0.1, normalized=True, scale=torch.ones(4)), "either"),
        (lambda: make_threat("none", 0.0, steps=3), "no options"),
        (lambda: make_threat("pgd", 0.1, smoothing_sigma=-1.0), "smoothing_sigma"),
    ],
)
def test_make_threat_rejects_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_threats_perturb_only_and_smoothing_is_composed_after_the_attack(theta_policy, make_ctx):
    obs = torch.zeros(20000, 4)
    ctx = make_ctx(theta_policy, 20000)
    assert torch.equal(make_threat("none", 0.0, smoothing_sigma=0.3)(obs, ctx), obs)
    attack = make_threat("uniform", 0.1, smoothing_sigma=0.3)
    assert bool((attack(obs, ctx).abs() <= 0.1 + 1e-6).all())  # no smoothing noise inside the threat
    out = smoothing_transform(0.3, attack)(obs, ctx)
    assert abs(out.std().item() - (0.3**2 + 0.1**2 / 3) ** 0.5) < 0.01


def test_normalized_attack_uses_the_policy_obs_std(make_ctx):
    from robustrl.policies.networks import ActorCriticPolicy

    space = gym.spaces.Box(-np.inf, np.inf, (3,), dtype=np.float32)
    pi = ActorCriticPolicy(space, gym.spaces.Discrete(2), normalize_obs=True)
    pi.obs_norm.var.copy_(torch.tensor([1.0, 4.0, 0.01]))
    obs = torch.zeros(64, 3)
    adv = make_threat("uniform", 0.1, normalized=True)(obs, make_ctx(pi, 64))
    per_dim = adv.abs().amax(0)
    assert torch.all(per_dim <= torch.tensor([0.1, 0.2, 0.01]) * (1 + 1e-4))
    assert per_dim[1] > 0.15 and per_dim[2] < 0.0101
    with pytest.raises(ValueError, match="obs_norm"):
        make_threat("uniform", 0.1, normalized=True)(
            obs, make_ctx(ActorCriticPolicy(space, gym.spaces.Discrete(2)), 64)
        )


def test_observation_wrapper_matches_the_batched_attack(theta_policy):
    threat = make_threat("pgd", 0.05, random_start=False)
    env = ObservationThreatWrapper(gym.make("CartPole-v1"), threat, theta_policy, seed=0)
    raw = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=3)
    raw_obs, _ = raw.reset(seed=3)
    for _ in range(20):
        expected = pgd(theta_policy, torch.as_tensor(raw_obs)[None], 0.05, None, PGDConfig(random_start=False))[0]
        np.testing.assert_allclose(obs, expected.numpy(), atol=1e-6)
        assert np.abs(obs - raw_obs).max() <= 0.05 + 1e-6
        a = int(theta_policy.act(torch.as_tensor(raw_obs)[None])[0])
        obs, *_ = env.step(a)
        raw_obs, *_ = raw.step(a)
    with pytest.raises(ValueError, match="observation threat"):
        ObservationThreatWrapper(gym.make("CartPole-v1"), make_threat("pr_mdp", 0.1), theta_policy)


def test_action_wrapper_applies_the_threat(theta_policy):
    env = ActionThreatWrapper(gym.make("CartPole-v1"), make_threat("pr_mdp", 1.0), theta_policy, seed=0)
    obs, _ = env.reset(seed=0)
    sent = env.action(int(theta_policy.act(torch.as_tensor(obs)[None])[0]))
    assert sent == int(theta_policy.logits(torch.as_tensor(obs)[None]).argmin(-1)[0])
    total, done = 0, False
    while not done:
        obs, r, term, trunc, _ = env.step(int(theta_policy.act(torch.as_tensor(obs)[None])[0]))
        total += r
        done = term or trunc
    assert total < 50  # the adversary always takes over


def test_parse_param_axis_and_grids():
    assert parse_param_axis("length=0.25:1.0:4") == ParamAxis("length", (0.25, 0.5, 0.75, 1.0))
    assert parse_param_axis(" force_mag = 5,10 ").values == (5.0, 10.0)
    assert parse_param_axis("g=3:9:1").values == (3.0,)
    for bad in ["length", "length=a:b:2", "length=1:2", "length=1:2:0", "=1,2", "x=nan"]:
        with pytest.raises(ValueError):
            parse_param_axis(bad)
    with pytest.raises(ValueError, match="1 to 3"):
        make_grid(["a=1", "b=1", "c=1", "d=1"])
    with pytest.raises(ValueError, match="repeated"):
        make_grid(["a=1", "a=2"])
    axes = make_grid({"a": [1, 2], "b": [5, 6, 7]})
    t = grid_param_tensors(axes, 3)
    assert t["a"].shape == (18,)
    points = list(zip(t["a"][::3].tolist(), t["b"][::3].tolist()))
    assert points == [(1, 5), (1, 6), (1, 7), (2, 5), (2, 6), (2, 7)]


def test_per_step_threat_in_rollout_is_deterministic_and_bounded(theta_policy):
    env = make_env("CartPole-v1", 16, max_episode_steps=100)
    seen = []

    def spy(obs, ctx):
        adv = threat(obs, ctx)
        seen.append((adv - obs).abs().max().item())
        return adv

    threat = make_threat("pgd", 0.05, steps=3)
    a = rollout(theta_policy, env, 16, seed=2, obs_transform=spy).returns
    b = rollout(theta_policy, env, 16, seed=2, obs_transform=threat).returns
    assert torch.equal(a, b) and max(seen) <= 0.05 + 1e-6


def test_only_active_rows_are_attacked_when_the_context_says_so(theta_policy, make_ctx):
    from dataclasses import dataclass

    from robustrl.rollout import StepContext

    @dataclass(frozen=True)
    class ActiveContext(StepContext):
        active: torch.Tensor = None

    obs = torch.randn(6, 4, generator=torch.Generator().manual_seed(0)) * 0.05
    base = make_ctx(theta_policy, 6)
    active = torch.tensor([True, False, True, False, False, True])
    ctx = ActiveContext(base.policy, base.step, base.episode_start, base.generator, active)
    threat = make_threat("pgd", 0.05, random_start=False)
    adv = threat(obs, ctx)
    assert torch.equal(adv[~active], obs[~active])
    torch.testing.assert_close(adv[active], pgd(theta_policy, obs[active], 0.05, None, PGDConfig(random_start=False)))

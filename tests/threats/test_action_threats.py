"""Action threats: noise, random replacement, PR/NR-MDP adversaries."""

import gymnasium as gym
import pytest
import torch

from robustrl.envs import make_env
from robustrl.rollout import rollout
from robustrl.threats import PRMDPConfig, action_noise, action_replace, make_threat, pr_mdp, worst_action


def test_action_replace_probability_and_uniformity(make_linear):
    policy = make_linear((3,), n_actions=4)
    action = torch.zeros(40000, dtype=torch.int64)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(action_replace(policy, action, 0.0, gen), action)
    out = action_replace(policy, action, 0.4, gen)
    # changed with probability p · (n − 1)/n = 0.3; replacements uniform over the 4 actions
    assert abs((out != 0).float().mean().item() - 0.3) < 0.01
    counts = torch.bincount(action_replace(policy, action, 1.0, gen), minlength=4).float() / 40000
    assert torch.allclose(counts, torch.full((4,), 0.25), atol=0.01)


def test_action_noise_is_clipped_and_scaled(make_linear):
    policy = make_linear((3,), act_dim=2)
    action = torch.full((20000, 2), 0.5)
    out = action_noise(policy, action, 0.1, torch.Generator().manual_seed(0))
    assert out.min() >= -1 and out.max() <= 1
    assert abs((out - action).std().item() - 0.1) < 0.005  # half range 1 → σ = 0.1
    big = action_noise(policy, action, 10.0, torch.Generator().manual_seed(0))
    assert big.min() == -1 and big.max() == 1


def test_worst_action_heuristics(make_linear):
    disc = make_linear((3,), n_actions=5, seed=1)
    obs = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(worst_action(disc, disc.act(obs), obs), disc.q_values(obs).argmin(-1))

    class NoCritic:
        action_space = gym.spaces.Box(-1.0, 1.0, (2,))

    a = torch.tensor([[0.5, -0.2], [-0.9, 0.0]])
    assert torch.equal(worst_action(NoCritic(), a, obs[:2]), torch.tensor([[-1.0, 1.0], [1.0, -1.0]]))
    cont = make_linear((3,), act_dim=2, seed=2)
    act = cont.act(obs)
    worst = worst_action(cont, act, obs, critic_steps=20)
    assert torch.all(cont.critic(obs, worst) <= cont.critic(obs, act) + 1e-6)
    assert worst.abs().max() <= 1


def test_pr_and_nr_mixing(make_linear):
    policy = make_linear((3,), n_actions=3, seed=0)
    obs = torch.randn(30000, 3, generator=torch.Generator().manual_seed(0))
    act = policy.act(obs)
    worst = worst_action(policy, act, obs)
    out = pr_mdp(policy, act, obs, 0.25, torch.Generator().manual_seed(0))
    assert torch.all((out == act) | (out == worst))
    assert abs((out == worst).float().mean().item() - 0.25) < 0.01
    assert torch.equal(pr_mdp(policy, act, obs, 1.0, None), worst)

    cont = make_linear((3,), act_dim=2, seed=0)
    a = cont.act(obs[:10])
    adv = make_linear((3,), act_dim=2, seed=9)
    mixed = pr_mdp(cont, a, obs[:10], 0.3, None, PRMDPConfig(mix="nr"), adversary=adv)
    torch.testing.assert_close(mixed, 0.7 * a + 0.3 * adv.act(obs[:10]))
    with pytest.raises(ValueError, match="Box"):
        pr_mdp(policy, act, obs, 0.3, None, PRMDPConfig(mix="nr"))
    with pytest.raises(ValueError, match="probability"):
        pr_mdp(policy, act, obs, 1.5, None)


def test_pr_mdp_worst_case_adversary_lowers_the_return(theta_policy):
    env = make_env("CartPole-v1", 32, max_episode_steps=200)
    clean = rollout(theta_policy, env, 32, seed=0).returns.mean()
    attacked = rollout(theta_policy, env, 32, seed=0, action_transform=make_threat("pr_mdp", 0.3)).returns.mean()
    noisy = rollout(theta_policy, env, 32, seed=0, action_transform=make_threat("action_replace", 0.3)).returns.mean()
    assert clean == 200 and attacked < noisy <= clean

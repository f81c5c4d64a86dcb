"""TD3 and the fused critic ensemble: pure functions, equivalence with per-critic MLPs, the agent contract."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from robustrl.agents import (
    SAC,
    TD3,
    CriticEnsemble,
    SACConfig,
    TD3Config,
    TrainConfig,
    smoothed_target_action,
    td3_target,
    train,
)
from robustrl.agents.common import learner_state, load_learner_state
from robustrl.cli import main
from robustrl.envs import make_env
from robustrl.policies import DeterministicActorPolicy, load_policy
from robustrl.policies.actors import make_critics

# ------------------------------------------------------------------------------ pure functions


def test_smoothed_target_action_clips_noise_then_action() -> None:
    a = torch.tensor([[0.9, 0.0, -0.2]])
    eps = torch.tensor([[3.0, -3.0, 0.5]])
    out = smoothed_target_action(a, eps, noise_std=0.2, noise_clip=0.5)
    torch.testing.assert_close(out, torch.tensor([[1.0, -0.5, -0.1]]))


def test_td3_target_takes_the_minimum_and_masks_only_termination() -> None:
    next_q = torch.tensor([[1.0, 5.0, 2.0], [3.0, 4.0, -1.0]])
    y = td3_target(torch.ones(3), next_q, torch.tensor([0.0, 0.0, 1.0]), gamma=0.5)
    torch.testing.assert_close(y, torch.tensor([1.5, 3.0, 1.0]))


# ------------------------------------------------------------------------------ fused critics


@pytest.mark.parametrize("k", [1, 2, 5])
def test_fused_critics_equal_the_per_critic_mlps(k: int) -> None:
    torch.manual_seed(0)
    critics = make_critics(7, 3, (32, 16), "relu", k)
    ens = CriticEnsemble(10, (32, 16), "relu", k)
    ens.load_from(critics)
    x = torch.randn(64, 10, requires_grad=True)
    fused = ens.q_values(x)
    separate = torch.stack([c(x).squeeze(-1) for c in critics])
    torch.testing.assert_close(fused, separate, rtol=1e-5, atol=1e-6)
    # gradients: the same loss gives the same weight and input gradients
    target = torch.randn(64)
    (gx_fused,) = torch.autograd.grad(ens.loss(ens(x), target), x, retain_graph=True)
    ens.loss(ens(x), target).backward()
    sep_loss = 0.5 * sum((c(x).squeeze(-1) - target).square().mean() for c in critics)
    gx_sep = torch.autograd.grad(sep_loss, x, retain_graph=True)[0]
    sep_loss.backward()  # type: ignore[union-attr]
    torch.testing.assert_close(gx_fused, gx_sep, rtol=1e-5, atol=1e-6)
    first = [c[0] for c in critics]
    for i, lin in enumerate(first):
        assert ens.weights[0].grad is not None and lin.weight.grad is not None
        torch.testing.assert_close(ens.weights[0].grad[i].T, lin.weight.grad, rtol=1e-5, atol=1e-6)
    # per-critic inputs [K, B, in] agree with the shared-input path
    torch.testing.assert_close(ens.q_values(x.detach().expand(k, -1, -1)), fused.detach(), rtol=1e-5, atol=1e-6)


def test_fused_critics_export_back_into_the_policy_layout() -> None:
    torch.manual_seed(1)
    ens = CriticEnsemble(6, (8,), "tanh", 2)
    critics = make_critics(4, 2, (8,), "tanh", 2)
    export = ens.exporter(critics)
    export()
    x = torch.randn(5, 6)
    torch.testing.assert_close(torch.stack([c(x).squeeze(-1) for c in critics]), ens.q_values(x).detach())
    with torch.no_grad():
        ens.weights[1].add_(1.0)
    export()  # the views were built once; the copy follows later changes
    torch.testing.assert_close(torch.stack([c(x).squeeze(-1) for c in critics]), ens.q_values(x).detach())


def test_detached_critics_pass_gradients_to_the_input_only() -> None:
    ens = CriticEnsemble(4, (8,), "relu", 2)
    x = torch.randn(3, 4, requires_grad=True)
    ens.q_values(x, detach=True).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert all(p.grad is None for p in ens.parameters())


def test_hl_gauss_head_expectation_and_loss() -> None:
    ens = CriticEnsemble(3, (8,), "relu", 2, head="hl_gauss", num_bins=11, v_min=0.0, v_max=10.0)
    out = torch.zeros(2, 4, 11)  # uniform logits: the expectation is the support's mean
    torch.testing.assert_close(ens.expectation(out), torch.full((2, 4), 5.0))
    assert ens.bin_width == pytest.approx(1.0)
    assert float(ens.loss(out, torch.full((4,), 3.0))) > 0
    with pytest.raises(ValueError, match="11 outputs"):  # scalar critics cannot hold an HL-Gauss head
        ens.exporter(make_critics(1, 2, (8,), "relu", 2))
    per_critic = make_critics(1, 2, (8,), "relu", 2, num_bins=11)  # the policy's HL-Gauss layout round-trips
    ens.exporter(per_critic)()
    again = CriticEnsemble(3, (8,), "relu", 2, head="hl_gauss", num_bins=11, v_min=0.0, v_max=10.0)
    again.load_from(per_critic)
    x = torch.randn(5, 3)
    torch.testing.assert_close(again(x), ens(x))


def test_sac_policy_critics_follow_the_trained_ensemble() -> None:
    agent = SAC(make_env("Pendulum-v1", 8, seed=0), SACConfig(learning_starts=64), seed=0)
    agent.collect(16)
    agent.update(5)
    obs = torch.randn(9, 3)
    act = torch.rand(9, 1) * 4 - 2
    with torch.no_grad():
        expected = agent.critics.q_values(torch.cat([obs, act], -1)).min(0).values
        torch.testing.assert_close(agent.policy.critic(obs, act), expected)


# ------------------------------------------------------------------------------ the agent


def test_td3_contract_train_save_load_resume(tmp_path: Path) -> None:
    cfg = TrainConfig(algo="td3", env="Pendulum-v1", total_steps=1024, eval_every=512, eval_episodes=2,
                      set=("learning_starts=256",), out=tmp_path / "run")
    res = train(cfg)
    assert res.steps == 1024 and len(res.history) == 2
    policy = res.policy
    assert isinstance(policy, DeterministicActorPolicy)
    loaded = load_policy(tmp_path / "run" / "policy.zip")
    obs = torch.randn(16, 3)
    with torch.no_grad():
        a = policy.act(obs)
        assert torch.equal(a, loaded.act(obs))
        assert torch.equal(a, policy.act(obs, deterministic=False, generator=torch.Generator().manual_seed(0)))
        act = torch.rand(16, 1) * 4 - 2
        torch.testing.assert_close(policy.critic(obs, act), loaded.critic(obs, act))  # type: ignore[operator]
    assert a.shape == (16, 1) and bool((a.abs() <= 2.0).all())
    assert {"train/critic_loss", "train/actor_loss", "train/q_mean"} <= set(res.last_train_metrics)
    # the checkpoint (ensemble, targets, optimiser, buffer, streams) loads back into a resumed run
    again = train(replace(cfg, resume=True))
    assert again.steps == 1024 and torch.equal(again.policy.act(obs), a)


def test_td3_learner_state_round_trip() -> None:
    cfg = TD3Config(learning_starts=64)
    a = TD3(make_env("Pendulum-v1", 8, seed=0), cfg, seed=0)
    for _ in range(12):
        a.iterate()
    b = TD3(make_env("Pendulum-v1", 8, seed=0), cfg, seed=5)
    load_learner_state(b, learner_state(a))
    for name in ("critics", "target_critics", "target_actor"):
        for p, q in zip(getattr(a, name).parameters(), getattr(b, name).parameters(), strict=True):
            assert torch.equal(p, q)
    assert (b.steps, b.updates, len(b.buffer)) == (a.steps, a.updates, len(a.buffer))


def test_td3_delays_actor_and_target_updates() -> None:
    agent = TD3(make_env("Pendulum-v1", 8, seed=0), TD3Config(learning_starts=64, policy_delay=3), seed=0)
    agent.collect(16)
    mu0 = [p.detach().clone() for p in agent.policy.mu.parameters()]
    tgt0 = [p.detach().clone() for p in agent.target_critics.parameters()]
    agent.update(2)  # updates 1, 2: critic only
    assert all(torch.equal(p, q) for p, q in zip(agent.policy.mu.parameters(), mu0, strict=True))
    assert all(torch.equal(p, q) for p, q in zip(agent.target_critics.parameters(), tgt0, strict=True))
    agent.update(1)  # update 3: actor and targets
    assert not all(torch.equal(p, q) for p, q in zip(agent.policy.mu.parameters(), mu0, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(agent.target_critics.parameters(), tgt0, strict=True))


def test_td3_same_seed_same_run_and_hooks_apply() -> None:
    from robustrl.defenses import SmoothingConfig
    from robustrl.defenses.registry import defense_hooks

    base = TrainConfig(algo="td3", env="Pendulum-v1", total_steps=768, eval_every=384, eval_episodes=3,
                       set=("learning_starts=128",), obs_noise=0.1)
    runs = [train(base), train(base)]
    w = [torch.cat([p.detach().flatten() for p in r.policy.parameters()]) for r in runs]
    assert torch.equal(w[0], w[1])
    agent = TD3(make_env("Pendulum-v1", 8, seed=0), TD3Config(), seed=0,
                hooks=defense_hooks(SmoothingConfig(sigma=0.3)))
    agent.collect(4)
    assert torch.equal(agent.buffer.next_obs[:8], agent.buffer.obs[8:16])  # one noise draw per observation


def test_td3_hl_gauss_policy_keeps_its_critics_and_cli_runs(tmp_path: Path) -> None:
    code = main(["train", "--algo", "td3", "--env", "Pendulum-v1", "--total-steps", "512", "--eval-episodes", "1",
                 "--out", str(tmp_path / "run"), "--set", "learning_starts=256", "critic_head=hl_gauss"])
    assert code == 0
    policy = load_policy(tmp_path / "run" / "policy.zip")
    assert policy.act(torch.zeros(2, 3)).shape == (2, 1)
    spec = policy.spec()
    assert (spec["critic_bins"], spec["critic_v_min"], spec["critic_v_max"]) == (101, -1000.0, 100.0)
    assert all(c[-1].out_features == 101 for c in policy.critics)
    q = policy.critic(torch.zeros(2, 3), torch.zeros(2, 1))
    assert q.shape == (2,) and bool(((q >= -1000) & (q <= 100)).all())  # an expectation over the support


def test_td3_rejects_discrete_actions_and_bad_configs() -> None:
    with pytest.raises(ValueError, match="Box action space"):
        TD3(make_env("CartPole-v1", 8, seed=0), TD3Config(), seed=0)
    with pytest.raises(ValueError, match="policy_delay"):
        TD3Config(policy_delay=0).validate()
    with pytest.raises(ValueError, match="hl_gauss"):
        TD3Config(critic_head="hl_gauss", v_min=1.0, v_max=0.0).validate()

"""Recurrent PPO (LSTM actor and critic): the carried state, replay equal to collection, save/load, learning."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from robustrl.agents import PPO, PPOConfig, RecurrentPPO, TrainConfig, make_ppo, train
from robustrl.agents.common import learner_state, load_learner_state
from robustrl.defenses.base import TrainingHooks
from robustrl.envs import make_env
from robustrl.policies import RecurrentActorCriticPolicy, load_policy, save_policy
from robustrl.rollout import StepContext, rollout

KEEP_POSITIONS = torch.tensor([1.0, 0.0, 1.0, 0.0])  # CartPole without its two velocities


def hide_velocities(obs: torch.Tensor, ctx: StepContext) -> torch.Tensor:
    return obs * KEEP_POSITIONS


def _policy() -> RecurrentActorCriticPolicy:
    env = make_env("Pendulum-v1", 3, seed=0)
    torch.manual_seed(0)
    return RecurrentActorCriticPolicy(env.observation_space, env.action_space, lstm_size=8, pi_hidden=(16,))


def test_only_act_advances_the_state_and_episode_starts_zero_their_rows() -> None:
    pi = _policy()
    obs = torch.randn(3, 3)
    pi.start_episodes(torch.ones(3, dtype=torch.bool))
    first = pi.act(obs)
    state = pi.recurrent_state
    assert state is not None and state.shape == (4, 3, 8) and bool(state.abs().sum() > 0)
    # dist / value / peek read the state without changing it
    pi.dist(obs), pi.value(obs), pi.peek_action(obs)
    assert torch.equal(pi.recurrent_state, state)
    # the same observation again gives another action: the state moved on
    assert not torch.allclose(pi.peek_action(obs), first)
    pi.start_episodes(torch.tensor([True, False, False]))
    after = pi.recurrent_state
    assert torch.equal(after[:, 0], torch.zeros(4, 8)) and torch.equal(after[:, 1:], state[:, 1:])
    torch.testing.assert_close(pi.peek_action(obs)[0], first[0])  # copy 0 is back at its first step
    with pytest.raises(ValueError, match="state for 3 copies but got a batch of 5"):
        pi.act(torch.randn(5, 3))


@pytest.mark.parametrize("clean_critic", [False, True])
def test_replayed_sequences_reproduce_the_collected_log_probabilities(clean_critic: bool) -> None:
    env = make_env("CartPole-v1", 4, seed=0)
    hooks = TrainingHooks(obs_transform=hide_velocities, clean_critic=clean_critic)
    agent = make_ppo(env, PPOConfig(num_envs=4, num_steps=48, lstm_size=16, num_minibatches=2), seed=0, hooks=hooks)
    assert isinstance(agent, RecurrentPPO)
    agent.update(agent.collect())  # the next rollout starts mid-episode from a non-zero state
    roll = agent.collect()
    traj = roll.trajectory
    starts = traj.extras["episode_start"]
    assert bool(starts[1:].any()), "some episode must restart inside the rollout"
    assert bool(agent.rollout_hidden.abs().sum() > 0)
    params, values, _ = agent.policy.sequence(traj.obs, starts, agent.rollout_hidden)
    logp, _ = agent._log_prob_entropy_params(params.flatten(0, 1), traj.actions.flatten(0, 1))
    torch.testing.assert_close(logp.view(48, 4), traj.extras["log_prob"], rtol=1e-5, atol=1e-5)
    # a replay that ignored the starts would not match
    wrong, _, _ = agent.policy.sequence(traj.obs, torch.zeros_like(starts), agent.rollout_hidden)
    assert not torch.allclose(wrong, params, atol=1e-4)
    _, _, v = agent.advantages(roll)
    if clean_critic:  # the critic replays the clean observations, the actor the ones it saw
        assert not torch.equal(roll.critic_obs, traj.obs)
        _, values, _ = agent.policy.sequence(traj.obs, starts, agent.rollout_hidden, critic_obs=roll.critic_obs)
    torch.testing.assert_close(v, values)


def test_recurrent_ppo_checks_its_minibatches_and_feed_forward_stays_ppo() -> None:
    env = make_env("CartPole-v1", 4, seed=0)
    with pytest.raises(ValueError, match="num_minibatches=3 must divide num_envs=4"):
        PPOConfig(num_envs=4, lstm_size=8, num_minibatches=3).validate()
    assert type(make_ppo(env, PPOConfig(num_envs=4), seed=0)) is PPO


def test_saved_recurrent_policy_acts_the_same_after_loading(tmp_path: Path) -> None:
    pi = _policy()
    path = save_policy(pi, tmp_path / "lstm.zip", env_id="Pendulum-v1")
    loaded = load_policy(path)
    assert isinstance(loaded, RecurrentActorCriticPolicy) and loaded.lstm_size == 8
    obs = torch.randn(6, 3, 3)
    for p in (pi, loaded):
        p.start_episodes(torch.ones(3, dtype=torch.bool))
    for t in range(6):
        torch.testing.assert_close(loaded.act(obs[t]), pi.act(obs[t]))


def test_lstm_ppo_learns_cartpole_without_velocities_where_feed_forward_cannot() -> None:
    scores = {}
    for lstm in (0, 32):
        env = make_env("CartPole-v1", 16, seed=0)
        cfg = PPOConfig(num_envs=16, num_steps=32, lstm_size=lstm, num_minibatches=4, total_steps=16 * 32 * 100)
        agent = make_ppo(env, cfg, seed=0, hooks=TrainingHooks(obs_transform=hide_velocities, clean_critic=False))
        for _ in range(100):
            agent.iterate()
        res = rollout(agent.policy, make_env("CartPole-v1", 8, seed=1), 16, seed=1, obs_transform=hide_velocities)
        scores[lstm] = float(res.returns.mean())
    assert scores[0] < 70, scores  # positions alone do not tell a feed-forward policy which way the pole moves
    assert scores[32] > 2 * scores[0] and scores[32] > 100, scores


def test_train_runs_recurrent_ppo_end_to_end(tmp_path: Path) -> None:
    res = train(
        TrainConfig(
            algo="ppo",
            env="Pendulum-v1",
            total_steps=2048,
            num_envs=4,
            eval_every=1024,
            eval_episodes=4,
            out=str(tmp_path / "run"),
            set=("lstm_size=8", "num_steps=256", "num_minibatches=2"),
        )
    )
    assert len(res.history) == 2 and res.config["algo"]["lstm_size"] == 8
    pi = load_policy(tmp_path / "run")
    assert isinstance(pi, RecurrentActorCriticPolicy)
    agent = make_ppo(make_env("CartPole-v1", 4, seed=0), PPOConfig(num_envs=4, num_steps=16, lstm_size=8), seed=0)
    agent.iterate()
    state = learner_state(agent)
    assert {"hidden", "rollout_hidden", "policy", "optimizer"} <= set(state)
    fresh = make_ppo(make_env("CartPole-v1", 4, seed=0), PPOConfig(num_envs=4, num_steps=16, lstm_size=8), seed=1)
    load_learner_state(fresh, state)
    assert isinstance(fresh, RecurrentPPO) and torch.equal(fresh.hidden, agent.hidden)


def test_sa_reg_regularises_each_step_from_its_own_lstm_state() -> None:
    from robustrl.defenses.registry import defense_hooks, resolve_defense

    env = make_env("CartPole-v1", 4, seed=0)
    seen: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    def probe(policy, batch, progress):  # type: ignore[no-untyped-def]
        with torch.no_grad():
            logp = policy.dist(batch.obs).log_prob(batch.actions)
        seen.append((batch.obs.shape[0], policy.recurrent_state.clone(), logp))
        return torch.zeros(())

    cfg = PPOConfig(num_envs=4, num_steps=32, lstm_size=8, num_minibatches=2, num_epochs=1)
    agent = make_ppo(env, cfg, seed=0, hooks=TrainingHooks(regularizers=(probe,)))
    agent.update(agent.collect())
    roll = agent.collect()
    first = len(seen)
    agent.update(roll)
    n, state, logp = seen[first]  # the update's first minibatch, before any gradient step
    assert n == 32 * 2 and state.shape == (4, 64, 8)  # one sample per step of the minibatch's two copies
    assert bool(roll.trajectory.extras["episode_start"].any())
    # read from its own state, each step's distribution is the one it was collected with
    collected = roll.trajectory.extras["log_prob"]
    pairs = [collected[:, [i, j]].flatten() for i in range(4) for j in range(4) if i != j]
    assert any(torch.allclose(logp, p, atol=1e-5) for p in pairs)
    assert agent.policy.recurrent_state is not None and agent.policy.recurrent_state.shape == (4, 4, 8)  # restored
    hooks = defense_hooks(resolve_defense("sa-reg", ["eps=0.1", "steps=2"]))
    sa = make_ppo(make_env("CartPole-v1", 4, seed=0), cfg, seed=0, hooks=hooks)
    metrics = sa.update(sa.collect())
    assert metrics["train/regularizer"] > 0


def test_gradient_attacks_evaluate_a_recurrent_policy() -> None:
    from robustrl.evaluate import evaluate_policy

    env = make_env("CartPole-v1", 4, seed=0)
    torch.manual_seed(0)
    pi = RecurrentActorCriticPolicy(env.observation_space, env.action_space, lstm_size=8)
    # 6 episodes on 4 copies: attacks run while some copies' episodes are no longer in the sample
    res = evaluate_policy(pi, "CartPole-v1", ("fgsm", "pgd", "mad", "critic"), (0.1,), episodes=6, seed=0)
    assert {c.label for c in res.threats} == {"fgsm", "pgd", "mad", "critic"}
    with pytest.raises(ValueError, match="is recurrent.*--eot false"):
        evaluate_policy(pi, "CartPole-v1", ("pgd",), (0.1,), episodes=4, seed=0, smoothing_sigma=0.1)
    evaluate_policy(pi, "CartPole-v1", ("pgd",), (0.1,), episodes=4, seed=0, smoothing_sigma=0.1, eot=False)

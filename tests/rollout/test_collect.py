"""collect(), TransformedVecEnv and the learner hooks: equivalence with a hand-written loop, continuation,
transforms on what the policy sees, and defenses as hooks."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from robustrl.agents import PPO, PPOConfig
from robustrl.defenses import Minibatch, TrainingHooks, resolve_defense, smoothing_transform
from robustrl.envs import make_env
from robustrl.policies import ActorCriticPolicy
from robustrl.rollout import Act, StepContext, TransformedVecEnv, collect, start_collect
from robustrl.threats import make_threat


class Alternate:
    """Deterministic stateless policy: copies 0-2 balance the pole (truncated), the others push left (terminate)."""

    def act(self, obs, *, deterministic=True, generator=None):
        balance = (obs[:, 2] > 0).long()
        copy = torch.arange(obs.shape[0])
        return torch.where(copy < 3, balance, torch.zeros_like(balance))


def test_collect_equals_a_hand_written_loop_and_splices_final_obs() -> None:
    env = make_env("CartPole-v1", 6, seed=0, max_episode_steps=20)
    traj = collect(Alternate(), env, 50, state=start_collect(env, seed=3))
    ref = make_env("CartPole-v1", 6, seed=0, max_episode_steps=20)
    obs, _ = ref.reset(seed=3)
    for t in range(50):
        assert torch.equal(traj.obs[t], obs.float())
        obs, reward, term, trunc, info = ref.step(Alternate().act(obs))
        assert torch.equal(traj.rewards[t], reward) and torch.equal(traj.terminated[t], term)
        assert torch.equal(traj.truncated[t], trunc)
        done = term | trunc
        succ = traj.next_obs()[t]
        assert torch.equal(succ[done], info["final_obs"][done].float())  # never the next episode's first obs
        assert torch.equal(succ[~done], obs[~done].float())
    assert bool(traj.truncated.any()) and bool(traj.terminated.any())
    assert torch.equal(traj.state.obs, obs)


def test_collect_continues_across_calls() -> None:
    env_a = make_env("CartPole-v1", 4, seed=0)
    whole = collect(Alternate(), env_a, 40, state=start_collect(env_a, seed=1))
    env_b = make_env("CartPole-v1", 4, seed=0)
    first = collect(Alternate(), env_b, 15, state=start_collect(env_b, seed=1))
    second = collect(Alternate(), env_b, 25, state=first.state)
    assert torch.equal(torch.cat([first.obs, second.obs]), whole.obs)
    assert torch.equal(torch.cat([first.rewards, second.rewards]), whole.rewards)
    assert torch.equal(torch.cat([first.next_obs(), second.next_obs()]), whole.next_obs())


def test_collect_records_what_the_policy_saw_and_the_learners_extras() -> None:
    env = make_env("CartPole-v1", 256, seed=0)
    seen_by_act = []

    def act(x: torch.Tensor, ctx: StepContext) -> Act:
        seen_by_act.append(x)
        return Act(torch.zeros(x.shape[0], dtype=torch.int64), extras={"score": x.sum(-1)})

    traj = collect(Alternate(), env, 30, state=start_collect(env, seed=0), act=act,
                   obs_transform=smoothing_transform(0.5))
    noise = traj.obs - traj.clean_obs
    assert abs(noise.std().item() - 0.5) < 0.01
    assert torch.equal(torch.stack(seen_by_act), traj.obs)
    torch.testing.assert_close(traj.extras["score"], traj.obs.sum(-1))
    done = traj.done
    final_noise = (traj.final_obs - traj.final_clean_obs)[done]
    assert final_noise.numel() > 0 and abs(final_noise.std().item() - 0.5) < 0.1  # final obs transformed too
    plain = collect(Alternate(), env, 5, state=start_collect(env, seed=0), obs_transform=smoothing_transform(0.5),
                    transform_final=False)
    assert torch.equal(plain.final_obs[plain.done], plain.final_clean_obs[plain.done])


def test_collect_rejects_nonpositive_steps() -> None:
    env = make_env("CartPole-v1", 2, seed=0)
    with pytest.raises(ValueError, match="steps"):
        collect(Alternate(), env, 0, state=start_collect(env, seed=0))


def test_transformed_env_applies_a_threat_to_any_learner() -> None:
    base = make_env("CartPole-v1", 16, seed=0)
    env = TransformedVecEnv(base, make_threat("uniform", 0.2))
    agent = PPO(env, PPOConfig(num_envs=16, num_steps=8), seed=0)  # the learner knows nothing of the threat
    env.policy = agent.policy
    roll = agent.collect()
    assert float(roll.obs.std()) > 0
    obs, info = env.reset(seed=5)
    delta = obs - info["clean_obs"]
    assert bool((delta.abs() <= 0.2 + 1e-6).all()) and float(delta.abs().max()) > 0.1
    nxt, _, _, _, info = env.step(torch.zeros(16, dtype=torch.int64))
    assert bool(((nxt - info["clean_obs"]).abs() <= 0.2 + 1e-6).all())
    again, _ = env.reset(seed=5)
    assert torch.equal(again, obs)  # reset(seed) re-seeds the threat's generator
    assert env.return_floor == base.return_floor and env.max_episode_steps == base.max_episode_steps


def test_transformed_env_needs_the_victim_before_a_gradient_attack_runs() -> None:
    env = TransformedVecEnv(make_env("CartPole-v1", 2), make_threat("pgd", 0.1))
    with pytest.raises(ValueError, match="victim policy"):
        env.reset(seed=0)


def test_regularizer_hook_gets_explicit_arguments_and_changes_learning() -> None:
    calls = []

    def shrink(policy: torch.nn.Module, batch: Minibatch, progress: float) -> torch.Tensor:
        calls.append((batch.obs.shape, batch.actions.shape, progress))
        return 100.0 * policy.action_params(batch.obs).square().mean()

    def run(hooks: TrainingHooks) -> float:
        env = make_env("CartPole-v1", 16, seed=0)
        agent = PPO(env, PPOConfig(num_envs=16, num_steps=16, total_steps=16 * 16 * 4), seed=0, hooks=hooks)
        for _ in range(4):
            metrics = agent.iterate()
        with torch.no_grad():
            return float(agent.policy.action_params(agent.collect().obs.flatten(0, 1)).square().mean()), metrics

    plain, plain_metrics = run(TrainingHooks())
    reg, reg_metrics = run(TrainingHooks(regularizers=(shrink,)))
    assert calls and calls[0][0] == (64, 4) and calls[0][1] == (64,)
    assert 0 <= calls[0][2] < calls[-1][2] <= 1
    assert reg < 0.1 * plain
    assert "train/regularizer" in reg_metrics and "train/regularizer" not in plain_metrics


def test_defense_registry_names_bad_input() -> None:
    assert resolve_defense("none") is None
    assert resolve_defense("smoothing", ["sigma=0.3", "critic_obs=noisy"]).critic_obs == "noisy"
    with pytest.raises(ValueError, match="did you mean"):
        resolve_defense("smoothin")
    with pytest.raises(ValueError, match="sigma"):
        resolve_defense("smoothing", ["sigma=-1"])
    with pytest.raises(ValueError, match="critic_ob"):
        resolve_defense("smoothing", ["critic_ob=clean"])


def test_importing_robustrl_changes_no_global_state() -> None:
    code = (
        "import torch; torch.set_num_threads(2); import robustrl, robustrl.agents, robustrl.evaluate, "
        "robustrl.certify, robustrl.report; robustrl.make_env; assert torch.get_num_threads() == 2, "
        "torch.get_num_threads()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_rollout_package_is_callable_as_the_engine() -> None:
    import robustrl

    env = make_env("CartPole-v1", 4, seed=0)
    pi = ActorCriticPolicy(env.observation_space, env.action_space)
    assert robustrl.rollout(pi, env, 4, seed=0).returns.shape == (4,)


@pytest.mark.gpu
def test_collect_does_not_sync_on_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    env = make_env("CartPole-v1", 64, device="cuda", seed=0)
    pi = ActorCriticPolicy(env.observation_space, env.action_space).cuda()
    state = start_collect(env, seed=0)
    collect(pi, env, 4, state=state, obs_transform=smoothing_transform(0.1))  # warm-up
    torch.cuda.set_sync_debug_mode("error")
    try:
        collect(pi, env, 16, state=state, obs_transform=smoothing_transform(0.1))
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_transformed_env_passes_disturbances_and_env_attributes_through() -> None:
    plain = make_env("CartPole-v1", 4, seed=0)
    wrapped = TransformedVecEnv(make_env("CartPole-v1", 4, seed=0))
    assert wrapped.disturbance_space == plain.disturbance_space
    plain.reset(seed=1)
    wrapped.reset(seed=1)
    push = torch.full((4, 1), 5.0)
    action = torch.zeros(4, dtype=torch.int64)
    assert torch.equal(plain.step(action, disturbance=push)[0], wrapped.step(action, disturbance=push)[0])
    assert torch.equal(wrapped.params["length"], plain.params["length"])  # anything else is the env's

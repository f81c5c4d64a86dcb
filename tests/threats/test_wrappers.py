"""The Gymnasium wrappers meet the Gymnasium contract: check_env (close and spec round-trip included), seeding."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from robustrl.policies.actors import SquashedGaussianActorPolicy
from robustrl.policies.networks import ActorCriticPolicy
from robustrl.threats import ActionThreatWrapper, ObservationThreatWrapper, make_threat

# (env id, threat, options, victim): every observation and action threat on both envs; "sac" is a victim
# with an action-value critic, which the critic attack and the PR-MDP adversary use on continuous actions.
CASES = [
    *[("CartPole-v1", name, {}, "ac") for name in ("none", "uniform", "gaussian", "fgsm", "pgd", "mad", "critic")],
    ("CartPole-v1", "episode_l2", {}, "ac"),
    ("CartPole-v1", "action_replace", {}, "ac"),
    ("CartPole-v1", "pr_mdp", {}, "ac"),
    *[("Pendulum-v1", name, {}, "ac") for name in ("none", "uniform", "gaussian", "fgsm", "pgd", "mad", "critic")],
    ("Pendulum-v1", "critic", {}, "sac"),
    ("Pendulum-v1", "episode_l2", {"allocation": "even", "horizon": 200}, "ac"),
    ("Pendulum-v1", "action_noise", {}, "ac"),
    ("Pendulum-v1", "pr_mdp", {}, "ac"),
    ("Pendulum-v1", "pr_mdp", {}, "sac"),
]
# check_env's warnings about CartPole's and Pendulum's own spaces, and about checking a wrapped env.
_ENV_WARNINGS = ("infinity", "symmetric and normalized", "different from the unwrapped")


def _policy(env, victim):
    with torch.random.fork_rng():  # deterministic weights without touching the global RNG of other tests
        torch.manual_seed(0)
        if victim == "sac":
            return SquashedGaussianActorPolicy(env.observation_space, env.action_space, hidden=(16,))
        return ActorCriticPolicy(env.observation_space, env.action_space, pi_hidden=(16,), vf_hidden=(16,))


def _wrapped(env_id, name, options, victim, *, seed=0, budget=None):
    env = gym.make(env_id)
    threat = make_threat(name, budget if budget is not None else 0.5 if name == "episode_l2" else 0.1, **options)
    wrapper = ObservationThreatWrapper if threat.kind == "obs" else ActionThreatWrapper
    return wrapper(env, threat, _policy(env, victim), seed=seed)


def _run(env, seed, steps=15, threat_seed=None):
    """Observations and rewards of ``steps`` steps after ``reset(seed=seed)``, with actions fixed by ``seed``.

    ``threat_seed`` reseeds the threat's generator after the reset (the first observation keeps the reset's).
    """
    obs, _ = env.reset(seed=seed)
    if threat_seed is not None:
        env.generator.manual_seed(threat_seed)
    env.action_space.seed(seed)
    observations, rewards = [obs], []
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    return np.stack(observations), np.array(rewards)


def _case_id(case):
    env_id, name, _, victim = case
    return f"{env_id}-{name}-{victim}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_wrapper_passes_gymnasium_check_env(case):
    env = _wrapped(*case)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)  # the close check rebuilds the env from env.spec
    ours = [str(w.message) for w in caught if not any(s in str(w.message) for s in _ENV_WARNINGS)]
    assert ours == []  # e.g. no "observations are not equal although similar"
    env.close()
    env.close()


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_seeded_reset_fixes_the_threat_too(case):
    env = _wrapped(*case)
    obs_1, rewards_1 = _run(env, seed=123)
    _run(env, seed=7)  # whatever ran in between
    obs_2, rewards_2 = _run(env, seed=123)
    np.testing.assert_array_equal(obs_1, obs_2)
    np.testing.assert_array_equal(rewards_1, rewards_2)
    other = _wrapped(*case, seed=99)  # the reset seed decides, not the constructor's or the history
    obs_3, rewards_3 = _run(other, seed=123)
    np.testing.assert_array_equal(obs_1, obs_3)
    np.testing.assert_array_equal(rewards_1, rewards_3)


@pytest.mark.parametrize(
    ("env_id", "name", "budget"),
    [
        ("CartPole-v1", "uniform", 0.1),
        ("Pendulum-v1", "gaussian", 0.1),
        ("Pendulum-v1", "action_noise", 0.5),
        ("CartPole-v1", "action_replace", 1.0),
        ("CartPole-v1", "pr_mdp", 0.5),
    ],
)
def test_the_threat_draws_from_the_generator_reset_seeds(env_id, name, budget):
    """The determinism above is not vacuous: another generator state gives another episode."""
    env = _wrapped(env_id, name, {}, "ac", budget=budget)
    obs_1, rewards_1 = _run(env, seed=123)
    obs_2, rewards_2 = _run(env, seed=123, threat_seed=456)
    assert not (np.array_equal(obs_1, obs_2) and np.array_equal(rewards_1, rewards_2))


SPEC_CASES = [("CartPole-v1", "pgd", {}, "ac"), ("Pendulum-v1", "pr_mdp", {}, "sac")]


@pytest.mark.parametrize("case", SPEC_CASES, ids=_case_id)
def test_spec_round_trip_rebuilds_the_same_attacked_env(case):
    env = _wrapped(*case)
    rebuilt = env.spec.make()
    assert type(rebuilt) is type(env)
    assert rebuilt.threat is env.threat and rebuilt.policy is env.policy  # the live victim, not a copy
    for a, b in zip(_run(env, seed=5), _run(rebuilt, seed=5)):
        np.testing.assert_array_equal(a, b)
    rebuilt.close()
    rebuilt.close()


def test_threats_see_a_batch_of_one_with_the_episode_clock():
    seen = []

    def observe(obs, ctx):
        seen.append((tuple(obs.shape), int(ctx.step[0]), bool(ctx.episode_start[0])))
        return obs + 1.0

    env = gym.make("CartPole-v1")
    wrapped = ObservationThreatWrapper(env, observe, _policy(env, "ac"), seed=0)
    obs, _ = wrapped.reset(seed=0)
    clean = env.unwrapped.state
    np.testing.assert_allclose(obs, np.asarray(clean, dtype=np.float32) + 1.0)
    assert obs.dtype == np.float32
    wrapped.step(0)
    wrapped.step(1)
    wrapped.reset(seed=1)
    assert seen == [((1, 4), 0, True), ((1, 4), 1, False), ((1, 4), 2, False), ((1, 4), 0, True)]

    acted = []

    def replace(action, obs, ctx):
        acted.append((int(action[0]), obs[0].clone(), int(ctx.step[0]), bool(ctx.episode_start[0])))
        return 1 - action

    wrapped = ActionThreatWrapper(gym.make("CartPole-v1"), replace, _policy(env, "ac"), seed=0)
    obs_0, _ = wrapped.reset(seed=0)
    obs_1, *_ = wrapped.step(0)
    wrapped.step(1)
    assert [(a, s, start) for a, _, s, start in acted] == [(0, 0, True), (1, 1, False)]
    np.testing.assert_array_equal(acted[0][1].numpy(), obs_0)  # the adversary sees what the agent acted on
    np.testing.assert_array_equal(acted[1][1].numpy(), obs_1)
    raw = gym.make("CartPole-v1")
    raw.reset(seed=0)
    np.testing.assert_array_equal(raw.step(1)[0], obs_1)  # the env received the replaced action


@pytest.mark.gpu
def test_wrappers_attack_a_cuda_victim_like_a_cpu_one():
    import copy

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    env = gym.make("Pendulum-v1")
    cpu = _policy(env, "sac")
    cuda = copy.deepcopy(cpu).cuda()
    threat = make_threat("pgd", 0.1, random_start=False)  # deterministic: the two devices' streams differ
    on_cpu = ObservationThreatWrapper(env, threat, cpu, seed=0)
    on_cuda = ObservationThreatWrapper(gym.make("Pendulum-v1"), threat, cuda, seed=0)
    assert on_cuda.generator.device.type == "cuda"
    (obs_cpu, rewards_cpu), (obs_cuda, rewards_cuda) = _run(on_cpu, seed=3), _run(on_cuda, seed=3)
    assert obs_cuda.dtype == np.float32
    np.testing.assert_allclose(obs_cuda, obs_cpu, atol=1e-5)
    np.testing.assert_allclose(rewards_cuda, rewards_cpu, atol=1e-4)
    actions = []
    for victim in (cpu, cuda):  # the worst-case takeover follows the victim's critic, on either device
        adversarial = ActionThreatWrapper(gym.make("Pendulum-v1"), make_threat("pr_mdp", 1.0), victim, seed=0)
        adversarial.reset(seed=0)
        actions.append(adversarial.action(np.zeros(1, dtype=np.float32)))
    assert actions[1] in adversarial.action_space and actions[1].dtype == np.float32
    np.testing.assert_allclose(actions[1], actions[0], atol=1e-4)

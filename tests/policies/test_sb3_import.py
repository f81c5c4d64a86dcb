"""Stable-Baselines3 zips load without unpickling and act exactly like SB3's predict."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from robustrl.policies import (
    ActorCriticPolicy,
    CriticPolicy,
    DeterministicActorPolicy,
    DistributionPolicy,
    QNetworkPolicy,
    QPolicy,
    SquashedGaussianActorPolicy,
    ValuePolicy,
    load_policy,
    load_sb3,
    read_policy_info,
)
from robustrl.policies.spaces import spaces_equal

sb3 = pytest.importorskip("stable_baselines3")

EXPECTED = {
    "ppo_discrete": ("PPO", ActorCriticPolicy),
    "ppo_box": ("PPO", ActorCriticPolicy),
    "a2c_discrete": ("A2C", ActorCriticPolicy),
    "a2c_box": ("A2C", ActorCriticPolicy),
    "dqn": ("DQN", QNetworkPolicy),
    "sac": ("SAC", SquashedGaussianActorPolicy),
    "td3": ("TD3", DeterministicActorPolicy),
}


def sb3_model(name: str, path: Path) -> Any:
    algo = getattr(sb3, EXPECTED[name][0])
    return algo.load(path, device="cpu")


def probe_obs(space: gym.Space[Any], n: int = 512, seed: int = 0) -> np.ndarray:
    """Observations inside and well outside the box (so PPO's clipping and tanh saturation are exercised)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, *space.shape)) * 4).astype(np.float32)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_deterministic_actions_equal_sb3_predict(name: str, sb3_zips: dict[str, Path]) -> None:
    path = sb3_zips[name]
    model = sb3_model(name, path)
    policy = load_policy(path)
    assert type(policy) is EXPECTED[name][1]
    if isinstance(policy, ActorCriticPolicy) and not policy.discrete:
        weight = torch.randn(policy.action_net.weight.shape, generator=torch.Generator().manual_seed(0)) * 3
        with torch.no_grad():  # push the means past the box so that SB3's clipping is exercised
            for net in (model.policy.action_net, policy.action_net):
                net.weight.copy_(weight)
                net.bias.fill_(1.0)
    obs = probe_obs(model.observation_space)
    expected, _ = model.predict(obs, deterministic=True)
    with torch.no_grad():
        got = policy.act(torch.as_tensor(obs)).numpy()
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
    if isinstance(model.action_space, gym.spaces.Box):
        assert (got >= -1).all() and (got <= 3).all()
        if name.startswith(("ppo", "a2c")):
            assert (got == -1).any() and (got == 3).any() and ((got > -1) & (got < 3)).any()
    assert len(np.unique(got)) > 1  # not a constant policy


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spaces_and_info_read_without_unpickling(name: str, sb3_zips: dict[str, Path]) -> None:
    model = sb3_model(name, sb3_zips[name])
    info = read_policy_info(sb3_zips[name])
    assert info.format == "sb3" and info.kind == EXPECTED[name][0]
    assert spaces_equal(info.observation_space, model.observation_space)
    assert spaces_equal(info.action_space, model.action_space)
    policy = load_policy(sb3_zips[name])
    assert spaces_equal(policy.observation_space, model.observation_space)
    assert spaces_equal(policy.action_space, model.action_space)


@pytest.mark.parametrize("name", ["ppo_discrete", "ppo_box", "a2c_discrete", "a2c_box"])
def test_actor_critic_value_and_distribution_match(name: str, sb3_zips: dict[str, Path]) -> None:
    model = sb3_model(name, sb3_zips[name])
    policy = load_policy(sb3_zips[name])
    assert isinstance(policy, ValuePolicy) and isinstance(policy, DistributionPolicy)
    obs = torch.as_tensor(probe_obs(model.observation_space, 64))
    with torch.no_grad():
        actions = policy.act(obs, deterministic=False, generator=torch.Generator().manual_seed(0))
        values, log_prob, entropy = model.policy.evaluate_actions(obs, actions)
        torch.testing.assert_close(policy.value(obs), values.squeeze(-1), rtol=0, atol=0)
        torch.testing.assert_close(policy.dist(obs).log_prob(actions), log_prob)
        torch.testing.assert_close(policy.dist(obs).entropy(), entropy)


def test_dqn_q_values_match(sb3_zips: dict[str, Path]) -> None:
    model = sb3_model("dqn", sb3_zips["dqn"])
    policy = load_policy(sb3_zips["dqn"])
    assert isinstance(policy, QPolicy)
    obs = torch.as_tensor(probe_obs(model.observation_space, 64))
    with torch.no_grad():
        torch.testing.assert_close(policy.q_values(obs), model.q_net(obs), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["sac", "td3"])
def test_critic_matches_sb3_min_over_critics(name: str, sb3_zips: dict[str, Path]) -> None:
    model = sb3_model(name, sb3_zips[name])
    policy = load_policy(sb3_zips[name])
    assert isinstance(policy, CriticPolicy)
    assert len(policy.critics) == (3 if name == "td3" else 2)
    obs_np = probe_obs(model.observation_space, 64)
    rng = np.random.default_rng(1)
    env_actions = rng.uniform(-1.0, 3.0, size=(64, 1)).astype(np.float32)  # in the env's units
    scaled = torch.as_tensor(model.policy.scale_action(env_actions))
    obs = torch.as_tensor(obs_np)
    with torch.no_grad():
        expected = torch.cat(model.critic(obs, scaled), dim=1).min(dim=1).values
        torch.testing.assert_close(policy.critic(obs, torch.as_tensor(env_actions)), expected)


def test_sac_distribution_parameters_match(sb3_zips: dict[str, Path]) -> None:
    model = sb3_model("sac", sb3_zips["sac"])
    policy = load_policy(sb3_zips["sac"])
    obs = torch.as_tensor(probe_obs(model.observation_space, 64))
    with torch.no_grad():
        mean, log_std, _ = model.actor.get_action_dist_params(obs)
        ours_mean, ours_log_std = policy.mean_log_std(obs)
    torch.testing.assert_close(ours_mean, mean, rtol=0, atol=0)
    torch.testing.assert_close(ours_log_std, log_std, rtol=0, atol=0)


def test_architecture_and_activation_read_from_file(sb3_zips: dict[str, Path]) -> None:
    a2c = load_sb3(sb3_zips["a2c_discrete"])
    assert a2c.spec()["pi_hidden"] == [32] and a2c.spec()["vf_hidden"] == [16, 16]
    assert a2c.spec()["activation"] == "relu"  # readable policy_kwargs["activation_fn"]
    assert load_sb3(sb3_zips["ppo_discrete"]).spec()["activation"] == "tanh"  # PPO's default
    td3 = load_sb3(sb3_zips["td3"])
    assert td3.spec()["hidden"] == [32] and td3.spec()["critic_hidden"] == [16, 16]
    assert td3.spec()["n_critics"] == 3 and td3.spec()["critic_scaled_actions"] is True


def _edit_data(src: Path, dst: Path, rewrite_zip: Callable[..., Path], edit: Callable[[dict[str, Any]], None]) -> Path:
    import zipfile

    with zipfile.ZipFile(src) as zf:
        data = json.loads(zf.read("data"))
    edit(data)
    return rewrite_zip(src, dst, {"data": json.dumps(data).encode()})


def test_unreadable_activation_must_be_given(
    sb3_zips: dict[str, Path], tmp_path: Path, rewrite_zip: Callable[..., Path]
) -> None:
    def hide_kwargs(data: dict[str, Any]) -> None:
        data["policy_kwargs"] = {":type:": "<class 'dict'>", ":serialized:": "gAR9lC4="}

    path = _edit_data(sb3_zips["a2c_discrete"], tmp_path / "a2c.zip", rewrite_zip, hide_kwargs)
    with pytest.raises(ValueError, match=r"activation='tanh' or 'relu'") as err:
        load_policy(path)
    assert str(path) in str(err.value)
    policy = load_policy(path, activation="relu")
    model = sb3_model("a2c_discrete", sb3_zips["a2c_discrete"])
    obs = probe_obs(model.observation_space)
    np.testing.assert_array_equal(policy.act(torch.as_tensor(obs)).numpy(), model.predict(obs, deterministic=True)[0])


def test_summarised_bounds_need_env_id(
    sb3_zips: dict[str, Path], tmp_path: Path, rewrite_zip: Callable[..., Path]
) -> None:
    def summarise(data: dict[str, Any]) -> None:  # what SB3 writes for spaces with > 1000 entries
        data["observation_space"]["low"] = "[-4.8 -inf ... -inf]"

    path = _edit_data(sb3_zips["dqn"], tmp_path / "dqn.zip", rewrite_zip, summarise)
    with pytest.raises(ValueError, match="env_id=") as err:
        load_policy(path)
    assert str(path) in str(err.value)
    policy = load_policy(path, env_id="CartPole-v1")
    assert spaces_equal(policy.observation_space, gym.make("CartPole-v1").observation_space)
    with pytest.raises(ValueError, match="does not match"):
        load_policy(path, env_id="Acrobot-v1")


@pytest.mark.parametrize("algo", ["PPO", "DQN"])
def test_discrete_observations_are_one_hot_like_sb3(algo: str, tmp_path: Path) -> None:
    model = getattr(sb3, algo)("MlpPolicy", "FrozenLake-v1", seed=0)
    model.save(tmp_path / "fl.zip")
    policy = load_policy(tmp_path / "fl.zip")
    assert policy.observation_space == gym.spaces.Discrete(16)
    obs = np.arange(16)
    expected, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(policy.act(torch.as_tensor(obs)).numpy(), expected)
    assert len(np.unique(expected)) > 1

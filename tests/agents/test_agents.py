"""Contract every agent passes (train, save → load, act shapes), determinism, configs, CLI, run folder."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from robustrl.agents import (
    DQN,
    PPO,
    SAC,
    DQNConfig,
    PPOConfig,
    SACConfig,
    TrainConfig,
    apply_overrides,
    resolve_algo_config,
    train,
)
from robustrl.agents.train import resolve_defense_config
from robustrl.cli import main
from robustrl.common.config import config_from_dict
from robustrl.defenses import SmoothingConfig, TrainingHooks
from robustrl.defenses.registry import defense_hooks
from robustrl.envs import make_env
from robustrl.policies import load_policy

# Tiny budgets: these runs check plumbing, not learning.
CASES = {
    "ppo-cartpole": TrainConfig(algo="ppo", env="CartPole-v1", total_steps=1024, num_envs=8, set=("num_steps=16",)),
    "ppo-pendulum": TrainConfig(algo="ppo", env="Pendulum-v1", total_steps=1024, num_envs=8, set=("num_steps=32",)),
    "dqn-cartpole": TrainConfig(algo="dqn", env="CartPole-v1", total_steps=1024, set=("learning_starts=256",)),
    "dqn-regression": TrainConfig(
        algo="dqn", env="CartPole-v1", total_steps=1024, set=("learning_starts=256", "head=regression")
    ),
    "sac-pendulum": TrainConfig(algo="sac", env="Pendulum-v1", total_steps=1024, set=("learning_starts=256",)),
}


def _random_obs(space: gym.Space[Any], n: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    assert isinstance(space, gym.spaces.Box)
    low = np.maximum(space.low, -3.0)
    high = np.minimum(space.high, 3.0)
    return torch.as_tensor(rng.uniform(low, high, size=(n, *space.shape)), dtype=torch.float32)


@pytest.mark.parametrize("name", list(CASES))
def test_agent_contract_train_save_load_act(name: str, tmp_path: Path) -> None:
    cfg = replace(CASES[name], out=tmp_path / "run", eval_every=512, eval_episodes=2)
    res = train(cfg)
    assert res.steps >= 1024
    assert [r.step for r in res.history][-1] == res.steps
    assert len(res.history) >= 2
    run = tmp_path / "run"
    assert {"config.json", "policy.zip", "eval.json", "result.json"} <= {p.name for p in run.iterdir()}
    assert not [p for p in run.iterdir() if p.name.startswith(".")], "temporary files left behind"

    policy = res.policy
    loaded = load_policy(run / "policy.zip")
    obs = _random_obs(policy.observation_space, 16)
    with torch.no_grad():
        a = policy.act(obs)
        b = loaded.act(obs)
    assert torch.equal(a, b)
    space = policy.action_space
    if isinstance(space, gym.spaces.Discrete):
        assert a.shape == (16,) and a.dtype == torch.int64
        assert bool(((a >= 0) & (a < space.n)).all())
    else:
        assert a.shape == (16, *space.shape) and a.dtype == torch.float32
        assert bool(((a >= torch.as_tensor(space.low)) & (a <= torch.as_tensor(space.high))).all())
        g = torch.Generator().manual_seed(0)
        s = policy.act(obs, deterministic=False, generator=g)
        assert s.shape == a.shape and not torch.equal(s, a)

    saved = json.loads((run / "config.json").read_text())
    algo_cls = type(res.algo_config)
    assert config_from_dict(algo_cls, saved["algo"]) == res.algo_config
    assert config_from_dict(TrainConfig, saved["train"]).algo == cfg.algo
    assert "provenance" in saved
    history = json.loads((run / "eval.json").read_text())
    assert [h["step"] for h in history] == [r.step for r in res.history]


@pytest.mark.parametrize("algo", ["ppo", "dqn", "sac"])
def test_same_seed_same_run_different_seed_different_run(algo: str) -> None:
    env = "Pendulum-v1" if algo == "sac" else "CartPole-v1"
    base = TrainConfig(algo=algo, env=env, total_steps=768, eval_every=384, eval_episodes=3,  # type: ignore[arg-type]
                       num_envs=8, set=("learning_starts=128",) if algo != "ppo" else ("num_steps=8",), obs_noise=0.1)
    runs = [train(base), train(base), train(replace(base, seed=1))]
    weights = [torch.cat([p.detach().flatten() for p in r.policy.parameters()]) for r in runs]
    assert torch.equal(weights[0], weights[1])
    assert [h.mean_return for h in runs[0].history] == [h.mean_return for h in runs[1].history]
    assert [h.noisy_mean_return for h in runs[0].history] == [h.noisy_mean_return for h in runs[1].history]
    assert not torch.equal(weights[0], weights[2])


def test_training_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(TrainConfig(total_steps=512, eval_episodes=1, num_envs=8, set=("num_steps=16",)))
    torch.testing.assert_close(torch.rand(3), expected)


# --------------------------------------------------------------------------------------- obs noise


def _smoothing(sigma: float, critic_obs: str = "clean") -> TrainingHooks:
    return defense_hooks(SmoothingConfig(sigma=sigma, critic_obs=critic_obs))  # type: ignore[arg-type]


def test_ppo_acts_and_learns_on_noisy_observations_with_clean_critic() -> None:
    env = make_env("CartPole-v1", 64, seed=0)
    agent = PPO(env, PPOConfig(num_envs=64, num_steps=32), seed=0, hooks=_smoothing(0.5))
    roll = agent.collect()
    diff = (roll.obs - roll.critic_obs).flatten()
    assert abs(diff.std().item() - 0.5) < 0.02
    assert abs(diff.mean().item()) < 0.02
    assert torch.equal(roll.critic_obs, roll.trajectory.clean_obs)
    noisy_critic = PPO(env, PPOConfig(num_envs=64, num_steps=32), seed=0, hooks=_smoothing(0.5, "noisy"))
    roll2 = noisy_critic.collect()
    assert torch.equal(roll2.obs, roll2.critic_obs)


@pytest.mark.parametrize(
    ("cls", "cfg_cls", "env_id"), [(DQN, DQNConfig, "CartPole-v1"), (SAC, SACConfig, "Pendulum-v1")]
)
def test_replay_agents_store_noisy_observations(cls: Any, cfg_cls: Any, env_id: str) -> None:
    agent = cls(make_env(env_id, 8, seed=0), cfg_cls(num_envs=8), seed=0, hooks=_smoothing(0.3))
    agent.collect(50)
    buf = agent.buffer
    assert len(buf) == 400
    # the successor stored at step 0 is exactly the (noisy) obs acted on at step 1: one noise draw per obs
    assert torch.equal(buf.next_obs[:8], buf.obs[8:16])
    clean = cls(make_env(env_id, 8, seed=0), cfg_cls(num_envs=8), seed=0)
    clean.collect(1)
    diff = (buf.obs[:8] - clean.buffer.obs[:8]).flatten()
    assert 0.1 < diff.std().item() < 0.6


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_negative_or_nonfinite_obs_noise_is_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match="obs_noise"):
        train(TrainConfig(obs_noise=bad, total_steps=64))


# --------------------------------------------------------------------------------------- configs


def test_overrides_convert_types_and_name_unknown_keys() -> None:
    cfg = apply_overrides(
        PPOConfig(), ["hidden=32,32", "learning_rate=1e-4", "normalize_obs=true", "target_kl=none",
                      "activation=relu", "num_epochs=3"]
    )
    assert cfg.hidden == (32, 32) and cfg.learning_rate == 1e-4 and cfg.normalize_obs is True
    assert cfg.target_kl is None and cfg.activation == "relu" and cfg.num_epochs == 3
    with pytest.raises(ValueError, match="learning_rat'"):
        apply_overrides(PPOConfig(), ["learning_rat=1"])
    with pytest.raises(ValueError, match="did you mean"):
        apply_overrides(PPOConfig(), ["learning_rat=1"])
    with pytest.raises(ValueError, match="activation"):
        apply_overrides(PPOConfig(), ["activation=gelu"])
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides(PPOConfig(), ["hidden"])
    with pytest.raises(ValueError, match="num_epochs"):
        apply_overrides(PPOConfig(), ["num_epochs=two"])


def test_resolve_uses_presets_then_overrides_then_common_fields() -> None:
    run = TrainConfig(algo="dqn", env="CartPole-v1", num_envs=4, total_steps=999, obs_noise=0.2, set=("gamma=0.9",))
    cfg = resolve_algo_config(run)
    assert isinstance(cfg, DQNConfig)
    assert (cfg.num_envs, cfg.total_steps, cfg.gamma) == (4, 999, 0.9)
    assert resolve_defense_config(run) == SmoothingConfig(sigma=0.2)
    with pytest.raises(ValueError, match="--obs-noise"):
        resolve_algo_config(TrainConfig(set=("obs_noise=0.1",)))
    with pytest.raises(ValueError, match="num_minibatches"):
        resolve_algo_config(TrainConfig(set=("num_minibatches=0",)))


def test_algorithm_that_does_not_fit_the_action_space_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Discrete action space"):
        train(TrainConfig(algo="dqn", env="Pendulum-v1", total_steps=64, out=tmp_path / "run"))
    with pytest.raises(ValueError, match="Box action space"):
        train(TrainConfig(algo="sac", env="CartPole-v1", total_steps=64, out=tmp_path / "run"))
    assert not (tmp_path / "run").exists()  # nothing written for a run that could not start


def test_env_and_config_copy_counts_must_agree() -> None:
    with pytest.raises(ValueError, match="num_envs"):
        PPO(make_env("CartPole-v1", 4, seed=0), PPOConfig(num_envs=8), seed=0)


def test_unknown_env_id_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="CartPol-v1"):
        train(TrainConfig(env="CartPol-v1", total_steps=64))


def test_tensorboard_is_optional(tmp_path: Path) -> None:
    cfg = TrainConfig(total_steps=512, eval_episodes=1, num_envs=8, set=("num_steps=16",), out=tmp_path,
                      tensorboard=True)
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="tensorboard"):
            train(cfg)
        assert train(replace(cfg, tensorboard=False)).steps == 512
    else:
        train(cfg)
        assert list((tmp_path / "tb").iterdir())


def test_stop_at_return_stops_early() -> None:
    res = train(TrainConfig(total_steps=100_000, eval_every=512, eval_episodes=2, stop_at_return=0.0,
                            num_envs=8, set=("num_steps=16",)))
    assert res.stopped_early and res.steps == 512 and len(res.history) == 1


# --------------------------------------------------------------------------------------- adapter & CLI


def test_ppo_and_sac_run_through_the_gymnasium_adapter() -> None:
    res = train(TrainConfig(algo="ppo", env="CartPole-v1", backend="gymnasium", total_steps=256, num_envs=4,
                            eval_episodes=2, set=("num_steps=32",)))
    assert res.steps == 256 and np.isfinite(res.final_return)
    res = train(TrainConfig(algo="sac", env="Pendulum-v1", backend="gymnasium", total_steps=256, num_envs=2,
                            eval_episodes=2, set=("learning_starts=64", "batch_size=32")))
    assert res.steps == 256 and res.final_return < 0


def test_sac_on_mujoco_through_the_adapter() -> None:
    pytest.importorskip("mujoco")
    res = train(TrainConfig(algo="sac", env="InvertedPendulum-v5", total_steps=128, num_envs=2, eval_episodes=1,
                            set=("learning_starts=64", "batch_size=32")))
    assert res.steps == 128 and res.final_return >= 1


def test_cli_train_writes_a_loadable_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = main(["train", "--algo", "ppo", "--env", "CartPole-v1", "--total-steps", "512", "--seed", "3",
                 "--eval-episodes", "2", "--out", str(out), "--obs-noise", "0.2", "--num-envs", "8",
                 "--set", "num_steps=16",
                 "hidden=16,16"])
    assert code == 0
    assert "trained 512 steps" in capsys.readouterr().out
    saved = json.loads((out / "config.json").read_text())
    assert saved["defense"] == {"name": "smoothing", "sigma": 0.2, "critic_obs": "clean"}
    assert saved["algo"]["hidden"] == [16, 16]
    assert saved["train"]["seed"] == 3
    assert load_policy(out / "policy.zip").act(torch.zeros(2, 4)).shape == (2,)


def test_cli_reports_unknown_set_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--total-steps", "64", "--set", "lerning_rate=1"])
    assert code == 1
    err = capsys.readouterr().err
    assert "lerning_rate" in err and "learning_rate" in err


def test_train_config_describes_its_env_fixed_or_randomised() -> None:
    from robustrl.agents.train import make_run_env

    cfg = TrainConfig(env="CartPole-v1", env_params=("length=0.7",), env_randomize=("masspole=0.05:0.2",))
    env = make_run_env(cfg, 64, 0)
    env.reset(seed=0)
    assert torch.allclose(env.params["length"], torch.tensor(0.7, dtype=env.params["length"].dtype))
    mp = env.params["masspole"]
    assert bool(((mp >= 0.05) & (mp <= 0.2)).all()) and float(mp.std()) > 0.01
    nominal = make_run_env(cfg, 4, 0, randomize=False)
    assert torch.allclose(nominal.params["masspole"], torch.tensor(0.1, dtype=mp.dtype))
    with pytest.raises(ValueError, match="low:high"):
        train(TrainConfig(env_randomize=("length=1:0.5",), total_steps=64))
    with pytest.raises(ValueError, match="name=number"):
        train(TrainConfig(env_params=("length",), total_steps=64))
    with pytest.raises(ValueError, match="both fixed"):
        make_run_env(TrainConfig(env_params=("length=0.7",), env_randomize=("length=0.5:1",)), 2, 0)
    res = train(replace(cfg, total_steps=512, num_envs=8, eval_episodes=2, set=("num_steps=16",)))
    assert res.steps == 512

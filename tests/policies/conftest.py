"""Shared fixtures: small real Stable-Baselines3 checkpoints, trained for a few hundred steps."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import robustrl  # noqa: F401  (one torch thread before SB3 trains)


def rescaled_pendulum() -> gym.Env[Any, Any]:
    """Pendulum with the asymmetric action box [-1, 3], so unscale/clip formulas are exercised."""
    return gym.wrappers.RescaleAction(gym.make("Pendulum-v1"), np.float32(-1.0), np.float32(3.0))


def _sb3_models() -> dict[str, Callable[[], Any]]:
    from stable_baselines3 import A2C, DQN, PPO, SAC, TD3

    ppo_kw = {"n_steps": 128, "batch_size": 64, "n_epochs": 2, "seed": 0}
    off_kw = {"learning_starts": 100, "batch_size": 32, "buffer_size": 1000, "seed": 0}
    return {
        "ppo_discrete": lambda: PPO("MlpPolicy", "CartPole-v1", **ppo_kw),
        "ppo_box": lambda: PPO("MlpPolicy", rescaled_pendulum(), **ppo_kw),
        "a2c_discrete": lambda: A2C(
            "MlpPolicy",
            "CartPole-v1",
            seed=0,
            policy_kwargs={"net_arch": {"pi": [32], "vf": [16, 16]}, "activation_fn": torch.nn.ReLU},
        ),
        "a2c_box": lambda: A2C("MlpPolicy", rescaled_pendulum(), seed=0),
        "dqn": lambda: DQN("MlpPolicy", "CartPole-v1", policy_kwargs={"net_arch": [32, 32]}, **off_kw),
        "sac": lambda: SAC("MlpPolicy", rescaled_pendulum(), policy_kwargs={"net_arch": [32, 32]}, **off_kw),
        "td3": lambda: TD3(
            "MlpPolicy",
            rescaled_pendulum(),
            policy_kwargs={"net_arch": {"pi": [32], "qf": [16, 16]}, "n_critics": 3},
            **off_kw,
        ),
    }


@pytest.fixture(scope="session")
def sb3_zips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> path of an SB3 zip trained for 200 steps (built once per session)."""
    pytest.importorskip("stable_baselines3")
    root = tmp_path_factory.mktemp("sb3")
    paths = {}
    for name, make in _sb3_models().items():
        model = make()
        model.learn(200)
        model.save(root / f"{name}.zip")
        paths[name] = root / f"{name}.zip"
    return paths


def _rewrite_zip(src: Path, dst: Path, replace: dict[str, bytes | None]) -> Path:
    """Copy zip ``src`` to ``dst`` replacing members (``None`` drops one; new names are added)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            if item.filename in replace:
                continue
            zout.writestr(item, zin.read(item.filename))
        for name, data in replace.items():
            if data is not None:
                zout.writestr(name, data)
    return dst


def _torch_bytes(obj: Any) -> bytes:
    """``torch.save(obj)`` into bytes."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture
def rewrite_zip() -> Callable[[Path, Path, dict[str, bytes | None]], Path]:
    """Copy a zip replacing members (``None`` drops one; new names are added)."""
    return _rewrite_zip


@pytest.fixture
def torch_bytes() -> Callable[[Any], bytes]:
    """``torch.save(obj)`` into bytes."""
    return _torch_bytes

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
from torch import nn

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


class _WritesOnLoadAndForward(nn.Module):
    """A TorchScript module that writes files through ``torch.from_file(..., shared=True)``.

    ``__setstate__`` (run by ``torch.jit.load``) writes ``on_load``, ``forward`` writes ``on_forward``:
    the tests check that neither file appears unless the caller passed ``trust_code=True``.
    """

    def __init__(self, on_load: str, on_forward: str) -> None:
        super().__init__()
        self.on_load = on_load
        self.on_forward = on_forward
        self.weight = torch.ones(2, 4)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        written = torch.from_file(self.on_forward, shared=True, size=8, dtype=torch.uint8)
        written.fill_(70)
        return obs @ self.weight.t() + written[0].float() * 0  # use the tensor so the write is not eliminated

    @torch.jit.export
    def __getstate__(self) -> tuple[str, str, torch.Tensor, bool]:
        return (self.on_load, self.on_forward, self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, str, torch.Tensor, bool]) -> None:
        self.on_load = state[0]
        self.on_forward = state[1]
        self.training = state[3]
        written = torch.from_file(self.on_load, shared=True, size=8, dtype=torch.uint8)
        written.fill_(76)
        self.weight = state[2] + written[0].float() * 0  # use the tensor so the write is not eliminated


def _write_hostile_torchscript(path: Path, sentinel_dir: Path) -> Path:
    """Save a self-describing TorchScript policy whose loading and ``forward`` write into ``sentinel_dir``."""
    import warnings

    from robustrl.policies import save_torchscript

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.script(
            _WritesOnLoadAndForward(str(sentinel_dir / "on_load"), str(sentinel_dir / "on_forward"))
        )
    return save_torchscript(
        module, path, observation_space=gym.spaces.Box(-1.0, 1.0, (4,)), action_space=gym.spaces.Discrete(2)
    )


@pytest.fixture(scope="session")
def hostile_torchscript() -> Callable[[Path, Path], Path]:
    """Write a TorchScript policy whose ``__setstate__`` and ``forward`` create files in a given folder."""
    return _write_hostile_torchscript

"""SB3 image policies (CnnPolicy, MlpPolicy on images) load without unpickling and act exactly like SB3."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from robustrl.policies import (
    ActorCriticPolicy,
    PolicyFileError,
    QNetworkPolicy,
    load_policy,
    read_policy_info,
    save_policy,
)
from robustrl.policies.spaces import spaces_equal

sb3 = pytest.importorskip("stable_baselines3")

HWC = gym.spaces.Box(0, 255, (36, 36, 3), dtype=np.uint8)
CHW = gym.spaces.Box(0, 255, (3, 36, 36), dtype=np.uint8)
ENV_ID = "robustrl-test/TinyImage-v0"


class TinyImageEnv(gym.Env[np.ndarray, int]):
    """Random 36×36 RGB frames (NatureCNN's smallest input); reward for matching the mean colour's argmax."""

    observation_space = HWC
    action_space = gym.spaces.Discrete(3)

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)
        self.frame = self._draw()
        self.t = 0

    def _draw(self) -> np.ndarray:
        return self.rng.integers(0, 256, HWC.shape, dtype=np.uint8)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t = 0
        self.frame = self._draw()
        return self.frame, {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        reward = float(action == int(self.frame.mean(axis=(0, 1)).argmax()))
        self.t += 1
        self.frame = self._draw()
        return self.frame, reward, False, self.t >= 16, {}


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=TinyImageEnv)

ON = {"n_steps": 16, "batch_size": 16, "n_epochs": 1, "seed": 0}
OFF = {"buffer_size": 64, "learning_starts": 16, "batch_size": 8, "train_freq": 4, "seed": 0}
SEPARATE_RAW = {"normalize_images": False, "share_features_extractor": False, "net_arch": {"pi": [16], "vf": [8]}}
MODELS: dict[str, Callable[[], Any]] = {
    "ppo_cnn_shared": lambda: sb3.PPO("CnnPolicy", TinyImageEnv(), **ON),
    "ppo_cnn_separate_raw": lambda: sb3.PPO("CnnPolicy", TinyImageEnv(), policy_kwargs=SEPARATE_RAW, **ON),
    "a2c_cnn": lambda: sb3.A2C("CnnPolicy", TinyImageEnv(), n_steps=8, seed=0),
    "dqn_cnn": lambda: sb3.DQN("CnnPolicy", TinyImageEnv(), **OFF),
    "dqn_cnn_raw": lambda: sb3.DQN(
        "CnnPolicy", TinyImageEnv(), policy_kwargs={"normalize_images": False, "net_arch": [16]}, **OFF
    ),
    "ppo_mlp_image": lambda: sb3.PPO("MlpPolicy", TinyImageEnv(), policy_kwargs={"net_arch": [16]}, **ON),
}


def sharpen(model: Any) -> None:
    """Set the action head to seeded weights centred on the probe frames' latents, so that the action varies.

    A few training steps leave CNN features whose common component decides the argmax for every frame;
    subtracting the mean latent (through the bias) makes the head compare the frames' differences.
    """
    from stable_baselines3.common.preprocessing import preprocess_obs

    obs = model.policy.obs_to_tensor(frames())[0]
    with torch.no_grad():
        if hasattr(model, "q_net"):
            head = model.q_net.q_net[-1]
            latent = model.q_net.q_net[:-1](model.q_net.extract_features(obs, model.q_net.features_extractor))
        else:
            head = model.policy.action_net
            x = preprocess_obs(obs, model.observation_space, model.policy.normalize_images)
            latent = model.policy.mlp_extractor.forward_actor(model.policy.pi_features_extractor(x))
        centred = latent - latent.mean(0)
        weight = torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(0))
        weight /= centred.std(0).clamp_min(1e-6)
        head.weight.copy_(weight)
        head.bias.copy_(-(weight @ latent.mean(0)))


@pytest.fixture(scope="module")
def image_zips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> SB3 zip trained for a few dozen steps on :class:`TinyImageEnv`."""
    root = tmp_path_factory.mktemp("sb3-images")
    paths = {}
    for name, make in MODELS.items():
        model = make()
        model.learn(32)
        sharpen(model)
        model.save(root / f"{name}.zip")
        paths[name] = root / f"{name}.zip"
    return paths


def frames(n: int = 96, seed: int = 1) -> np.ndarray:
    """``uint8 [n, 36, 36, 3]`` frames, half of them darkened so that the images differ in scale too."""
    rng = np.random.default_rng(seed)
    out = rng.integers(0, 256, (n, *HWC.shape), dtype=np.uint8)
    out[: n // 2] //= 4
    return out


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_image_policy_acts_exactly_like_sb3(name: str, layout: str, image_zips: dict[str, Path]) -> None:
    path = image_zips[name]
    model = getattr(sb3, name.split("_")[0].upper()).load(path, device="cpu")
    assert spaces_equal(model.observation_space, CHW)  # SB3 wrapped the env in VecTransposeImage
    obs = frames()
    if layout == "channels_first":
        obs = np.ascontiguousarray(obs.transpose(0, 3, 1, 2))
        policy = load_policy(path, observation_space=CHW)
    else:
        policy = load_policy(path, env_id=ENV_ID)  # the env's own [H, W, C] space: transposed inside
    assert policy.spec()["channels_last"] is (layout == "channels_last")
    assert spaces_equal(policy.observation_space, HWC if layout == "channels_last" else CHW)
    expected, _ = model.predict(obs, deterministic=True)
    t = torch.as_tensor(obs)
    with torch.no_grad():
        got = policy.act(t).numpy()
        np.testing.assert_array_equal(got, expected)
        assert len(np.unique(expected)) > 1  # not a constant policy
        sb3_obs = model.policy.obs_to_tensor(obs)[0]
        if isinstance(policy, QNetworkPolicy):
            torch.testing.assert_close(policy.q_values(t), model.q_net(sb3_obs), rtol=0, atol=0)
        else:
            assert isinstance(policy, ActorCriticPolicy)
            sb3_dist = model.policy.get_distribution(sb3_obs).distribution
            torch.testing.assert_close(policy.dist(t).logits, sb3_dist.logits, rtol=0, atol=0)
            torch.testing.assert_close(
                policy.value(t), model.policy.predict_values(sb3_obs).squeeze(-1), rtol=0, atol=0
            )


def test_architecture_read_from_the_weights(image_zips: dict[str, Path]) -> None:
    spec = load_policy(image_zips["ppo_cnn_separate_raw"], observation_space=CHW).spec()
    assert spec["features_extractor"] == "nature_cnn" and spec["features_dim"] == 512
    assert spec["share_features_extractor"] is False and spec["normalize_images"] is False
    assert spec["pi_hidden"] == [16] and spec["vf_hidden"] == [8]
    shared = load_policy(image_zips["ppo_cnn_shared"], observation_space=CHW)
    assert shared.spec()["share_features_extractor"] is True and shared.spec()["normalize_images"] is True
    assert shared.vf_extractor is None  # one CNN serves the actor and the critic, as in SB3
    dqn = load_policy(image_zips["dqn_cnn_raw"], observation_space=CHW).spec()
    assert dqn["hidden"] == [16] and dqn["normalize_images"] is False
    assert load_policy(image_zips["ppo_mlp_image"], observation_space=CHW).spec()["features_extractor"] == "flatten"
    info = read_policy_info(image_zips["dqn_cnn"])
    assert info.kind == "DQN" and info.observation_space is None  # SB3 printed the image bounds summarised


def test_image_bounds_must_be_given(image_zips: dict[str, Path]) -> None:
    path = image_zips["dqn_cnn"]
    with pytest.raises(PolicyFileError, match="env_id=") as err:
        load_policy(path)
    assert err.value.path == path
    with pytest.raises(PolicyFileError, match="does not match"):
        load_policy(path, observation_space=gym.spaces.Box(0, 255, (40, 40, 3), dtype=np.uint8))
    with pytest.raises(PolicyFileError, match="does not match"):  # (36, 3, 36) is no layout SB3 transposes from
        load_policy(path, observation_space=gym.spaces.Box(0, 255, (36, 3, 36), dtype=np.uint8))


@pytest.mark.parametrize("name", ["ppo_cnn_separate_raw", "dqn_cnn"])
def test_loaded_image_policy_round_trips(name: str, image_zips: dict[str, Path], tmp_path: Path) -> None:
    policy = load_policy(image_zips[name], env_id=ENV_ID)
    again = load_policy(save_policy(policy, tmp_path / "p.zip", env_id=ENV_ID))
    assert type(again) is type(policy) and again.spec() == policy.spec()
    obs = torch.as_tensor(frames(32))
    with torch.no_grad():
        assert torch.equal(again.act(obs), policy.act(obs))


def test_attacks_differentiate_through_the_cnn(image_zips: dict[str, Path]) -> None:
    policy = load_policy(image_zips["ppo_cnn_shared"], env_id=ENV_ID)
    obs = torch.as_tensor(frames(4)).float().requires_grad_()
    (grad,) = torch.autograd.grad(policy.value(obs).sum(), obs)
    assert grad.shape == obs.shape and bool(grad.abs().sum() > 0)

"""Native envs equal Gymnasium 1.x step for step: obs, reward, terminated, truncated, over whole episodes."""

from __future__ import annotations

import math
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
import torch

from robustrl.envs import make_env

Policy = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _random_discrete(n: int) -> Policy:
    return lambda obs, g: torch.randint(0, n, (obs.shape[0],), generator=g)


def _random_box(low: float, high: float) -> Policy:
    return lambda obs, g: torch.rand((obs.shape[0], 1), generator=g) * (high - low) + low


def _cartpole_controller(obs: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    # A PD controller that balances the pole for the whole 500 steps (so episodes truncate).
    return (obs[:, 2] + 0.5 * obs[:, 3] + 0.05 * obs[:, 1] + 0.01 * obs[:, 0] > 0).long()


def _mountain_car_pump(obs: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    # Push along the velocity: reaches the goal (termination) in about 100 steps.
    return torch.where(obs[:, 1] >= 0, 2, 0)


def _mountain_car_continuous_pump(obs: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    # Saturating push along the velocity, sometimes outside the Box (the env clips for the dynamics only).
    return torch.where(obs[:, 1:2] >= 0, 1.3, -1.0)


def _acrobot_pump(obs: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return torch.where(obs[:, 5] >= 0, 2, 0)


def _mixed(*policies: Policy) -> Policy:
    """Copy i follows policies[i % len(policies)]."""

    def act(obs: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        outs = [p(obs, g) for p in policies]
        idx = torch.arange(obs.shape[0]) % len(policies)
        out = outs[0].clone()
        for k, o in enumerate(outs[1:], start=1):
            out[idx == k] = o[idx == k]
        return out

    return act


def _set_gym_params(env: gym.Env, params: dict[str, float]) -> None:
    u = env.unwrapped
    for k, v in params.items():
        setattr(u, k, v)
    if env.spec is not None and env.spec.id == "CartPole-v1":  # derived in __init__
        u.total_mass = u.masspole + u.masscart
        u.polemass_length = u.masspole * u.length


def _to_gym_action(a: torch.Tensor) -> int | np.ndarray:
    return int(a) if a.dim() == 0 else a.numpy().astype(np.float32)


def run_equivalence(
    env_id: str,
    policy: Policy,
    steps: int,
    params: list[dict[str, float]] | None = None,
    n: int = 4,
    atol: float = 1e-6,
    resync: bool = False,
    native_kwargs: dict | None = None,
) -> dict[str, int]:
    """Step a native env and n Gymnasium envs together from the same states; return episode counts.

    With ``resync`` the Gymnasium state is set to the native one after every step, so a chaotic system
    (Acrobot) compares one step at a time along whole episodes instead of amplifying 1-ulp differences
    between NumPy's and torch's sin/cos.
    """
    per_copy = params or [{} for _ in range(n)]
    tensor_params = {k: torch.tensor([p[k] for p in per_copy], dtype=torch.float64) for k in per_copy[0]}
    env = make_env(env_id, n, seed=123, params=tensor_params or None, **(native_kwargs or {}))
    obs, _ = env.reset()
    gyms = [gym.make(env_id) for _ in range(n)]
    for i, genv in enumerate(gyms):
        genv.reset(seed=i)
        _set_gym_params(genv, per_copy[i])
        genv.unwrapped.state = env.state[i].numpy().copy()
    g = torch.Generator().manual_seed(7)
    counts = {"terminated": 0, "truncated": 0}
    for t in range(steps):
        action = policy(obs, g)
        obs, reward, terminated, truncated, info = env.step(action)
        for i, genv in enumerate(gyms):
            gobs, grew, gterm, gtrunc, _ = genv.step(_to_gym_action(action[i]))
            where = f"{env_id} copy {i} step {t}"
            np.testing.assert_allclose(info["final_obs"][i].numpy(), gobs, rtol=1e-6, atol=atol, err_msg=where)
            assert math.isclose(float(reward[i]), float(grew), rel_tol=1e-6, abs_tol=1e-6), where
            assert bool(terminated[i]) == gterm, where
            assert bool(truncated[i]) == gtrunc, where
            if gterm or gtrunc:
                counts["terminated" if gterm else "truncated"] += 1
                genv.reset()
                genv.unwrapped.state = env.state[i].numpy().copy()
            else:
                assert torch.equal(obs[i], info["final_obs"][i]), where
                if resync:
                    genv.unwrapped.state = env.state[i].numpy().copy()
    for genv in gyms:
        genv.close()
    return counts


CASES = {
    "CartPole-v1": (_mixed(_random_discrete(2), _cartpole_controller), 1100),
    "Pendulum-v1": (_random_box(-2.5, 2.5), 450),
    "MountainCar-v0": (_mixed(_random_discrete(3), _mountain_car_pump), 450),
    "MountainCarContinuous-v0": (_mixed(_random_box(-1.0, 1.0), _mountain_car_continuous_pump), 1100),
    "Acrobot-v1": (_mixed(_random_discrete(3), _acrobot_pump), 1100),
}


@pytest.mark.parametrize("env_id", list(CASES))
def test_native_matches_gymnasium(env_id: str) -> None:
    policy, steps = CASES[env_id]
    counts = run_equivalence(env_id, policy, steps, resync=env_id == "Acrobot-v1")
    # Whole episodes, both ends exercised where the task allows it.
    assert counts["truncated"] > 0
    if env_id != "Pendulum-v1":
        assert counts["terminated"] > 0


NON_DEFAULT = {
    "CartPole-v1": [
        {"gravity": 9.8, "masscart": 1.0, "masspole": 0.1, "length": 0.5, "force_mag": 10.0},
        {"gravity": 12.0, "masscart": 0.7, "masspole": 0.3, "length": 0.75, "force_mag": 14.0},
        {"gravity": 5.0, "masscart": 2.0, "masspole": 0.05, "length": 0.3, "force_mag": 6.0},
    ],
    "Pendulum-v1": [
        {"g": 10.0, "m": 1.0, "l": 1.0, "max_speed": 8.0, "max_torque": 2.0},
        {"g": 9.81, "m": 1.4, "l": 0.8, "max_speed": 6.0, "max_torque": 1.7},
        {"g": 4.0, "m": 0.6, "l": 1.3, "max_speed": 10.0, "max_torque": 2.0},
    ],
    "MountainCar-v0": [
        {"force": 0.001, "gravity": 0.0025},
        {"force": 0.0015, "gravity": 0.002},
        {"force": 0.0008, "gravity": 0.003},
    ],
    "MountainCarContinuous-v0": [{"power": 0.0015}, {"power": 0.002}, {"power": 0.0011}],
    "Acrobot-v1": [
        {
            "LINK_LENGTH_1": 1.0,
            "LINK_MASS_1": 1.0,
            "LINK_MASS_2": 1.0,
            "LINK_COM_POS_1": 0.5,
            "LINK_COM_POS_2": 0.5,
            "LINK_MOI": 1.0,
        },
        {
            "LINK_LENGTH_1": 1.2,
            "LINK_MASS_1": 0.8,
            "LINK_MASS_2": 1.3,
            "LINK_COM_POS_1": 0.6,
            "LINK_COM_POS_2": 0.4,
            "LINK_MOI": 0.9,
        },
        {
            "LINK_LENGTH_1": 0.9,
            "LINK_MASS_1": 1.5,
            "LINK_MASS_2": 0.7,
            "LINK_COM_POS_1": 0.45,
            "LINK_COM_POS_2": 0.55,
            "LINK_MOI": 1.2,
        },
    ],
}


@pytest.mark.parametrize("env_id", list(NON_DEFAULT))
def test_native_matches_gymnasium_with_parameters(env_id: str) -> None:
    policy, steps = CASES[env_id]
    run_equivalence(env_id, policy, min(steps, 450), params=NON_DEFAULT[env_id], n=3, resync=env_id == "Acrobot-v1")


def test_acrobot_nips_dynamics_match(monkeypatch: pytest.MonkeyPatch) -> None:
    # Gymnasium has no constructor option for this: it is a class attribute of AcrobotEnv.
    from gymnasium.envs.classic_control.acrobot import AcrobotEnv as GymAcrobot

    monkeypatch.setattr(GymAcrobot, "book_or_nips", "nips")
    env = make_env("Acrobot-v1", 1, seed=0, book_or_nips="nips")
    assert env.book_or_nips == "nips"
    run_equivalence(
        "Acrobot-v1",
        _mixed(_random_discrete(3), _acrobot_pump),
        300,
        n=2,
        resync=True,
        native_kwargs={"book_or_nips": "nips"},
    )

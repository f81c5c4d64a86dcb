"""MuJoCo parameters by name in the adapter: ``<body>_mass`` (absolute), ``world_friction``, and the scales."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from robustrl.envs import make_env

BODIES = ["torso", "thigh", "leg", "foot"]


def _models(env: Any) -> list:
    return [e.unwrapped.model for e in env._vec.envs]


def _rollout(env: Any, steps: int = 30) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    out = [env.reset(seed=0)[0]]
    for _ in range(steps):
        out.append(env.step(torch.rand((env.num_envs, 3), generator=g) * 2 - 1)[0])
    return torch.stack(out)


def test_hopper_lists_per_body_masses_and_floor_friction() -> None:
    env: Any = make_env("Hopper-v5", 2, seed=0)
    model = _models(env)[0]
    p = env.params
    assert list(p) == ["mass_scale", "friction_scale", "world_friction", *(b + "_mass" for b in BODIES)]
    for b in BODIES:  # defaults are the model's masses
        assert torch.equal(p[b + "_mass"], torch.full((2,), float(model.body(b).mass[0]), dtype=torch.float64))
    assert torch.equal(
        p["world_friction"], torch.full((2,), float(model.geom("floor").friction[0]), dtype=torch.float64)
    )
    env.close()


def test_torso_mass_changes_the_torso_only_and_the_dynamics() -> None:
    env: Any = make_env("Hopper-v5", 2, seed=0)
    nominal_masses = np.array(_models(env)[0].body_mass)
    nominal = _rollout(env)
    torso = int(_models(env)[0].body("torso").id)
    env.set_params({"torso_mass": torch.tensor([float(nominal_masses[torso]), 10.0], dtype=torch.float64)})
    m0, m1 = (np.array(m.body_mass) for m in _models(env))
    assert np.array_equal(m0, nominal_masses)  # copy 0 kept the nominal torso mass
    assert m1[torso] == 10.0
    others = np.arange(len(m1)) != torso
    assert np.array_equal(m1[others], nominal_masses[others])
    heavy = _rollout(env)
    assert torch.equal(heavy[:, 0], nominal[:, 0])
    assert (heavy[:, 1] - nominal[:, 1]).abs().max() > 1e-2
    # A scale multiplies the absolute masses; back to the defaults gives the nominal model exactly.
    env.set_params({"mass_scale": 2.0})
    assert np.array_equal(np.array(_models(env)[1].body_mass), 2 * np.where(others, nominal_masses, 10.0))
    env.set_params({"mass_scale": 1.0, "torso_mass": float(nominal_masses[torso])})
    assert all(np.array_equal(np.array(m.body_mass), nominal_masses) for m in _models(env))
    assert torch.equal(_rollout(env), nominal)
    env.close()


def test_world_friction_sets_the_floor_only() -> None:
    env: Any = make_env("Hopper-v5", 1, seed=0)
    model = _models(env)[0]
    nominal = np.array(model.geom_friction)
    floor = int(model.geom("floor").id)
    base = _rollout(env, 60)
    # MuJoCo takes the larger friction of two touching geoms: the floor matters above the foot's own 2.0.
    env.set_params({"world_friction": 0.1})
    expected = nominal.copy()
    expected[floor, 0] = 0.1
    assert np.array_equal(np.array(model.geom_friction), expected)
    assert torch.equal(_rollout(env, 60), base)
    env.set_params({"world_friction": 6.0})
    expected[floor, 0] = 6.0
    assert np.array_equal(np.array(model.geom_friction), expected)
    assert (_rollout(env, 60) - base).abs().max() > 1e-3
    env.set_params({"friction_scale": 0.5})
    assert np.allclose(np.array(model.geom_friction), expected * 0.5)  # the scale applies on top
    env.set_params({"world_friction": 0.0})  # frictionless floor is allowed
    env.close()


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"torso_mass": 0.0}, "torso_mass.*> 0"),
        ({"world_friction": -0.1}, "world_friction.*>= 0"),
        ({"torso_mas": 1.0}, r"unknown parameter 'torso_mas'.*torso_mass"),
        ({"foot_mass": float("inf")}, "foot_mass.*finite"),
    ],
)
def test_bad_mujoco_params(params: dict, match: str) -> None:
    env: Any = make_env("Hopper-v5", 1, seed=0)
    with pytest.raises(ValueError, match=match):
        env.set_params(params)
    env.close()
    with pytest.raises(ValueError, match="needs a MuJoCo env"):
        make_env("CartPole-v1", backend="gymnasium", params={"friction_scale": 2.0})

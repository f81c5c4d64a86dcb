"""certify_policy end to end: the smoothed sampler, determinism, save/load, the CLI, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import robustrl
from robustrl.certify import (
    Certificate,
    CertifyConfig,
    SmoothedPolicy,
    certify,
    certify_policy,
    expected_return_bound,
    load_certificate,
    sample_smoothed_returns,
    smoothing_transform,
)
from robustrl.certify.cli import parse_budgets
from robustrl.cli import COMMANDS, main, run_command
from robustrl.common.config import config_from_dict
from robustrl.policies import ActorCriticPolicy, save_policy


@pytest.fixture(scope="module")
def policy() -> ActorCriticPolicy:
    env = robustrl.make_env("CartPole-v1", 1)
    torch.manual_seed(0)  # only the initial weights of this test fixture
    return ActorCriticPolicy(env.observation_space, env.action_space)


# ---------------------------------------------------------------- the smoothed policy and sampler
def test_smoothed_policy_draws_noise_only_from_the_generator(policy: ActorCriticPolicy) -> None:
    smoothed = SmoothedPolicy(policy, 0.5)
    obs = torch.zeros(256, 4)
    a1 = smoothed.act(obs, generator=torch.Generator().manual_seed(3))
    a2 = smoothed.act(obs, generator=torch.Generator().manual_seed(3))
    a3 = smoothed.act(obs, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a1, a2) and not torch.equal(a1, a3)
    expected = policy.act(obs + 0.5 * torch.randn(obs.shape, generator=torch.Generator().manual_seed(3)))
    assert torch.equal(a1, expected)
    with pytest.raises(ValueError, match="generator"):
        smoothed.act(obs)
    with pytest.raises(ValueError, match="sigma"):
        SmoothedPolicy(policy, 0.0)


def test_smoothed_policy_equals_smoothing_transform_on_the_engine(policy: ActorCriticPolicy) -> None:
    env = robustrl.make_env("CartPole-v1", 16, seed=0)
    a = robustrl.rollout(SmoothedPolicy(policy, 0.3), env, 40, seed=5)
    b = robustrl.rollout(policy, env, 40, seed=5, obs_transform=smoothing_transform(0.3))
    c = sample_smoothed_returns(policy, env, 40, sigma=0.3, seed=5)
    assert torch.equal(a.returns, b.returns) and torch.equal(a.returns, c.returns)
    clean = robustrl.rollout(policy, env, 40, seed=5)
    assert not torch.equal(a.returns, clean.returns)  # the noise changes behaviour


# ---------------------------------------------------------------- certify_policy
def test_certify_policy_is_seeded_and_consistent(policy: ActorCriticPolicy) -> None:
    kw: dict[str, Any] = {"sigma": 0.2, "budgets": [0.0, 0.1, 0.5], "episodes": 300, "num_envs": 128}
    c1 = certify_policy(policy, "CartPole-v1", seed=7, **kw)
    c2 = certify_policy(policy, "CartPole-v1", seed=7, **kw)
    c3 = certify_policy(policy, "CartPole-v1", seed=8, **kw)
    np.testing.assert_array_equal(c1.returns, c2.returns)
    np.testing.assert_array_equal(c1.bounds, c2.bounds)
    assert c1.clean_return_ci == c2.clean_return_ci
    assert not np.array_equal(c1.returns, c3.returns)
    # the certificate is exactly the pure bound of the sampled returns, floor from the env (CartPole: 0)
    ref = expected_return_bound(c1.returns, sigma=0.2, budgets=[0.0, 0.1, 0.5], floor=0.0)
    np.testing.assert_array_equal(c1.bounds, ref.bounds)
    assert c1.floor == 0.0 and c1.n == 300 and c1.confidence == pytest.approx(0.95)
    assert c1.clean_return == pytest.approx(c1.returns.mean())
    assert c1.clean_return_ci[0] <= c1.clean_return <= c1.clean_return_ci[1]
    assert np.array_equal(c1.returns, c1.lengths.astype(float))  # CartPole: +1 per step
    assert c1.config["env"] == "CartPole-v1" and c1.config["seed"] == 7 and c1.seed == 7
    assert "torch" in c1.provenance


def test_certify_policy_per_step_budget_uses_the_env_horizon(policy: ActorCriticPolicy) -> None:
    c = certify_policy(policy, "CartPole-v1", sigma=0.2, epsilon=[0.0, 0.01], episodes=200, quantile=0.5)
    np.testing.assert_allclose(c.budgets, [0.0, 0.01 * np.sqrt(500)])
    assert c.quantile_bounds is not None and c.quantile_bounds[0] >= c.quantile_bounds[1]


class _NoFloor:
    """A CartPole env that does not declare its return floor."""

    def __init__(self) -> None:
        self._env = robustrl.make_env("CartPole-v1", 8, seed=0)
        self.return_floor = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)


def test_certify_policy_refusals(policy: ActorCriticPolicy) -> None:
    with pytest.raises(ValueError, match="floor is required"):
        certify_policy(policy, _NoFloor(), sigma=0.2, budgets=[0.0], episodes=20)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="floor"):
        certify_policy(policy, "CartPole-v1", sigma=0.2, budgets=[0.0], episodes=20, floor=1000.0)  # above data
    with pytest.raises(ValueError, match="sigma"):
        certify_policy(policy, "CartPole-v1", sigma=-0.1, budgets=[0.0], episodes=20)
    with pytest.raises(ValueError, match="budgets"):
        certify_policy(policy, "CartPole-v1", sigma=0.2, budgets=[-1.0], episodes=20)
    with pytest.raises(ValueError, match="too few"):
        certify_policy(policy, "CartPole-v1", sigma=0.2, budgets=[0.0], episodes=1)
    with pytest.raises(ValueError, match="grid"):
        certify_policy(policy, "CartPole-v1", sigma=0.2, budgets=[0.0], episodes=20, method="cp")
    c = certify_policy(policy, _NoFloor(), sigma=0.2, budgets=[0.0], episodes=20, floor=0.0)  # type: ignore[arg-type]
    assert c.floor == 0.0


class _Exploding:
    observation_space = None
    action_space = None

    def act(self, obs: torch.Tensor, **kw: Any) -> torch.Tensor:
        raise AssertionError("sampling started before the settings were checked")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "cp"}, "grid"),
        ({"alpha": 0.9}, "alpha"),
        ({"episodes": 1}, "too few"),
        ({"quantile": 0.5, "episodes": 4}, "too few"),
        ({"budgets": [-1.0]}, "budgets"),
    ],
)
def test_certify_policy_refuses_before_sampling(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"sigma": 0.2, "budgets": [0.0], "episodes": 10_000}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        certify_policy(_Exploding(), "CartPole-v1", **args)  # type: ignore[arg-type]


def test_save_load_round_trip(policy: ActorCriticPolicy, tmp_path: Path) -> None:
    c = certify_policy(policy, "CartPole-v1", sigma=0.2, budgets=[0.0, 0.3], episodes=100, method="cp",
                       max_return=500, quantile=0.5)
    path = c.save(tmp_path / "sub" / "cert.json")
    data = json.loads(path.read_text())
    assert data["kind"] == "certificate" and len(data["returns"]) == 100
    back = load_certificate(path)
    assert isinstance(back, Certificate)
    for name in ("budgets", "bounds", "returns", "lengths", "quantile_bounds"):
        np.testing.assert_array_equal(getattr(back, name), getattr(c, name))
    assert back.clean_return_ci == c.clean_return_ci and back.method == "cp" and back.config == c.config
    assert [p.name for p in path.parent.iterdir()] == ["cert.json"]  # no temporary file left
    (tmp_path / "other.json").write_text('{"kind": "report"}')
    with pytest.raises(ValueError, match="not a robustrl certificate"):
        load_certificate(tmp_path / "other.json")
    with pytest.raises(FileNotFoundError):
        load_certificate(tmp_path / "missing.json")


# ---------------------------------------------------------------- CLI
def test_parse_budgets() -> None:
    np.testing.assert_allclose(parse_budgets(["0:1:0.25"]), [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(parse_budgets(["0:1:0.05"])[-1], 1.0)
    assert len(parse_budgets("0:1:0.05")) == 21
    np.testing.assert_allclose(parse_budgets(["0.5", "0,2", "1:2:1"]), [0, 0.5, 1, 2])
    for bad in (["-1"], ["a"], ["1:0:0.1"], ["0:1:0"], []):
        with pytest.raises(ValueError, match="budget"):
            parse_budgets(bad)


def test_cli_certify_writes_a_loadable_certificate(
    policy: ActorCriticPolicy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pfile = save_policy(policy, tmp_path / "pi.zip", env_id="CartPole-v1")
    out = tmp_path / "cert.json"
    args = ["certify", "--policy", str(pfile), "--env", "CartPole-v1", "--sigma", "0.2", "--budgets", "0:0.5:0.25",
            "--episodes", "200", "--out", str(out), "--progress", "false"]
    assert main(args) == 0
    assert "certified E[R]" in capsys.readouterr().out
    cert = load_certificate(out)
    np.testing.assert_allclose(cert.budgets, [0.0, 0.25, 0.5])
    assert cert.n == 200 and cert.config["policy"] == str(pfile)
    direct = certify_policy(pfile, "CartPole-v1", sigma=0.2, budgets=[0.0, 0.25, 0.5], episodes=200)
    np.testing.assert_array_equal(direct.bounds, cert.bounds)  # CLI == Python API, same seed

    bad = tmp_path / "bad.json"
    assert main([*args[:5], "--sigma", "0", "--out", str(bad), "--episodes", "20", "--progress", "false"]) == 1
    assert "sigma" in capsys.readouterr().err and not bad.exists()


# ---------------------------------------------------------------- config-first
def test_certify_takes_a_config_and_saves_it_resolved(policy: ActorCriticPolicy, tmp_path: Path) -> None:
    pfile = save_policy(policy, tmp_path / "pi.zip", env_id="CartPole-v1")
    cfg = CertifyConfig(
        policy=str(pfile), env="CartPole-v1", sigma=0.2, budgets=("0.01", "0:0.2:0.1"), per_step=True, episodes=200,
        seed=4, progress=False, out=str(tmp_path / "c.json"), env_kwargs={"max_episode_steps": 100},
    )  # fmt: skip
    cert = certify(cfg)
    assert load_certificate(tmp_path / "c.json") == cert  # written as returned
    np.testing.assert_allclose(cert.budgets, np.array([0.0, 0.01, 0.1, 0.2]) * np.sqrt(100))  # B = ε·sqrt(H)
    assert cert.policy == str(pfile) and cert.seed == 4
    back = config_from_dict(CertifyConfig, cert.config)
    assert back == CertifyConfig(**{**cfg.__dict__, "floor": 0.0, "horizon": 100, "num_envs": 200, "device": "cpu"})
    # the saved config reruns the certificate, directly or through the CLI table a sweep executor uses
    for again in (certify(back), run_command("certify", cert.config)):
        assert isinstance(again, Certificate)
        assert {**again.to_dict(), "provenance": {}} == {**cert.to_dict(), "provenance": {}}
    # the keyword form is the same call
    kw = certify_policy(pfile, "CartPole-v1", sigma=0.2, epsilon=[0.0, 0.01, 0.1, 0.2], episodes=200, seed=4,
                        env_kwargs={"max_episode_steps": 100})  # fmt: skip
    np.testing.assert_array_equal(kw.bounds, cert.bounds)
    with pytest.raises(ValueError, match="not both"):
        certify_policy(policy, "CartPole-v1", sigma=0.2, budgets=[0.0], epsilon=[0.0], episodes=200)


def test_certify_package_is_callable_and_the_cli_table_names_the_entry_point(policy: ActorCriticPolicy) -> None:
    import robustrl.certify

    cfg = CertifyConfig(policy="", env="CartPole-v1", sigma=0.2, budgets=("0",), episodes=100, progress=False)
    cert = robustrl.certify(cfg, policy=policy)  # type: ignore[operator]
    assert isinstance(cert, Certificate) and cert.policy == "ActorCriticPolicy"
    assert COMMANDS["certify"].load() == (CertifyConfig, certify)
    with pytest.raises(TypeError, match="CertifyConfig"):
        run_command("certify", object())
    with pytest.raises(ValueError, match="unknown command"):
        run_command("certfy", cfg)

"""TorchScript modules as policies: code refused without trust_code, export/round trip, user modules, contracts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from robustrl.policies import (
    ActorCriticPolicy,
    CriticPolicy,
    DeterministicActorPolicy,
    DistributionPolicy,
    PolicyFileError,
    QNetworkPolicy,
    QPolicy,
    SquashedGaussianActorPolicy,
    TorchScriptPolicy,
    ValuePolicy,
    export_torchscript,
    load_policy,
    load_torchscript,
    read_policy_info,
    save_torchscript,
)
from robustrl.policies.spaces import spaces_equal

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")

OBS = gym.spaces.Box(-5.0, 5.0, (4,))
BOX = gym.spaces.Box(np.float32(-1.0), np.float32(3.0), (2,))

CASES = {
    "ac_discrete": (lambda: ActorCriticPolicy(OBS, gym.spaces.Discrete(3)), (True, False, True, False)),
    "ac_box": (lambda: ActorCriticPolicy(OBS, BOX), (False, False, True, False)),
    "ac_discrete_obs": (
        lambda: ActorCriticPolicy(gym.spaces.Discrete(6), gym.spaces.Discrete(2)),
        (True, False, True, False),
    ),
    "q_hl_gauss": (lambda: QNetworkPolicy(OBS, gym.spaces.Discrete(3), num_bins=7), (False, True, False, False)),
    "sac": (lambda: SquashedGaussianActorPolicy(OBS, BOX, hidden=[16]), (False, False, False, True)),
    "td3": (
        lambda: DeterministicActorPolicy(OBS, BOX, hidden=[16], critic_scaled_actions=True),
        (False, False, False, True),
    ),
}


def randomize(policy: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in policy.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return policy


def obs_for(space: gym.Space, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    if isinstance(space, gym.spaces.Discrete):
        return torch.randint(0, int(space.n), (n,), generator=g)
    return torch.randn(n, *space.shape, generator=g) * 3


@pytest.mark.parametrize("name", sorted(CASES))
def test_export_round_trip(name: str, tmp_path: Path) -> None:
    factory, capabilities = CASES[name]
    policy = randomize(factory())
    path = export_torchscript(policy, tmp_path / "m.pt", env_id="CartPole-v1")
    loaded = load_policy(path, trust_code=True)
    assert isinstance(loaded, TorchScriptPolicy)
    assert spaces_equal(loaded.observation_space, policy.observation_space)
    assert spaces_equal(loaded.action_space, policy.action_space)
    has = tuple(isinstance(loaded, p) for p in (DistributionPolicy, QPolicy, ValuePolicy, CriticPolicy))
    assert has == capabilities
    for n in (1, 5, 64):  # the trace does not freeze the batch size
        obs = obs_for(policy.observation_space, n)
        with torch.no_grad():
            assert torch.equal(loaded.act(obs), policy.act(obs))
            if has[0]:
                g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
                assert torch.equal(loaded.act(obs, deterministic=False, generator=g1),
                                   policy.act(obs, deterministic=False, generator=g2))  # fmt: skip
            if has[1]:
                assert torch.equal(loaded.q_values(obs), policy.q_values(obs))
            if has[2]:
                assert torch.equal(loaded.value(obs), policy.value(obs))
            if has[3]:
                action = policy.act(obs)
                assert torch.equal(loaded.critic(obs, action), policy.critic(obs, action))
    info = read_policy_info(path)
    assert info.format == "torchscript" and info.env_id == "CartPole-v1"


class _Logits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.linear(obs)

    @torch.jit.export
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.sum(-1, keepdim=True)


def test_user_module_needs_env_id(tmp_path: Path) -> None:
    module = torch.jit.script(_Logits())
    path = tmp_path / "user.pt"
    torch.jit.save(module, str(path))
    with pytest.raises(ValueError, match="pass env_id=") as err:
        load_policy(path, trust_code=True)
    assert str(path) in str(err.value)
    policy = load_policy(path, trust_code=True, env_id="CartPole-v1")
    assert spaces_equal(policy.observation_space, gym.make("CartPole-v1").observation_space)
    obs = obs_for(OBS, 10)
    with torch.no_grad():
        assert torch.equal(policy.act(obs), module(obs).argmax(-1))
        assert torch.equal(policy.value(obs), obs.sum(-1))  # [N, 1] flattened to [N]
    assert isinstance(policy, ValuePolicy) and isinstance(policy, DistributionPolicy)
    assert not isinstance(policy, QPolicy)
    q_policy = load_policy(path, trust_code=True, env_id="CartPole-v1", output="q_values")
    assert isinstance(q_policy, QPolicy) and not isinstance(q_policy, DistributionPolicy)


def test_contract_violations(tmp_path: Path) -> None:
    path = tmp_path / "user.pt"
    torch.jit.save(torch.jit.script(_Logits()), str(path))
    with pytest.raises(ValueError, match=r"returned \(2, 2\).*needs \[2, 3\]"):
        load_policy(path, trust_code=True, observation_space=OBS, action_space=gym.spaces.Discrete(3))
    bad = tmp_path / "bad.pt"
    save_torchscript(torch.jit.script(_Logits()), bad, observation_space=OBS, action_space=gym.spaces.Discrete(3))
    with pytest.raises(ValueError, match=r"returned \(2, 2\)") as err:
        load_policy(bad, trust_code=True)
    assert str(bad) in str(err.value)
    with pytest.raises(ValueError, match="does not match env"):
        load_policy(bad, trust_code=True, env_id="Pendulum-v1")
    with pytest.raises(ValueError, match="needs a Box action space"):
        load_policy(bad, trust_code=True, output="actions")


def test_forward_failure_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "user.pt"
    torch.jit.save(torch.jit.script(_Logits()), str(path))
    with pytest.raises(ValueError, match=r"forward\(obs\) fails .*mat1 and mat2 shapes cannot be multiplied \(2x6"):
        load_policy(path, trust_code=True, env_id="Acrobot-v1")  # 6 observations, the module takes 4


def test_save_torchscript_is_atomic_and_checks_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ScriptModule"):
        save_torchscript(_Logits(), tmp_path / "m.pt", observation_space=OBS, action_space=BOX)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot save space"):
        save_torchscript(
            torch.jit.script(_Logits()),
            tmp_path / "m.pt",
            observation_space=OBS,
            action_space=gym.spaces.MultiBinary(2),
        )
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------- code needs trust


def _record_jit_loads(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Make every TorchScript load (``torch.jit.load`` and the C entry it uses) fail and be recorded."""
    calls: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        raise AssertionError("a TorchScript module was loaded")

    monkeypatch.setattr(torch.jit, "load", refuse)
    monkeypatch.setattr(torch._C, "import_ir_module", refuse)
    return calls


def test_torchscript_is_code_and_refused_without_trust_code(
    tmp_path: Path, hostile_torchscript: Callable[[Path, Path], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sentinels = tmp_path / "sentinels"
    sentinels.mkdir()
    path = hostile_torchscript(tmp_path / "hostile.pt", sentinels)
    calls = _record_jit_loads(monkeypatch)
    for load in (load_policy, load_torchscript):
        with pytest.raises(PolicyFileError, match=r"is a TorchScript module, which is code.*trust_code=True") as err:
            load(path)
        assert str(path) in str(err.value)
    info = read_policy_info(path)  # metadata only: the JSON extra file, never the module
    assert info.format == "torchscript" and spaces_equal(info.action_space, gym.spaces.Discrete(2))
    assert calls == []
    assert list(sentinels.iterdir()) == []


def test_trust_code_runs_the_module(tmp_path: Path, hostile_torchscript: Callable[[Path, Path], Path]) -> None:
    sentinels = tmp_path / "sentinels"
    sentinels.mkdir()
    path = hostile_torchscript(tmp_path / "hostile.pt", sentinels)
    policy = load_policy(path, trust_code=True)
    # the threat is real: torch.jit.load ran __setstate__ and the load check ran forward, both wrote a file
    assert sorted(p.name for p in sentinels.iterdir()) == ["on_forward", "on_load"]
    assert isinstance(policy, TorchScriptPolicy) and policy.act(torch.zeros(3, 4)).shape == (3,)


def test_torchscript_members_are_capped_before_torch_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = export_torchscript(randomize(CASES["q_hl_gauss"][0]()), tmp_path / "m.pt")
    calls = _record_jit_loads(monkeypatch)
    monkeypatch.setattr("robustrl.policies.reading.MAX_WEIGHTS_BYTES", 100)
    with pytest.raises(PolicyFileError, match=r"more than the limit of 100 bytes .*MAX_WEIGHTS_BYTES"):
        load_policy(path, trust_code=True)
    assert calls == []

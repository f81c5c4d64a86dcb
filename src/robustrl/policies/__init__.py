"""Policies: the protocol, our networks, and loading/saving (our format, SB3 zips, TorchScript).

Files from strangers are safe to load: nothing is unpickled (SB3's ``vec_normalize.pkl`` is parsed as data
and never run), no code runs unless ``trust_code=True`` (TorchScript), every zip member and file is
size-capped, and every bad file raises :class:`PolicyFileError`.

Example:
    >>> import tempfile, pathlib, torch, gymnasium as gym
    >>> from robustrl.policies import ActorCriticPolicy, save_policy, load_policy
    >>> pi = ActorCriticPolicy(gym.spaces.Box(-1.0, 1.0, (4,)), gym.spaces.Discrete(2))
    >>> path = save_policy(pi, pathlib.Path(tempfile.mkdtemp()) / "pi.zip", env_id="CartPole-v1")
    >>> obs = torch.zeros(3, 4)
    >>> bool((load_policy(path).act(obs) == pi.act(obs)).all())
    True
"""

from robustrl.policies.actors import DeterministicActorPolicy, SquashedGaussianActorPolicy
from robustrl.policies.base import (
    CriticPolicy,
    DistributionPolicy,
    Policy,
    QPolicy,
    ValuePolicy,
    policy_device,
)
from robustrl.policies.io import POLICY_CLASSES, PolicyInfo, load_policy, read_policy_info, save_policy
from robustrl.policies.networks import ActorCriticPolicy, ObsNormalizer, QNetworkPolicy
from robustrl.policies.reading import PolicyFileError
from robustrl.policies.recurrent import RecurrentActorCriticPolicy
from robustrl.policies.sb3 import SB3Info, load_sb3
from robustrl.policies.torchscript import (
    TorchScriptPolicy,
    export_torchscript,
    load_torchscript,
    save_torchscript,
)
from robustrl.policies.vec_normalize import VecNormalizeStats, read_vec_normalize

__all__ = [
    "POLICY_CLASSES",
    "ActorCriticPolicy",
    "CriticPolicy",
    "DeterministicActorPolicy",
    "DistributionPolicy",
    "ObsNormalizer",
    "Policy",
    "PolicyFileError",
    "PolicyInfo",
    "QNetworkPolicy",
    "QPolicy",
    "RecurrentActorCriticPolicy",
    "SB3Info",
    "SquashedGaussianActorPolicy",
    "TorchScriptPolicy",
    "ValuePolicy",
    "VecNormalizeStats",
    "export_torchscript",
    "load_policy",
    "load_sb3",
    "load_torchscript",
    "policy_device",
    "read_policy_info",
    "read_vec_normalize",
    "save_policy",
    "save_torchscript",
]

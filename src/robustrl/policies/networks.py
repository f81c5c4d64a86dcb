"""Networks and the policy modules our agents train (and that SB3 checkpoints load into).

Each policy module meets the :class:`~robustrl.policies.base.Policy` protocol, carries its observation
pipeline inside (:class:`~robustrl.policies.features.ObservationFeatures`: normaliser, image layout and
scale, flattening or a Nature CNN; so attacks see the whole pipeline from raw observations), and describes
itself with ``spec()`` so that :func:`robustrl.policies.save_policy` can rebuild it from JSON plus weights.
Layer names follow Stable-Baselines3's policies so an SB3 ``policy.pth`` maps on by renaming keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from robustrl.policies.actors import DeterministicActorPolicy, SquashedGaussianActorPolicy
from robustrl.policies.features import (
    Activation,
    FeaturesExtractor,
    NatureCNN,
    ObservationFeatures,
    ObsNormalizer,
    StatsDType,
    check_obs,
    mlp,
    orthogonal_init,
    sample_normal,
)


def sample_categorical(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Sample ``int64 [N]`` actions from ``logits [N, A]`` with an explicit generator."""
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class _Extractor(nn.Module):
    """Holds the actor and critic trunks under SB3's names."""

    def __init__(self, policy_net: nn.Sequential, value_net: nn.Sequential) -> None:
        super().__init__()
        self.policy_net = policy_net
        self.value_net = value_net


class ActorCriticPolicy(nn.Module):
    """Separate actor and critic MLPs (PPO, A2C), on flat or Nature-CNN features; categorical or Gaussian actions.

    Layer names match SB3's ``ActorCriticPolicy`` with separate networks:
    ``mlp_extractor.policy_net``, ``mlp_extractor.value_net``, ``action_net``, ``value_net``, ``log_std``;
    the Nature CNN is ``features.extractor`` (SB3's ``pi_features_extractor``) and, when the critic has
    its own, ``vf_extractor`` (SB3's ``vf_features_extractor``).

    Args:
        observation_space: one observation's space.
        action_space: ``Discrete`` or ``Box``.
        pi_hidden: actor hidden widths.
        vf_hidden: critic hidden widths.
        activation: hidden activation.
        normalize_obs: keep an observation normaliser inside the policy (:class:`ObsNormalizer`).
        obs_norm_clip: the normaliser's clip.
        obs_norm_eps: the normaliser's variance floor.
        obs_norm_dtype: dtype of the normaliser's statistics and arithmetic (``"float64"`` reproduces SB3's
            ``VecNormalize`` bit for bit).
        log_std_init: initial log standard deviation (Box actions).
        features_extractor: ``"flatten"`` or ``"nature_cnn"`` (:class:`NatureCNN`, image observations).
        features_dim: output features of the Nature CNN.
        normalize_images: divide uint8 image observations by 255 (SB3's ``normalize_images``).
        channels_last: observations are ``[H, W, C]`` images, transposed to ``[C, H, W]`` inside the policy
            (SB3's ``VecTransposeImage``).
        share_features_extractor: the critic uses the actor's Nature CNN (else it has its own).
    """

    kind = "actor_critic"
    action_low: torch.Tensor
    action_high: torch.Tensor

    def __init__(
        self,
        observation_space: gym.Space[Any],
        action_space: gym.Space[Any],
        pi_hidden: Sequence[int] = (64, 64),
        vf_hidden: Sequence[int] = (64, 64),
        activation: Activation = "tanh",
        normalize_obs: bool = False,
        obs_norm_clip: float = 10.0,
        obs_norm_eps: float = 1e-8,
        obs_norm_dtype: StatsDType = "float32",
        log_std_init: float = 0.0,
        features_extractor: FeaturesExtractor = "flatten",
        features_dim: int = 512,
        normalize_images: bool = False,
        channels_last: bool = False,
        share_features_extractor: bool = True,
    ) -> None:
        super().__init__()
        self.observation_space = observation_space
        self.action_space = action_space
        self._spec = {
            "pi_hidden": list(pi_hidden),
            "vf_hidden": list(vf_hidden),
            "activation": activation,
            "normalize_obs": normalize_obs,
            "obs_norm_clip": obs_norm_clip,
            "obs_norm_eps": obs_norm_eps,
            "obs_norm_dtype": obs_norm_dtype,
            "log_std_init": log_std_init,
            "features_extractor": features_extractor,
            "features_dim": features_dim,
            "normalize_images": normalize_images,
            "channels_last": channels_last,
            "share_features_extractor": share_features_extractor,
        }
        self.features = ObservationFeatures(
            observation_space, normalize_obs, obs_norm_clip, obs_norm_eps, obs_norm_dtype,
            features_extractor, features_dim, normalize_images, channels_last,
        )  # fmt: skip
        self.vf_extractor: NatureCNN | None = None
        if self.features.extractor is not None and not share_features_extractor:
            self.vf_extractor = self.features.make_extractor(features_dim)
        in_dim = self.features.out_dim
        self.mlp_extractor = _Extractor(mlp(in_dim, pi_hidden, activation), mlp(in_dim, vf_hidden, activation))
        pi_out = pi_hidden[-1] if pi_hidden else in_dim
        vf_out = vf_hidden[-1] if vf_hidden else in_dim
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        if self.discrete:
            self.action_net = nn.Linear(pi_out, int(action_space.n))  # type: ignore[attr-defined]
            self.log_std = None
        elif isinstance(action_space, gym.spaces.Box):
            act_dim = int(np.prod(action_space.shape))
            self.action_net = nn.Linear(pi_out, act_dim)
            self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))
            self.register_buffer("action_low", torch.as_tensor(action_space.low, dtype=torch.float32))
            self.register_buffer("action_high", torch.as_tensor(action_space.high, dtype=torch.float32))
        else:
            raise ValueError(f"unsupported action space {action_space!r}: only Discrete and Box")
        self.value_net = nn.Linear(vf_out, 1)
        for trunk in (self.features, self.vf_extractor, self.mlp_extractor):
            if trunk is not None:
                orthogonal_init(trunk)
        nn.init.orthogonal_(self.action_net.weight, 0.01)
        nn.init.zeros_(self.action_net.bias)
        nn.init.orthogonal_(self.value_net.weight, 1.0)
        nn.init.zeros_(self.value_net.bias)

    def spec(self) -> dict[str, Any]:
        """Constructor arguments (besides the spaces) as JSON-ready values."""
        return dict(self._spec)

    @property
    def obs_norm(self) -> ObsNormalizer | None:
        """The observation normaliser, when the policy has one."""
        return self.features.obs_norm

    def action_params(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, A]`` (Discrete) or action means ``[N, act_dim]`` (Box)."""
        return self.action_net(self.mlp_extractor.policy_net(self.features(obs)))

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        """Action logits ``[N, A]`` (Discrete action spaces only)."""
        if not self.discrete:
            raise ValueError("logits() needs a Discrete action space; use dist() for Box actions")
        return self.action_params(obs)

    def dist(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        """Categorical or diagonal Normal action distribution at ``obs``."""
        params = self.action_params(obs)
        if self.discrete:
            return torch.distributions.Categorical(logits=params)
        assert self.log_std is not None
        return torch.distributions.Independent(
            torch.distributions.Normal(params, self.log_std.exp().expand_as(params)), 1
        )

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """State values ``[N]``."""
        if self.vf_extractor is None:
            h = self.features(obs)
        else:
            h = self.vf_extractor(self.features.preprocess(obs))
        return self.value_net(self.mlp_extractor.value_net(h)).squeeze(-1)

    def act(
        self, obs: torch.Tensor, *, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Greedy (mode) or sampled actions; Box actions are clipped to the action space."""
        check_obs(obs, self.observation_space)
        return self.actions_from_params(self.action_params(obs), deterministic=deterministic, generator=generator)

    def actions_from_params(
        self, params: torch.Tensor, *, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Greedy or sampled actions from :meth:`action_params` output; Box actions clipped to the space."""
        if self.discrete:
            return params.argmax(-1) if deterministic else sample_categorical(params, generator)
        assert self.log_std is not None
        action = params if deterministic else sample_normal(params, self.log_std.exp(), generator)
        act_shape = tuple(self.action_space.shape or ())
        return torch.max(torch.min(action, self.action_high.flatten()), self.action_low.flatten()).reshape(
            -1, *act_shape
        )


class QNetworkPolicy(nn.Module):
    """A Q network over discrete actions (DQN) on flat or Nature-CNN features; regression or HL-Gauss head.

    With ``num_bins > 0`` the head outputs, per action, logits over a fixed support of ``num_bins``
    atoms on ``[v_min, v_max]`` and ``q_values`` is their expectation ("Stop Regressing", Farebrother
    et al. 2024). Layer names match SB3's ``QNetwork`` (``q_net``; its Nature CNN, SB3's
    ``q_net.features_extractor``, is ``features.extractor``).

    Args:
        observation_space: one observation's space.
        action_space: ``Discrete``.
        hidden: hidden widths.
        activation: hidden activation.
        normalize_obs: keep an observation normaliser inside the policy (:class:`ObsNormalizer`).
        obs_norm_clip: the normaliser's clip.
        obs_norm_eps: the normaliser's variance floor.
        obs_norm_dtype: dtype of the normaliser's statistics and arithmetic (``"float64"`` reproduces SB3's
            ``VecNormalize`` bit for bit).
        num_bins: atoms of the classification head (0: plain regression head).
        v_min: lowest atom.
        v_max: highest atom.
        features_extractor: ``"flatten"`` or ``"nature_cnn"`` (:class:`NatureCNN`, image observations).
        features_dim: output features of the Nature CNN.
        normalize_images: divide uint8 image observations by 255 (SB3's ``normalize_images``).
        channels_last: observations are ``[H, W, C]`` images, transposed to ``[C, H, W]`` inside the policy
            (SB3's ``VecTransposeImage``).
    """

    kind = "q_network"
    support: torch.Tensor

    def __init__(
        self,
        observation_space: gym.Space[Any],
        action_space: gym.Space[Any],
        hidden: Sequence[int] = (64, 64),
        activation: Activation = "relu",
        normalize_obs: bool = False,
        obs_norm_clip: float = 10.0,
        obs_norm_eps: float = 1e-8,
        obs_norm_dtype: StatsDType = "float32",
        num_bins: int = 0,
        v_min: float = 0.0,
        v_max: float = 100.0,
        features_extractor: FeaturesExtractor = "flatten",
        features_dim: int = 512,
        normalize_images: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ValueError(f"QNetworkPolicy needs a Discrete action space, got {action_space!r}")
        if num_bins < 0 or (num_bins > 0 and not v_max > v_min):
            raise ValueError(f"num_bins={num_bins}, v_min={v_min}, v_max={v_max}: need bins ≥ 0, v_max > v_min")
        self.observation_space = observation_space
        self.action_space = action_space
        self.num_actions = int(action_space.n)
        self.num_bins = int(num_bins)
        self._spec = {
            "hidden": list(hidden),
            "activation": activation,
            "normalize_obs": normalize_obs,
            "obs_norm_clip": obs_norm_clip,
            "obs_norm_eps": obs_norm_eps,
            "obs_norm_dtype": obs_norm_dtype,
            "num_bins": num_bins,
            "v_min": v_min,
            "v_max": v_max,
            "features_extractor": features_extractor,
            "features_dim": features_dim,
            "normalize_images": normalize_images,
            "channels_last": channels_last,
        }
        self.features = ObservationFeatures(
            observation_space, normalize_obs, obs_norm_clip, obs_norm_eps, obs_norm_dtype,
            features_extractor, features_dim, normalize_images, channels_last,
        )  # fmt: skip
        in_dim = self.features.out_dim
        out = hidden[-1] if hidden else in_dim
        self.q_net = nn.Sequential(
            *mlp(in_dim, hidden, activation), nn.Linear(out, self.num_actions * max(1, self.num_bins))
        )
        self.register_buffer("support", torch.linspace(v_min, v_max, max(2, self.num_bins)))

    def spec(self) -> dict[str, Any]:
        """Constructor arguments (besides the spaces) as JSON-ready values."""
        return dict(self._spec)

    @property
    def obs_norm(self) -> ObsNormalizer | None:
        """The observation normaliser, when the policy has one."""
        return self.features.obs_norm

    def head(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw head output: Q values ``[N, A]`` or atom logits ``[N, A, num_bins]``."""
        out = self.q_net(self.features(obs))
        return out.view(-1, self.num_actions, self.num_bins) if self.num_bins else out

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Q values ``[N, A]`` (expected value under the atom distribution for the classification head)."""
        out = self.head(obs)
        if self.num_bins:
            return (torch.softmax(out, -1) * self.support).sum(-1)
        return out

    def act(
        self, obs: torch.Tensor, *, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Greedy actions (a Q policy is deterministic; exploration belongs to the agent)."""
        check_obs(obs, self.observation_space)
        return self.q_values(obs).argmax(-1)


POLICY_CLASSES: dict[str, type[nn.Module]] = {
    cls.kind: cls for cls in (ActorCriticPolicy, QNetworkPolicy, SquashedGaussianActorPolicy, DeterministicActorPolicy)
}
"""Policy module classes by their ``kind``, used to rebuild a saved policy."""

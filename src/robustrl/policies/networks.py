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

from robustrl.policies.features import (
    Activation,
    FeaturesExtractor,
    NatureCNN,
    ObservationFeatures,
    ObsNormalizer,
    StatsDType,
    flat_dim,
    mlp,
    orthogonal_init,
)

MAX_CRITICS = 64
"""Most critics an actor may have (``n_critics``)."""


def _check_obs(obs: torch.Tensor, space: gym.Space[Any]) -> None:
    shape = tuple(space.shape or ())
    if tuple(obs.shape[1:]) != shape:
        raise ValueError(f"obs has shape {tuple(obs.shape)}; expected [N, {', '.join(map(str, shape))}]")


def _sample_normal(mean: torch.Tensor, std: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + std * noise


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
        _check_obs(obs, self.observation_space)
        params = self.action_params(obs)
        if self.discrete:
            return params.argmax(-1) if deterministic else sample_categorical(params, generator)
        assert self.log_std is not None
        action = params if deterministic else _sample_normal(params, self.log_std.exp(), generator)
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
        _check_obs(obs, self.observation_space)
        return self.q_values(obs).argmax(-1)


def unscale_action(t: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Map ``t ∈ [-1, 1]`` to ``[low, high]`` as ``low + 0.5 (t + 1)(high − low)`` (SB3's exact formula)."""
    return low + 0.5 * (t + 1.0) * (high - low)


def scale_action(action: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Map ``action ∈ [low, high]`` to ``[-1, 1]`` as ``2 (action − low) / (high − low) − 1`` (SB3's formula)."""
    return 2.0 * ((action - low) / (high - low)) - 1.0


def make_critics(
    in_dim: int, act_dim: int, hidden: Sequence[int], activation: Activation, n_critics: int, num_bins: int = 0
) -> nn.ModuleList:
    """``n_critics`` MLPs ``[features, action] -> Q`` (each ``mlp(hidden) → Linear(·, 1)``, like SB3's ``qf0``...).

    With ``num_bins > 0`` each critic ends in ``num_bins`` logits instead (an HL-Gauss head: Q is the softmax
    expectation over a fixed support, see :func:`min_critic_value`).
    """
    out = hidden[-1] if hidden else in_dim + act_dim
    return nn.ModuleList(
        [
            nn.Sequential(*mlp(in_dim + act_dim, hidden, activation), nn.Linear(out, max(1, num_bins)))
            for _ in range(n_critics)
        ]
    )


def min_critic_value(
    critics: nn.ModuleList, features: torch.Tensor, action: torch.Tensor, support: torch.Tensor | None = None
) -> torch.Tensor:
    """``min_i Q_i([features, action])`` as ``[N]`` for ``features [N, F]`` and ``action [N, act_dim]``.

    ``support [num_bins]``: the critics output logits over these bin centres and ``Q_i`` is their softmax
    expectation (HL-Gauss critics); None: each critic outputs ``Q_i`` itself.
    """
    x = torch.cat([features, action.flatten(1).to(features.dtype)], dim=-1)
    out = torch.stack([q(x) for q in critics])
    if support is not None:
        return (torch.softmax(out, -1) @ support).min(0).values
    return out.min(0).values.squeeze(-1)


def _init_critics(
    policy: SquashedGaussianActorPolicy | DeterministicActorPolicy,
    in_dim: int,
    act_dim: int,
    activation: Activation,
    head: tuple[int, float, float],
) -> None:
    """Build ``policy.critics`` (None without critics) and ``policy.critic_support`` from its spec.

    ``head`` is ``(critic_bins, critic_v_min, critic_v_max)``; ``critic_bins = 0`` is a scalar head.
    """
    bins, v_min, v_max = head
    spec = policy.spec()
    if bins != 0 and (bins < 2 or not v_max > v_min):
        raise ValueError(f"HL-Gauss critics need critic_bins ≥ 2 and critic_v_max > critic_v_min; got {head}")
    policy.critics = (
        make_critics(in_dim, act_dim, spec["critic_hidden"], activation, spec["n_critics"], bins)
        if spec["with_critic"]
        else None
    )
    if bins:
        policy.register_buffer("critic_support", torch.linspace(v_min, v_max, bins))
    else:
        policy.critic_support = None


def _actor_spec(
    hidden: Sequence[int],
    activation: Activation,
    obs_norm: tuple[bool, float, float, StatsDType],
    with_critic: bool,
    critic_hidden: Sequence[int] | None,
    n_critics: int,
    critic_scaled_actions: bool,
    critic_head: tuple[int, float, float] = (0, 0.0, 0.0),
) -> dict[str, Any]:
    """The ``spec()`` of a continuous actor with critics (``critic_hidden`` resolved); checks ``n_critics``.

    ``obs_norm`` is ``(normalize_obs, obs_norm_clip, obs_norm_eps, obs_norm_dtype)``; ``critic_head`` is
    ``(critic_bins, critic_v_min, critic_v_max)``, written only for HL-Gauss critics (``critic_bins > 0``), so
    the spec of a scalar-critic policy is what it always was.
    """
    if not 1 <= n_critics <= MAX_CRITICS:
        raise ValueError(f"n_critics must be in [1, {MAX_CRITICS}], got {n_critics}")
    return {
        "hidden": list(hidden),
        "activation": activation,
        **dict(zip(("normalize_obs", "obs_norm_clip", "obs_norm_eps", "obs_norm_dtype"), obs_norm, strict=True)),
        "with_critic": with_critic,
        "critic_hidden": list(hidden if critic_hidden is None else critic_hidden),
        "n_critics": n_critics,
        "critic_scaled_actions": critic_scaled_actions,
        **(dict(zip(_HEAD_KEYS, critic_head, strict=True)) if critic_head[0] else {}),
    }


_HEAD_KEYS = ("critic_bins", "critic_v_min", "critic_v_max")


def _critic(
    policy: SquashedGaussianActorPolicy | DeterministicActorPolicy, obs: torch.Tensor, action: torch.Tensor
) -> torch.Tensor:
    """``min_i Q_i(obs, action)`` ``[N]`` of an actor's critics, ``action`` in the env's units."""
    if policy.critics is None:
        raise ValueError("this policy was built without critics (with_critic=False)")
    if policy.critic_scaled_actions:
        action = scale_action(action.flatten(1), policy.action_low, policy.action_high)
    return min_critic_value(policy.critics, policy.features(obs), action, policy.critic_support)


class SquashedGaussianActorPolicy(nn.Module):
    """A tanh-squashed Gaussian actor (SAC) with optional Q critics for critic attacks.

    Layer names match SB3's SAC ``actor`` (``latent_pi``, ``mu``, ``log_std``); the critics are
    ``critics.i`` (SB3's ``critic.qf{i}``).

    Args:
        observation_space: one observation's space (Box).
        action_space: ``Box``.
        hidden: hidden widths of the actor (and of the critics unless ``critic_hidden`` is given).
        activation: hidden activation.
        normalize_obs: keep an observation normaliser inside the policy (:class:`ObsNormalizer`).
        obs_norm_clip: the normaliser's clip.
        obs_norm_eps: the normaliser's variance floor.
        obs_norm_dtype: dtype of the normaliser's statistics and arithmetic (``"float64"`` reproduces SB3's
            ``VecNormalize`` bit for bit).
        with_critic: build the critics (``critic(obs, action)``).
        critic_hidden: hidden widths of the critics (None: same as ``hidden``).
        n_critics: number of critics; ``critic`` returns their minimum.
        critic_scaled_actions: the critics take actions rescaled to ``[-1, 1]`` (SB3's convention);
            ``critic(obs, action)`` always takes actions in the env's units and rescales them itself.
        critic_bins: 0 (scalar critics) or the bins of HL-Gauss critics (each outputs ``critic_bins`` logits).
        critic_v_min: lowest bin centre of the HL-Gauss critics.
        critic_v_max: highest bin centre of the HL-Gauss critics.

    """

    kind = "squashed_gaussian"
    LOG_STD_MIN = -20.0
    LOG_STD_MAX = 2.0
    action_scale: torch.Tensor
    action_bias: torch.Tensor
    action_low: torch.Tensor
    action_high: torch.Tensor
    critics: nn.ModuleList | None
    critic_support: torch.Tensor | None

    def __init__(
        self,
        observation_space: gym.Space[Any],
        action_space: gym.Space[Any],
        hidden: Sequence[int] = (256, 256),
        activation: Activation = "relu",
        normalize_obs: bool = False,
        obs_norm_clip: float = 10.0,
        obs_norm_eps: float = 1e-8,
        obs_norm_dtype: StatsDType = "float32",
        with_critic: bool = True,
        critic_hidden: Sequence[int] | None = None,
        n_critics: int = 2,
        critic_scaled_actions: bool = False,
        critic_bins: int = 0,
        critic_v_min: float = 0.0,
        critic_v_max: float = 0.0,
    ) -> None:
        super().__init__()
        if not isinstance(action_space, gym.spaces.Box):
            raise ValueError(f"SquashedGaussianActorPolicy needs a Box action space, got {action_space!r}")
        self.observation_space = observation_space
        self.action_space = action_space
        self._spec = _actor_spec(
            hidden,
            activation,
            (normalize_obs, obs_norm_clip, obs_norm_eps, obs_norm_dtype),
            with_critic,
            critic_hidden,
            n_critics,
            critic_scaled_actions,
            (critic_bins, critic_v_min, critic_v_max),
        )
        self.critic_scaled_actions = critic_scaled_actions
        in_dim = flat_dim(observation_space)
        act_dim = int(np.prod(action_space.shape))
        out = hidden[-1] if hidden else in_dim
        self.features = ObservationFeatures(
            observation_space, normalize_obs, obs_norm_clip, obs_norm_eps, obs_norm_dtype
        )
        self.latent_pi = mlp(in_dim, hidden, activation)
        self.mu = nn.Linear(out, act_dim)
        self.log_std = nn.Linear(out, act_dim)
        low = torch.as_tensor(action_space.low, dtype=torch.float32).flatten()
        high = torch.as_tensor(action_space.high, dtype=torch.float32).flatten()
        self.register_buffer("action_scale", (high - low) / 2)
        self.register_buffer("action_bias", (high + low) / 2)
        self.register_buffer("action_low", low)
        self.register_buffer("action_high", high)
        _init_critics(self, in_dim, act_dim, activation, (critic_bins, critic_v_min, critic_v_max))

    def spec(self) -> dict[str, Any]:
        """Constructor arguments (besides the spaces) as JSON-ready values."""
        return dict(self._spec)

    @property
    def obs_norm(self) -> ObsNormalizer | None:
        """The observation normaliser, when the policy has one."""
        return self.features.obs_norm

    def mean_log_std(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-squash Gaussian mean and clamped log std, each ``[N, act_dim]``."""
        h = self.latent_pi(self.features(obs))
        return self.mu(h), self.log_std(h).clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)

    def dist(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        """The pre-squash diagonal Normal (the squashing is a fixed bijection)."""
        mean, log_std = self.mean_log_std(obs)
        return torch.distributions.Independent(torch.distributions.Normal(mean, log_std.exp()), 1)

    def squash(self, u: torch.Tensor) -> torch.Tensor:
        """Map pre-squash samples ``u`` into the action box (``unscale_action(tanh(u))``, as SB3)."""
        return unscale_action(torch.tanh(u), self.action_low, self.action_high)

    def act(
        self, obs: torch.Tensor, *, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Squashed mean (deterministic) or squashed sample, shaped like the action space."""
        _check_obs(obs, self.observation_space)
        mean, log_std = self.mean_log_std(obs)
        u = mean if deterministic else _sample_normal(mean, log_std.exp(), generator)
        return self.squash(u).reshape(-1, *tuple(self.action_space.shape or ()))

    def critic(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``min_i Q_i(obs, action)`` as ``[N]``; ``action [N, *act_shape]`` in the env's units."""
        return _critic(self, obs, action)


class DeterministicActorPolicy(nn.Module):
    """A deterministic tanh actor (TD3, DDPG) with optional Q critics for critic attacks.

    The actor is SB3's TD3 ``mu``: ``mlp(hidden) → Linear → Tanh``, its output in ``[-1, 1]`` mapped
    onto the action box with :func:`unscale_action`. Exploration noise belongs to the agent, so
    ``act`` ignores ``deterministic``.

    Args:
        observation_space: one observation's space.
        action_space: ``Box`` with finite bounds.
        hidden: hidden widths of the actor (and of the critics unless ``critic_hidden`` is given).
        activation: hidden activation.
        normalize_obs: keep an observation normaliser inside the policy (:class:`ObsNormalizer`).
        obs_norm_clip: the normaliser's clip.
        obs_norm_eps: the normaliser's variance floor.
        obs_norm_dtype: dtype of the normaliser's statistics and arithmetic (``"float64"`` reproduces SB3's
            ``VecNormalize`` bit for bit).
        with_critic: build the critics (``critic(obs, action)``).
        critic_hidden: hidden widths of the critics (None: same as ``hidden``).
        n_critics: number of critics; ``critic`` returns their minimum.
        critic_scaled_actions: the critics take actions rescaled to ``[-1, 1]`` (SB3's convention);
            ``critic(obs, action)`` always takes actions in the env's units.
        critic_bins: 0 (scalar critics) or the bins of HL-Gauss critics (each outputs ``critic_bins`` logits).
        critic_v_min: lowest bin centre of the HL-Gauss critics.
        critic_v_max: highest bin centre of the HL-Gauss critics.
    """

    kind = "deterministic_actor"
    action_low: torch.Tensor
    action_high: torch.Tensor
    critics: nn.ModuleList | None
    critic_support: torch.Tensor | None

    def __init__(
        self,
        observation_space: gym.Space[Any],
        action_space: gym.Space[Any],
        hidden: Sequence[int] = (256, 256),
        activation: Activation = "relu",
        normalize_obs: bool = False,
        obs_norm_clip: float = 10.0,
        obs_norm_eps: float = 1e-8,
        obs_norm_dtype: StatsDType = "float32",
        with_critic: bool = True,
        critic_hidden: Sequence[int] | None = None,
        n_critics: int = 2,
        critic_scaled_actions: bool = False,
        critic_bins: int = 0,
        critic_v_min: float = 0.0,
        critic_v_max: float = 0.0,
    ) -> None:
        super().__init__()
        if not isinstance(action_space, gym.spaces.Box) or not action_space.is_bounded("both"):
            raise ValueError(f"DeterministicActorPolicy needs a bounded Box action space, got {action_space!r}")
        self.observation_space = observation_space
        self.action_space = action_space
        self._spec = _actor_spec(
            hidden,
            activation,
            (normalize_obs, obs_norm_clip, obs_norm_eps, obs_norm_dtype),
            with_critic,
            critic_hidden,
            n_critics,
            critic_scaled_actions,
            (critic_bins, critic_v_min, critic_v_max),
        )
        self.critic_scaled_actions = critic_scaled_actions
        in_dim = flat_dim(observation_space)
        act_dim = int(np.prod(action_space.shape))
        out = hidden[-1] if hidden else in_dim
        self.features = ObservationFeatures(
            observation_space, normalize_obs, obs_norm_clip, obs_norm_eps, obs_norm_dtype
        )
        self.mu = nn.Sequential(*mlp(in_dim, hidden, activation), nn.Linear(out, act_dim), nn.Tanh())
        self.register_buffer("action_low", torch.as_tensor(action_space.low, dtype=torch.float32).flatten())
        self.register_buffer("action_high", torch.as_tensor(action_space.high, dtype=torch.float32).flatten())
        _init_critics(self, in_dim, act_dim, activation, (critic_bins, critic_v_min, critic_v_max))

    def spec(self) -> dict[str, Any]:
        """Constructor arguments (besides the spaces) as JSON-ready values."""
        return dict(self._spec)

    @property
    def obs_norm(self) -> ObsNormalizer | None:
        """The observation normaliser, when the policy has one."""
        return self.features.obs_norm

    def act(
        self, obs: torch.Tensor, *, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The actor's action ``[N, *act_shape]`` in the env's units (``deterministic`` is ignored)."""
        _check_obs(obs, self.observation_space)
        t = self.mu(self.features(obs))
        return unscale_action(t, self.action_low, self.action_high).reshape(-1, *tuple(self.action_space.shape or ()))

    def critic(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``min_i Q_i(obs, action)`` as ``[N]``; ``action [N, *act_shape]`` in the env's units."""
        return _critic(self, obs, action)


POLICY_CLASSES: dict[str, type[nn.Module]] = {
    cls.kind: cls for cls in (ActorCriticPolicy, QNetworkPolicy, SquashedGaussianActorPolicy, DeterministicActorPolicy)
}
"""Policy module classes by their ``kind``, used to rebuild a saved policy."""

"""The continuous-action actor policies and their optional Q critics.

SAC's squashed Gaussian and TD3's deterministic tanh actor, with SB3's layer names; scalar or HL-Gauss
critic heads.
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
    ObservationFeatures,
    ObsNormalizer,
    StatsDType,
    check_obs,
    flat_dim,
    mlp,
    sample_normal,
)

MAX_CRITICS = 64
"""Most critics an actor may have (``n_critics``)."""


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
        check_obs(obs, self.observation_space)
        mean, log_std = self.mean_log_std(obs)
        u = mean if deterministic else sample_normal(mean, log_std.exp(), generator)
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
        check_obs(obs, self.observation_space)
        t = self.mu(self.features(obs))
        return unscale_action(t, self.action_low, self.action_high).reshape(-1, *tuple(self.action_space.shape or ()))

    def critic(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``min_i Q_i(obs, action)`` as ``[N]``; ``action [N, *act_shape]`` in the env's units."""
        return _critic(self, obs, action)

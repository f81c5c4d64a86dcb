"""An actor-critic whose actor and critic each read the observation through an LSTM (recurrent PPO, ATLA-LSTM).

The hidden state of the copies being stepped lives in the policy (:attr:`RecurrentActorCriticPolicy.recurrent_state`,
``[4, N, lstm_size]``: actor h, actor c, critic h, critic c). Only :meth:`~RecurrentActorCriticPolicy.act` and
:meth:`~RecurrentActorCriticPolicy.step` advance it; :meth:`dist`, :meth:`action_params` and :meth:`value` read it
without changing it, so an attack may query the policy as often as it likes within a step. The rollout functions
call :meth:`~RecurrentActorCriticPolicy.start_episodes` with each step's episode starts before anything sees the
observation, which zeroes the state of the copies that begin an episode. Training recomputes whole sequences
from a stored initial state with :meth:`~RecurrentActorCriticPolicy.sequence`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import torch
from torch import nn

from robustrl.policies.features import Activation, FeaturesExtractor, StatsDType, check_obs, mlp, orthogonal_init
from robustrl.policies.networks import ActorCriticPolicy, _Extractor


class RecurrentActorCriticPolicy(ActorCriticPolicy):
    """:class:`ActorCriticPolicy` with an ``nn.LSTMCell`` in front of the actor's and of the critic's MLP.

    Args:
        observation_space: one observation's space (flat observations).
        action_space: ``Discrete`` or ``Box``.
        lstm_size: width of each LSTM.
        pi_hidden: hidden widths of the actor MLP after its LSTM.
        vf_hidden: hidden widths of the critic MLP after its LSTM.
        activation: hidden activation of the MLPs.
        normalize_obs, obs_norm_clip, obs_norm_eps, obs_norm_dtype, log_std_init: as in :class:`ActorCriticPolicy`.
        features_extractor, features_dim, normalize_images, channels_last, share_features_extractor: recorded for
            the file format; only ``"flatten"`` features are supported.
    """

    kind = "recurrent_actor_critic"

    def __init__(
        self,
        observation_space: gym.Space[Any],
        action_space: gym.Space[Any],
        lstm_size: int = 64,
        pi_hidden: Sequence[int] = (64,),
        vf_hidden: Sequence[int] = (64,),
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
        if features_extractor != "flatten":
            raise ValueError("RecurrentActorCriticPolicy reads flat observations only (features_extractor='flatten')")
        if lstm_size < 1:
            raise ValueError(f"lstm_size must be ≥ 1, got {lstm_size}")
        super().__init__(
            observation_space, action_space, pi_hidden, vf_hidden, activation, normalize_obs, obs_norm_clip,
            obs_norm_eps, obs_norm_dtype, log_std_init, features_extractor, features_dim, normalize_images,
            channels_last, share_features_extractor,
        )  # fmt: skip
        self._spec["lstm_size"] = lstm_size
        in_dim = self.features.out_dim
        self.lstm_size = lstm_size
        self.actor_lstm = nn.LSTMCell(in_dim, lstm_size)
        self.critic_lstm = nn.LSTMCell(in_dim, lstm_size)
        self.mlp_extractor = _Extractor(mlp(lstm_size, pi_hidden, activation), mlp(lstm_size, vf_hidden, activation))
        orthogonal_init(self.mlp_extractor)
        for cell in (self.actor_lstm, self.critic_lstm):
            for name, p in cell.named_parameters():
                if name.startswith("weight"):
                    nn.init.orthogonal_(p, 1.0)
                else:
                    nn.init.zeros_(p)
        # the heads read the MLPs after the LSTMs (or the LSTMs themselves when the MLPs are empty): rebuilt on
        # those widths, initialised as the parent's
        pi_out = pi_hidden[-1] if pi_hidden else lstm_size
        vf_out = vf_hidden[-1] if vf_hidden else lstm_size
        self.action_net = nn.Linear(pi_out, self.action_net.out_features)
        self.value_net = nn.Linear(vf_out, 1)
        nn.init.orthogonal_(self.action_net.weight, 0.01)
        nn.init.zeros_(self.action_net.bias)
        nn.init.orthogonal_(self.value_net.weight, 1.0)
        nn.init.zeros_(self.value_net.bias)
        self._state: torch.Tensor | None = None

    # --- the carried state --------------------------------------------------------------------------------

    def initial_state(self, n: int) -> torch.Tensor:
        """Zero state ``[4, n, lstm_size]`` for ``n`` copies."""
        return torch.zeros(4, n, self.lstm_size, device=self.value_net.weight.device)

    @property
    def recurrent_state(self) -> torch.Tensor | None:
        """The state of the copies being stepped (None before the first step)."""
        return self._state

    @recurrent_state.setter
    def recurrent_state(self, state: torch.Tensor | None) -> None:
        self._state = state

    def start_episodes(self, episode_start: torch.Tensor) -> None:
        """Zero the state of the copies where ``episode_start [N]`` is True (all of them for a new batch size)."""
        n = int(episode_start.shape[0])
        if self._state is None or self._state.shape[1] != n:
            self._state = self.initial_state(n)
        else:
            self._state = self._state * (~episode_start.to(self._state.device)).view(1, n, 1).to(self._state.dtype)

    def _current(self, n: int) -> torch.Tensor:
        if self._state is None:
            self._state = self.initial_state(n)
        if self._state.shape[1] != n:
            raise ValueError(
                f"the recurrent policy carries state for {self._state.shape[1]} copies but got a batch of {n} "
                "observations: call start_episodes() with the new batch's episode starts first"
            )
        return self._state

    # --- one step -----------------------------------------------------------------------------------------

    def _actor_cell(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor_lstm(x, (state[0], state[1]))  # type: ignore[no-any-return]

    def _critic_cell(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.critic_lstm(x, (state[2], state[3]))  # type: ignore[no-any-return]

    def _params_from(self, h: torch.Tensor) -> torch.Tensor:
        return self.action_net(self.mlp_extractor.policy_net(h))  # type: ignore[no-any-return]

    def _value_from(self, h: torch.Tensor) -> torch.Tensor:
        return self.value_net(self.mlp_extractor.value_net(h)).squeeze(-1)  # type: ignore[no-any-return]

    def action_params(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits or action means at ``obs`` given the carried state (which is left unchanged)."""
        h, _ = self._actor_cell(self.features(obs), self._current(obs.shape[0]))
        return self._params_from(h)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """State values ``[N]`` at ``obs`` given the carried state (which is left unchanged)."""
        h, _ = self._critic_cell(self.features(obs), self._current(obs.shape[0]))
        return self._value_from(h)

    def action_params_with(self, obs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """Logits or action means at ``obs`` from an explicit previous ``state [4, N, lstm_size]``."""
        h, _ = self._actor_cell(self.features(obs), state)
        return self._params_from(h)

    def value_with(self, obs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """State values ``[N]`` at ``obs`` from an explicit previous ``state [4, N, lstm_size]``."""
        h, _ = self._critic_cell(self.features(obs), state)
        return self._value_from(h)

    def step(self, obs: torch.Tensor) -> torch.Tensor:
        """Action parameters at ``obs``; advances the carried state of both LSTMs past ``obs``."""
        state = self._current(obs.shape[0])
        x = self.features(obs)
        ha, ca = self._actor_cell(x, state)
        hc, cc = self._critic_cell(x, state)
        self._state = torch.stack([ha, ca, hc, cc]).detach()
        return self._params_from(ha)

    def act(
        self, obs: torch.Tensor, *, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Actions at ``obs`` (greedy or sampled, Box actions clipped); advances the carried state."""
        check_obs(obs, self.observation_space)
        return self.actions_from_params(self.step(obs), deterministic=deterministic, generator=generator)

    def peek_action(self, obs: torch.Tensor) -> torch.Tensor:
        """The greedy action at ``obs`` without advancing the carried state (attacks' objectives use it)."""
        return self.actions_from_params(self.action_params(obs), deterministic=True)

    # --- whole sequences (training) -----------------------------------------------------------------------

    def sequence(
        self, obs: torch.Tensor, episode_start: torch.Tensor, state: torch.Tensor,
        critic_obs: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run both LSTMs over ``obs [T, N, *obs_shape]`` from ``state [4, N, H]``, zeroing at episode starts.

        ``critic_obs`` (same shape) is what the critic reads instead of ``obs`` (an asymmetric critic that sees
        the clean observation while the actor sees the perturbed one).

        Returns:
            action parameters ``[T, N, A]``, values ``[T, N]`` and the state after each step ``[T, 4, N, H]``;
            differentiable in the parameters (the carried state is not touched).
        """
        t_len, n = episode_start.shape
        x = self.features(obs.flatten(0, 1)).view(t_len, n, -1)
        xc = x if critic_obs is None else self.features(critic_obs.flatten(0, 1)).view(t_len, n, -1)
        keep = (~episode_start).to(x.dtype).unsqueeze(-1)
        h_a, c_a, h_c, c_c = state.unbind(0)
        outs_a: list[torch.Tensor] = []
        states: list[torch.Tensor] = []
        for t in range(t_len):
            k = keep[t]
            h_a, c_a = self.actor_lstm(x[t], (h_a * k, c_a * k))
            h_c, c_c = self.critic_lstm(xc[t], (h_c * k, c_c * k))
            outs_a.append(h_a)
            states.append(torch.stack([h_a, c_a, h_c, c_c]))
        stacked = torch.stack(states)
        params = self._params_from(torch.stack(outs_a).flatten(0, 1)).view(t_len, n, -1)
        values = self._value_from(stacked[:, 2].flatten(0, 1)).view(t_len, n)
        return params, values, stacked

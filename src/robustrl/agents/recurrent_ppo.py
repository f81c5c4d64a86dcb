"""Recurrent PPO: :class:`~robustrl.agents.ppo.PPO` with LSTM actor and critic (``PPOConfig.lstm_size > 0``).

Collection goes through the shared :func:`~robustrl.rollout.collect`, which tells the policy each step's episode
starts; the learner keeps the hidden state of its training copies between rollouts (an evaluation in between
uses the policy with its own copies) and records the state each rollout starts from. The update replays whole
rollouts from that state: each minibatch is a group of env copies, ``T = num_steps`` steps each, back-propagated
through time with the state zeroed at episode starts. Values for GAE come from the same replay, so the
advantages and the losses see one critic. A rollout's last observation and the final observations of truncated
episodes are valued from the state the critic had reached.

:func:`make_ppo` builds the right learner from a :class:`~robustrl.agents.ppo.PPOConfig`.
"""

from __future__ import annotations

from functools import partial

import torch

from robustrl.agents.common import Metrics, regularization
from robustrl.agents.ppo import PPO, PPOConfig, Rollout, policy_kwargs, ppo_loss
from robustrl.agents.returns import generalized_advantage_estimate, next_values_from_rollout
from robustrl.defenses.base import NO_HOOKS, Minibatch, TrainingHooks
from robustrl.envs.base import VecEnv
from robustrl.policies.recurrent import RecurrentActorCriticPolicy
from robustrl.rollout import Act, StepContext


class RecurrentPPO(PPO):
    """PPO whose actor and critic each read observations through an LSTM of width ``cfg.lstm_size``."""

    policy: RecurrentActorCriticPolicy

    def __init__(self, env: VecEnv, cfg: PPOConfig, *, seed: int, hooks: TrainingHooks = NO_HOOKS) -> None:
        if cfg.lstm_size < 1:
            raise ValueError("RecurrentPPO needs PPOConfig.lstm_size ≥ 1 (use PPO for feed-forward policies)")
        super().__init__(env, cfg, seed=seed, hooks=hooks)
        self.hidden = self.policy.initial_state(env.num_envs)
        self.rollout_hidden = self.hidden.clone()

    def _make_policy(self, env: VecEnv, cfg: PPOConfig) -> RecurrentActorCriticPolicy:
        return RecurrentActorCriticPolicy(
            env.observation_space, env.action_space, lstm_size=cfg.lstm_size, **policy_kwargs(cfg)
        )

    def _act(self, x: torch.Tensor, ctx: StepContext) -> Act:
        action, logp = self._sample_params(self.policy.step(x))  # advances the carried state
        return Act(action, self._env_action(action), {"log_prob": logp})

    @torch.no_grad()
    def collect(self) -> Rollout:
        """A rollout from the training copies' own hidden state; records its start state and episode starts."""
        first = self._state.episode_start.clone()
        self.rollout_hidden = self.hidden.clone()
        self.policy.recurrent_state = self.hidden
        roll = super().collect()
        state = self.policy.recurrent_state
        assert state is not None
        self.hidden = state
        traj = roll.trajectory
        starts = torch.cat([first.unsqueeze(0), traj.done[:-1]])
        return roll._replace(trajectory=traj._replace(extras={**traj.extras, "episode_start": starts}))

    @torch.no_grad()
    def advantages(self, roll: Rollout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """GAE advantages, λ-returns and values ``[T, N]`` from a replay of the rollout under the current critic."""
        cfg, policy, traj = self.cfg, self.policy, roll.trajectory
        _, values, states = policy.sequence(
            traj.obs, traj.extras["episode_start"], self.rollout_hidden, critic_obs=_critic_view(roll)
        )
        after_last = states[-1] * (~traj.done[-1]).to(states.dtype).view(1, -1, 1)
        last_value = policy.value_with(roll.last_critic_obs, after_last)
        final_values = torch.zeros_like(values)
        idx = traj.truncated.nonzero()
        if idx.numel():
            before = states[idx[:, 0], :, idx[:, 1]].transpose(0, 1)  # [4, K, H]: the state that saw obs_t
            final_values[idx[:, 0], idx[:, 1]] = policy.value_with(roll.final_critic_obs[idx[:, 0], idx[:, 1]], before)
        next_values = next_values_from_rollout(values, last_value, traj.done, final_values)
        est = generalized_advantage_estimate(
            traj.rewards, values, next_values, traj.terminated, traj.truncated, cfg.gamma, cfg.gae_lambda
        )
        return est.advantages, est.returns, values

    def update(self, roll: Rollout) -> Metrics:
        """PPO epochs over one rollout, minibatches of whole env copies replayed through time."""
        cfg, policy = self.cfg, self.policy
        advantages, returns, values = self.advantages(roll)
        traj = roll.trajectory
        starts = traj.extras["episode_start"]
        old_logp = traj.extras["log_prob"]
        lr, clip = self._schedules()
        critic_obs = _critic_view(roll)
        n = traj.rewards.shape[1]
        group = n // cfg.num_minibatches
        params = list(policy.parameters())
        terms: list[torch.Tensor] = []
        reg_terms: list[torch.Tensor] = []
        stop = False
        for _ in range(cfg.num_epochs):
            perm = torch.randperm(n, generator=self._shuffle_gen, device=self.device)
            for k in range(cfg.num_minibatches):
                envs = perm[k * group : (k + 1) * group]
                h0 = self.rollout_hidden[:, envs]
                act_params, v, states = policy.sequence(
                    traj.obs[:, envs], starts[:, envs], h0,
                    critic_obs=None if critic_obs is None else critic_obs[:, envs],
                )
                act = traj.actions[:, envs].flatten(0, 1)
                a = advantages[:, envs].flatten()
                if cfg.normalize_advantage and a.numel() > 1:
                    a = (a - a.mean()) / (a.std() + 1e-8)
                logp, entropy = self._log_prob_entropy_params(act_params.flatten(0, 1), act)
                loss = ppo_loss(
                    logp, old_logp[:, envs].flatten(), a, v.flatten(), returns[:, envs].flatten(),
                    values[:, envs].flatten(), entropy,
                    clip_range=clip, clip_range_vf=cfg.clip_range_vf, vf_coef=cfg.vf_coef, ent_coef=cfg.ent_coef,
                )  # fmt: skip
                regularize = partial(self._regularize, traj.obs[:, envs], act, starts[:, envs], h0, states)
                if self._gradient_step(loss, params, terms, reg_terms, regularize):
                    stop = True
                    break
            if stop:
                break
        if policy.obs_norm is not None:
            policy.obs_norm.update(traj.obs.flatten(0, 1))
        return self._metrics(terms, reg_terms, returns.flatten(), values.flatten(), lr, clip, traj)

    def _regularize(
        self, obs: torch.Tensor, actions: torch.Tensor, starts: torch.Tensor, h0: torch.Tensor, states: torch.Tensor
    ) -> torch.Tensor:
        """The defenses' regularisers (sa-reg) on a replayed minibatch, each step read from its own LSTM state.

        Every step ``t`` of the ``[T, M]`` minibatch is one sample whose carried state is the one the actor had
        before ``obs_t`` (zero at episode starts), held fixed: the regulariser perturbs ``obs_t`` alone, as SA-PPO's
        bound does for one step of a recurrent policy.
        """
        before = torch.cat([h0.unsqueeze(0), states[:-1]])  # [T, 4, M, H]: the state each step starts from
        before = before * (~starts).to(before.dtype).view(*starts.shape[:1], 1, -1, 1)
        policy = self.policy
        saved = policy.recurrent_state
        policy.recurrent_state = before.transpose(0, 1).flatten(1, 2).detach()  # [4, T·M, H]
        try:
            return regularization(self.hooks.regularizers, policy, Minibatch(obs.flatten(0, 1), actions), self.progress)
        finally:
            policy.recurrent_state = saved


def _critic_view(roll: Rollout) -> torch.Tensor | None:
    """The critic's own observations when they differ from the actor's (an asymmetric clean critic), else None."""
    return None if roll.critic_obs is roll.trajectory.obs else roll.critic_obs


def make_ppo(env: VecEnv, cfg: PPOConfig, *, seed: int, hooks: TrainingHooks = NO_HOOKS) -> PPO:
    """:class:`RecurrentPPO` when ``cfg.lstm_size > 0``, else :class:`~robustrl.agents.ppo.PPO`."""
    if cfg.lstm_size > 0:
        return RecurrentPPO(env, cfg, seed=seed, hooks=hooks)
    return PPO(env, cfg, seed=seed, hooks=hooks)


__all__ = ["RecurrentPPO", "make_ppo"]

"""M2TD3: max-min TD3 over the uncertainty parameter ω of an uncertainty set.

Tanabe et al., NeurIPS 2022, "Max-Min Off-Policy Actor-Critic Method Focusing on Worst-Case Robustness to
Model Misspecification". TD3 whose critic also takes the uncertainty parameter ω of the MDP, ``Q(s, a, ω)``, solving
``max_μ min_{ω ∈ Ω} Q(s, μ(s), ω)`` by simultaneous gradient steps:

* **critic**: TD3's clipped double-Q target at the transition's own ω, with *target ω smoothing*
  (``ω' = clip(ω + clip(σ_ω·ε, ±c_ω), Ω)``, as target policy smoothing for actions);
* **particles**: ``N`` uncertainty parameters ω̂_k (``num_omegas``), each ``sigmoid(logit_k)`` in the set's
  unit cube, track the worst case. At an actor step the worst particle ``k* = argmin_k E_s[Q_1(s, μ(s), ω̂_k)]``
  takes one Adam step down that Q (the others stay), and every particle's *selection probability* ``p_k``
  moves towards ``1[k = k*]`` at rate ``prob_rate``;
* **actor**: ascends ``E_s[Q_1(s, μ(s), ω̂_{k*})]`` (``actor_objective="worst"``, M2TD3) or
  ``Σ_k p_k·E_s[Q_1(s, μ(s), ω̂_k)]`` (``"soft"``, the reference's SoftM2TD3), every ``policy_delay`` critic
  updates, with the targets;
* **restarts**: a particle whose ``p_k`` falls below ``min_prob``, or which lies within ``restart_distance``
  (L1) of a later particle, restarts uniformly in the set with the mean probability of the others;
* **data**: every episode runs at ``ω = clip(ω̂_k + σ·ε, Ω)``, ``k ~ p``, σ decaying linearly from
  ``omega_std`` to ``omega_std_min`` over training; while TD3 collects its ``learning_starts`` random
  transitions, ω is uniform over the set.

The env gets each episode's ω from a :class:`~robustrl.envs.samplers.ParamSampler` (:class:`ParticleSampler`)
called at every (auto)reset, as domain randomisation's; the ω each transition ran under is read from the
env's parameters when acting and stored with it (the replay buffer's observations carry ω as extra columns).
The saved policy is an ordinary :class:`~robustrl.policies.DeterministicActorPolicy` *without* critics (its
critics would need ω), so ``robustrl evaluate --uncertainty-set`` runs on it; critic attacks do not.

Simplifications against the reference code (``akimotolab/M2TD3``), all batched over env copies and particles:

* the particles are plain logits with a per-particle (masked) Adam, as the reference's ``HatOmegaNetwork``
  without hidden layers; the critic sees ω in unit-cube coordinates mapped to ``[−1, 1]``, not raw values;
* restarts are checked once per collection round (every ``train_freq`` steps of all copies), not once per
  episode, and the distance threshold is in unit-cube coordinates (the reference: raw units, 0.1);
* the probability rate is a constant per actor update (the reference: 1 / the last episode's length);
* σ decays for both variants (the reference decays it only in SoftM2TD3); the networks, learning rate, batch
  and schedule are the run's TD3 config (``--set``), not the reference's 256-unit, lr 3e-4 ones;
* with the Gymnasium adapter (MuJoCo) a copy's parameters are drawn one episode ahead (the adapter's
  protocol), so an episode runs at an ω drawn from the particles as they were one episode earlier.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from robustrl.agents.buffer import ReplayBuffer
from robustrl.agents.common import Agent, Generators, Metrics, check_num_envs, make_adam, polyak_, seeded_init
from robustrl.agents.critics import CriticEnsemble
from robustrl.agents.td3 import TD3Config, exploration_action, smoothed_target_action, td3_target
from robustrl.agents.train import TrainConfig, make_run_env
from robustrl.agents.train import train as train_run
from robustrl.common.seeding import derive_seed
from robustrl.defenses.model_error import M2TD3Config
from robustrl.envs.base import VecEnv
from robustrl.envs.uncertainty import UncertaintySet
from robustrl.model_robust.common import run_set
from robustrl.policies.actors import DeterministicActorPolicy, unscale_action
from robustrl.results import TrainResult
from robustrl.rollout import Act, StepContext, collect, start_collect

__all__ = ["M2TD3", "OmegaParticles", "ParticleSampler", "masked_adam_step", "restart_mask",
           "smoothed_target_omega", "train_m2td3"]

_EPS = 1e-6


def smoothed_target_omega(u: torch.Tensor, noise: torch.Tensor, std: float, clip: float) -> torch.Tensor:
    """Target ω smoothing in unit-cube coordinates: ``clip(u + clip(σ·ε, ±c), 0, 1)``.

    Args:
        u: ``[B, d]`` the transitions' ω in ``[0, 1]^d``.
        noise: ``[B, d]`` standard normal draws ``ε``.
        std: ``σ`` (unit-cube units: half a fraction of the half-width).
        clip: ``c`` (same units).

    Returns:
        ``[B, d]`` smoothed ω in ``[0, 1]^d``.

    Example:
        >>> smoothed_target_omega(torch.tensor([[0.9, 0.5]]), torch.tensor([[3.0, -1.0]]), 0.1, 0.25)
        tensor([[1.0000, 0.4000]])
    """
    return (u + (std * noise).clamp(-clip, clip)).clamp(0.0, 1.0)


def restart_mask(units: torch.Tensor, probs: torch.Tensor, distance: float, min_prob: float) -> torch.Tensor:
    """``bool [N]``: the particles that restart.

    Particle ``i`` restarts when its selection probability is below ``min_prob``, or when some later particle
    ``j > i`` lies within L1 distance ``distance`` of it (of two particles that met, the first restarts).

    Args:
        units: ``[N, d]`` particles in the unit cube.
        probs: ``[N]`` selection probabilities.
        distance: L1 threshold (0: no distance restarts).
        min_prob: probability threshold (0: no probability restarts).

    Example:
        >>> u = torch.tensor([[0.1, 0.1], [0.12, 0.1], [0.9, 0.9]])
        >>> restart_mask(u, torch.tensor([0.5, 0.48, 0.02]), 0.05, 0.05).tolist()
        [True, False, True]
    """
    d = (units[:, None, :] - units[None, :, :]).abs().sum(-1)
    later = torch.ones_like(d, dtype=torch.bool).triu(1)
    close = ((d <= distance) & later).any(1) if distance > 0 else torch.zeros_like(probs, dtype=torch.bool)
    return close | (probs < min_prob)


def masked_adam_step(
    param: torch.Tensor, grad: torch.Tensor, m: torch.Tensor, v: torch.Tensor, t: torch.Tensor, mask: torch.Tensor,
    lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Adam step on the rows of ``param`` where ``mask`` holds, each row with its own step count.

    Args:
        param: ``[N, d]`` parameters (descended: ``param − lr·m̂/(√v̂ + eps)``).
        grad: ``[N, d]`` their gradients.
        m: ``[N, d]`` first moments.
        v: ``[N, d]`` second moments.
        t: ``[N]`` float step counts.
        mask: ``bool [N]`` rows that step (the others come back unchanged).
        lr: step size.
        betas: Adam's moment rates.
        eps: Adam's denominator floor.

    Returns:
        ``(param, m, v, t)`` after the step (new tensors).

    Example:
        >>> p, _, _, _ = masked_adam_step(torch.zeros(2, 1), torch.tensor([[2.0], [5.0]]), torch.zeros(2, 1),
        ...                               torch.zeros(2, 1), torch.zeros(2), torch.tensor([True, False]), 0.1)
        >>> [round(x, 4) for x in p.flatten().tolist()]  # Adam's first step: length lr, against the gradient
        [-0.1, 0.0]
    """
    b1, b2 = betas
    rows = mask[:, None]
    m2 = torch.where(rows, b1 * m + (1 - b1) * grad, m)
    v2 = torch.where(rows, b2 * v + (1 - b2) * grad.square(), v)
    t2 = t + mask.to(t.dtype)
    tc = t2.clamp_min(1.0)[:, None]
    step = lr * (m2 / (1 - b1**tc)) / ((v2 / (1 - b2**tc)).sqrt() + eps)
    return torch.where(rows, param - step, param), m2, v2, t2


def _logit(u: torch.Tensor) -> torch.Tensor:
    u = u.clamp(_EPS, 1 - _EPS)
    return torch.log(u) - torch.log1p(-u)


class OmegaParticles(nn.Module):
    """``N`` uncertainty-parameter particles in the unit cube, their selection probabilities and Adam state.

    Args:
        num: ``N``.
        dim: ``d``, the set's dimension.
        generator: draws the initial particles (uniform in the cube).
    """

    logits: torch.Tensor
    probs: torch.Tensor
    adam_m: torch.Tensor
    adam_v: torch.Tensor
    adam_t: torch.Tensor

    def __init__(self, num: int, dim: int, generator: torch.Generator) -> None:
        super().__init__()
        dev = generator.device
        u = torch.rand((num, dim), generator=generator, device=dev)
        self.register_buffer("logits", _logit(u))
        self.register_buffer("probs", torch.full((num,), 1.0 / num, device=dev))
        self.register_buffer("adam_m", torch.zeros(num, dim, device=dev))
        self.register_buffer("adam_v", torch.zeros(num, dim, device=dev))
        self.register_buffer("adam_t", torch.zeros(num, device=dev))

    @property
    def num(self) -> int:
        """``N``."""
        return int(self.logits.shape[0])

    def units(self) -> torch.Tensor:
        """``[N, d]`` the particles, ``sigmoid(logits)``."""
        return torch.sigmoid(self.logits)

    @torch.no_grad()
    def descend_(self, grad_logits: torch.Tensor, mask: torch.Tensor, lr: float) -> None:
        """An Adam step down ``grad_logits [N, d]`` (the gradient of Q in the logits) for the ``mask`` rows."""
        p, m, v, t = masked_adam_step(self.logits, grad_logits, self.adam_m, self.adam_v, self.adam_t, mask, lr)
        torch._foreach_copy_([self.logits, self.adam_m, self.adam_v, self.adam_t], [p, m, v, t])

    @torch.no_grad()
    def observe_worst_(self, worst: torch.Tensor, rate: float) -> None:
        """Move the probabilities towards the one-hot ``worst [N]``: ``p ← (1 − rate)·p + rate·worst``."""
        self.probs.lerp_(worst.to(self.probs.dtype), rate)

    @torch.no_grad()
    def restart_(self, mask: torch.Tensor, generator: torch.Generator) -> None:
        """Restart the ``mask`` particles uniformly in the cube (fresh Adam state, the others' mean probability)."""
        u = torch.rand(self.logits.shape, generator=generator, device=self.logits.device)
        rows = mask[:, None]
        keep = (~mask).to(self.probs.dtype)
        mean_kept = (self.probs * keep).sum() / keep.sum().clamp_min(1.0)
        fill = torch.where(keep.sum() > 0, mean_kept, torch.ones_like(mean_kept))
        probs = torch.where(mask, fill, self.probs)
        torch._foreach_copy_(
            [self.logits, self.adam_m, self.adam_v, self.adam_t, self.probs],
            [torch.where(rows, _logit(u), self.logits), torch.where(rows, 0.0, self.adam_m),
             torch.where(rows, 0.0, self.adam_v), torch.where(mask, 0.0, self.adam_t), probs / probs.sum()],
        )

    @torch.no_grad()
    def draw(self, k: int, std: float, generator: torch.Generator) -> torch.Tensor:
        """``[k, d]`` exploration points: a particle ``~ probs`` each, plus ``N(0, std²)``, clipped to the cube."""
        dev = generator.device
        idx = torch.multinomial(self.probs.to(dev), k, replacement=True, generator=generator)
        centre = self.units().to(dev)[idx]
        return (centre + std * torch.randn(centre.shape, generator=generator, device=dev)).clamp(0.0, 1.0)


class ParticleSampler:
    """The env's per-episode parameters: uniform over the set while TD3 warms up, then around the particles.

    Args:
        learner: the :class:`M2TD3` learner whose particles, step count and σ schedule decide the draws.
    """

    def __init__(self, learner: M2TD3) -> None:
        self._learner = learner

    @property
    def names(self) -> tuple[str, ...]:
        """The set's parameters."""
        return self._learner.uset.names

    def __call__(self, copies: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One ω per starting copy, float64 ``[K]`` per parameter, from the env's ``generator``."""
        lr = self._learner
        k, d, dev = int(copies.numel()), len(lr.uset.axes), generator.device
        if lr.steps < lr.cfg.learning_starts:
            u = torch.rand((k, d), generator=generator, device=dev)
        else:
            u = lr.particles.draw(k, lr.omega_std(), generator)
        low = torch.as_tensor(lr.uset.low, dtype=torch.float64, device=dev)
        high = torch.as_tensor(lr.uset.high, dtype=torch.float64, device=dev)
        values = low + u.double() * (high - low)
        return {name: values[:, j] for j, name in enumerate(lr.uset.names)}


class M2TD3:
    """An M2TD3 learner on a batched env whose parameters it sets per episode (see the module docstring).

    Args:
        env: the batched training env (bounded Box actions, flat Box observations, the set's parameters).
        cfg: TD3 hyperparameters (networks, replay, schedule, exploration and target smoothing).
        m2: the particles' options.
        uset: the uncertainty set Ω.
        seed: seeds networks, particles, exploration, smoothing noise and replay sampling.

    Example:
        >>> import robustrl
        >>> from robustrl.envs.uncertainty import uncertainty_set
        >>> env = robustrl.make_env("Pendulum-v1", 8, seed=0)
        >>> agent = M2TD3(env, TD3Config(learning_starts=64), M2TD3Config(), uncertainty_set("pendulum-1d-v1"),
        ...               seed=0)
        >>> for _ in range(20):
        ...     metrics = agent.iterate()
        >>> agent.steps, agent.particles.units().shape
        (160, torch.Size([5, 1]))
    """

    def __init__(self, env: VecEnv, cfg: TD3Config, m2: M2TD3Config, uset: UncertaintySet, *, seed: int) -> None:
        cfg.validate()
        m2.validate()
        check_num_envs(env.num_envs, cfg.num_envs, "TD3Config")
        check_spaces(env, "M2TD3")
        space = env.action_space
        assert isinstance(space, gym.spaces.Box)
        self.env, self.cfg, self.m2, self.uset = env, cfg, m2, uset
        self.device = env.device
        self.act_dim = int(np.prod(space.shape))
        self.obs_dim = int(np.prod(env.observation_space.shape or ()))
        self.omega_dim = len(uset.axes)
        gens = Generators(seed, self.device)
        with seeded_init(gens.seed):
            self.policy = DeterministicActorPolicy(
                env.observation_space, space, hidden=cfg.hidden, activation=cfg.activation,
                normalize_obs=cfg.normalize_obs, with_critic=False,
            ).to(self.device)
            self.critics = CriticEnsemble(
                self.obs_dim + self.omega_dim + self.act_dim, cfg.hidden, cfg.activation, 2, cfg.critic_head,
                cfg.num_bins, cfg.v_min, cfg.v_max,
            ).to(self.device)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        self.target_actor = copy.deepcopy(self.policy.mu).requires_grad_(False)
        self._target_params: list[torch.Tensor] = [*self.target_critics.parameters(), *self.target_actor.parameters()]
        self._online_params: list[torch.Tensor] = [*self.critics.parameters(), *self.policy.mu.parameters()]
        self.optimizer = make_adam([*self.policy.mu.parameters(), *self.critics.parameters()], cfg.learning_rate)
        self.buffer = ReplayBuffer(
            cfg.buffer_size, (self.obs_dim + self.omega_dim,), (self.act_dim,), torch.float32, self.device
        )
        self._act_gen = gens.make(1)
        self._sample_gen = gens.make(3)
        self._omega_gen = gens.make(5)
        self.particles = OmegaParticles(m2.num_omegas, self.omega_dim, self._omega_gen)
        self.steps = 0
        self.updates = 0
        env.set_param_sampler(ParticleSampler(self))  # type: ignore[attr-defined]
        self._state = start_collect(env, seed=derive_seed(seed, 4), generator=gens.make(2))

    # ------------------------------------------------------------------ ω
    def omega_std(self) -> float:
        """The exploration std of the episode ω now, in unit-cube units (half a fraction of the half-width)."""
        progress = min(self.steps / self.cfg.total_steps, 1.0)
        return 0.5 * (self.m2.omega_std + (self.m2.omega_std_min - self.m2.omega_std) * progress)

    def _to_unit(self, omega: torch.Tensor) -> torch.Tensor:
        low = torch.as_tensor(self.uset.low, dtype=omega.dtype, device=omega.device)
        high = torch.as_tensor(self.uset.high, dtype=omega.dtype, device=omega.device)
        return ((omega - low) / (high - low)).clamp(0.0, 1.0)

    def _current_omega(self) -> torch.Tensor:
        """``float32 [N, d]``: the set's parameters each copy's current episode runs under."""
        params = self.env.params  # type: ignore[attr-defined]
        return torch.stack([params[n] for n in self.uset.names], -1).to(self.device, torch.float32)

    # ------------------------------------------------------------------ collection
    def _to_env(self, a: torch.Tensor) -> torch.Tensor:
        return unscale_action(a, self.policy.action_low, self.policy.action_high)

    def _act(self, x: torch.Tensor, ctx: StepContext) -> Act:
        a = exploration_action(self.policy, x, uniform=self.steps < self.cfg.learning_starts,
                               noise=self.cfg.exploration_noise, generator=self._act_gen)  # fmt: skip
        env_a = self._to_env(a)
        shape = tuple(self.env.action_space.shape or ())
        return Act(env_a, env_a.reshape(x.shape[0], *shape), {"omega": self._current_omega()})

    @torch.no_grad()
    def collect(self, vec_steps: int) -> torch.Tensor:
        """Step all copies ``vec_steps`` times into the replay buffer, each transition with its ω; mean reward."""
        traj = collect(self.policy, self.env, vec_steps, state=self._state, act=self._act)  # type: ignore[arg-type]
        self._state = traj.state
        self.steps += vec_steps * self.env.num_envs
        omega = traj.extras["omega"].flatten(0, 1)
        seen = traj.obs.flatten(0, 1).flatten(1)
        nxt = traj.next_obs().flatten(0, 1).flatten(1)
        self.buffer.add(torch.cat([seen, omega], -1), traj.actions.flatten(0, 1), traj.rewards.flatten(),
                        torch.cat([nxt, omega], -1), traj.terminated.flatten())
        if self.policy.obs_norm is not None:
            self.policy.obs_norm.update(traj.obs.flatten(0, 1))
        return traj.rewards.mean()

    # ------------------------------------------------------------------ updates
    def _critic_in(self, feats: torch.Tensor, units: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return torch.cat([feats, 2.0 * units - 1.0, actions], -1)

    def update(self, gradient_steps: int) -> Metrics:
        """``gradient_steps`` critic updates; the actor, the worst particle and the targets every ``policy_delay``."""
        cfg, m2, policy = self.cfg, self.m2, self.policy
        n_p, dim = self.particles.num, self.obs_dim
        critic_terms: list[torch.Tensor] = []
        worst_q: list[torch.Tensor] = []
        for _ in range(gradient_steps):
            b = self.buffer.sample(cfg.batch_size, self._sample_gen)
            obs, units = b.obs[:, :dim], self._to_unit(b.obs[:, dim:])
            actor_step = (self.updates + 1) % cfg.policy_delay == 0
            feats = policy.features(obs)
            with torch.no_grad():
                next_feats = policy.features(b.next_obs[:, :dim])
                eps = torch.randn((cfg.batch_size, self.act_dim), generator=self._sample_gen, device=self.device)
                next_a = smoothed_target_action(
                    self.target_actor(next_feats), eps, cfg.target_policy_noise, cfg.target_noise_clip
                )
                eps_w = torch.randn(units.shape, generator=self._sample_gen, device=self.device)
                std_w, clip_w = 0.5 * m2.target_omega_noise, 0.5 * m2.target_omega_noise_clip
                next_u = smoothed_target_omega(units, eps_w, std_w, clip_w)
                next_q = self.target_critics.q_values(self._critic_in(next_feats, next_u, self._to_env(next_a)))
                y = td3_target(b.rewards, next_q, b.terminated, cfg.gamma)
            out = self.critics(self._critic_in(feats, units, b.actions))
            loss = critic_loss = self.critics.loss(out, y, cfg.sigma_ratio)
            logits = None
            if actor_step:
                logits = self.particles.logits.detach().clone().requires_grad_(True)
                q_bar = particle_values(self.critics, feats, policy.mu(feats), torch.sigmoid(logits), self._to_env)
                worst = nn.functional.one_hot(q_bar.detach().argmin(), n_p).to(q_bar.dtype)
                weights = worst if m2.actor_objective == "worst" else self.particles.probs
                loss = loss + (-(weights * q_bar).sum())
                worst_q.append(q_bar.detach().min())
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if actor_step:
                assert logits is not None and logits.grad is not None
                # the actor's loss is −Σ_k w_k·Q̄_k: its gradient in logit k is −w_k·∇Q̄_k
                grad_q = -logits.grad / weights.clamp_min(1e-12)[:, None]
                self.particles.descend_(grad_q, worst.bool(), m2.omega_lr)
                self.particles.observe_worst_(worst, m2.prob_rate)
                polyak_(self._target_params, self._online_params, cfg.tau)
            self.updates += 1
            critic_terms.append(torch.stack([critic_loss.detach(), self.critics.expectation(out.detach()).mean()]))
        nan = torch.tensor(float("nan"))
        c: Any = torch.stack(critic_terms).mean(0) if critic_terms else [nan, nan]
        wq = torch.stack(worst_q).mean() if worst_q else nan
        return {"train/critic_loss": c[0], "train/q_mean": c[1], "train/worst_particle_q": wq}

    def restart(self) -> torch.Tensor:
        """Restart the particles that :func:`restart_mask` names; returns the mask (``bool [N]``)."""
        mask = restart_mask(self.particles.units(), self.particles.probs, self.m2.restart_distance, self.m2.min_prob)
        self.particles.restart_(mask, self._omega_gen)
        return mask

    def iterate(self) -> Metrics:
        """Restart particles (once warm), collect ``train_freq`` steps of every copy, then update once warm."""
        cfg = self.cfg
        out: Metrics = {}
        if self.steps >= cfg.learning_starts:
            out["train/particle_restarts"] = self.restart().sum()
        out["train/rollout_reward"] = self.collect(cfg.train_freq)
        if self.buffer.size >= max(cfg.learning_starts, cfg.batch_size):
            out.update(self.update(cfg.gradient_steps))
        return out

    def particle_points(self) -> list[dict[str, float]]:
        """The particles as parameter points of the set."""
        return [self.uset.from_unit(u) for u in self.particles.units().detach().cpu().double().numpy()]


def particle_values(
    critics: CriticEnsemble, feats: torch.Tensor, actions: torch.Tensor, units: torch.Tensor, to_env: Any,
) -> torch.Tensor:
    """``[N]``: ``E_b[Q_1(s_b, a_b, ω̂_k)]`` for every particle, one fused critic pass over ``N·B`` inputs.

    The critic's weights are detached (gradients reach the actions and the particles only).

    Args:
        critics: the ω-conditioned critic ensemble (its first critic is used, as TD3's actor loss).
        feats: ``[B, F]`` observation features.
        actions: ``[B, A]`` actions in ``[−1, 1]``.
        units: ``[N, d]`` particles in the unit cube.
        to_env: maps ``[−1, 1]`` actions onto the env's action box.
    """
    n, b = units.shape[0], feats.shape[0]
    x = torch.cat([
        feats.unsqueeze(0).expand(n, b, -1),
        (2.0 * units - 1.0).unsqueeze(1).expand(n, b, -1),
        to_env(actions).unsqueeze(0).expand(n, b, -1),
    ], -1)
    return critics.q_values(x.reshape(n * b, -1), detach=True)[0].view(n, b).mean(1)


def check_spaces(env: VecEnv, what: str) -> None:
    """Raise a ValueError unless ``env`` has bounded Box actions and flat Box observations."""
    space = env.action_space
    if not isinstance(space, gym.spaces.Box) or not space.is_bounded("both"):
        raise ValueError(f"{what} needs continuous actions (a bounded Box); this env has {space!r} "
                         "(for discrete actions use --defense domain-randomisation or iwocs)")
    obs = env.observation_space
    if not isinstance(obs, gym.spaces.Box) or len(obs.shape) != 1:
        raise ValueError(f"{what} needs flat Box observations, got {obs!r}")


def train_m2td3(cfg: TrainConfig, defense: M2TD3Config) -> TrainResult:
    """``robustrl train --algo td3 --defense m2td3 --uncertainty-set SET``.

    Args:
        cfg: the run (``algo`` must be ``td3``; run folder, evaluations at the nominal parameters and
            checkpoints as for any run).
        defense: the particles' options.

    Returns:
        The run's :class:`~robustrl.results.TrainResult`; ``config["m2td3"]`` holds the final particles
        (parameter points) and their selection probabilities.

    Raises:
        ValueError: another algorithm, an env with discrete actions, no or a bad uncertainty set, or a bad
            config, before any work.
    """
    defense.validate()
    if cfg.algo != "td3":
        raise ValueError(f"--defense m2td3 is built on TD3: pass --algo td3, not --algo {cfg.algo}")
    uset = run_set(cfg, "m2td3")
    probe = make_run_env(cfg, 1, None, randomize=False)
    try:
        check_spaces(probe, "--defense m2td3")
    finally:
        probe.close()
    held: list[M2TD3] = []

    def make(env: VecEnv, algo_cfg: Any, seed: int, more: Any) -> Agent:
        held.append(M2TD3(env, algo_cfg, defense, uset, seed=seed))
        return held[-1]  # type: ignore[return-value]

    res = train_run(cfg, make_agent=make)
    learner = held[-1]
    record = {"particles": learner.particle_points(),
              "probabilities": [float(p) for p in learner.particles.probs.cpu()]}
    out = dataclasses.replace(res, config={**res.config, "m2td3": record})
    if res.run_dir is not None:
        out.save(Path(res.run_dir) / "result.json")  # again, with the particles
    return out

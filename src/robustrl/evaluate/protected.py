"""PROTECTED at test time: EXP3 chooses, per episode, which policy of the set acts (Liu et al., ICLR 2024).

:func:`adapt_policies` runs ``E`` episodes under a schedule of attacks (static, or switching every ``K``
episodes). Each episode is one bandit round: EXP3 draws the acting policy from its weights, sees that
episode's return normalised to ``[0, 1]``, and updates (:mod:`robustrl.defenses.protected`).

How episodes run: since the policies are fixed and the attack of every episode is set by the schedule, the
return of *every* policy on *every* episode does not depend on the bandit's choices. So each (policy,
attack) pair runs its episodes in one batched :func:`robustrl.rollout` (same seed for every policy: common
random numbers), giving a table ``returns [E, K]``; the bandit then reads only the played entry of each row.
The rest of the table is what the regret against the best fixed policy in hindsight needs, exactly.
(An attacker that adapts to the *bandit's* choices would need episodes run one round at a time.)

:func:`return_matrix` gives the mean return of each policy under each attack of a family, which the trainer
(:func:`robustrl.adversarial.protected.train_protected`) uses to pick the next attack and the set.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.common.io import read_json, write_json
from robustrl.common.limits import check_count
from robustrl.common.progress import progress_bar
from robustrl.common.seeding import check_seed, derive_seed, numpy_generator
from robustrl.defenses.protected import check_exp3, exp3, normalise_returns, parse_attack, regret
from robustrl.envs import make_env
from robustrl.policies.base import Policy
from robustrl.rollout import rollout
from robustrl.threats.registry import Threat, make_threat

__all__ = ["AdaptConfig", "AdaptationResult", "adapt", "adapt_policies", "attack_schedule", "build_attacks",
           "load_protected_set", "return_matrix"]

logger = logging.getLogger(__name__)


def build_attacks(attacks: Sequence[str], policies: Sequence[Policy], normalized: bool) -> list[Threat]:
    """The family ``name:ε`` as threats, in normalised units when asked and every policy normalises.

    Raises:
        ValueError: a malformed item or an unknown threat name.
    """
    units = normalized and all(getattr(p, "obs_norm", None) is not None for p in policies)
    return [make_threat(name, eps, normalized=units) for name, eps in map(parse_attack, attacks)]


def _returns(policy: Policy, env_id: str, threat: Threat | None, episodes: int, *, seed: int, device: Any,
             num_envs: int) -> np.ndarray:
    env = make_env(env_id, min(num_envs, episodes), seed=seed, device=device)
    obs_t = threat if threat is not None and threat.kind == "obs" else None
    act_t = threat if threat is not None and threat.kind == "action" else None
    try:
        res = rollout(policy, env, episodes, seed=seed, obs_transform=obs_t, action_transform=act_t)  # type: ignore[arg-type]
    finally:
        env.close()
    return res.returns.numpy().astype(np.float64)


def return_matrix(
    policies: Sequence[Policy], env_id: str, attacks: Sequence[Threat], episodes: int, *, seed: int,
    device: Any = "cpu", num_envs: int = 64,
) -> np.ndarray:
    """``float64 [K, A]``: mean greedy return of each policy under each attack (the attack targets that policy).

    Every policy meets the same episodes' initial states (same seed per attack).
    """
    check_count(episodes, "episodes")
    out = np.zeros((len(policies), len(attacks)))
    for a, threat in enumerate(attacks):
        for k, policy in enumerate(policies):
            out[k, a] = _returns(policy, env_id, threat, episodes, seed=_seed(seed, a), device=device,
                                 num_envs=num_envs).mean()
    return out


def attack_schedule(episodes: int, num_attacks: int, switch_every: int) -> np.ndarray:
    """``int64 [episodes]``: the attack of each episode; 0: static (attack 0), K: the next attack every K episodes.

    Example:
        >>> attack_schedule(7, 2, 3).tolist()
        [0, 0, 0, 1, 1, 1, 0]
    """
    check_count(episodes, "episodes")
    check_count(num_attacks, "number of attacks")
    if switch_every == 0:
        return np.zeros(episodes, dtype=np.int64)
    check_count(switch_every, "switch_every")
    return (np.arange(episodes) // switch_every % num_attacks).astype(np.int64)


@dataclass(frozen=True)
class AdaptationResult:
    """E episodes of EXP3 choosing the acting policy of a set under a schedule of attacks."""

    policies: tuple[str, ...]
    """The set's policies (files, or class names)."""
    attacks: tuple[str, ...]
    """The attacks of the schedule (name:ε or a description)."""
    schedule: np.ndarray
    """``int64 [E]`` the attack of each episode."""
    returns: np.ndarray
    """``float64 [E, K]`` the return each policy had on each episode (the bandit sees only the played one)."""
    arms: np.ndarray
    """``int64 [E]`` the policy EXP3 chose each episode."""
    probs: np.ndarray
    """``float64 [E, K]`` the probabilities it drew from."""
    return_range: tuple[float, float]
    """``(low, high)`` that maps returns to rewards in [0, 1]."""

    @property
    def chosen_returns(self) -> np.ndarray:
        """``float64 [E]`` the return of the acting policy each episode."""
        return self.returns[np.arange(len(self.arms)), self.arms]

    @property
    def mean_return(self) -> float:
        """Mean return of the adaptive defense over the E episodes."""
        return float(self.chosen_returns.mean())

    @property
    def choice_frequencies(self) -> np.ndarray:
        """``float64 [K]`` fraction of episodes each policy acted."""
        return np.bincount(self.arms, minlength=self.returns.shape[1]) / len(self.arms)

    @property
    def regret(self) -> np.ndarray:
        """``float64 [E]`` cumulative regret in normalised reward units vs the best fixed policy in hindsight."""
        return regret(normalise_returns(self.returns, *self.return_range), self.arms)

    @property
    def regret_return(self) -> float:
        """Final regret in return units: the best fixed policy's total return minus the defense's."""
        return float(regret(self.returns, self.arms)[-1])

    @property
    def best_fixed(self) -> int:
        """The policy with the highest total return in hindsight."""
        return int(np.argmax(self.returns.sum(axis=0)))

    def phase_preferred(self) -> list[int]:
        """Per phase of constant attack: the policy with the highest mean EXP3 probability in its second half."""
        change = np.flatnonzero(np.diff(self.schedule)) + 1
        bounds = [0, *change.tolist(), len(self.schedule)]
        return [int(np.argmax(self.probs[(lo + hi) // 2: hi].mean(axis=0))) for lo, hi in itertools.pairwise(bounds)]

    def __str__(self) -> str:
        freq = ", ".join(f"{f:.2f}" for f in self.choice_frequencies)
        return (
            f"EXP3 over {len(self.policies)} policies, {len(self.arms)} episodes, attacks {list(self.attacks)}: "
            f"mean return {self.mean_return:.1f}; best fixed policy #{self.best_fixed} "
            f"{self.returns[:, self.best_fixed].mean():.1f}; regret {self.regret_return:.1f} (return), "
            f"{self.regret[-1]:.2f} (normalised); choice frequencies [{freq}]; "
            f"preferred per phase {self.phase_preferred()}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary and per-episode arrays."""
        return {
            "kind": "protected_adaptation", "policies": list(self.policies), "attacks": list(self.attacks),
            "mean_return": self.mean_return, "choice_frequencies": self.choice_frequencies.tolist(),
            "best_fixed": self.best_fixed, "best_fixed_mean_return": float(self.returns[:, self.best_fixed].mean()),
            "policy_mean_returns": self.returns.mean(axis=0).tolist(), "regret": float(self.regret[-1]),
            "regret_return": self.regret_return, "phase_preferred": self.phase_preferred(),
            "return_range": list(self.return_range), "schedule": self.schedule.tolist(),
            "arms": self.arms.tolist(), "returns": self.returns.tolist(), "regret_curve": self.regret.tolist(),
        }


def adapt_policies(
    policies: Sequence[Policy], env_id: str, attacks: Sequence[Threat], schedule: np.ndarray, *,
    return_range: tuple[float, float], gamma: float = 0.1, eta: float = 0.1, share: float = 0.0, seed: int = 0,
    device: Any = "cpu", num_envs: int = 64, names: Sequence[str] | None = None, progress: bool = False,
) -> AdaptationResult:
    """EXP3 over ``policies`` for ``len(schedule)`` episodes, episode ``e`` under ``attacks[schedule[e]]``.

    Args:
        policies: the set Π̃ (K policies).
        env_id: their env.
        attacks: the threats the schedule indexes (each perturbs whichever policy acts).
        schedule: ``int [E]`` attack index per episode (:func:`attack_schedule`).
        return_range: ``(low, high)`` mapping returns to bandit rewards in [0, 1] (clipped).
        gamma: EXP3 exploration.
        eta: EXP3 learning rate.
        share: fixed-share mixing (0: plain EXP3).
        seed: seeds the episodes and the bandit.
        device: torch device of the envs.
        num_envs: most env copies per batched rollout.
        names: how the result names the policies (default: class names).
        progress: show a progress bar over (policy, attack) rollouts.

    Returns:
        :class:`AdaptationResult`.

    Raises:
        ValueError: no policies, a schedule index without an attack, bad EXP3 settings or return range.
    """
    if not policies:
        raise ValueError("adapt_policies needs at least one policy")
    check_exp3(gamma, eta, share)
    sched = np.asarray(schedule, dtype=np.int64)
    if sched.ndim != 1 or len(sched) == 0 or sched.min() < 0 or sched.max() >= len(attacks):
        raise ValueError(f"schedule must be a non-empty [E] array of indices into the {len(attacks)} attacks")
    normalise_returns(np.zeros(1), *return_range)  # checks the range before any work
    table = np.zeros((len(sched), len(policies)))
    used = sorted(set(sched.tolist()))
    with progress_bar(total=len(used) * len(policies), desc="protected rollouts", disable=not progress) as bar:
        for a in used:
            rows = np.flatnonzero(sched == a)
            for k, policy in enumerate(policies):
                table[rows, k] = _returns(policy, env_id, attacks[a], len(rows), seed=_seed(seed, 100 + a),
                                          device=device, num_envs=num_envs)
                bar.update(1)
    run = exp3(normalise_returns(table, *return_range), gamma, eta, numpy_generator(_seed(seed, 7)), share=share)
    labels = tuple(names) if names is not None else tuple(type(p).__name__ for p in policies)
    descs = tuple(f"{t.name}:{t.budget:g}" for t in attacks)
    return AdaptationResult(labels, descs, sched, table, run.arms, run.probs,
                            (float(return_range[0]), float(return_range[1])))


@dataclass(frozen=True)
class AdaptConfig:
    """Test-time adaptation of a PROTECTED run's policy set under a static or a switching attack."""

    run: Path = Path(".")
    """The PROTECTED run folder (robustrl train --defense protected --out RUN)."""
    attacks: tuple[str, ...] = ("none:0", "pgd:0.1")
    """Attacks of the schedule as name:ε (static: only the first is used)."""
    switch_every: int = 0
    """0: a static attack (the first); K: the attack changes to the next one every K episodes."""
    episodes: int = 200
    """Episodes (bandit rounds)."""
    gamma: float | None = None
    """EXP3 exploration (None: the run's exp3_gamma)."""
    eta: float | None = None
    """EXP3 learning rate (None: the run's exp3_eta)."""
    share: float | None = None
    """Fixed-share mixing (None: the run's exp3_share)."""
    return_low: float | None = None
    """Return mapped to reward 0 (None: the env's return floor, else the least return of the run's table)."""
    return_high: float | None = None
    """Return mapped to reward 1 (None: the highest return of the run's table)."""
    seed: int = 0
    """Seeds the episodes and the bandit."""
    num_envs: int = 64
    """Most env copies per batched rollout."""
    device: str = "cpu"
    """Torch device."""
    out: Path | None = None
    """Write the result here as JSON (None: nothing)."""
    progress: bool = False
    """Show a progress bar."""

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first bad field."""
        check_count(self.episodes, "AdaptConfig.episodes")
        check_count(self.num_envs, "AdaptConfig.num_envs")
        check_seed(self.seed, "AdaptConfig.seed")
        if self.switch_every != 0:
            check_count(self.switch_every, "AdaptConfig.switch_every")
        if not self.attacks or isinstance(self.attacks, str):
            raise ValueError(f"AdaptConfig.attacks must be a non-empty list of name:ε, got {self.attacks!r}")
        for item in self.attacks:
            parse_attack(item)


def load_protected_set(run: str | Path, device: Any = "cpu") -> tuple[list[Policy], list[str], dict[str, Any]]:
    """``(policies, files, progress)`` of a finished PROTECTED run folder (its ``protected.json``).

    Raises:
        ValueError: no ``protected.json`` or an unfinished run (no set recorded).
    """
    from robustrl.policies import load_policy

    path = Path(run) / "protected.json"
    if not path.is_file():
        raise ValueError(f"{str(run)!r} is not a PROTECTED run folder (no protected.json)")
    saved = read_json(path, what="PROTECTED progress")
    members = saved.get("set")
    if not members:
        raise ValueError(f"the PROTECTED run in {str(run)!r} has not finished (no policy set recorded)")
    env_id = saved["train"]["env"]
    files = [str(Path(run) / f"policy_{i}" / "policy.zip") for i in members]
    return [load_policy(f, device=device, env_id=env_id) for f in files], files, saved


def adapt(cfg: AdaptConfig) -> AdaptationResult:
    """Run a PROTECTED set's test-time adaptation as ``cfg`` says (EXP3 settings default to the run's).

    Raises:
        ValueError: a bad config or run folder (before any episode runs).
    """
    cfg.validate()
    policies, files, saved = load_protected_set(cfg.run, cfg.device)
    defense, env_id = saved["defense"], saved["train"]["env"]
    table = np.asarray([rec["returns"] for rec in saved["iterations"]], dtype=np.float64)
    low = cfg.return_low
    if low is None:
        env = make_env(env_id, 1, device=cfg.device)
        floor = env.return_floor
        env.close()
        low = float(floor) if floor is not None else float(table.min())
    high = cfg.return_high if cfg.return_high is not None else float(table.max())
    attacks = build_attacks(cfg.attacks, policies, bool(defense.get("normalized", True)))
    if cfg.switch_every == 0:
        attacks = attacks[:1]
    schedule = attack_schedule(cfg.episodes, len(attacks), cfg.switch_every)
    res = adapt_policies(
        policies, env_id, attacks, schedule, return_range=(low, high),
        gamma=defense["exp3_gamma"] if cfg.gamma is None else cfg.gamma,
        eta=defense["exp3_eta"] if cfg.eta is None else cfg.eta,
        share=defense.get("exp3_share", 0.0) if cfg.share is None else cfg.share,
        seed=cfg.seed, device=cfg.device, num_envs=cfg.num_envs, names=files, progress=cfg.progress,
    )
    res = dataclasses.replace(res, attacks=tuple(cfg.attacks[: len(attacks)]))
    logger.info("protected: mean return %.1f, regret %.2f (normalised), choices %s", res.mean_return,
                res.regret[-1], res.choice_frequencies.round(3).tolist())
    if cfg.out is not None:
        write_json(cfg.out, res.to_dict())
    return res


def _seed(seed: int, key: int) -> int:
    out = derive_seed(seed, key)
    assert out is not None
    return out

"""Checks that a policy and an env can run together, before any rollout."""

from __future__ import annotations

from typing import Any

from robustrl.envs.base import VecEnv
from robustrl.policies.base import Policy

__all__ = ["check_policy_fits_env"]


def _space_text(space: Any) -> str:
    shape = getattr(space, "shape", None)
    n = getattr(space, "n", None)
    if n is not None:
        return f"Discrete({int(n)})"
    return f"{type(space).__name__} of shape {tuple(shape) if shape is not None else '?'}"


def check_policy_fits_env(policy: Policy, name: str, env: VecEnv) -> None:
    """Raise a ``ValueError`` naming both, with both shapes, when ``policy`` cannot act in ``env``.

    Policies without declared spaces are not checked (they fail, if at all, in the rollout).

    Args:
        policy: the policy.
        name: how the policy is named to the user (its file, or its class name).
        env: the batched env.
    """
    pol_obs, pol_act = getattr(policy, "observation_space", None), getattr(policy, "action_space", None)
    problems = []
    if pol_obs is not None and getattr(pol_obs, "shape", None) != env.observation_space.shape:
        problems.append(
            f"the policy takes observations of shape {tuple(pol_obs.shape or ())} but {env.env_id} gives "
            f"shape {tuple(env.observation_space.shape or ())}"
        )
    if pol_act is not None:
        same_kind = type(pol_act) is type(env.action_space)
        same = same_kind and getattr(pol_act, "shape", None) == env.action_space.shape
        same = same and getattr(pol_act, "n", None) == getattr(env.action_space, "n", None)
        if not same:
            problems.append(
                f"the policy acts in {_space_text(pol_act)} but {env.env_id} takes {_space_text(env.action_space)}"
            )
    if problems:
        raise ValueError(
            f"policy {name!r} does not fit env {env.env_id!r}: {'; '.join(problems)}. "
            "Pass the env the policy was trained on, or a policy trained for this env"
        )

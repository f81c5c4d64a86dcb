"""The one engine under evaluation, attacks, certification and training (see ``docs/architecture.md``).

- :func:`rollout`: run whole episodes (evaluation, attacks, certification), unbiased sample of episodes.
- :func:`collect`: run a fixed number of steps for a learner, recording ``[T, N, ...]`` tensors.
- :class:`TransformedVecEnv`: a ``VecEnv`` that applies observation/action transforms, so any learner
  trains under any threat or defense unchanged.
- :class:`StepContext`, :data:`ObsTransform`, :data:`ActionTransform`: what threats and defenses plug in.

This layer imports only ``robustrl.common``, ``robustrl.envs`` and ``robustrl.policies``.

``robustrl.rollout`` is also callable as the function :func:`rollout` (``robustrl.rollout(policy, env, 8)``),
so the top-level shortcut keeps working now that the engine is a package.
"""

import sys
import types
from typing import Any

from robustrl.rollout.collect import Act, CollectState, Trajectory, collect, episode_starts_hook, start_collect
from robustrl.rollout.context import ActionTransform, ObsTransform, StepContext
from robustrl.rollout.episodes import RolloutResult, rollout
from robustrl.rollout.transformed import TransformedVecEnv

__all__ = [
    "Act",
    "ActionTransform",
    "CollectState",
    "ObsTransform",
    "RolloutResult",
    "StepContext",
    "Trajectory",
    "TransformedVecEnv",
    "collect",
    "episode_starts_hook",
    "rollout",
    "start_collect",
]


class _CallableModule(types.ModuleType):
    """This package, callable as :func:`rollout`."""

    def __call__(self, *args: Any, **kwargs: Any) -> RolloutResult:
        return rollout(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

"""What a defense gives a learner: transforms of what the agent sees and does, and extra loss terms.

A defense is a typed config plus a function that turns it into :class:`TrainingHooks`. Learners (PPO, DQN,
SAC) take the hooks and need no defense-specific code: observation/action transforms go to the shared
:func:`~robustrl.rollout.collect`, regularisers are added to the loss of every minibatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch
from torch import nn

from robustrl.rollout.context import ActionTransform, ObsTransform


class Minibatch(NamedTuple):
    """The minibatch a learner is updating on, as a regulariser sees it."""

    obs: torch.Tensor
    """``[B, *obs_shape]`` observations the agent acted on (after the training transforms)."""
    actions: torch.Tensor
    """``[B, ...]`` the actions taken (PPO: sampled, unclipped; DQN: indices; SAC: env-scaled)."""


class Regularizer(Protocol):
    """An extra loss term on a minibatch, e.g. SA-PPO's κ·max KL(π(·|s) ‖ π(·|ŝ)).

    Called once per gradient step with explicit arguments; returns a scalar tensor that is added to the
    learner's loss (PPO: the total loss; DQN: the TD loss; SAC: the actor loss) and differentiated.
    """

    def __call__(self, policy: nn.Module, batch: Minibatch, progress: float) -> torch.Tensor:
        """``policy`` being trained, the ``batch``, and the fraction of training done (for schedules)."""
        ...


@dataclass(frozen=True)
class TrainingHooks:
    """Everything a defense changes in a learner."""

    obs_transform: ObsTransform | None = None
    """Applied to every observation the agent acts and learns on (e.g. smoothing noise, an attack)."""
    action_transform: ActionTransform | None = None
    """Applied to every action before the env receives it (e.g. an action adversary)."""
    clean_critic: bool = True
    """PPO: the critic sees the clean observation when ``obs_transform`` is set (asymmetric critic)."""
    regularizers: tuple[Regularizer, ...] = ()
    """Extra loss terms added at every gradient step."""


NO_HOOKS = TrainingHooks()
"""No defense: collect clean, add nothing to the loss."""

"""Threats: observation attacks, action perturbations and dynamics shifts (see ``docs/threats.md``).

Observation attacks are pure functions over batches, ``perturb(policy, obs, budget, generator, config,
*, scale) -> obs'`` with ``‖(obs' − obs)/scale‖_p ≤ budget`` per sample and ``obs'`` inside the observation
space: :func:`uniform`, :func:`gaussian`, :func:`fgsm`, :func:`pgd`, :func:`mad`, :func:`critic`
(SA-PPO/SA-DQN, Zhang et al. 2020), and :class:`EpisodeL2Attack` (Policy Smoothing's episode-total ℓ2
threat, Kumar et al. 2022). Every gradient attack has an EOT variant for Gaussian-smoothed victims
(``smoothing_sigma``). Action threats: :func:`action_noise`, :func:`action_replace`, :func:`pr_mdp`.
Dynamics grids: :func:`make_grid`. :func:`make_threat` builds any of them by name as a rollout transform.
"""

from robustrl.threats.action_noise import action_noise, action_replace
from robustrl.threats.critic import CriticConfig, critic
from robustrl.threats.dynamics import (
    ParamAxis,
    grid_param_tensors,
    grid_points,
    grid_shape,
    make_grid,
    parse_param_axis,
)
from robustrl.threats.episode_l2 import EpisodeL2Attack, EpisodeL2Config, episode_l2_step
from robustrl.threats.fgsm import FGSMConfig, fgsm
from robustrl.threats.mad import MADConfig, mad
from robustrl.threats.noise import GaussianConfig, UniformConfig, gaussian, uniform
from robustrl.threats.pgd import PGDConfig, pgd, pgd_search
from robustrl.threats.pr_mdp import PRMDPConfig, pr_mdp, worst_action
from robustrl.threats.registry import THREATS, ActionThreat, ObsThreat, Threat, ThreatSpec, make_threat
from robustrl.threats.wrappers import ActionThreatWrapper, ObservationThreatWrapper

__all__ = [
    "THREATS",
    "ActionThreat",
    "ActionThreatWrapper",
    "CriticConfig",
    "EpisodeL2Attack",
    "EpisodeL2Config",
    "FGSMConfig",
    "GaussianConfig",
    "MADConfig",
    "ObsThreat",
    "ObservationThreatWrapper",
    "PGDConfig",
    "PRMDPConfig",
    "ParamAxis",
    "Threat",
    "ThreatSpec",
    "UniformConfig",
    "action_noise",
    "action_replace",
    "critic",
    "episode_l2_step",
    "fgsm",
    "gaussian",
    "grid_param_tensors",
    "grid_points",
    "grid_shape",
    "mad",
    "make_grid",
    "make_threat",
    "parse_param_axis",
    "pgd",
    "pgd_search",
    "pr_mdp",
    "uniform",
    "worst_action",
]

"""Batched environments on torch tensors: native classic-control envs and a Gymnasium adapter.

``make_env(env_id, num_envs)`` returns a :class:`~robustrl.envs.base.VecEnv`; ``list_envs()`` lists the ids,
their physical parameters and return floors. See ``docs/envs.md``.
"""

from robustrl.envs.base import EnvInfo, ParamValue, StepResult, VecEnv
from robustrl.envs.registry import NATIVE_ENVS, list_envs, make_env
from robustrl.envs.samplers import ChoiceParamSampler, ParamSampler, UniformParamSampler

__all__ = [
    "NATIVE_ENVS",
    "ChoiceParamSampler",
    "EnvInfo",
    "ParamSampler",
    "ParamValue",
    "StepResult",
    "UniformParamSampler",
    "VecEnv",
    "list_envs",
    "make_env",
]

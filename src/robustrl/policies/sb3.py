"""Import Stable-Baselines3 ``.zip`` checkpoints (PPO, A2C, DQN, SAC, TD3/DDPG with ``MlpPolicy``) safely.

An SB3 zip holds ``data`` (JSON in which non-JSON objects are base64 *cloudpickles* under
``":serialized:"``), ``policy.pth`` (the policy's ``state_dict``) and optimiser states. This module never
decodes those pickles and never imports SB3:

* the algorithm and the architecture come from the names and shapes in ``policy.pth``
  (read with ``torch.load(weights_only=True)``);
* the spaces come from the readable fields SB3 writes beside each pickle (``_shape``, ``dtype``, the
  printed ``low``/``high`` arrays, ``n``);
* the activation comes from the readable ``policy_kwargs["activation_fn"]`` string, or the algorithm's
  default when ``policy_kwargs`` does not set it.

What cannot be read this way the caller passes: ``activation=`` when ``policy_kwargs`` is not readable,
``env_id=`` (or ``observation_space=``/``action_space=``) when a space's bounds were too large for SB3 to
print in full. Refused, with a ``ValueError`` naming the file: CNN or custom feature extractors
(``CnnPolicy``, ``MultiInputPolicy``), gSDE, shared actor-critic trunks, recurrent or other sb3-contrib
policies, image observations, spaces other than Box/Discrete. ``VecNormalize`` statistics live in a separate
pickle file and are not read; a policy trained with them needs them applied outside.

Parity: ``load_sb3(path).act(obs)`` equals ``model.predict(obs, deterministic=True)[0]`` (Box actions are
clipped to the action space for PPO/A2C and mapped from ``[-1, 1]`` with SB3's ``unscale_action`` for
SAC/TD3).
"""

from __future__ import annotations

import logging
import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from robustrl.policies.networks import (
    ActorCriticPolicy,
    DeterministicActorPolicy,
    QNetworkPolicy,
    SquashedGaussianActorPolicy,
)
from robustrl.policies.reading import (
    build_module,
    open_zip,
    policy_file_error,
    read_json_member,
    read_member,
    read_weights,
)
from robustrl.policies.spaces import MAX_DISCRETE_N, MAX_SPACE_ELEMENTS, env_spaces

logger = logging.getLogger(__name__)

Algo = Literal["PPO", "A2C", "DQN", "SAC", "TD3"]

_ACTIVATION_NAMES = {"ReLU": "relu", "Tanh": "tanh"}
_DEFAULT_ACTIVATION: dict[str, str] = {"PPO": "tanh", "A2C": "tanh", "DQN": "relu", "SAC": "relu", "TD3": "relu"}


@dataclass(frozen=True)
class SB3Info:
    """What an SB3 zip says about itself, read without unpickling anything."""

    algo: Algo
    """The algorithm family, from the weight names (TD3 also covers DDPG)."""
    sb3_version: str | None
    """The ``_stable_baselines3_version`` member."""
    observation_space: gym.Space[Any] | None
    """One observation's space, None when its bounds are not readable."""
    action_space: gym.Space[Any] | None
    """One action's space, None when its bounds are not readable."""
    activation: str | None
    """``"relu"``/``"tanh"`` when readable (or the algorithm's default), else None."""
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    """The readable part of ``policy_kwargs``."""


# ----------------------------------------------------------------------------------------- data fields


def _parse_printed_array(text: Any, shape: tuple[int, ...], what: str, path: Path) -> np.ndarray | None:
    """Parse ``str(np.ndarray)`` as SB3 stores it; None when numpy summarised it (``...``)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return np.full(shape, float(text))
    if not isinstance(text, str):
        return None
    if "..." in text:
        return None
    tokens = [t for t in re.split(r"[\s,\[\]]+", text) if t]
    try:
        values = np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError as err:
        raise policy_file_error(path, f"{what} is not a printed number array ({text[:80]!r})") from err
    if values.size == 1 and math.prod(shape) != 1:
        return np.full(shape, values[0])
    if values.size != math.prod(shape):
        raise policy_file_error(path, f"{what} has {values.size} numbers for shape {shape}")
    return values.reshape(shape)


def _int_field(value: Any, what: str, path: Path) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)
    except (TypeError, ValueError, OverflowError) as err:
        raise policy_file_error(path, f"{what} is not an integer ({value!r:.80})") from err


def parse_sb3_space(entry: Any, what: str, path: Path) -> gym.Space[Any] | None:
    """A space from the readable fields of SB3's ``data`` entry; None when its bounds are not readable.

    Raises:
        ValueError: the space is of an unsupported type or malformed.
    """
    if not isinstance(entry, dict):
        raise policy_file_error(path, f"data[{what!r}] is missing or not an object")
    type_name = str(entry.get(":type:", ""))
    if "Discrete" in type_name and "Multi" not in type_name:
        n = _int_field(entry.get("n"), f"data[{what!r}].n", path)
        start = _int_field(entry.get("start", 0), f"data[{what!r}].start", path)
        if not 1 <= n <= MAX_DISCRETE_N or abs(start) > MAX_DISCRETE_N:
            raise policy_file_error(
                path,
                f"data[{what!r}] needs 1 ≤ n ≤ {MAX_DISCRETE_N} and |start| ≤ {MAX_DISCRETE_N}, "
                f"got n={n!r:.40}, start={start!r:.40}",
            )
        return gym.spaces.Discrete(n, start=start)
    if "spaces.box.Box" not in type_name:
        raise policy_file_error(
            path, f"{what} is a {type_name or 'unknown space'}; only Box and Discrete are supported"
        )
    shape_raw = entry.get("_shape")
    if (
        not isinstance(shape_raw, list)
        or len(shape_raw) > 32
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape_raw)
    ):
        raise policy_file_error(path, f"data[{what!r}]._shape is not a list of sizes ({shape_raw!r:.80})")
    shape = tuple(shape_raw)
    if math.prod(shape) > MAX_SPACE_ELEMENTS:
        raise policy_file_error(
            path,
            f"{what} shape {shape!r:.80} has more than {MAX_SPACE_ELEMENTS} elements "
            "(robustrl.policies.spaces.MAX_SPACE_ELEMENTS)",
        )
    dtype = entry.get("dtype", "float32")
    if dtype not in ("float16", "float32", "float64", "uint8", "int8", "int16", "int32", "int64"):
        raise policy_file_error(path, f"{what} has unsupported dtype {dtype!r}")
    bounds = []
    for key in ("low", "high"):
        raw = entry.get(key)
        arr = _parse_printed_array(raw, shape, f"data[{what!r}].{key}", path) if raw is not None else None
        if arr is None:
            arr = _parse_printed_array(entry.get(f"{key}_repr"), shape, f"data[{what!r}].{key}_repr", path)
        if arr is None:
            return None
        bounds.append(arr)
    low, high = bounds
    if np.isnan(low).any() or np.isnan(high).any() or (low > high).any():
        raise policy_file_error(path, f"{what} bounds are NaN or low > high")
    return gym.spaces.Box(low=low.astype(dtype), high=high.astype(dtype), shape=shape, dtype=dtype)


def _readable_policy_kwargs(data: dict[str, Any]) -> dict[str, Any] | None:
    """``policy_kwargs`` without the pickle; None when only the pickle holds it (nothing readable beside)."""
    kwargs = data.get("policy_kwargs", {})
    if not isinstance(kwargs, dict):
        return None
    readable = {k: v for k, v in kwargs.items() if not k.startswith(":")}
    if ":serialized:" in kwargs and not readable:
        return None
    return readable


def _activation_from_kwargs(kwargs: dict[str, Any] | None, algo: str, path: Path) -> str | None:
    if kwargs is None:
        return None
    if "activation_fn" not in kwargs:
        return _DEFAULT_ACTIVATION[algo]
    text = str(kwargs["activation_fn"])
    match = re.fullmatch(r"<class '(?:[\w.]+\.)?(\w+)'>", text)
    name = match.group(1) if match else text
    if name not in _ACTIVATION_NAMES:
        raise policy_file_error(
            path,
            f"activation {name!r} is not supported (only {', '.join(_ACTIVATION_NAMES)}): robustrl's networks "
            "cannot reproduce this policy",
        )
    return _ACTIVATION_NAMES[name]


# ------------------------------------------------------------------------------------------- weights


def _detect_algo(keys: set[str], data: dict[str, Any], path: Path) -> Algo:
    extractor = [k for k in keys if "features_extractor" in k]
    if extractor:
        raise policy_file_error(
            path,
            f"uses a CNN or custom features extractor ({extractor[0]!r}); only SB3's MlpPolicy is supported "
            "(CnnPolicy/MultiInputPolicy are refused)",
        )
    if data.get("use_sde") is True or any(k.endswith("latent_sde.weight") for k in keys):
        raise policy_file_error(path, "was trained with gSDE (use_sde=True), which is not supported")
    if any(k.startswith("mlp_extractor.shared_net") for k in keys):
        raise policy_file_error(
            path, "uses a shared actor-critic trunk (mlp_extractor.shared_net), which is not supported"
        )
    if "action_net.weight" in keys and "value_net.weight" in keys:
        return "PPO" if "clip_range" in data or "n_epochs" in data else "A2C"
    if "q_net.q_net.0.weight" in keys:
        return "DQN"
    if "actor.mu.weight" in keys and "actor.log_std.weight" in keys:
        return "SAC"
    if "actor.mu.0.weight" in keys:
        return "TD3"
    module = data.get("policy_class", {})
    module = module.get("__module__") if isinstance(module, dict) else None
    raise policy_file_error(
        path,
        f"is an SB3 policy this loader does not know (policy module {module!r}, weights {sorted(keys)[:4]}); "
        "supported: PPO, A2C, DQN, SAC, TD3/DDPG with MlpPolicy",
    )


def _linear_stack(state: dict[str, torch.Tensor], prefix: str, path: Path) -> list[tuple[int, int]]:
    """``(in, out)`` of the Linear layers ``prefix{0,2,4,...}`` (Linear/activation alternating)."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.weight")
    found = sorted(int(m.group(1)) for k in state if (m := pattern.fullmatch(k)))
    if found != list(range(0, 2 * len(found), 2)):
        raise policy_file_error(
            path, f"layers {prefix}* are at indices {found}, expected 0, 2, 4, ... (Linear, activation)"
        )
    layers = []
    for i in found:
        w = state[f"{prefix}{i}.weight"]
        if w.dim() != 2:
            raise policy_file_error(path, f"weight {prefix}{i}.weight has shape {tuple(w.shape)}, expected a matrix")
        layers.append((int(w.shape[1]), int(w.shape[0])))
    return layers


def _n_critics(state: dict[str, torch.Tensor]) -> int:
    return len({m.group(1) for k in state if (m := re.match(r"critic\.qf(\d+)\.", k))})


def _critic_args(state: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    n = _n_critics(state)
    if n == 0:
        return {"with_critic": False}
    layers = _linear_stack(state, "critic.qf0.", path)
    return {
        "with_critic": True,
        "n_critics": n,
        "critic_hidden": [out for _, out in layers[:-1]],
        "critic_scaled_actions": True,
    }


def _rename(state: dict[str, torch.Tensor], rules: list[tuple[str, str]], drop: tuple[str, ...]) -> dict[str, Any]:
    """Rename keys by the first matching prefix rule; drop target networks; keep unmatched keys as they are."""
    out = {}
    for key, value in state.items():
        if key.startswith(drop):
            continue
        for old, new in rules:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        out[key] = value
    return out


def _build(
    algo: Algo,
    state: dict[str, torch.Tensor],
    obs_space: gym.Space[Any],
    act_space: gym.Space[Any],
    activation: str,
    path: Path,
    device: str | torch.device,
) -> nn.Module:
    cls: type[nn.Module]
    if algo in ("PPO", "A2C"):
        cls = ActorCriticPolicy
        pi = _linear_stack(state, "mlp_extractor.policy_net.", path)
        vf = _linear_stack(state, "mlp_extractor.value_net.", path)
        args: dict[str, Any] = {"pi_hidden": [o for _, o in pi], "vf_hidden": [o for _, o in vf]}
        mapped = dict(state)
        derived = frozenset({"action_low", "action_high"})
    elif algo == "DQN":
        cls = QNetworkPolicy
        layers = _linear_stack(state, "q_net.q_net.", path)
        args = {"hidden": [o for _, o in layers[:-1]]}
        mapped = _rename(state, [("q_net.q_net.", "q_net.")], drop=("q_net_target.",))
        derived = frozenset({"support"})
    elif algo == "SAC":
        cls = SquashedGaussianActorPolicy
        layers = _linear_stack(state, "actor.latent_pi.", path)
        args = {"hidden": [o for _, o in layers], **_critic_args(state, path)}
        rules = [("actor.", "")] + [(f"critic.qf{i}.", f"critics.{i}.") for i in range(_n_critics(state))]
        mapped = _rename(state, rules, drop=("critic_target.",))
        derived = frozenset({"action_scale", "action_bias", "action_low", "action_high"})
    else:
        cls = DeterministicActorPolicy
        layers = _linear_stack(state, "actor.mu.", path)
        args = {"hidden": [o for _, o in layers[:-1]], **_critic_args(state, path)}
        rules = [("actor.", "")] + [(f"critic.qf{i}.", f"critics.{i}.") for i in range(_n_critics(state))]
        mapped = _rename(state, rules, drop=("actor_target.", "critic_target."))
        derived = frozenset({"action_low", "action_high"})
    args.update(observation_space=obs_space, action_space=act_space, activation=activation)
    return build_module(cls, args, mapped, path, device, derived=derived)


# ------------------------------------------------------------------------------------------ entry points


def read_sb3_info(zf: zipfile.ZipFile, path: Path) -> SB3Info:
    """Read algorithm, spaces and activation from an open SB3 zip, without unpickling.

    Raises:
        ValueError: the zip is not a supported SB3 checkpoint.
    """
    data = read_json_member(zf, "data", path)
    if not isinstance(data, dict):
        raise policy_file_error(path, "member 'data' is not a JSON object")
    state = read_weights(zf, "policy.pth", path)
    return _info(data, state, zf, path)


def _info(data: dict[str, Any], state: dict[str, torch.Tensor], zf: zipfile.ZipFile, path: Path) -> SB3Info:
    algo = _detect_algo(set(state), data, path)
    version = None
    if "_stable_baselines3_version" in zf.namelist():
        version = read_member(zf, "_stable_baselines3_version", path, max_bytes=256).decode("utf-8", "replace")
    kwargs = _readable_policy_kwargs(data)
    return SB3Info(
        algo=algo,
        sb3_version=version,
        observation_space=parse_sb3_space(data.get("observation_space"), "observation_space", path),
        action_space=parse_sb3_space(data.get("action_space"), "action_space", path),
        activation=_activation_from_kwargs(kwargs, algo, path),
        policy_kwargs=kwargs or {},
    )


def _resolve_space(
    recorded: gym.Space[Any] | None,
    given: gym.Space[Any] | None,
    from_env: gym.Space[Any] | None,
    name: str,
    path: Path,
) -> gym.Space[Any]:
    """The user's space, else the env's (exact bounds), else the recorded one; shapes must agree."""
    chosen = given if given is not None else from_env if from_env is not None else recorded
    if chosen is None:
        raise policy_file_error(
            path,
            f"the {name} space's bounds are not readable without unpickling (SB3 printed them summarised); "
            f"pass env_id= or {name}_space= to load_policy",
        )
    if recorded is not None and (
        type(recorded) is not type(chosen)
        or recorded.shape != chosen.shape
        or (isinstance(recorded, gym.spaces.Discrete) and recorded.n != chosen.n)  # type: ignore[attr-defined]
    ):
        raise policy_file_error(path, f"the file's {name} space {recorded} does not match the given {chosen}")
    return chosen


def load_sb3_zip(
    zf: zipfile.ZipFile,
    path: Path,
    *,
    device: str | torch.device = "cpu",
    env_id: str | None = None,
    activation: Literal["tanh", "relu"] | None = None,
    observation_space: gym.Space[Any] | None = None,
    action_space: gym.Space[Any] | None = None,
) -> nn.Module:
    """Load an open SB3 zip (see :func:`load_sb3`)."""
    data = read_json_member(zf, "data", path)
    if not isinstance(data, dict):
        raise policy_file_error(path, "member 'data' is not a JSON object")
    state = read_weights(zf, "policy.pth", path)
    info = _info(data, state, zf, path)
    env_obs, env_act = env_spaces(env_id) if env_id is not None else (None, None)
    obs_space = _resolve_space(info.observation_space, observation_space, env_obs, "observation", path)
    act_space = _resolve_space(info.action_space, action_space, env_act, "action", path)
    if isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 3 and obs_space.dtype == np.uint8:
        raise policy_file_error(
            path, "has image observations (uint8, 3 dims), which SB3 rescales by 1/255; not supported"
        )
    if activation is not None and info.activation not in (None, activation):
        logger.warning("%s: using activation=%r although policy_kwargs says %r", path, activation, info.activation)
    act = activation or info.activation
    if act is None:
        raise policy_file_error(
            path, "its activation is not readable without unpickling; pass activation='tanh' or 'relu'"
        )
    if act not in _ACTIVATION_NAMES.values():
        raise ValueError(f"activation must be 'tanh' or 'relu', got {act!r}")
    return _build(info.algo, state, obs_space, act_space, act, path, device)


def load_sb3(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    env_id: str | None = None,
    activation: Literal["tanh", "relu"] | None = None,
    observation_space: gym.Space[Any] | None = None,
    action_space: gym.Space[Any] | None = None,
) -> nn.Module:
    """Load a Stable-Baselines3 ``.zip`` (PPO, A2C, DQN, SAC, TD3/DDPG ``MlpPolicy``) without unpickling.

    PPO/A2C become :class:`ActorCriticPolicy` (``value``, ``dist``, ``logits``), DQN a
    :class:`QNetworkPolicy` (``q_values``), SAC a :class:`SquashedGaussianActorPolicy` and TD3/DDPG a
    :class:`DeterministicActorPolicy` (both with ``critic(obs, action)``, the minimum over SB3's critics,
    taking actions in the env's units). Target networks and optimiser states are ignored.

    Args:
        path: the SB3 zip.
        device: where the returned module lives.
        env_id: take the spaces from this Gymnasium env (exact bounds; needed when SB3 printed the bounds
            summarised); they must agree in shape with the file.
        activation: the hidden activation, when ``policy_kwargs`` in the file is not readable.
        observation_space: override the observation space.
        action_space: override the action space.

    Returns:
        The policy module in eval mode; ``act(obs)`` equals SB3's ``predict(obs, deterministic=True)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a supported SB3 checkpoint (the message says why).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"SB3 file {str(p)!r} does not exist")
    with open_zip(p) as zf:
        if not {"data", "policy.pth"} <= set(zf.namelist()):
            raise policy_file_error(p, "is not an SB3 checkpoint: it lacks the members 'data' and 'policy.pth'")
        return load_sb3_zip(
            zf,
            p,
            device=device,
            env_id=env_id,
            activation=activation,
            observation_space=observation_space,
            action_space=action_space,
        )

"""Import Stable-Baselines3 ``.zip`` checkpoints (PPO, A2C, DQN, SAC, TD3/DDPG; ``MlpPolicy``, ``CnnPolicy``) safely.

An SB3 zip holds ``data`` (JSON in which non-JSON objects are base64 *cloudpickles* under
``":serialized:"``), ``policy.pth`` (the policy's ``state_dict``) and optimiser states. This module never
decodes those pickles and never imports SB3:

* the algorithm and the architecture come from the names and shapes in ``policy.pth``
  (read with ``torch.load(weights_only=True)``);
* the spaces come from the readable fields SB3 writes beside each pickle (``_shape``, ``dtype``, the
  printed ``low``/``high`` arrays, ``n``);
* the activation and ``normalize_images`` come from the readable ``policy_kwargs`` entries, or SB3's
  defaults when ``policy_kwargs`` does not set them;
* a ``CnnPolicy``'s Nature CNN is recognised from its weight names and shapes (PPO/A2C, shared or separate
  actor and critic CNNs, and DQN).

What cannot be read this way the caller passes: ``activation=`` (and ``normalize_images=`` for images)
when ``policy_kwargs`` is not readable, ``env_id=`` (or ``observation_space=``/``action_space=``) when a
space's bounds were too large for SB3 to print in full (always for images). With the env's channels-last
image space ``[H, W, C]``, the policy transposes observations itself as SB3's ``VecTransposeImage`` did.
``vec_normalize=`` takes the run's ``vec_normalize.pkl`` (read without unpickling by
:mod:`robustrl.policies.vec_normalize`) and puts SB3's observation normalisation inside the policy.
Refused, with a ``PolicyFileError`` naming the file: ``MultiInputPolicy`` (dict observations), custom
feature extractors, ``CnnPolicy`` for SAC/TD3, gSDE, shared actor-critic trunks, recurrent or other
sb3-contrib policies, spaces other than Box/Discrete.

Parity: ``load_sb3(path).act(obs)`` equals ``model.predict(obs, deterministic=True)[0]`` (Box actions are
clipped to the action space for PPO/A2C and mapped from ``[-1, 1]`` with SB3's ``unscale_action`` for
SAC/TD3); with ``vec_normalize=``, ``act(raw)`` equals ``model.predict(venv.normalize_obs(raw))``.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import torch
from torch import nn

from robustrl.policies.actors import DeterministicActorPolicy, SquashedGaussianActorPolicy
from robustrl.policies.features import FeaturesExtractor, is_channels_last_image, is_image_space
from robustrl.policies.networks import ActorCriticPolicy, QNetworkPolicy
from robustrl.policies.reading import (
    build_module,
    open_zip,
    policy_file_error,
    read_json_member,
    read_member,
    read_weights,
)
from robustrl.policies.sb3_data import (
    ACTIVATION_NAMES,
    activation_from_kwargs,
    box_shape_dtype,
    class_name,
    normalize_images_from_kwargs,
    parse_sb3_space,
    readable_policy_kwargs,
    refuse_multi_input,
)
from robustrl.policies.spaces import env_spaces
from robustrl.policies.vec_normalize import VecNormalizeStats, read_vec_normalize

logger = logging.getLogger(__name__)

Algo = Literal["PPO", "A2C", "DQN", "SAC", "TD3"]

_NATURE_CNN_KEYS = frozenset(
    f"{layer}.{p}" for layer in ("cnn.0", "cnn.2", "cnn.4", "linear.0") for p in ("weight", "bias")
)
_EXTRACTOR_CLASSES = {"FlattenExtractor": "flatten", "NatureCNN": "nature_cnn"}


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
    features_extractor: FeaturesExtractor = "flatten"
    """``"flatten"`` (``MlpPolicy``) or ``"nature_cnn"`` (``CnnPolicy``), from the weight names."""
    normalize_images: bool | None = True
    """``policy_kwargs["normalize_images"]`` (SB3's default True); None when ``policy_kwargs`` is not readable."""


# ------------------------------------------------------------------------------------------- weights


def _detect_extractor(keys: set[str], kwargs: dict[str, Any] | None, path: Path) -> FeaturesExtractor:
    """``"nature_cnn"`` when every ``*features_extractor.*`` group of weights is SB3's NatureCNN, else ``"flatten"``.

    Raises:
        PolicyFileError: a features extractor other than SB3's ``FlattenExtractor``/``NatureCNN``.
    """
    groups: dict[str, set[str]] = {}
    for key in keys:
        if "features_extractor." in key:
            owner, _, rest = key.partition("features_extractor.")
            groups.setdefault(owner, set()).add(rest)
    found: FeaturesExtractor = "nature_cnn" if groups else "flatten"
    named = class_name(kwargs["features_extractor_class"]) if kwargs and "features_extractor_class" in kwargs else None
    if any(rest != _NATURE_CNN_KEYS for rest in groups.values()) or named not in (None, *_EXTRACTOR_CLASSES):
        example = sorted(k for k in keys if "features_extractor." in k)[:3]
        raise policy_file_error(
            path,
            f"uses a custom features extractor ({named or 'weights ' + str(example)}); only SB3's "
            "FlattenExtractor (MlpPolicy) and NatureCNN (CnnPolicy) are supported",
        )
    if named is not None and _EXTRACTOR_CLASSES[named] != found:
        raise policy_file_error(path, f"policy_kwargs names {named}, but its weights are those of {found}")
    return found


def _detect_algo(keys: set[str], data: dict[str, Any], path: Path) -> Algo:
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
        "supported: PPO, A2C, DQN, SAC, TD3/DDPG with MlpPolicy, and PPO, A2C, DQN with CnnPolicy",
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


@dataclass(frozen=True)
class _Inputs:
    """How raw observations become features (see :class:`~robustrl.policies.features.ObservationFeatures`)."""

    extractor: FeaturesExtractor
    normalize_images: bool
    channels_last: bool
    stats: VecNormalizeStats | None


def _cnn_features_dim(state: dict[str, torch.Tensor], prefix: str, path: Path) -> int:
    weight = state[f"{prefix}linear.0.weight"]
    if weight.dim() != 2:
        raise policy_file_error(
            path, f"weight {prefix}linear.0.weight has shape {tuple(weight.shape)}, expected a matrix"
        )
    return int(weight.shape[0])


def _actor_critic_cnn(state: dict[str, torch.Tensor], path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Arguments and renamed weights of a PPO/A2C ``CnnPolicy`` (shared or separate actor and critic CNNs).

    SB3 stores the actor's CNN as ``pi_features_extractor`` and again as ``features_extractor``, the
    critic's as ``vf_features_extractor`` (the same tensors when shared); SB3 before 1.8 stored only
    ``features_extractor``. The critic's CNN counts as shared when its weights equal the actor's.
    """
    has = {prefix for prefix in ("pi_", "vf_") if any(k.startswith(f"{prefix}features_extractor.") for k in state)}
    pi = "pi_features_extractor." if "pi_" in has else "features_extractor."
    vf = "vf_features_extractor." if "vf_" in has else pi
    share = all(torch.equal(state[pi + k], state[vf + k]) for k in _NATURE_CNN_KEYS)
    rules = [(pi, "features.extractor.")] + ([] if share else [(vf, "vf_extractor.")])
    keep = {pi} if share else {pi, vf}
    drop = tuple({"features_extractor.", "pi_features_extractor.", "vf_features_extractor."} - keep)
    args = {"features_dim": _cnn_features_dim(state, pi, path), "share_features_extractor": share}
    return args, _rename(state, rules, drop=drop)


def _with_vec_normalize(
    args: dict[str, Any], mapped: dict[str, Any], stats: VecNormalizeStats, obs_space: gym.Space[Any]
) -> None:
    """Put VecNormalize's observation statistics inside the policy (float64, SB3's exact arithmetic)."""
    if not isinstance(obs_space, gym.spaces.Box):
        raise policy_file_error(stats.path, f"VecNormalize statistics need a Box observation space, not {obs_space}")
    if stats.mean is None or stats.var is None:
        logger.info("%s: norm_obs is False, so the statistics do not change what the policy sees", stats.path)
        return
    if stats.mean.shape != obs_space.shape:
        raise policy_file_error(
            stats.path,
            f"holds statistics for observations of shape {stats.mean.shape}, but the policy's observations "
            f"have shape {obs_space.shape}",
        )
    args.update(normalize_obs=True, obs_norm_clip=stats.clip_obs, obs_norm_eps=stats.epsilon, obs_norm_dtype="float64")
    mapped["features.obs_norm.mean"] = torch.from_numpy(stats.mean)
    mapped["features.obs_norm.var"] = torch.from_numpy(stats.var)
    mapped["features.obs_norm.count"] = torch.tensor(stats.count, dtype=torch.float64)


def _build(
    algo: Algo,
    state: dict[str, torch.Tensor],
    obs_space: gym.Space[Any],
    act_space: gym.Space[Any],
    activation: str,
    inputs: _Inputs,
    path: Path,
    device: str | torch.device,
) -> nn.Module:
    cls: type[nn.Module]
    image_args: dict[str, Any] = {"normalize_images": inputs.normalize_images, "channels_last": inputs.channels_last}
    if inputs.extractor == "nature_cnn":
        image_args["features_extractor"] = "nature_cnn"
    if algo in ("PPO", "A2C"):
        cls = ActorCriticPolicy
        pi = _linear_stack(state, "mlp_extractor.policy_net.", path)
        vf = _linear_stack(state, "mlp_extractor.value_net.", path)
        args: dict[str, Any] = {"pi_hidden": [o for _, o in pi], "vf_hidden": [o for _, o in vf], **image_args}
        mapped = dict(state)
        if inputs.extractor == "nature_cnn":
            cnn_args, mapped = _actor_critic_cnn(state, path)
            args.update(cnn_args)
        derived = frozenset({"action_low", "action_high"})
    elif algo == "DQN":
        cls = QNetworkPolicy
        layers = _linear_stack(state, "q_net.q_net.", path)
        args = {"hidden": [o for _, o in layers[:-1]], **image_args}
        if inputs.extractor == "nature_cnn":
            args["features_dim"] = _cnn_features_dim(state, "q_net.features_extractor.", path)
        rules = [("q_net.q_net.", "q_net."), ("q_net.features_extractor.", "features.extractor.")]
        mapped = _rename(state, rules, drop=("q_net_target.",))
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
    if inputs.stats is not None:
        _with_vec_normalize(args, mapped, inputs.stats, obs_space)
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
    refuse_multi_input(data, path)
    kwargs = readable_policy_kwargs(data)
    extractor = _detect_extractor(set(state), kwargs, path)
    algo = _detect_algo(set(state), data, path)
    if extractor == "nature_cnn" and algo not in ("PPO", "A2C", "DQN"):
        raise policy_file_error(path, f"is a {algo} CnnPolicy; CnnPolicy is supported for PPO, A2C and DQN only")
    version = None
    if "_stable_baselines3_version" in zf.namelist():
        version = read_member(zf, "_stable_baselines3_version", path, max_bytes=256).decode("utf-8", "replace")
    return SB3Info(
        algo=algo,
        sb3_version=version,
        observation_space=parse_sb3_space(data.get("observation_space"), "observation_space", path),
        action_space=parse_sb3_space(data.get("action_space"), "action_space", path),
        activation=activation_from_kwargs(kwargs, algo, path),
        policy_kwargs=kwargs or {},
        features_extractor=extractor,
        normalize_images=normalize_images_from_kwargs(kwargs, path),
    )


def _resolve_space(
    recorded: gym.Space[Any] | None,
    recorded_shape: tuple[int, ...] | None,
    given: gym.Space[Any] | None,
    from_env: gym.Space[Any] | None,
    name: str,
    path: Path,
) -> tuple[gym.Space[Any], bool]:
    """The user's space, else the env's (exact bounds), else the recorded one; shapes must agree.

    Returns:
        The space, and whether it is the channels-last ``[H, W, C]`` form of the recorded ``[C, H, W]``
        image space (SB3 wrapped such an env in ``VecTransposeImage``; the policy then transposes itself).
    """
    chosen = given if given is not None else from_env if from_env is not None else recorded
    if chosen is None:
        raise policy_file_error(
            path,
            f"the {name} space's bounds are not readable without unpickling (SB3 printed them summarised); "
            f"pass env_id= or {name}_space= to load_policy",
        )
    mismatch = policy_file_error(
        path, f"the file's {name} space {recorded or recorded_shape} does not match the given {chosen}"
    )
    if recorded is not None and type(recorded) is not type(chosen):
        raise mismatch
    if isinstance(recorded, gym.spaces.Discrete) and recorded.n != chosen.n:  # type: ignore[attr-defined]
        raise mismatch
    shape = tuple(chosen.shape or ())
    expected = recorded_shape if recorded_shape is not None else tuple(recorded.shape or ()) if recorded else shape
    if isinstance(chosen, gym.spaces.Box) and shape != expected:
        if name == "observation" and is_channels_last_image(chosen) and (shape[2], shape[0], shape[1]) == expected:
            return chosen, True
        raise mismatch
    return chosen, False


def _inputs(
    info: SB3Info,
    obs_entry: Any,
    obs_space: gym.Space[Any],
    channels_last: bool,
    normalize_images: bool | None,
    stats: VecNormalizeStats | None,
    path: Path,
) -> _Inputs:
    """Where image scaling and transposition apply, as SB3 decides them; refuses what our networks cannot do."""
    recorded_dtype = obs_entry.get("dtype") if isinstance(obs_entry, dict) else None
    scale = False
    if is_image_space(obs_space) and recorded_dtype == "uint8":  # SB3 scales what *its* space calls an image
        if normalize_images is not None and info.normalize_images not in (None, normalize_images):
            logger.warning("%s: normalize_images=%r although policy_kwargs says %r", path, normalize_images,
                           info.normalize_images)  # fmt: skip
        scale_flag = normalize_images if normalize_images is not None else info.normalize_images
        if scale_flag is None:
            raise policy_file_error(
                path,
                "has image observations, and whether SB3 divided them by 255 (policy_kwargs['normalize_images']) "
                "is not readable without unpickling; pass normalize_images=True or False",
            )
        scale = scale_flag
    if info.algo in ("SAC", "TD3") and (scale or channels_last):
        raise policy_file_error(
            path, f"is a {info.algo} policy on image observations; images are supported for PPO, A2C and DQN only"
        )
    if info.features_extractor == "nature_cnn" and not isinstance(obs_space, gym.spaces.Box):
        raise policy_file_error(path, f"is a CnnPolicy, but its observation space is {obs_space}")
    return _Inputs(info.features_extractor, scale, channels_last, stats)


def load_sb3_zip(
    zf: zipfile.ZipFile,
    path: Path,
    *,
    device: str | torch.device = "cpu",
    env_id: str | None = None,
    activation: Literal["tanh", "relu"] | None = None,
    normalize_images: bool | None = None,
    observation_space: gym.Space[Any] | None = None,
    action_space: gym.Space[Any] | None = None,
    vec_normalize: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """Load an open SB3 zip (see :func:`load_sb3`)."""
    data = read_json_member(zf, "data", path)
    if not isinstance(data, dict):
        raise policy_file_error(path, "member 'data' is not a JSON object")
    state = read_weights(zf, "policy.pth", path)
    info = _info(data, state, zf, path)
    obs_entry = data.get("observation_space")
    recorded_shape = None
    if isinstance(info.observation_space, gym.spaces.Box) or (
        info.observation_space is None and isinstance(obs_entry, dict)
    ):
        recorded_shape, _ = box_shape_dtype(obs_entry, "observation_space", path)  # type: ignore[arg-type]
    env_obs, env_act = env_spaces(env_id) if env_id is not None else (None, None)
    obs_space, transposed = _resolve_space(
        info.observation_space, recorded_shape, observation_space, env_obs, "observation", path
    )
    act_space, _ = _resolve_space(info.action_space, None, action_space, env_act, "action", path)
    stats = read_vec_normalize(vec_normalize) if vec_normalize is not None else None
    inputs = _inputs(info, obs_entry, obs_space, transposed, normalize_images, stats, path)
    if activation is not None and info.activation not in (None, activation):
        logger.warning("%s: using activation=%r although policy_kwargs says %r", path, activation, info.activation)
    act = activation or info.activation
    if act is None:
        raise policy_file_error(
            path, "its activation is not readable without unpickling; pass activation='tanh' or 'relu'"
        )
    if act not in ACTIVATION_NAMES.values():
        raise ValueError(f"activation must be 'tanh' or 'relu', got {act!r}")
    return _build(info.algo, state, obs_space, act_space, act, inputs, path, device)


def load_sb3(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    env_id: str | None = None,
    activation: Literal["tanh", "relu"] | None = None,
    normalize_images: bool | None = None,
    observation_space: gym.Space[Any] | None = None,
    action_space: gym.Space[Any] | None = None,
    vec_normalize: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """Load a Stable-Baselines3 ``.zip`` (PPO, A2C, DQN, SAC, TD3/DDPG; MlpPolicy, CnnPolicy) without unpickling.

    PPO/A2C become :class:`ActorCriticPolicy` (``value``, ``dist``, ``logits``), DQN a
    :class:`QNetworkPolicy` (``q_values``), SAC a :class:`SquashedGaussianActorPolicy` and TD3/DDPG a
    :class:`DeterministicActorPolicy` (both with ``critic(obs, action)``, the minimum over SB3's critics,
    taking actions in the env's units). Target networks and optimiser states are ignored. A ``CnnPolicy``
    (PPO, A2C, DQN) keeps SB3's Nature CNN, ``normalize_images`` and, given a channels-last env space,
    SB3's ``VecTransposeImage`` inside the module.

    Args:
        path: the SB3 zip.
        device: where the returned module lives.
        env_id: take the spaces from this Gymnasium env (exact bounds; needed when SB3 printed the bounds
            summarised, as for every image space); they must agree in shape with the file, or be the
            channels-last ``[H, W, C]`` form of its ``[C, H, W]`` image space.
        activation: the hidden activation, when ``policy_kwargs`` in the file is not readable.
        normalize_images: whether SB3 divided image observations by 255, when ``policy_kwargs`` is not
            readable.
        observation_space: override the observation space (same rules as ``env_id``).
        action_space: override the action space.
        vec_normalize: the run's ``vec_normalize.pkl`` (SB3's ``VecNormalize.save``), read without
            unpickling (:func:`~robustrl.policies.vec_normalize.read_vec_normalize`); the policy then takes
            raw observations and normalises them as SB3's ``VecNormalize.normalize_obs`` does.

    Returns:
        The policy module in eval mode; ``act(obs)`` equals SB3's ``predict(obs, deterministic=True)``
        (``predict(venv.normalize_obs(obs))`` with ``vec_normalize``).

    Raises:
        FileNotFoundError: ``path`` (or ``vec_normalize``) does not exist.
        PolicyFileError: the file (or ``vec_normalize``) is not a supported SB3 checkpoint (the message names
            the file and says why).
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
            normalize_images=normalize_images,
            observation_space=observation_space,
            action_space=action_space,
            vec_normalize=vec_normalize,
        )

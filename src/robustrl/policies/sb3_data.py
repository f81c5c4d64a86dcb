"""The readable fields of an SB3 zip's ``data`` member: spaces, ``policy_kwargs`` entries, the policy class.

SB3 stores every non-JSON object of ``data`` as a base64 cloudpickle under ``":serialized:"`` and, beside
it, readable fields (a space's ``_shape``, ``dtype`` and printed bounds; the printed class of
``policy_kwargs["activation_fn"]``; the name of the policy class's ``__init__``). These functions read
only those fields: the pickles are never decoded.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robustrl.policies.reading import policy_file_error
from robustrl.policies.spaces import MAX_DISCRETE_N, MAX_SPACE_ELEMENTS

ACTIVATION_NAMES = {"ReLU": "relu", "Tanh": "tanh"}
"""SB3 activation classes robustrl's networks reproduce, and their names there."""
DEFAULT_ACTIVATION: dict[str, str] = {"PPO": "tanh", "A2C": "tanh", "DQN": "relu", "SAC": "relu", "TD3": "relu"}
"""SB3's activation when ``policy_kwargs`` does not set one."""
MULTI_INPUT = "MultiInputPolicy (dict observations) is not supported"
"""The refusal of dict observations."""


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
    if "spaces.dict.Dict" in type_name:
        raise policy_file_error(path, f"has a dict {what} space: {MULTI_INPUT}")
    if "spaces.box.Box" not in type_name:
        raise policy_file_error(
            path, f"{what} is a {type_name or 'unknown space'}; only Box and Discrete are supported"
        )
    shape, dtype = box_shape_dtype(entry, what, path)
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


def box_shape_dtype(entry: dict[str, Any], what: str, path: Path) -> tuple[tuple[int, ...], Any]:
    """The ``_shape`` and ``dtype`` fields of SB3's ``data`` entry for a Box (readable even when its bounds are not).

    Raises:
        PolicyFileError: the shape is not a list of at most 32 sizes, has more than
            :data:`~robustrl.policies.spaces.MAX_SPACE_ELEMENTS` elements, or the dtype is not supported.
    """
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
    return shape, dtype


def readable_policy_kwargs(data: dict[str, Any]) -> dict[str, Any] | None:
    """``policy_kwargs`` without the pickle; None when only the pickle holds it (nothing readable beside)."""
    kwargs = data.get("policy_kwargs", {})
    if not isinstance(kwargs, dict):
        return None
    readable = {k: v for k, v in kwargs.items() if not k.startswith(":")}
    if ":serialized:" in kwargs and not readable:
        return None
    return readable


def class_name(text: Any) -> str:
    """``ReLU`` from SB3's printed ``"<class 'torch.nn.modules.activation.ReLU'>"`` (the text itself otherwise)."""
    match = re.fullmatch(r"<class '(?:[\w.]+\.)?(\w+)'>", str(text))
    return match.group(1) if match else str(text)


def activation_from_kwargs(kwargs: dict[str, Any] | None, algo: str, path: Path) -> str | None:
    """``"relu"``/``"tanh"`` from ``policy_kwargs["activation_fn"]``, the algorithm's default when unset.

    Returns None when ``policy_kwargs`` is not readable (see :func:`readable_policy_kwargs`).

    Raises:
        PolicyFileError: an activation robustrl's networks do not have.
    """
    if kwargs is None:
        return None
    if "activation_fn" not in kwargs:
        return DEFAULT_ACTIVATION[algo]
    name = class_name(kwargs["activation_fn"])
    if name not in ACTIVATION_NAMES:
        raise policy_file_error(
            path,
            f"activation {name!r} is not supported (only {', '.join(ACTIVATION_NAMES)}): robustrl's networks "
            "cannot reproduce this policy",
        )
    return ACTIVATION_NAMES[name]


def normalize_images_from_kwargs(kwargs: dict[str, Any] | None, path: Path) -> bool | None:
    """``policy_kwargs["normalize_images"]`` (SB3's default True when unset); None when not readable.

    Raises:
        PolicyFileError: the value is not a bool.
    """
    if kwargs is None:
        return None
    value = kwargs.get("normalize_images", True)
    if not isinstance(value, bool):
        raise policy_file_error(path, f"policy_kwargs['normalize_images'] is not a bool ({value!r:.40})")
    return value


def refuse_multi_input(data: dict[str, Any], path: Path) -> None:
    """Refuse a ``MultiInputPolicy`` (named in the readable ``policy_class`` fields) or a dict observation space."""
    policy_class = data.get("policy_class")
    init = policy_class.get("__init__") if isinstance(policy_class, dict) else None
    obs = data.get("observation_space")
    obs_type = obs.get(":type:") if isinstance(obs, dict) else None
    if "MultiInput" in str(init) or "spaces.dict.Dict" in str(obs_type):
        raise policy_file_error(path, f"is an SB3 MultiInputPolicy: {MULTI_INPUT}")

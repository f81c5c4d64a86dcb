"""Gymnasium spaces to and from JSON (Box and Discrete), with validation of untrusted input."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

_BOX_DTYPES = ("float16", "float32", "float64", "uint8", "int8", "int16", "int32", "int64")

MAX_SPACE_ELEMENTS = 1 << 20
"""Most elements of a Box read from a file (a 1024×1024 image; Atari frames are 100 800)."""
MAX_DISCRETE_N = 1 << 31
"""Largest ``n`` (and ``|start|``) of a Discrete space read from a file."""


def _encode_scalar(x: np.generic) -> float | str:
    """The shortest decimal that reads back to the same value in ``x``'s dtype; inf/nan as strings."""
    value = float(str(x))  # numpy prints the shortest round-tripping repr for the scalar's own dtype
    return value if math.isfinite(value) else str(value)


def _encode_bound(arr: np.ndarray) -> Any:
    """A scalar when every entry is equal (compact for images), else a nested list; inf as a string."""
    flat = arr.reshape(-1)
    if flat.size and bool(np.all(flat == flat[0])):
        return _encode_scalar(flat[0])
    encoded = np.empty(flat.size, dtype=object)
    encoded[:] = [_encode_scalar(x) for x in flat]
    return encoded.reshape(arr.shape).tolist()


def space_to_json(space: gym.Space[Any]) -> dict[str, Any]:
    """Describe a ``Box`` or ``Discrete`` space as JSON-ready values.

    Example:
        >>> space_to_json(gym.spaces.Discrete(3))
        {'type': 'Discrete', 'n': 3, 'start': 0}
    """
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": _encode_bound(space.low),
            "high": _encode_bound(space.high),
        }
    raise ValueError(f"cannot save space {space!r}: only Box and Discrete spaces are supported")


def _decode_bound(value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    def conv(x: Any) -> float:
        if isinstance(x, bool) or not isinstance(x, int | float | str):
            raise ValueError(f"{what}: bound entry {x!r} is not a number")
        try:
            return float(x)
        except ValueError as err:
            raise ValueError(f"{what}: bound entry {x!r} is not a number") from err

    if isinstance(value, list):
        try:
            arr = np.vectorize(conv, otypes=[np.float64])(np.asarray(value, dtype=object))
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from err
        if arr.shape != shape:
            raise ValueError(f"{what}: bound has shape {arr.shape}, space shape is {shape}")
        return arr
    return np.full(shape, conv(value))


def space_from_json(data: Any, *, what: str = "space") -> gym.Space[Any]:
    """Rebuild a space written by :func:`space_to_json`; a malformed description raises ``ValueError``.

    Args:
        data: the JSON description.
        what: how to name the input in error messages (e.g. the file and field).
    """
    if not isinstance(data, dict) or data.get("type") not in ("Box", "Discrete"):
        raise ValueError(f"{what}: expected {{'type': 'Box' | 'Discrete', ...}}, got {data!r:.200}")
    if data["type"] == "Discrete":
        n, start = data.get("n"), data.get("start", 0)
        if (
            not isinstance(n, int)
            or isinstance(n, bool)
            or not 1 <= n <= MAX_DISCRETE_N
            or not isinstance(start, int)
            or isinstance(start, bool)
            or abs(start) > MAX_DISCRETE_N
        ):
            raise ValueError(
                f"{what}: Discrete needs an integer n ≥ 1 (at most {MAX_DISCRETE_N}) and an integer start, "
                f"got n={n!r:.40}, start={start!r:.40}"
            )
        return gym.spaces.Discrete(n, start=start)
    shape = data.get("shape")
    if (
        not isinstance(shape, list)
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        or len(shape) > 32
        or math.prod(shape) > MAX_SPACE_ELEMENTS
    ):
        raise ValueError(
            f"{what}: Box shape must be a list of at most 32 non-negative integers with at most "
            f"{MAX_SPACE_ELEMENTS} elements in all (robustrl.policies.spaces.MAX_SPACE_ELEMENTS), got {shape!r:.200}"
        )
    dtype = data.get("dtype", "float32")
    if dtype not in _BOX_DTYPES:
        raise ValueError(f"{what}: unsupported Box dtype {dtype!r}")
    low = _decode_bound(data.get("low", "-inf"), tuple(shape), what)
    high = _decode_bound(data.get("high", "inf"), tuple(shape), what)
    if np.isnan(low).any() or np.isnan(high).any() or (low > high).any():
        raise ValueError(f"{what}: Box bounds must not be NaN and need low ≤ high")
    return gym.spaces.Box(low=low.astype(dtype), high=high.astype(dtype), shape=tuple(shape), dtype=dtype)


def spaces_equal(a: gym.Space[Any], b: gym.Space[Any]) -> bool:
    """Whether two Box/Discrete spaces are the same (type, shape, dtype, bounds, n)."""
    if isinstance(a, gym.spaces.Discrete) and isinstance(b, gym.spaces.Discrete):
        return bool(a.n == b.n and a.start == b.start)
    if isinstance(a, gym.spaces.Box) and isinstance(b, gym.spaces.Box):
        return bool(
            a.shape == b.shape
            and a.dtype == b.dtype
            and np.array_equal(a.low, b.low)
            and np.array_equal(a.high, b.high)
        )
    return False


def env_spaces(env_id: str) -> tuple[gym.Space[Any], gym.Space[Any]]:
    """Observation and action space of one copy of Gymnasium env ``env_id`` (the env is made and closed).

    Raises:
        ValueError: ``env_id`` is unknown or the env cannot be made.
    """
    try:
        env = gym.make(env_id)
    except Exception as err:  # gymnasium raises several error types for unknown/broken ids
        raise ValueError(f"unknown or broken env id {env_id!r}: {err}") from err
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()

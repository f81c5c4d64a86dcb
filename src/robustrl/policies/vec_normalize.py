"""Stable-Baselines3 ``VecNormalize`` statistics (``vec_normalize.pkl``), read as data without unpickling.

Agents trained under SB3's ``VecNormalize`` wrapper (every RL-Zoo MuJoCo agent) act on normalised
observations ``clip((obs − mean) / sqrt(var + epsilon), −clip_obs, clip_obs)``, computed in float64 and cast
to float32 (``VecNormalize.normalize_obs``), and ship the statistics in ``vec_normalize.pkl``, a pickle of
the wrapper (``VecNormalize.save``). :func:`read_vec_normalize` reads that file with
:func:`robustrl.policies.pickle_data.read_pickle_data`, which never imports or calls anything from it, and
keeps only what changes actions: the observation ``RunningMeanStd`` (``mean``, ``var``, ``count``),
``clip_obs``, ``epsilon`` and ``norm_obs``. Reward statistics (``ret_rms``, ``clip_reward``, ``gamma``) are
ignored. ``load_policy(zip, vec_normalize=pkl)`` puts the statistics inside the policy module (its
``obs_norm``), so the policy takes raw observations and attacks differentiate through the normalisation.

The objects the pickle may hold, read as data and never instantiated, are SB3's ``VecNormalize`` and
``RunningMeanStd``, the gym/Gymnasium spaces the wrapper keeps (with the numpy random generators they may
hold) and numpy arrays of plain numeric dtypes; any other global refuses the file.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import robustrl.policies.spaces as spaces
from robustrl.policies.pickle_data import PickledArray, Record, read_pickle_data
from robustrl.policies.reading import policy_file_error

MAX_VEC_NORMALIZE_BYTES = 16 << 20
"""Largest ``vec_normalize.pkl`` read: 16 MiB (an RL-Zoo MuJoCo file is about 2 KB)."""
MAX_PICKLE_OPS = 1 << 20
"""Most pickle opcodes read from a ``vec_normalize.pkl`` (an RL-Zoo file has a few hundred)."""

VEC_NORMALIZE = "stable_baselines3.common.vec_env.vec_normalize.VecNormalize"
RUNNING_MEAN_STD = "stable_baselines3.common.running_mean_std.RunningMeanStd"
_SPACES = [
    f"{package}.spaces.{module}.{name}"
    for package in ("gymnasium", "gym")
    for module, name in [("box", "Box"), ("discrete", "Discrete"), ("multi_discrete", "MultiDiscrete"),
                         ("multi_binary", "MultiBinary"), ("dict", "Dict")]
]  # fmt: skip
_NUMPY_RANDOM = [
    "numpy.random._pickle.__generator_ctor",
    "numpy.random._pickle.__bit_generator_ctor",
    "numpy.random._pickle.__randomstate_ctor",
    "numpy.random.__RandomState_ctor",
    "numpy.random._pcg64.PCG64",
    "numpy.random._pcg64.PCG64DXSM",
    "numpy.random._mt19937.MT19937",
    "numpy.random._philox.Philox",
    "numpy.random._sfc64.SFC64",
    "numpy.random.bit_generator.SeedSequence",
    "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
]
RECORD_CLASSES = frozenset([VEC_NORMALIZE, RUNNING_MEAN_STD, *_SPACES, *_NUMPY_RANDOM])
"""Every global a ``vec_normalize.pkl`` may name (each read as a :class:`~robustrl.policies.pickle_data.Record`)."""


@dataclass(frozen=True)
class VecNormalizeStats:
    """The observation statistics of an SB3 ``VecNormalize`` wrapper (see :func:`read_vec_normalize`).

    Example:
        >>> stats = VecNormalizeStats(Path("vn.pkl"), np.array([1.0]), np.array([4.0]), 10.0, 10.0, 1e-8, True)
        >>> stats.normalize(np.array([[5.0], [100.0]], dtype=np.float32))
        array([[ 2.],
               [10.]], dtype=float32)
    """

    path: Path
    """The file read."""
    mean: np.ndarray | None
    """float64 ``[*obs_shape]`` running mean of the observations; None when ``norm_obs`` is False."""
    var: np.ndarray | None
    """float64 ``[*obs_shape]`` running variance; None when ``norm_obs`` is False."""
    count: float
    """Number of observations the statistics summarise (0 when ``norm_obs`` is False)."""
    clip_obs: float
    """Normalised observations are clipped to ``[-clip_obs, clip_obs]``."""
    epsilon: float
    """Added to the variance before the square root."""
    norm_obs: bool
    """Whether the wrapper normalised observations (if not, it changes nothing the policy sees)."""

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """SB3's ``VecNormalize.normalize_obs`` in numpy: float32 ``[N, *obs_shape]`` from raw ``obs``."""
        if self.mean is None or self.var is None:
            return np.asarray(obs, dtype=np.float32)
        normalised = (obs - self.mean) / np.sqrt(self.var + self.epsilon)
        return np.clip(normalised, -self.clip_obs, self.clip_obs).astype(np.float32)


def _fields(record: Any, kind: str, path: Path, what: str) -> dict[str, Any]:
    """The attribute dict of a record of class ``kind``."""
    if not isinstance(record, Record) or record.kind != kind:
        found = (
            record.kind
            if isinstance(record, Record)
            else "numpy array"
            if isinstance(record, PickledArray)
            else type(record).__name__
        )
        raise policy_file_error(path, f"{what} is a {found}, not SB3's {kind.rsplit('.', 1)[-1]}")
    if not isinstance(record.state, dict) or not all(isinstance(k, str) for k in record.state):
        raise policy_file_error(path, f"{what} has no attribute dict")
    return record.state


def _number(fields: dict[str, Any], key: str, path: Path, *, positive: bool, owner: str = "VecNormalize") -> float:
    value = fields.get(key)
    try:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError
        number = float(value)
    except (TypeError, OverflowError):
        number = math.nan
    if not math.isfinite(number):
        raise policy_file_error(path, f"{owner}.{key} is not a finite number")
    if number < 0 or (positive and number == 0):
        raise policy_file_error(path, f"{owner}.{key} must be {'> 0' if positive else '≥ 0'}, got {number!r}")
    return number


def _stat_array(fields: dict[str, Any], key: str, path: Path) -> np.ndarray:
    value = fields.get(key)
    array = value.array if isinstance(value, PickledArray) else None
    if array is None:
        raise policy_file_error(path, f"obs_rms.{key} is not a numpy array")
    if array.dtype.kind != "f" or array.dtype.itemsize != 8:  # float64 of either byte order
        raise policy_file_error(path, f"obs_rms.{key} has dtype {array.dtype}; SB3's RunningMeanStd stores float64")
    if array.size > spaces.MAX_SPACE_ELEMENTS:
        raise policy_file_error(
            path,
            f"obs_rms.{key} has {array.size} elements, more than {spaces.MAX_SPACE_ELEMENTS} "
            "(robustrl.policies.spaces.MAX_SPACE_ELEMENTS)",
        )
    if not np.isfinite(array).all():
        raise policy_file_error(path, f"obs_rms.{key} contains NaN or infinite values")
    return array.astype(np.float64, copy=True)  # native byte order, writable, independent of the file's bytes


def read_vec_normalize(path: str | os.PathLike[str]) -> VecNormalizeStats:
    """Read SB3's ``vec_normalize.pkl`` (``VecNormalize.save``) without unpickling it.

    Args:
        path: the file.

    Returns:
        Its observation statistics, clip and epsilon.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        PolicyFileError: the file is not a regular file, is over :data:`MAX_VEC_NORMALIZE_BYTES`, is not a
            pickle of SB3's ``VecNormalize`` (any other global, opcode or structure), normalises dict
            observations, or holds non-finite or negative statistics; the message names the file.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"VecNormalize file {str(p)!r} does not exist")
    if not p.is_file():
        raise policy_file_error(p, "is not a regular file; expected SB3's vec_normalize.pkl")
    with p.open("rb") as f:
        data = f.read(MAX_VEC_NORMALIZE_BYTES + 1)
    if len(data) > MAX_VEC_NORMALIZE_BYTES:
        raise policy_file_error(
            p,
            f"is larger than the limit of {MAX_VEC_NORMALIZE_BYTES} bytes "
            "(robustrl.policies.vec_normalize.MAX_VEC_NORMALIZE_BYTES)",
        )
    if data.startswith(b"PK\x03\x04"):
        raise policy_file_error(p, "is a zip archive (a policy?), not SB3's vec_normalize.pkl")
    top = read_pickle_data(data, p, records=RECORD_CLASSES, max_ops=MAX_PICKLE_OPS)
    del data
    fields = _fields(top, VEC_NORMALIZE, p, "the pickled object")
    norm_obs = fields.get("norm_obs")
    if not isinstance(norm_obs, bool):
        raise policy_file_error(p, "VecNormalize.norm_obs is not a bool")
    clip_obs = _number(fields, "clip_obs", p, positive=True)
    epsilon = _number(fields, "epsilon", p, positive=False)
    if not norm_obs:
        return VecNormalizeStats(p, None, None, 0.0, clip_obs, epsilon, False)
    obs_rms = fields.get("obs_rms")
    if isinstance(obs_rms, dict):
        raise policy_file_error(
            p, "normalises dict observations (MultiInputPolicy (dict observations) is not supported)"
        )
    rms = _fields(obs_rms, RUNNING_MEAN_STD, p, "VecNormalize.obs_rms")
    mean, var = _stat_array(rms, "mean", p), _stat_array(rms, "var", p)
    if mean.shape != var.shape:
        raise policy_file_error(p, f"obs_rms.mean has shape {mean.shape} but obs_rms.var {var.shape}")
    if (var < 0).any() or not (var + epsilon > 0).all():
        raise policy_file_error(p, "obs_rms.var must be ≥ 0, and var + epsilon > 0 everywhere")
    count = _number(rms, "count", p, positive=True, owner="obs_rms")
    return VecNormalizeStats(p, mean, var, count, clip_obs, epsilon, True)

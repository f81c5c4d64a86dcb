"""Offline datasets as flat transitions: read from Minari, ``.npz`` or HDF5 files; write Minari datasets atomically.

A :class:`OfflineDataset` is the flat transition view every offline learner and corruption reads
(``observations[i], actions[i], rewards[i], next_observations[i]``, ``terminations[i]`` and
``truncations[i]`` kept apart, ``episode_ids[i]``), plus the per-element corruption mask and the dataset's
reference returns (random = 0, expert = 100 for the normalised score).

Sources (:func:`load_dataset`):

* a Minari dataset id (``robustrl/pendulum-expert-v0``), looked up under ``MINARI_DATASETS_PATH`` (Minari's own
  rule: default ``~/.minari/datasets``) or an explicit ``root``; nothing is downloaded;
* a ``.npz`` transition file (``observations, actions, rewards, next_observations, terminations,
  truncations``, optional ``episode_ids``; read with ``allow_pickle=False``);
* an HDF5 transition file (``.h5``/``.hdf5``, D4RL's keys ``observations, actions, rewards,
  next_observations, terminals, timeouts``).

Minari stores episodes (``observations [T+1]``), so a transition's successor is the next observation of its
episode. A corrupted dataset whose ``next_observations`` differ from that (RIQL's next-state corruption)
keeps them in the episode ``infos["next_observations"]``; the mask is ``infos["corrupted"]`` (``bool [T, 4]``:
obs, actions, rewards, next_obs) and the corruption config is ``robustrl.json`` beside Minari's ``data/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ELEMENTS",
    "OfflineDataset",
    "dataset_root",
    "load_dataset",
    "save_npz",
    "write_minari",
]

ELEMENTS = ("obs", "actions", "rewards", "next_obs")
"""The corruptible elements of a transition, in the column order of :attr:`OfflineDataset.corrupted`."""
SIDECAR = "robustrl.json"
"""robustrl's own metadata file inside a Minari dataset folder (collection and corruption configs)."""


@dataclass(frozen=True, eq=False)
class OfflineDataset:
    """``N`` transitions of ``E`` episodes, in episode order."""

    observations: np.ndarray
    """``float32 [N, obs_dim]``."""
    actions: np.ndarray
    """``float32 [N, act_dim]`` (Box actions) or ``int64 [N]`` (Discrete)."""
    rewards: np.ndarray
    """``float32 [N]``."""
    next_observations: np.ndarray
    """``float32 [N, obs_dim]``."""
    terminations: np.ndarray
    """``bool [N]``: the episode ended in a terminal state (no bootstrap)."""
    truncations: np.ndarray
    """``bool [N]``: the episode was cut by a time limit (bootstrap)."""
    episode_ids: np.ndarray
    """``int64 [N]`` the episode of each transition (0..E−1, non-decreasing)."""
    env_id: str = ""
    """The Gymnasium id of the environment the data came from ("" if unknown)."""
    ref_min_score: float | None = None
    """Return of the random policy (normalised score 0)."""
    ref_max_score: float | None = None
    """Return of the expert policy (normalised score 100)."""
    corrupted: np.ndarray | None = None
    """``bool [N, 4]`` which elements (:data:`ELEMENTS`) of each transition were corrupted (None: clean)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """robustrl's metadata of the dataset (collection and corruption configs)."""

    def __post_init__(self) -> None:
        n = len(self.rewards)
        for name in ("observations", "actions", "next_observations", "terminations", "truncations", "episode_ids"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"dataset {name} has {len(getattr(self, name))} rows, rewards {n}")
        if n == 0:
            raise ValueError("the dataset holds no transitions")
        if self.observations.ndim != 2 or self.next_observations.shape != self.observations.shape:
            raise ValueError(
                f"dataset observations must be [N, obs_dim] like next_observations, got "
                f"{self.observations.shape} and {self.next_observations.shape}"
            )
        for name in ("observations", "next_observations", "rewards", "actions"):
            if not np.isfinite(getattr(self, name)).all():
                raise ValueError(f"dataset {name} holds NaN or infinite values")
        if np.any(np.diff(self.episode_ids) < 0):
            raise ValueError("dataset episode_ids must be non-decreasing (transitions in episode order)")
        if self.corrupted is not None and self.corrupted.shape != (n, len(ELEMENTS)):
            raise ValueError(f"dataset corrupted mask must be [N, 4], got {self.corrupted.shape}")

    @property
    def num_transitions(self) -> int:
        """``N``."""
        return len(self.rewards)

    @property
    def num_episodes(self) -> int:
        """``E``."""
        return int(np.unique(self.episode_ids).size)

    @property
    def discrete(self) -> bool:
        """True for Discrete actions (``int64 [N]``)."""
        return self.actions.ndim == 1

    def episode_returns(self) -> np.ndarray:
        """``float64 [E]`` the undiscounted return of each episode (of its stored rewards)."""
        _, inverse = np.unique(self.episode_ids, return_inverse=True)
        return np.bincount(inverse, weights=self.rewards.astype(np.float64))

    def normalized_score(self, returns: np.ndarray | float) -> np.ndarray:
        """``100 · (R − ref_min) / (ref_max − ref_min)`` (D4RL's normalised score).

        Raises:
            ValueError: the dataset has no reference returns.
        """
        if self.ref_min_score is None or self.ref_max_score is None or self.ref_max_score == self.ref_min_score:
            raise ValueError("the dataset has no reference returns (ref_min_score, ref_max_score)")
        span = self.ref_max_score - self.ref_min_score
        return 100.0 * (np.asarray(returns, np.float64) - self.ref_min_score) / span

    def select(self, rows: np.ndarray) -> OfflineDataset:
        """The transitions ``rows`` (``bool [N]`` or indices, kept in order), episodes renumbered 0..E'−1."""
        idx = np.flatnonzero(rows) if rows.dtype == bool else np.sort(rows)
        _, ids = np.unique(self.episode_ids[idx], return_inverse=True)
        return replace(
            self,
            observations=self.observations[idx], actions=self.actions[idx], rewards=self.rewards[idx],
            next_observations=self.next_observations[idx], terminations=self.terminations[idx],
            truncations=self.truncations[idx], episode_ids=ids.astype(np.int64),
            corrupted=None if self.corrupted is None else self.corrupted[idx],
        )  # fmt: skip


def dataset_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The Minari datasets folder: ``root``, else ``MINARI_DATASETS_PATH``, else ``~/.minari/datasets``."""
    if root is not None:
        return Path(root)
    env = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env) if env else Path.home() / ".minari" / "datasets"


@contextlib.contextmanager
def _minari_root(root: Path) -> Iterator[None]:
    """Point Minari at ``root`` for the block (Minari reads only ``MINARI_DATASETS_PATH``)."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def _import_minari() -> Any:
    try:
        import minari
    except ImportError as err:  # pragma: no cover - the offline extra is missing
        raise ValueError("Minari datasets need the offline extra: pip install 'minari[hdf5]'") from err
    return minari


def _check_dataset_id(dataset_id: str) -> None:
    _import_minari()
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        namespace, _, _ = parse_dataset_id(dataset_id)
    except Exception as err:
        raise ValueError(f"dataset id {dataset_id!r} is not NAMESPACE/NAME-vN: {err}") from err
    if namespace is None or dataset_id.count("/") != 1 or ".." in dataset_id:
        raise ValueError(f"dataset id {dataset_id!r} must be NAMESPACE/NAME-vN, e.g. robustrl/pendulum-expert-v0")


def _episodes(data: OfflineDataset) -> Iterator[tuple[int, np.ndarray]]:
    ids = data.episode_ids
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    for k, (a, b) in enumerate(zip(starts, ends, strict=True)):
        yield k, np.arange(a, b)


def write_minari(
    data: OfflineDataset,
    dataset_id: str,
    *,
    root: str | os.PathLike[str] | None = None,
    algorithm_name: str = "robustrl",
    description: str = "",
) -> Path:
    """Write ``data`` as the Minari dataset ``dataset_id`` (readable by ``minari.load_dataset``); atomic.

    The dataset is built in a hidden staging folder under the root and renamed into place only when
    complete, so a failure leaves nothing that looks like a dataset. ``meta`` goes to ``robustrl.json``.

    Args:
        data: the transitions; ``env_id`` must be a registered Gymnasium id (Minari stores its spec).
        dataset_id: ``NAMESPACE/NAME-vN``.
        root: the datasets folder (default :func:`dataset_root`).
        algorithm_name: Minari's ``algorithm_name`` field.
        description: Minari's ``description`` field.

    Returns:
        The dataset folder.

    Raises:
        ValueError: a malformed id, an id that already exists, or an unknown env id.
    """
    import gymnasium as gym

    minari = _import_minari()
    from minari.data_collector.episode_buffer import EpisodeBuffer

    _check_dataset_id(dataset_id)
    base = dataset_root(root)
    final = base / dataset_id
    if final.exists():
        raise ValueError(f"Minari dataset {dataset_id!r} already exists in {str(base)!r}; choose another id")
    try:
        spec = gym.spec(data.env_id)
    except Exception as err:
        raise ValueError(f"dataset env_id {data.env_id!r} is not a registered Gymnasium id") from err
    env = gym.make(spec)
    buffers = []
    for k, rows in _episodes(data):
        nxt = data.next_observations[rows]
        obs = np.concatenate([data.observations[rows], nxt[-1:]]).astype(np.float32)
        infos: dict[str, np.ndarray] = {}
        if not np.array_equal(nxt[:-1], data.observations[rows][1:]):
            infos["next_observations"] = nxt.astype(np.float32)
        if data.corrupted is not None:
            infos["corrupted"] = data.corrupted[rows]
        buffers.append(EpisodeBuffer(
            id=k, observations=obs, actions=data.actions[rows], rewards=data.rewards[rows].astype(np.float64),
            terminations=data.terminations[rows], truncations=data.truncations[rows], infos=infos or None,
        ))  # fmt: skip
    staging = base / f".robustrl-staging-{uuid.uuid4().hex}"
    refs = {}
    if data.ref_min_score is not None and data.ref_max_score is not None:
        refs = {"ref_min_score": float(data.ref_min_score), "ref_max_score": float(data.ref_max_score)}
    try:
        with _minari_root(staging), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Minari warns about unset optional metadata (author, permalink)
            minari.create_dataset_from_buffers(
                dataset_id, buffers, env=env, algorithm_name=algorithm_name, author="robustrl",
                author_email="-", code_permalink="-", description=description or dataset_id, **refs,
            )  # fmt: skip
        (staging / dataset_id / SIDECAR).write_text(json.dumps(data.meta, default=_jsonable, indent=1))
        ns_staged = staging / dataset_id.split("/")[0]
        ns_final = base / dataset_id.split("/")[0]
        ns_final.mkdir(parents=True, exist_ok=True)
        meta_file = ns_staged / "namespace_metadata.json"
        if meta_file.exists() and not (ns_final / meta_file.name).exists():
            os.replace(meta_file, ns_final / meta_file.name)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging / dataset_id, final)
    finally:
        env.close()
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def _from_minari(dataset_id: str, root: Path) -> OfflineDataset:
    minari = _import_minari()
    if not (root / dataset_id).is_dir():
        raise ValueError(f"no Minari dataset {dataset_id!r} in {str(root)!r} (set MINARI_DATASETS_PATH or --root)")
    with _minari_root(root), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = minari.load_dataset(dataset_id)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("o", "a", "r", "n", "te", "tr", "id", "c")}
    for k, ep in enumerate(ds.iterate_episodes()):
        if not isinstance(ep.observations, np.ndarray):
            raise ValueError(f"dataset {dataset_id!r}: only flat Box observations are supported")
        infos = ep.infos or {}
        parts["o"].append(ep.observations[:-1])
        parts["n"].append(infos.get("next_observations", ep.observations[1:]))
        parts["a"].append(ep.actions)
        parts["r"].append(ep.rewards)
        parts["te"].append(ep.terminations)
        parts["tr"].append(ep.truncations)
        parts["id"].append(np.full(len(ep.rewards), k, np.int64))
        if "corrupted" in infos:
            parts["c"].append(np.asarray(infos["corrupted"], bool))
    meta_md = ds.storage.metadata
    env_spec = ds.spec.env_spec
    sidecar = root / dataset_id / SIDECAR
    meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    actions = np.concatenate(parts["a"])
    return OfflineDataset(
        observations=np.concatenate(parts["o"]).astype(np.float32),
        actions=actions.astype(np.int64) if actions.ndim == 1 else actions.astype(np.float32),
        rewards=np.concatenate(parts["r"]).astype(np.float32),
        next_observations=np.concatenate(parts["n"]).astype(np.float32),
        terminations=np.concatenate(parts["te"]).astype(bool),
        truncations=np.concatenate(parts["tr"]).astype(bool),
        episode_ids=np.concatenate(parts["id"]),
        env_id=env_spec.id if env_spec is not None else "",
        ref_min_score=meta_md.get("ref_min_score"),
        ref_max_score=meta_md.get("ref_max_score"),
        corrupted=np.concatenate(parts["c"]) if len(parts["c"]) == len(parts["id"]) and parts["c"] else None,
        meta=meta,
    )


def _episode_ids(terminations: np.ndarray, truncations: np.ndarray) -> np.ndarray:
    done = (terminations | truncations).astype(np.int64)
    return np.r_[0, np.cumsum(done)[:-1]].astype(np.int64)


def _from_arrays(arrays: dict[str, np.ndarray], path: Path, env_id: str) -> OfflineDataset:
    aliases = {"terminations": ("terminations", "terminals"), "truncations": ("truncations", "timeouts")}
    got: dict[str, np.ndarray] = {}
    for key in ("observations", "actions", "rewards", "next_observations", "terminations", "truncations"):
        for name in aliases.get(key, (key,)):
            if name in arrays:
                got[key] = np.asarray(arrays[name])
                break
        else:
            raise ValueError(f"transition file {str(path)!r} has no {key!r} array (keys: {sorted(arrays)})")
    n = len(got["rewards"])
    for key, value in got.items():
        if value.ndim == 0 or len(value) != n:
            raise ValueError(f"transition file {str(path)!r}: {key} has {value.shape[:1]} rows, rewards {n}")
    te, tr = got["terminations"].astype(bool), got["truncations"].astype(bool)
    ids = np.asarray(arrays["episode_ids"], np.int64) if "episode_ids" in arrays else _episode_ids(te, tr)
    actions = got["actions"]
    if actions.ndim == 1 and np.issubdtype(actions.dtype, np.floating):
        actions = actions[:, None]
    meta = {}
    if "meta" in arrays:
        meta = json.loads(str(arrays["meta"]))
    refs = {k: float(arrays[k]) for k in ("ref_min_score", "ref_max_score") if k in arrays}
    return OfflineDataset(
        observations=got["observations"].astype(np.float32).reshape(len(te), -1),
        actions=actions.astype(np.int64) if actions.ndim == 1 else actions.astype(np.float32),
        rewards=got["rewards"].astype(np.float32).reshape(-1),
        next_observations=got["next_observations"].astype(np.float32).reshape(len(te), -1),
        terminations=te, truncations=tr, episode_ids=ids,
        env_id=env_id or str(arrays.get("env_id", "")),
        corrupted=np.asarray(arrays["corrupted"], bool) if "corrupted" in arrays else None,
        meta=meta, **refs,  # type: ignore[arg-type]
    )  # fmt: skip


def load_dataset(source: str, *, root: str | os.PathLike[str] | None = None, env_id: str = "") -> OfflineDataset:
    """Load a Minari dataset id or a ``.npz`` / ``.h5`` / ``.hdf5`` transition file (nothing downloads).

    Args:
        source: ``NAMESPACE/NAME-vN`` or a file path.
        root: Minari datasets folder (default :func:`dataset_root`).
        env_id: the env of a transition file that does not name it.

    Raises:
        ValueError: an unknown dataset, a file with missing arrays, mismatched lengths or NaN.
    """
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        if not path.is_file():
            raise ValueError(f"dataset file {source!r} does not exist")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as err:
            raise ValueError(f"dataset file {source!r} is not a readable .npz: {err}") from err
        return _from_arrays(arrays, path, env_id)
    if suffix in (".h5", ".hdf5"):
        if not path.is_file():
            raise ValueError(f"dataset file {source!r} does not exist")
        import h5py

        try:
            with h5py.File(path, "r") as f:
                arrays = {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}
                arrays.update({k: np.asarray(v) for k, v in f.attrs.items()})
        except OSError as err:
            raise ValueError(f"dataset file {source!r} is not a readable HDF5 file: {err}") from err
        return _from_arrays(arrays, path, env_id)
    return _from_minari(source, dataset_root(root))


def save_npz(data: OfflineDataset, path: str | os.PathLike[str]) -> Path:
    """Write ``data`` as a ``.npz`` transition file (atomic; loads back with :func:`load_dataset`)."""
    from robustrl.common.io import atomic_path

    target = Path(path)
    if target.suffix != ".npz":
        raise ValueError(f"a transition file must end in .npz, got {str(path)!r}")
    arrays: dict[str, Any] = {
        "observations": data.observations, "actions": data.actions, "rewards": data.rewards,
        "next_observations": data.next_observations, "terminations": data.terminations,
        "truncations": data.truncations, "episode_ids": data.episode_ids, "env_id": np.array(data.env_id),
        "meta": np.array(json.dumps(data.meta, default=_jsonable)),
    }  # fmt: skip
    if data.corrupted is not None:
        arrays["corrupted"] = data.corrupted
    for key in ("ref_min_score", "ref_max_score"):
        if getattr(data, key) is not None:
            arrays[key] = np.array(getattr(data, key), np.float64)
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return target

"""Saving and loading policies: our single-file format, and dispatch by content to the SB3/TorchScript readers.

Our format is one zip file (``.zip`` by convention, any name works) with two members:

* ``policy.json`` — ``{"format": "robustrl-policy", "format_version": 1, "kind", "spec",
  "observation_space", "action_space", "env_id", "config", "provenance"}``;
* ``weights.pt`` — the module's ``state_dict`` written by ``torch.save``, read back with
  ``torch.load(..., weights_only=True)`` (tensors only, never arbitrary pickled objects).

The file is written to a temporary name and renamed, so it is either complete or absent. Reading goes
through :mod:`robustrl.policies.reading` (size caps, tensor-only weights, checked rebuilding); TorchScript
files are code and are loaded only with ``trust_code=True``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import torch
from torch import nn

from robustrl.common.io import _finite, _json_default, atomic_path
from robustrl.common.provenance import provenance
from robustrl.policies.base import Policy
from robustrl.policies.networks import POLICY_CLASSES as _FEEDFORWARD
from robustrl.policies.reading import (
    build_module,
    open_zip,
    policy_file_error,
    read_json_member,
    read_weights,
)
from robustrl.policies.recurrent import RecurrentActorCriticPolicy
from robustrl.policies.sb3 import load_sb3_zip, read_sb3_info
from robustrl.policies.spaces import space_from_json, space_to_json
from robustrl.policies.torchscript import load_torchscript, read_torchscript_meta
from robustrl.results.runs import check_finished_run, is_run_folder

logger = logging.getLogger(__name__)

POLICY_CLASSES: dict[str, type[nn.Module]] = {
    **_FEEDFORWARD,
    RecurrentActorCriticPolicy.kind: RecurrentActorCriticPolicy,
}
"""Policy module classes by their ``kind``, used to rebuild a saved policy (the feed-forward ones and the LSTM one)."""

FORMAT_NAME = "robustrl-policy"
FORMAT_VERSION = 1
META_MEMBER = "policy.json"
WEIGHTS_MEMBER = "weights.pt"
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")

FileFormat = Literal["robustrl", "sb3", "torchscript"]


@dataclass(frozen=True)
class PolicyInfo:
    """What a policy file says about itself, read without building the policy (see :func:`read_policy_info`)."""

    path: Path
    """The file."""
    format: FileFormat
    """Which reader handles it."""
    kind: str | None
    """Policy kind (``actor_critic``...) or SB3 algorithm (``PPO``...); None for TorchScript."""
    observation_space: gym.Space[Any] | None
    """One observation's space, when the file records it."""
    action_space: gym.Space[Any] | None
    """One action's space, when the file records it."""
    env_id: str | None
    """The environment id the policy was trained on, when recorded."""
    config: dict[str, Any] | None
    """The resolved training config, when recorded."""
    provenance: dict[str, Any] | None
    """Versions/commit of the run that wrote the file, when recorded."""


def _to_jsonable(obj: Any) -> Any:
    """A JSON round-trip of ``obj`` (dataclasses, tensors, arrays converted); raises on the rest."""
    return _finite(json.loads(json.dumps(obj, default=_json_default)))


def save_policy(policy: Policy, path: str | os.PathLike[str], *, env_id: str | None = None, config: Any = None) -> Path:
    """Save a policy module in our single-file format (atomically).

    Args:
        policy: one of the modules of :data:`POLICY_CLASSES`
            (it has ``kind`` and ``spec()``).
        path: the file to write (parent folders are created).
        env_id: the environment id the policy acts in (stored so ``load_policy`` and the CLI know it).
        config: the resolved training config (a dict or a config dataclass), stored as JSON.

    Returns:
        The path written.

    Raises:
        ValueError: the policy is not a savable module, or ``config`` is not JSON-serialisable.
    """
    kind = getattr(policy, "kind", None)
    if not isinstance(policy, nn.Module) or kind not in POLICY_CLASSES or not callable(getattr(policy, "spec", None)):
        raise ValueError(
            f"cannot save {type(policy).__name__}: save_policy needs a module from POLICY_CLASSES "
            f"({', '.join(POLICY_CLASSES)}) with a spec()"
        )
    try:
        meta = _to_jsonable(
            {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "kind": kind,
                "spec": policy.spec(),  # type: ignore[operator]
                "observation_space": space_to_json(policy.observation_space),
                "action_space": space_to_json(policy.action_space),
                "env_id": env_id,
                "config": config,
                "provenance": provenance(),
            }
        )
    except TypeError as err:
        raise ValueError(f"cannot save policy to {str(path)!r}: metadata is not JSON-serialisable: {err}") from err
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in policy.state_dict().items()}, buf)
    target = Path(path)
    with atomic_path(target) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr(META_MEMBER, json.dumps(meta, indent=2) + "\n")
            zf.writestr(WEIGHTS_MEMBER, buf.getvalue())
    return target


# --------------------------------------------------------------------------------------------- reading


def _space(data: Any, path: Path, key: str) -> gym.Space[Any]:
    try:
        return space_from_json(data, what=key)
    except ValueError as err:
        raise policy_file_error(path, str(err)) from err


def _read_ours(zf: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    meta = read_json_member(zf, META_MEMBER, path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise policy_file_error(path, f"{META_MEMBER!r} does not describe a {FORMAT_NAME!r}")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION or version < 1:
        raise policy_file_error(
            path, f"format_version {version!r} is not supported (this robustrl reads ≤ {FORMAT_VERSION})"
        )
    kind = meta.get("kind")
    if not isinstance(kind, str) or kind not in POLICY_CLASSES:
        raise policy_file_error(path, f"unknown policy kind {kind!r:.80}; known: {', '.join(POLICY_CLASSES)}")
    if not isinstance(meta.get("spec"), dict):
        raise policy_file_error(path, "'spec' must be an object of constructor arguments")
    overridden = sorted({"observation_space", "action_space"} & set(meta["spec"]))
    if overridden:
        raise policy_file_error(
            path, f"'spec' must not set {overridden}: the spaces are the file's own top-level fields"
        )
    env_id = meta.get("env_id")
    if env_id is not None and not isinstance(env_id, str):
        raise policy_file_error(path, f"env_id must be a string, got {env_id!r:.100}")
    meta["observation_space"] = _space(meta.get("observation_space"), path, "observation_space")
    meta["action_space"] = _space(meta.get("action_space"), path, "action_space")
    return meta


def _load_ours(zf: zipfile.ZipFile, path: Path, device: str | torch.device, env_id: str | None) -> nn.Module:
    meta = _read_ours(zf, path)
    if env_id is not None and meta.get("env_id") not in (None, env_id):
        logger.warning("policy %s was saved for env %r; loading it for %r", path, meta["env_id"], env_id)
    state = read_weights(zf, WEIGHTS_MEMBER, path)
    args = {
        "observation_space": meta["observation_space"],
        "action_space": meta["action_space"],
        **meta["spec"],
    }
    return build_module(POLICY_CLASSES[meta["kind"]], args, state, path, device)


def _sniff(path: Path) -> tuple[FileFormat, zipfile.ZipFile]:
    """Identify a policy file by its content (never by its extension); nothing in it is run or unpickled."""
    if not path.exists():
        raise FileNotFoundError(f"policy file {str(path)!r} does not exist")
    if path.is_dir():
        raise policy_file_error(
            path, "is a directory; expected a policy file (our .zip, an SB3 .zip or a TorchScript file)"
        )
    if not path.is_file():
        raise policy_file_error(path, "is not a regular file (a device, pipe or socket); expected a policy file")
    with path.open("rb") as f:
        head = f.read(8)
    if head[:2] in _PICKLE_MAGIC:
        raise policy_file_error(
            path,
            "is a Python pickle; pickles can run arbitrary code and are refused. Save the policy with "
            "robustrl.save_policy, or export it with torch.jit.save, or load its state dict yourself",
        )
    zf = open_zip(path)
    names = zf.namelist()
    if META_MEMBER in names:
        return "robustrl", zf
    if "data" in names and "policy.pth" in names:
        return "sb3", zf
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return "torchscript", zf
    zf.close()
    if any(n.endswith("data.pkl") for n in names):
        raise policy_file_error(
            path,
            "is a torch.save checkpoint (pickled objects, not a policy with an architecture); refused. "
            "Save it with robustrl.save_policy or export it with torch.jit.save",
        )
    raise policy_file_error(path, f"is a zip without the members of any known policy format (members: {names[:8]})")


def read_policy_info(path: str | os.PathLike[str]) -> PolicyInfo:
    """Read what a policy file records (format, kind, spaces, env id, config) without building the policy.

    Only metadata is parsed for our format and TorchScript (a TorchScript module is never loaded, so no
    code runs); an SB3 zip's weights are read (capped, tensors only) because its algorithm and layout are
    known only from the weight names and shapes.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        PolicyFileError: the file is not a readable policy (a ``ValueError`` naming the file and the problem).
    """
    p = Path(path)
    fmt, zf = _sniff(p)
    with zf:
        if fmt == "torchscript":
            zf.close()
            meta = read_torchscript_meta(p)
            return PolicyInfo(p, fmt, None, meta.get("observation_space"), meta.get("action_space"),
                              meta.get("env_id"), None, None)  # fmt: skip
        if fmt == "sb3":
            sb3 = read_sb3_info(zf, p)
            return PolicyInfo(p, fmt, sb3.algo, sb3.observation_space, sb3.action_space, None, None, None)
        meta = _read_ours(zf, p)
        config = meta.get("config")
        prov = meta.get("provenance")
        return PolicyInfo(
            p,
            fmt,
            meta["kind"],
            meta["observation_space"],
            meta["action_space"],
            meta.get("env_id"),
            config if isinstance(config, dict) else None,
            prov if isinstance(prov, dict) else None,
        )


def load_policy(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    env_id: str | None = None,
    trust_code: bool = False,
    vec_normalize: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> Policy:
    """Load a policy from our format, a Stable-Baselines3 ``.zip`` or a TorchScript module.

    The format is recognised from the file's content. Weights are read with
    ``torch.load(weights_only=True)`` and metadata from JSON; nothing is unpickled. A TorchScript module is
    code (loading it runs its ``__setstate__`` methods, and the load check calls ``forward``; TorchScript
    can read and write files), so it is refused unless ``trust_code=True``.

    Args:
        path: the policy file, or a training run folder (``robustrl train --out DIR``): its ``policy.zip``
            is loaded only when the run finished (``result.json`` present, every file of the same run).
        device: where the returned module lives.
        env_id: the environment the policy will act in. Needed for a TorchScript module saved without
            robustrl metadata (its spaces are taken from the env); otherwise checked against the file.
        trust_code: allow loading (and so running) a TorchScript module. Pass it only for files from a
            source you would accept code from; it changes nothing for our format and SB3 zips.
        vec_normalize: for an SB3 zip, the run's ``vec_normalize.pkl`` (SB3's ``VecNormalize.save``),
            read without unpickling; the policy then takes raw observations and normalises them inside
            the module as SB3's ``VecNormalize`` did (see :mod:`robustrl.policies.vec_normalize`).
        **kwargs: format-specific options: for SB3 zips ``activation``, ``normalize_images``,
            ``observation_space``, ``action_space`` (see :func:`robustrl.policies.sb3.load_sb3`); for
            TorchScript ``output``, ``observation_space``, ``action_space`` (see
            :func:`robustrl.policies.torchscript.load_torchscript`).

    Returns:
        A module meeting the :class:`~robustrl.policies.base.Policy` protocol (in eval mode).

    Raises:
        FileNotFoundError: ``path`` (or ``vec_normalize``) does not exist.
        PolicyFileError: the file (or ``vec_normalize``) is corrupt, truncated, over a size limit, of an
            unsupported kind, code without ``trust_code=True``, or its weights do not fit; a ``ValueError``
            whose message names the file and the problem.
        ValueError: ``vec_normalize`` is given for a file that is not an SB3 zip.
    """
    p = Path(path)
    if is_run_folder(p):
        check_finished_run(p)  # an unfinished (killed, running) or mixed run folder is refused, named
        p = p / "policy.zip"
    fmt, zf = _sniff(p)
    if vec_normalize is not None and fmt != "sb3":
        zf.close()
        raise ValueError(
            f"vec_normalize applies to Stable-Baselines3 zips; {str(p)!r} is a {fmt} file (a robustrl policy "
            "keeps its observation normaliser inside, a TorchScript module must do its own)"
        )
    with zf:
        if fmt == "torchscript":
            zf.close()
            return load_torchscript(p, device=device, env_id=env_id, trust_code=trust_code, **kwargs)
        if fmt == "sb3":
            return load_sb3_zip(  # type: ignore[return-value]
                zf, p, device=device, env_id=env_id, vec_normalize=vec_normalize, **kwargs
            )
        if kwargs:
            raise TypeError(f"unexpected options {sorted(kwargs)} for a robustrl policy file")
        return _load_ours(zf, p, device, env_id)  # type: ignore[return-value]

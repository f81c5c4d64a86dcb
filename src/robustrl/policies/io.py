"""Saving and loading policies: our single-file format, and dispatch by content to the SB3/TorchScript readers.

Our format is one zip file (``.zip`` by convention, any name works) with two members:

* ``policy.json`` — ``{"format": "robustrl-policy", "format_version": 1, "kind", "spec",
  "observation_space", "action_space", "env_id", "config", "provenance"}``;
* ``weights.pt`` — the module's ``state_dict`` written by ``torch.save``, read back with
  ``torch.load(..., weights_only=True)`` (tensors only, never arbitrary pickled objects).

The file is written to a temporary name and renamed, so it is either complete or absent.
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

from robustrl.common.io import atomic_path
from robustrl.common.provenance import provenance
from robustrl.policies.base import Policy
from robustrl.policies.networks import POLICY_CLASSES
from robustrl.policies.spaces import space_from_json, space_to_json

logger = logging.getLogger(__name__)

FORMAT_NAME = "robustrl-policy"
FORMAT_VERSION = 1
META_MEMBER = "policy.json"
WEIGHTS_MEMBER = "weights.pt"
_MAX_JSON_BYTES = 64 << 20
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")

FileFormat = Literal["robustrl", "sb3", "torchscript"]


@dataclass(frozen=True)
class PolicyInfo:
    """What a policy file says about itself, read without loading any weights."""

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
    from robustrl.common.io import _finite, _json_default

    return _finite(json.loads(json.dumps(obj, default=_json_default)))


def save_policy(policy: Policy, path: str | os.PathLike[str], *, env_id: str | None = None, config: Any = None) -> Path:
    """Save a policy module in our single-file format (atomically).

    Args:
        policy: one of the modules of :data:`robustrl.policies.networks.POLICY_CLASSES`
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


def policy_file_error(path: Path, what: str) -> ValueError:
    """The ``ValueError`` for a bad policy file: ``policy file '<path>': <what>``."""
    return ValueError(f"policy file {str(path)!r}: {what}")


def read_member(zf: zipfile.ZipFile, name: str, path: Path, *, max_bytes: int | None = None) -> bytes:
    """Read one zip member, turning corruption (bad CRC, truncation, zip bombs) into a ``ValueError``."""
    try:
        info = zf.getinfo(name)
    except KeyError as err:
        raise policy_file_error(path, f"the zip has no member {name!r}") from err
    if max_bytes is not None and info.file_size > max_bytes:
        raise policy_file_error(path, f"member {name!r} is {info.file_size} bytes, more than the {max_bytes} allowed")
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as err:
        raise policy_file_error(path, f"member {name!r} is corrupt or truncated ({err})") from err


def read_json_member(zf: zipfile.ZipFile, name: str, path: Path) -> Any:
    """Read and parse a JSON zip member, naming the file on failure."""
    raw = read_member(zf, name, path, max_bytes=_MAX_JSON_BYTES)
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise policy_file_error(path, f"member {name!r} is not valid JSON ({err})") from err


def load_weights(raw: bytes, path: Path, member: str, device: str | torch.device) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` of a state dict; anything else is a ``ValueError`` naming the file."""
    try:
        state = torch.load(io.BytesIO(raw), map_location=device, weights_only=True)
    except Exception as err:  # torch raises many types (UnpicklingError, RuntimeError...) on bad input
        raise policy_file_error(
            path, f"member {member!r} is not a tensor-only torch file ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise policy_file_error(path, f"member {member!r} is not a state dict of named tensors")
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise policy_file_error(path, f"weight {name!r} in {member!r} contains NaN or infinite values")
    return state


def build_module(
    cls: type[nn.Module],
    args: dict[str, Any],
    state: dict[str, torch.Tensor],
    path: Path,
    device: str | torch.device,
    *,
    derived: frozenset[str] = frozenset(),
) -> nn.Module:
    """Build ``cls(**args)`` and load ``state`` strictly, checking names and shapes first.

    The check runs on a skeleton built on the meta device, so a file asking for huge layers allocates
    nothing; any mismatch is a ``ValueError`` listing the differences.

    Args:
        cls: the module class.
        args: its constructor arguments.
        state: the weights read from the file.
        path: the file (for error messages).
        device: where the module goes.
        derived: entries the file may lack (buffers the constructor derives from the spaces); they keep
            the freshly built module's values.
    """
    try:
        with torch.device("meta"):
            skeleton = cls(**args)
    except (TypeError, ValueError, RuntimeError) as err:
        raise policy_file_error(path, f"cannot build {cls.__name__} from the recorded arguments ({err})") from err
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    got.update({k: expected[k] for k in derived if k in expected and k not in got})
    if expected != got:
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        wrong = [f"{k}: {got[k]} != {expected[k]}" for k in expected if k in got and got[k] != expected[k]]
        raise policy_file_error(
            path,
            f"weights do not fit {cls.__name__}: missing {missing[:5]}, unexpected {extra[:5]}, "
            f"wrong shapes {wrong[:5]}",
        )
    module = cls(**args)
    own = module.state_dict()
    module.load_state_dict({**{k: own[k] for k in derived if k in own and k not in state}, **state}, strict=True)
    return module.to(device).eval()


def _read_ours(zf: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    meta = read_json_member(zf, META_MEMBER, path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise policy_file_error(path, f"{META_MEMBER!r} does not describe a {FORMAT_NAME!r}")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise policy_file_error(
            path, f"format_version {version!r} is not supported (this robustrl reads ≤ {FORMAT_VERSION})"
        )
    if meta.get("kind") not in POLICY_CLASSES:
        raise policy_file_error(path, f"unknown policy kind {meta.get('kind')!r}; known: {', '.join(POLICY_CLASSES)}")
    if not isinstance(meta.get("spec"), dict):
        raise policy_file_error(path, "'spec' must be an object of constructor arguments")
    env_id = meta.get("env_id")
    if env_id is not None and not isinstance(env_id, str):
        raise policy_file_error(path, f"env_id must be a string, got {env_id!r:.100}")
    meta["observation_space"] = space_from_json(
        meta.get("observation_space"), what=f"policy file {str(path)!r}: observation_space"
    )
    meta["action_space"] = space_from_json(meta.get("action_space"), what=f"policy file {str(path)!r}: action_space")
    return meta


def _load_ours(zf: zipfile.ZipFile, path: Path, device: str | torch.device, env_id: str | None) -> nn.Module:
    meta = _read_ours(zf, path)
    if env_id is not None and meta.get("env_id") not in (None, env_id):
        logger.warning("policy %s was saved for env %r; loading it for %r", path, meta["env_id"], env_id)
    state = load_weights(read_member(zf, WEIGHTS_MEMBER, path), path, WEIGHTS_MEMBER, "cpu")
    args = {
        "observation_space": meta["observation_space"],
        "action_space": meta["action_space"],
        **meta["spec"],
    }
    return build_module(POLICY_CLASSES[meta["kind"]], args, state, path, device)


def _sniff(path: Path) -> tuple[FileFormat, zipfile.ZipFile | None]:
    """Identify a policy file by its content (never by its extension)."""
    if not path.exists():
        raise FileNotFoundError(f"policy file {str(path)!r} does not exist")
    if path.is_dir():
        raise policy_file_error(
            path, "is a directory; expected a policy file (our .zip, an SB3 .zip or a TorchScript file)"
        )
    with path.open("rb") as f:
        head = f.read(8)
    if head[:2] in _PICKLE_MAGIC:
        raise policy_file_error(
            path,
            "is a Python pickle; pickles can run arbitrary code and are refused. Save the policy with "
            "robustrl.save_policy, or export it with torch.jit.save, or load its state dict yourself",
        )
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise policy_file_error(
            path,
            f"is not a zip archive (first bytes {head!r}); expected a robustrl policy, an SB3 .zip or a "
            f"TorchScript module (it may be truncated or corrupt: {err})",
        ) from err
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
    """Read what a policy file records (format, kind, spaces, env id, config) without loading weights.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a readable policy (the message names the file and the problem).
    """
    p = Path(path)
    fmt, zf = _sniff(p)
    if fmt == "torchscript":
        assert zf is not None
        zf.close()
        from robustrl.policies.torchscript import read_torchscript_meta

        meta = read_torchscript_meta(p)
        return PolicyInfo(p, fmt, None, meta.get("observation_space"), meta.get("action_space"),
                          meta.get("env_id"), None, None)  # fmt: skip
    assert zf is not None
    with zf:
        if fmt == "sb3":
            from robustrl.policies.sb3 import read_sb3_info

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
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu", env_id: str | None = None, **kwargs: Any
) -> Policy:
    """Load a policy from our format, a Stable-Baselines3 ``.zip`` or a TorchScript module.

    The format is recognised from the file's content. Weights are read with
    ``torch.load(weights_only=True)`` and metadata from JSON; nothing is unpickled.

    Args:
        path: the policy file.
        device: where the returned module lives.
        env_id: the environment the policy will act in. Needed for a TorchScript module saved without
            robustrl metadata (its spaces are taken from the env); otherwise checked against the file.
        **kwargs: format-specific options: for SB3 zips ``activation``, ``observation_space``,
            ``action_space`` (see :func:`robustrl.policies.sb3.load_sb3`); for TorchScript ``output``,
            ``observation_space``, ``action_space`` (see :func:`robustrl.policies.torchscript.load_torchscript`).

    Returns:
        A module meeting the :class:`~robustrl.policies.base.Policy` protocol (in eval mode).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is corrupt, truncated, of an unsupported kind, or its weights do not fit;
            the message names the file and the problem.
    """
    p = Path(path)
    fmt, zf = _sniff(p)
    assert zf is not None
    if fmt == "torchscript":
        zf.close()
        from robustrl.policies.torchscript import load_torchscript

        return load_torchscript(p, device=device, env_id=env_id, **kwargs)
    with zf:
        if fmt == "sb3":
            from robustrl.policies.sb3 import load_sb3_zip

            return load_sb3_zip(zf, p, device=device, env_id=env_id, **kwargs)  # type: ignore[return-value]
        if kwargs:
            raise TypeError(f"unexpected options {sorted(kwargs)} for a robustrl policy file")
        return _load_ours(zf, p, device, env_id)  # type: ignore[return-value]


def env_spaces(env_id: str) -> tuple[gym.Space[Any], gym.Space[Any]]:
    """Observation and action space of one copy of Gymnasium env ``env_id`` (the env is made and closed)."""
    try:
        env = gym.make(env_id)
    except Exception as err:  # gymnasium raises several error types for unknown/broken ids
        raise ValueError(f"unknown or broken env id {env_id!r}: {err}") from err
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()

"""TorchScript policies: load any ``torch.jit`` module that follows a small contract, and export ours.

The contract for a module loaded by :func:`load_torchscript`:

* ``forward(obs) -> out`` with ``obs`` a batch ``[N, *obs_shape]`` (``float32`` for Box observation spaces,
  ``int64 [N]`` for Discrete ones) and ``out``

  - ``"logits"`` (default for Discrete action spaces): ``[N, num_actions]`` action logits;
  - ``"q_values"``: ``[N, num_actions]`` Q values (greedy action = argmax);
  - ``"actions"`` (default for Box action spaces): deterministic actions ``[N, *act_shape]``
    (clipped to the action box by ``act``).

* optional ``@torch.jit.export`` methods, exposed when present: ``value(obs) -> [N]`` (or ``[N, 1]``),
  ``critic(obs, action) -> [N]`` (or ``[N, 1]``) with actions in the env's units, and, for
  ``"logits"`` modules, ``q_values(obs) -> [N, num_actions]``.

* the spaces: saved in the archive as the extra file ``robustrl.json``
  (``{"format": "robustrl-torchscript", "observation_space", "action_space", "output", "env_id"}``, written
  by :func:`save_torchscript`), or taken from ``env_id=`` at load time.

Safety: a TorchScript archive is not a Python pickle (its ``data.pkl`` is read by TorchScript's restricted
loader, which builds only tensors and TorchScript objects), but it *is* code: ``torch.jit.load`` runs the
module's ``__setstate__`` methods and the load check calls ``forward``, in the TorchScript interpreter with
access to every registered torch operator (``torch.from_file(path, shared=True)`` writes to any file). So
:func:`load_torchscript` (and :func:`robustrl.policies.load_policy`) refuse a TorchScript file unless
``trust_code=True``; :func:`read_torchscript_meta` reads only the JSON extra file and never loads the module.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from robustrl.common.io import atomic_path
from robustrl.policies.base import policy_device
from robustrl.policies.networks import sample_categorical
from robustrl.policies.reading import check_members, open_zip, policy_file_error, read_json_member
from robustrl.policies.spaces import env_spaces, space_from_json, space_to_json

Output = Literal["logits", "q_values", "actions"]

META_FILE = "robustrl.json"
FORMAT_NAME = "robustrl-torchscript"
_OUTPUTS = ("logits", "q_values", "actions")


@contextlib.contextmanager
def _quiet_jit() -> Iterator[None]:
    """Silence TorchScript's deprecation and tracer warnings (torch ≥ 2.9 deprecates ``torch.jit``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.* is deprecated", category=DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield


def read_torchscript_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``robustrl.json`` extra file of a TorchScript archive, spaces parsed ({} when it has none).

    Only that JSON member is read (capped like every member); the module is never loaded, so no code runs.

    Raises:
        PolicyFileError: the archive is unreadable or the metadata is malformed (a ``ValueError``).
    """
    p = Path(path)
    with open_zip(p) as zf:
        names = [n for n in zf.namelist() if n.endswith(f"/extra/{META_FILE}")]
        if not names:
            return {}
        if len(names) > 1:
            raise policy_file_error(p, f"has {len(names)} {META_FILE!r} extra files ({names[:3]}); expected one")
        meta = read_json_member(zf, names[0], p)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise policy_file_error(p, f"extra file {META_FILE!r} is not {FORMAT_NAME!r} metadata")
    out = dict(meta)
    for key in ("observation_space", "action_space"):
        try:
            out[key] = space_from_json(meta.get(key), what=key)
        except ValueError as err:
            raise policy_file_error(p, str(err)) from err
    if out.get("output") not in (*_OUTPUTS, None):
        raise policy_file_error(p, f"output must be one of {_OUTPUTS}, got {out.get('output')!r}")
    if out.get("env_id") is not None and not isinstance(out["env_id"], str):
        raise policy_file_error(p, "env_id must be a string")
    return out


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0]) if x.dim() == 2 and x.shape[1] == 1 else x


class TorchScriptPolicy(nn.Module):
    """A TorchScript module wrapped as a :class:`~robustrl.policies.base.Policy`.

    ``logits``/``dist`` exist for ``"logits"`` modules, ``q_values`` for ``"q_values"`` modules (or when the
    module exports it), ``value`` and ``critic`` when the module exports them; they are instance
    attributes, so ``isinstance(policy, QPolicy)`` and friends answer truthfully.

    Args:
        module: the loaded ``torch.jit.ScriptModule``.
        observation_space: one observation's space.
        action_space: one action's space (Discrete for logits/q_values, Box for actions).
        output: what ``forward`` returns.
    """

    action_low: torch.Tensor
    action_high: torch.Tensor

    def __init__(
        self,
        module: torch.jit.ScriptModule,
        observation_space: gym.Space[Any],
        action_space: gym.Space[Any],
        output: Output,
    ) -> None:
        super().__init__()
        discrete = isinstance(action_space, gym.spaces.Discrete)
        if output in ("logits", "q_values") and not discrete:
            raise ValueError(f"output {output!r} needs a Discrete action space, got {action_space}")
        if output == "actions" and not isinstance(action_space, gym.spaces.Box):
            raise ValueError(f"output 'actions' needs a Box action space, got {action_space}")
        self.module = module
        self.observation_space = observation_space
        self.action_space = action_space
        self.output = output
        if isinstance(action_space, gym.spaces.Box):
            self.register_buffer("action_low", torch.as_tensor(action_space.low, dtype=torch.float32))
            self.register_buffer("action_high", torch.as_tensor(action_space.high, dtype=torch.float32))
        if output == "logits":
            self.logits = self._forward
            self.dist = self._dist
        if output == "q_values":
            self.q_values = self._forward
        elif hasattr(module, "q_values") and discrete:
            self.q_values = self._method("q_values")
        if hasattr(module, "value"):
            self.value = self._method("value")
        if hasattr(module, "critic"):
            self.critic = self._critic

    def _prep(self, obs: torch.Tensor) -> torch.Tensor:
        shape = tuple(self.observation_space.shape or ())
        if tuple(obs.shape[1:]) != shape:
            raise ValueError(f"obs has shape {tuple(obs.shape)}; expected [N, {', '.join(map(str, shape))}]")
        return obs.long() if isinstance(self.observation_space, gym.spaces.Discrete) else obs.float()

    def _forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.module(self._prep(obs))

    def _method(self, name: str) -> Any:
        fn = getattr(self.module, name)
        return lambda obs: _flat(fn(self._prep(obs)))

    def _critic(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return _flat(self.module.critic(self._prep(obs), action.float()))

    def _dist(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        return torch.distributions.Categorical(logits=self._forward(obs))

    def act(
        self, obs: torch.Tensor, *, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Greedy (or, for logits, sampled) discrete actions ``int64 [N]``; Box actions clipped to the box."""
        out = self._forward(obs)
        if self.output == "logits":
            return out.argmax(-1) if deterministic else sample_categorical(out, generator)
        if self.output == "q_values":
            return out.argmax(-1)
        shape = tuple(self.action_space.shape or ())
        return torch.max(torch.min(out.reshape(-1, *shape), self.action_high), self.action_low)


def _probe(policy: TorchScriptPolicy, path: Path) -> None:
    """Call ``forward`` once on an in-bounds observation batch and check the output's shape."""
    space, act = policy.observation_space, policy.action_space
    if isinstance(space, gym.spaces.Discrete):
        obs = torch.full((2,), int(space.start), dtype=torch.int64)
    else:
        assert isinstance(space, gym.spaces.Box)
        obs = torch.as_tensor(np.clip(np.zeros(space.shape), space.low, space.high), dtype=torch.float32)
        obs = obs.expand(2, *space.shape).contiguous()
    try:
        with torch.no_grad():
            out = policy.module(obs.to(policy_device(policy)))
    except Exception as err:  # TorchScript raises torch.jit.Error / RuntimeError for contract mismatches
        reason = (str(err).strip().splitlines() or [type(err).__name__])[-1]
        raise policy_file_error(path, f"forward(obs) fails on an observation of {space} ({reason})") from err
    if isinstance(act, gym.spaces.Discrete):
        ok = isinstance(out, torch.Tensor) and tuple(out.shape) == (2, int(act.n))
        need = f"[2, {int(act.n)}]"
    else:
        ok = isinstance(out, torch.Tensor) and out.shape[:1] == (2,) and out[0].numel() == int(np.prod(act.shape or ()))
        need = f"[2, {', '.join(map(str, act.shape or ()))}]"
    if not ok:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise policy_file_error(
            path, f"forward(obs [2, ...]) returned {got}; {policy.output!r} output for {act} needs {need}"
        )


def load_torchscript(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    env_id: str | None = None,
    output: Output | None = None,
    observation_space: gym.Space[Any] | None = None,
    action_space: gym.Space[Any] | None = None,
    trust_code: bool = False,
) -> TorchScriptPolicy:
    """Load a TorchScript module as a policy (see the module docstring for the contract).

    The module is code: loading runs its ``__setstate__`` methods and then calls ``forward`` once on an
    in-bounds batch to check the contract. It is therefore refused unless ``trust_code=True``.

    Args:
        path: the ``torch.jit.save`` archive.
        device: where the module lives.
        env_id: the env whose spaces the module acts in (required when the archive has no
            ``robustrl.json``; when it has one, the shapes must agree).
        output: override what ``forward`` returns (default: recorded, else ``"logits"`` for Discrete and
            ``"actions"`` for Box action spaces).
        observation_space: override the observation space (recorded or from ``env_id``).
        action_space: override the action space.
        trust_code: run the module's code. Pass it only for files from a source you would accept code from.

    Returns:
        The wrapped module, in eval mode on ``device``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        PolicyFileError: ``trust_code`` is False, the archive is corrupt or over a size limit, has no spaces
            and no ``env_id`` was given, or ``forward`` does not follow the contract (a ``ValueError``).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"policy file {str(p)!r} does not exist")
    if not trust_code:
        raise policy_file_error(
            p,
            "is a TorchScript module, which is code: loading it runs its methods (they can read and write "
            "files), so it is refused by default. If you trust its source, load it with "
            "load_policy(path, trust_code=True) (the CLIs' --trust-code)",
        )
    meta = read_torchscript_meta(p)
    obs_space, act_space = meta.get("observation_space"), meta.get("action_space")
    if env_id is not None:
        env_obs, env_act = env_spaces(env_id)
        for name, ours, theirs in (("observation", obs_space, env_obs), ("action", act_space, env_act)):
            if ours is not None and (type(ours) is not type(theirs) or ours.shape != theirs.shape):
                raise policy_file_error(p, f"its {name} space {ours} does not match env {env_id!r} ({theirs})")
        obs_space, act_space = env_obs, env_act
    obs_space = observation_space or obs_space
    act_space = action_space or act_space
    if obs_space is None or act_space is None:
        raise policy_file_error(
            p, f"is a TorchScript module without {META_FILE!r} metadata; pass env_id= so its spaces are known"
        )
    out_kind = output or meta.get("output") or ("logits" if isinstance(act_space, gym.spaces.Discrete) else "actions")
    with open_zip(p) as zf:
        check_members(zf, p)
    try:
        with _quiet_jit():
            module = torch.jit.load(str(p), map_location=device)
    except Exception as err:  # torch raises RuntimeError and friends for corrupt archives
        raise policy_file_error(p, f"cannot be loaded as TorchScript ({type(err).__name__}: {err})") from err
    try:
        policy = TorchScriptPolicy(module, obs_space, act_space, out_kind)
    except ValueError as err:
        raise policy_file_error(p, str(err)) from err
    policy = policy.to(device).eval()
    _probe(policy, p)
    return policy


def save_torchscript(
    module: torch.jit.ScriptModule,
    path: str | os.PathLike[str],
    *,
    observation_space: gym.Space[Any],
    action_space: gym.Space[Any],
    output: Output | None = None,
    env_id: str | None = None,
) -> Path:
    """Write a scripted or traced module with the ``robustrl.json`` metadata (atomically).

    Args:
        module: a ``torch.jit.script``/``torch.jit.trace`` result following the contract.
        path: the file to write.
        observation_space: one observation's space.
        action_space: one action's space.
        output: what ``forward`` returns (default ``"logits"`` for Discrete, ``"actions"`` for Box).
        env_id: the env the policy acts in.

    Returns:
        The path written.
    """
    if not isinstance(module, torch.jit.ScriptModule):
        raise ValueError(f"save_torchscript needs a torch.jit.ScriptModule, got {type(module).__name__}")
    out = output or ("logits" if isinstance(action_space, gym.spaces.Discrete) else "actions")
    if out not in _OUTPUTS:
        raise ValueError(f"output must be one of {_OUTPUTS}, got {out!r}")
    meta = {
        "format": FORMAT_NAME,
        "format_version": 1,
        "observation_space": space_to_json(observation_space),
        "action_space": space_to_json(action_space),
        "output": out,
        "env_id": env_id,
    }
    target = Path(path)
    with atomic_path(target) as tmp:
        with _quiet_jit():
            torch.jit.save(module, str(tmp), _extra_files={META_FILE: json.dumps(meta)})
    return target


class _Export(nn.Module):
    """Adapter giving one of our policies the TorchScript contract's ``forward`` (traced, not scripted)."""

    def __init__(self, policy: nn.Module, output: Output) -> None:
        super().__init__()
        self.policy = policy
        self.output = output

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.output == "logits":
            return self.policy.logits(obs)  # type: ignore[operator]
        if self.output == "q_values":
            return self.policy.q_values(obs)  # type: ignore[operator]
        return self.policy.act(obs, deterministic=True)  # type: ignore[operator]

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.policy.value(obs)  # type: ignore[operator]

    def critic(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.policy.critic(obs, action)  # type: ignore[operator]


def export_torchscript(policy: nn.Module, path: str | os.PathLike[str], *, env_id: str | None = None) -> Path:
    """Export one of our policy modules to a self-describing TorchScript file (by tracing).

    ``forward`` returns logits (actor-critic, Discrete), Q values (Q network) or deterministic actions
    (Box); ``value`` and ``critic`` are exported when the policy has them (and, for ``critic``, critics).

    Args:
        policy: a module from :data:`robustrl.policies.networks.POLICY_CLASSES`.
        path: the file to write.
        env_id: the env the policy acts in.

    Returns:
        The path written.
    """
    obs_space: gym.Space[Any] = policy.observation_space  # type: ignore[assignment]
    act_space: gym.Space[Any] = policy.action_space  # type: ignore[assignment]
    if hasattr(policy, "q_values"):
        output: Output = "q_values"
    elif isinstance(act_space, gym.spaces.Discrete):
        output = "logits"
    else:
        output = "actions"
    param = next(iter(policy.parameters()))
    if isinstance(obs_space, gym.spaces.Discrete):
        obs = torch.zeros(2, dtype=torch.int64, device=param.device)
    else:
        obs = torch.zeros(2, *(obs_space.shape or ()), device=param.device)
    inputs: dict[str, Any] = {"forward": obs}
    if hasattr(policy, "value"):
        inputs["value"] = obs
    if getattr(policy, "critics", None) is not None and isinstance(act_space, gym.spaces.Box):
        inputs["critic"] = (obs, torch.zeros(2, *act_space.shape, device=param.device))
    was_training = policy.training
    policy.eval()
    try:
        with torch.no_grad(), _quiet_jit():
            traced = torch.jit.trace_module(_Export(policy, output), inputs, check_trace=False)
    finally:
        policy.train(was_training)
    return save_torchscript(
        traced, path, observation_space=obs_space, action_space=act_space, output=output, env_id=env_id
    )

"""The configs of evaluation (:class:`EvaluateConfig`, :class:`DynamicsConfig`) and how their text resolves.

Both are frozen dataclasses whose field docstrings are the CLI help (``robustrl evaluate``, ``robustrl
evaluate-dynamics``); they round-trip through ``robustrl.common.config.config_to_dict`` /
``config_from_dict``, and the resolved config is saved in every result.

A threat is written ``NAME`` or ``NAME[FIELD=VALUE,...]`` (``pgd[norm=l2,steps=20]``), the way results label
threats; ``--option`` adds ``THREAT.FIELD=VALUE`` / ``FIELD=VALUE`` to the threats that have the field.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, get_args, get_origin

import numpy as np

from robustrl.common.device import check_device
from robustrl.common.io import check_output_path
from robustrl.common.limits import MAX_COUNT, check_count, check_fits
from robustrl.common.seeding import check_seed
from robustrl.defenses.smoothing import check_sigma
from robustrl.envs.uncertainty import uncertainty_set
from robustrl.evaluate.common import EPISODE_BYTES, check_bootstrap_reps, check_episodes
from robustrl.results.evaluation import threat_label
from robustrl.threats.dynamics import ParamAxis, grid_shape, make_grid
from robustrl.threats.registry import threat_spec

__all__ = [
    "MAX_BUDGET",
    "DynamicsConfig",
    "DynamicsPlan",
    "EvaluateConfig",
    "EvaluatePlan",
    "check_budgets",
    "check_option",
    "format_threat",
    "parse_threat",
    "parse_value",
    "plan_dynamics",
    "plan_evaluation",
    "resolve_budgets",
    "threat_labels",
    "threat_options",
]

SuiteName = Literal["sa-mdp-v1", "sa-mdp-v2"]
"""The pinned attack suites (defined in ``robustrl.adversarial.suite``; run by ``robustrl.jobs.evaluate``)."""

POINT_BYTES = 1024
"""Memory one dynamics grid point costs besides its episodes: its parameter dict, statistics and JSON text."""


@dataclass(frozen=True)
class EvaluateConfig:
    """Evaluate a policy clean and under observation/action threats at several budgets."""

    policy: str
    """Policy file (robustrl zip, Stable-Baselines3 zip or TorchScript)."""
    env: str
    """Environment id (see `robustrl envs`)."""
    threat: tuple[str, ...] = ("pgd",)
    """Threats, each NAME or NAME[FIELD=VALUE,...]
    (pgd mad critic fgsm uniform gaussian episode_l2 action_noise action_replace pr_mdp)."""
    budgets: tuple[float, ...] = (0.0, 0.05, 0.1)
    """Budgets of every threat (0 = clean); empty when every threat has --threat-budgets."""
    threat_budgets: tuple[str, ...] = ()
    """Budgets of the threats called NAME, as NAME=B1,B2,... (instead of --budgets; e.g. episode_l2=0,0.5,1)."""
    episodes: int = 100
    """Episodes per threat and budget."""
    seed: int = 0
    """Seed of every rollout."""
    out: str | None = None
    """Write the result JSON here (atomically)."""
    option: tuple[str, ...] = ()
    """Threat options THREAT.FIELD=VALUE, or FIELD=VALUE for every threat that has FIELD (e.g. pgd.steps=20)."""
    normalized: bool = False
    """Attack in the policy's normalised observation units (its obs_norm std), as SA-PPO."""
    smoothing_sigma: float = 0.0
    """Evaluate the Gaussian-smoothed policy with this sigma (noise after the attack; attacks use EOT through it)."""
    eot: bool = True
    """With smoothing, attack through the noise (expectation over noise samples)."""
    deterministic: bool = True
    """Greedy actions (true) or sampled ones."""
    num_envs: int = 0
    """Env copies stepping together (0: automatic, up to 4096 native and 8 through the Gymnasium adapter)."""
    device: str = "cpu"
    """Where the env and the policy run."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments of robustrl.make_env (Python and config files only)."""
    confidence: float = 0.95
    """Level of the bootstrap confidence intervals."""
    bootstrap_reps: int = 2000
    """Bootstrap resamples."""
    progress: bool = False
    """Show progress bars."""
    trust_code: bool = False
    """Allow loading TorchScript policies, which are code; only for files you trust."""
    vec_normalize: str | None = None
    """SB3 vec_normalize.pkl applied inside an SB3 policy (read without unpickling)."""
    suite: SuiteName | None = None
    """Run a pinned attack suite instead of --threat (sa-mdp-v2: random, critic, MAD, robust-sarsa, sa-rl,
    pa-ad and their minimum per budget, adversaries trained 200k steps, 2M on MuJoCo; sa-mdp-v1: the same with
    60k; learned adversaries cached beside --out)."""
    uncertainty_set: str = ""
    """Evaluate on this named uncertainty set's grid instead of under --threat (e.g. hopper-2d-v1,
    cartpole-2d-v1; see robustrl.envs.uncertainty): worst case, average, worst point; --episodes per point."""
    grid_points: int = 10
    """Grid points per dimension of --uncertainty-set (RRLS: 10)."""
    references: tuple[str, ...] = ()
    """Two reference policy files for --uncertainty-set's normalised score (score 0, score 1; IWOCS: nominal TD3
    and M2TD3), evaluated on the same grid with the same seeds."""

    def validate(self) -> None:
        """Check every option without running anything (:func:`plan_evaluation`); ``ValueError`` naming it."""
        plan_evaluation(self)


@dataclass(frozen=True)
class DynamicsConfig:
    """Evaluate a policy over a grid of static physical-parameter shifts (one setting per episode)."""

    policy: str
    """Policy file (robustrl zip, Stable-Baselines3 zip or TorchScript)."""
    env: str
    """Environment id whose env has the grid's parameters (see `robustrl envs`)."""
    param: tuple[str, ...]
    """Grid axes NAME=LOW:HIGH:COUNT or NAME=V1,V2,... (1 to 3)."""
    episodes: int = 20
    """Episodes per grid point."""
    seed: int = 0
    """Seed of the rollouts."""
    out: str | None = None
    """Write the result JSON here (atomically)."""
    threat: str | None = None
    """Also apply this threat in every episode, NAME or NAME[FIELD=VALUE,...]."""
    budget: float = 0.0
    """The threat's budget."""
    normalized: bool = False
    """Attack in the policy's normalised observation units."""
    smoothing_sigma: float = 0.0
    """Evaluate the Gaussian-smoothed policy with this sigma."""
    eot: bool = True
    """With smoothing, attack through the noise (expectation over noise samples)."""
    deterministic: bool = True
    """Greedy actions (true) or sampled ones."""
    max_copies: int = 0
    """Most env copies at once (0: automatic, 16384 native and 8 through the Gymnasium adapter)."""
    device: str = "cpu"
    """Where the env and the policy run."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments of robustrl.make_env (Python and config files only)."""
    confidence: float = 0.95
    """Level of the bootstrap confidence intervals."""
    bootstrap_reps: int = 2000
    """Bootstrap resamples."""
    progress: bool = False
    """Show progress bars."""
    trust_code: bool = False
    """Allow loading TorchScript policies, which are code; only for files you trust."""
    vec_normalize: str | None = None
    """SB3 vec_normalize.pkl applied inside an SB3 policy (read without unpickling)."""

    def validate(self) -> None:
        """Check every option without running anything (:func:`plan_dynamics`); ``ValueError`` naming it."""
        plan_dynamics(self)


def parse_value(text: str) -> Any:
    """A command-line option value: int, float, true/false, else the string.

    Example:
        >>> parse_value("20"), parse_value("0.5"), parse_value("True"), parse_value("l2")
        (20, 0.5, True, 'l2')
    """
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


_THREAT = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:\[(.*)\])?\s*$")


def parse_threat(text: str) -> tuple[str, dict[str, Any]]:
    """``(name, options)`` of ``NAME`` or ``NAME[FIELD=VALUE,...]``.

    Raises:
        ValueError: malformed text.

    Example:
        >>> parse_threat("pgd[norm=l2,steps=20]")
        ('pgd', {'norm': 'l2', 'steps': 20})
    """
    m = _THREAT.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"bad threat {text!r}: expected NAME or NAME[FIELD=VALUE,...]")
    options: dict[str, Any] = {}
    for item in (m.group(2) or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"bad threat {text!r}: option {item!r} is not FIELD=VALUE")
        options[key.strip()] = parse_value(value.strip())
    return m.group(1), options


def format_threat(name: str, options: Mapping[str, Any] | None = None) -> str:
    """The text :func:`parse_threat` reads back as ``(name, options)``.

    Raises:
        ValueError: an option value that is not a bool, int, float or string without ``,[]=``.

    Example:
        >>> format_threat("pgd", {"steps": 20, "norm": "l2"})
        'pgd[norm=l2,steps=20]'
    """
    opts = dict(options or {})
    for key, value in opts.items():
        ok = isinstance(value, bool | int | str) or (isinstance(value, float) and math.isfinite(value))
        if not ok or (isinstance(value, str) and (set(value) & set(",[]=") or parse_value(value) != value)):
            raise ValueError(f"option {key}={value!r} of threat {name!r} cannot be written as NAME[FIELD=VALUE]")
    return threat_label(name, {k: repr(v) if isinstance(v, float) else v for k, v in opts.items()})


def threat_options(threats: Sequence[str], options: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """The threats as ``(name, options)``, with ``THREAT.FIELD=VALUE`` / ``FIELD=VALUE`` options attached.

    Args:
        threats: ``NAME`` or ``NAME[FIELD=VALUE,...]`` each.
        options: extra options; ``FIELD=VALUE`` goes to every listed threat whose config has ``FIELD``.

    Raises:
        ValueError: a malformed threat or option, an unknown threat, an option no listed threat has, or a
            value of the wrong type (naming the threat, the option and the type it expects).

    Example:
        >>> threat_options(["pgd"], ["pgd.steps=abc"])
        Traceback (most recent call last):
        ...
        ValueError: --option 'pgd.steps=abc': option 'steps' of threat 'pgd' must be a whole number (int), got 'abc'
    """
    out = [parse_threat(t) for t in threats]
    for name, opts in out:
        threat_spec(name)  # unknown names fail here, with close names
        for key, value in opts.items():
            opts[key] = check_option(name, key, value)
    for opt in options:
        key, sep, value = opt.partition("=")
        if not sep or not key:
            raise ValueError(f"bad --option {opt!r}: expected THREAT.FIELD=VALUE or FIELD=VALUE")
        target, _, fld = key.rpartition(".")
        hits = 0
        for name, opts in out:
            spec = threat_spec(name)
            fields = {f.name for f in dataclasses.fields(spec.config)} if spec.config is not None else set()
            if (not target or target == name) and fld in fields:
                opts[fld] = check_option(name, fld, parse_value(value), what=f"--option {opt!r}")
                hits += 1
        if not hits:
            raise ValueError(f"--option {opt!r} matches no field of the threats {list(threats)}")
    return out


def _expected(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(map(str, get_args(tp)))
    return {int: "a whole number (int)", float: "a number (float)", bool: "true or false (bool)"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def check_option(name: str, key: str, value: Any, *, what: str = "") -> Any:
    """``value`` as option ``key`` of threat ``name`` after checking its type (a whole float becomes an int).

    Args:
        name: a registered threat.
        key: a field of its config.
        value: the value, as :func:`parse_value` reads it.
        what: where the option came from, for the message (``--option 'pgd.steps=abc'``).

    Raises:
        ValueError: the threat has no such option, or the value is not of its type.
    """
    spec = threat_spec(name)
    prefix = f"{what}: " if what else ""
    hints = typing.get_type_hints(spec.config) if spec.config is not None else {}
    names = [f.name for f in dataclasses.fields(spec.config)] if spec.config is not None else []
    if key not in names:
        raise ValueError(f"{prefix}threat {name!r} has no option {key!r} (options: {', '.join(names) or 'none'})")
    tp = hints[key]
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if tp is bool and type(value) is int and value in (0, 1):
        value = bool(value)
    ok = {
        int: isinstance(value, int) and not isinstance(value, bool),
        float: number and math.isfinite(value),
        bool: isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp, get_origin(tp) is Literal and value in get_args(tp))
    if not ok:
        raise ValueError(f"{prefix}option {key!r} of threat {name!r} must be {_expected(tp)}, got {value!r}")
    return value


def threat_labels(entries: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """How the result labels each threat: its name, or ``name[k=v,...]`` when the name repeats.

    Raises:
        ValueError: two threats with the same name and the same options.
    """
    names = [n for n, _ in entries]
    labels = [n if names.count(n) == 1 else threat_label(n, opts) for n, opts in entries]
    if len(set(labels)) != len(labels):
        raise ValueError(f"threats repeat with the same options: {labels}")
    return labels


MAX_BUDGET = float(np.finfo(np.float32).max)
"""The largest budget: observations and actions are float32, so a larger ε overflows them."""


def check_budgets(budgets: Sequence[Any], what: str) -> tuple[float, ...]:
    """Sorted distinct budgets after checking each is a number in ``[0, MAX_BUDGET]`` (and that there is one)."""
    out = []
    for b in budgets:
        if isinstance(b, bool) or not isinstance(b, int | float) or not math.isfinite(b) or b < 0:
            raise ValueError(f"{what} must be finite numbers ≥ 0, got {b!r}")
        if b > MAX_BUDGET:
            raise ValueError(f"{what} must be at most {MAX_BUDGET:.4g} (observations are float32), got {b!r}")
        out.append(float(b))
    if not out:
        raise ValueError(f"{what} must not be empty")
    return tuple(sorted(set(out)))


def resolve_budgets(
    names: Sequence[str], budgets: Sequence[float], threat_budgets: Sequence[str]
) -> dict[str, tuple[float, ...]]:
    """Budgets per threat name: ``NAME=B1,B2,...`` entries, else the shared ``budgets``.

    Raises:
        ValueError: a malformed entry or budget, or a threat left without budgets.

    Example:
        >>> resolve_budgets(["pgd", "episode_l2"], [0, 0.1], ["episode_l2=0,2"])
        {'pgd': (0.0, 0.1), 'episode_l2': (0.0, 2.0)}
    """
    own: dict[str, tuple[float, ...]] = {}
    for item in threat_budgets:
        name, sep, text = item.partition("=")
        try:
            values = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            values = []
        if not sep or not name.strip() or not values:
            raise ValueError(f"bad threat budgets {item!r}: expected NAME=B1,B2,...")
        own[name.strip()] = check_budgets(values, f"--threat-budgets {name.strip()}")
    missing = [n for n in names if n not in own and not budgets]
    if missing:
        raise ValueError(f"no budgets for threats {missing} (give them, or shared budgets)")
    shared = check_budgets(budgets, "--budgets") if any(n not in own for n in names) else ()
    return {n: own.get(n, shared) for n in names}


class EvaluatePlan(NamedTuple):
    """What :func:`plan_evaluation` resolved from an :class:`EvaluateConfig`, before any work."""

    entries: list[tuple[str, dict[str, Any]]]
    """Each threat as ``(name, options)``, ``--option`` merged in."""
    labels: list[str]
    """Each threat's label in the result."""
    budgets: dict[str, tuple[float, ...]]
    """Budgets per threat name."""
    sigma: float
    """The smoothing σ (0: none)."""


def _check_common(
    *,
    seed: int,
    confidence: float,
    bootstrap_reps: int,
    out: str | None,
    device: str,
    sigma: float,
) -> float:
    """Checks evaluation and dynamics share; returns σ."""
    check_seed(seed, "--seed")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 < confidence < 1:
        raise ValueError(f"--confidence must lie in (0, 1), got {confidence!r}")
    check_bootstrap_reps(bootstrap_reps)
    if out is not None:
        check_output_path(out, what="--out", kind="file")
    check_device(device)
    return check_sigma(sigma, "smoothing_sigma", allow_zero=True)


def check_uncertainty_options(cfg: EvaluateConfig) -> None:
    """Check ``cfg``'s ``--uncertainty-set`` options (set, env, grid, references); ValueError naming one."""
    uset = uncertainty_set(cfg.uncertainty_set)
    if cfg.env.partition("-v")[0] != uset.env_id.partition("-v")[0]:
        raise ValueError(f"--uncertainty-set {uset.name} belongs to {uset.env_id}, not --env {cfg.env}")
    if cfg.suite is not None or tuple(cfg.threat) not in ((), ("pgd",)) or cfg.option or cfg.threat_budgets:
        raise ValueError(
            "--uncertainty-set evaluates without threats: drop --suite, --threat, --option, --threat-budgets"
        )
    uset.grid(cfg.grid_points)  # a bad --grid-points fails here
    if len(cfg.references) not in (0, 2):
        raise ValueError(f"--references takes two policy files (score 0, score 1), got {len(cfg.references)}")
    check_episodes(cfg.episodes, (1 + len(cfg.references)) * cfg.grid_points ** len(uset.axes))


def plan_evaluation(cfg: EvaluateConfig) -> EvaluatePlan:
    """Check every option of ``cfg`` and size the request, without loading or running anything.

    The result's memory is sized from ``episodes`` × the number of runs it stores (one clean run plus one
    per threat and budget), and the bootstrap's from ``bootstrap_reps``; ``out`` must be a writable file
    path in an existing folder and ``device`` one this process can use.

    Raises:
        ValueError: naming the bad option (and the limit, for a request that cannot fit).
    """
    sigma = _check_common(
        seed=cfg.seed, confidence=cfg.confidence, bootstrap_reps=cfg.bootstrap_reps, out=cfg.out,
        device=cfg.device, sigma=cfg.smoothing_sigma,
    )  # fmt: skip
    if cfg.num_envs != 0:
        check_count(cfg.num_envs, "--num-envs")
    if cfg.uncertainty_set:
        check_uncertainty_options(cfg)
        return EvaluatePlan([], [], {}, sigma)
    if cfg.suite is not None:
        if cfg.suite not in get_args(SuiteName):
            raise ValueError(f"--suite must be one of {list(get_args(SuiteName))}, got {cfg.suite!r}")
        if tuple(cfg.threat) not in ((), ("pgd",)) or cfg.option or cfg.threat_budgets:
            raise ValueError(
                f"--suite {cfg.suite} pins its own attacks: it does not combine with --threat, --option or "
                f"--threat-budgets (got threat={list(cfg.threat)}, option={list(cfg.option)}, "
                f"threat_budgets={list(cfg.threat_budgets)})"
            )
        budgets = check_budgets(cfg.budgets, "--budgets")
        check_episodes(cfg.episodes, 1 + 6 * len(budgets))
        return EvaluatePlan([], [], {}, sigma)
    entries = threat_options(cfg.threat, cfg.option)
    if not entries:
        raise ValueError("--threat must not be empty")
    labels = threat_labels(entries)
    per = resolve_budgets([n for n, _ in entries], cfg.budgets, cfg.threat_budgets)
    check_episodes(cfg.episodes, 1 + sum(len(b) for b in per.values()))
    return EvaluatePlan(entries, labels, per, sigma)


class DynamicsPlan(NamedTuple):
    """What :func:`plan_dynamics` resolved from a :class:`DynamicsConfig`, before any work."""

    axes: tuple[ParamAxis, ...]
    """The grid's axes."""
    shape: tuple[int, ...]
    """Values per axis."""
    threat: tuple[str, dict[str, Any]] | None
    """The threat applied in every episode, as ``(name, options)``."""
    sigma: float
    """The smoothing σ (0: none)."""


def _axis_count(text: str) -> int | None:
    """The COUNT of a ``NAME=LOW:HIGH:COUNT`` axis (None for any other text), read before the axis is built."""
    spec = text.partition("=")[2]
    if spec.count(":") != 2:
        return None
    try:
        return int(spec.rpartition(":")[2])
    except ValueError:
        return None


def plan_dynamics(cfg: DynamicsConfig) -> DynamicsPlan:
    """Check every option of ``cfg`` and size the grid, without loading or running anything.

    Each axis' COUNT is checked before its values are made; then the whole grid (points × episodes) is
    sized: every (point, episode) pair holds its parameters and its episode, every point its statistics.

    Raises:
        ValueError: naming the bad option (and the limit, for a grid that cannot fit).
    """
    sigma = _check_common(
        seed=cfg.seed, confidence=cfg.confidence, bootstrap_reps=cfg.bootstrap_reps, out=cfg.out,
        device=cfg.device, sigma=cfg.smoothing_sigma,
    )  # fmt: skip
    for axis in cfg.param:
        count = _axis_count(axis) if isinstance(axis, str) else None
        if count is not None and count > MAX_COUNT:
            raise ValueError(f"--param {axis}: COUNT {count:.3g} is more than the limit of {MAX_COUNT} values")
    axes = make_grid(cfg.param)
    shape = grid_shape(axes)
    points = check_count(int(np.prod(shape, dtype=object)), f"--param {' '.join(map(str, cfg.param))} (grid points)")
    episodes = check_count(cfg.episodes, "--episodes")
    check_count(points * episodes, "--param grid points × --episodes")
    check_fits(
        points * (POINT_BYTES + episodes * (EPISODE_BYTES + 8 * len(axes))),
        f"--param {' '.join(map(str, cfg.param))} ({points} grid points × {episodes} episodes)",
        hint="use fewer grid points or episodes",
    )
    threat = None if cfg.threat is None else threat_options([cfg.threat], [])[0]
    if threat is not None:
        check_budgets([cfg.budget], "--budget")
    if isinstance(cfg.max_copies, bool) or not isinstance(cfg.max_copies, int) or cfg.max_copies < 0:
        raise ValueError(f"--max-copies must be ≥ 1 (or 0: automatic), got {cfg.max_copies!r}")
    if cfg.max_copies:
        check_count(cfg.max_copies, "--max-copies")
    return DynamicsPlan(axes, shape, threat, sigma)

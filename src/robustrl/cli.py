"""The ``robustrl`` console script: each subcommand parses a typed config and calls the Python API.

:data:`COMMANDS` maps each subcommand to its config class and its entry point (``Command.load()`` returns
both): the entry point takes the frozen config and returns a typed result, which the subcommand prints
(``str(result)``). A sweep executor calls the same table with :func:`run_command`. Modules are imported
only when their subcommand runs, so ``robustrl --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, get_origin


@dataclass(frozen=True)
class Command:
    """One subcommand: where its config and its entry point live."""

    help: str
    """One-line description shown by ``robustrl --help``."""
    config: str
    """``module:ConfigClass`` parsed from the command line."""
    run: str
    """``module:function`` called with the config; its return value is printed."""
    positional: tuple[str, ...] = ()
    """Config fields taken as positional arguments."""

    def load(self) -> tuple[type, Any]:
        """``(config class, entry point)``, imported now."""
        return _resolve(self.config), _resolve(self.run)


# Add a line here per subcommand.
COMMANDS: dict[str, Command] = {
    "demo": Command(
        "The main job: train a smoothed PPO, attack it, certify it, write the report.",
        "robustrl.demo:DemoConfig",
        "robustrl.demo:demo",
    ),
    "envs": Command(
        "List the environments robustrl can make.", "robustrl.envs.cli:EnvsConfig", "robustrl.envs.cli:run_envs"
    ),
    "train": Command(
        "Train an agent online (PPO, DQN, SAC), optionally on noisy observations for Policy Smoothing.",
        "robustrl.agents.train:TrainConfig",
        "robustrl.jobs:train",
    ),
    "certify": Command(
        "Certify the return under ℓ2 observation attacks (Policy Smoothing).",
        "robustrl.certify.config:CertifyConfig",
        "robustrl.certify:certify",
    ),
    "evaluate": Command(
        "Evaluate a policy clean and under observation/action attacks at several budgets.",
        "robustrl.evaluate.config:EvaluateConfig",
        "robustrl.jobs:evaluate",
    ),
    "adapt": Command(
        "Test-time adaptation of a PROTECTED policy set: EXP3 picks the acting policy per episode under attacks.",
        "robustrl.evaluate.protected:AdaptConfig",
        "robustrl.evaluate.protected:adapt",
    ),
    "evaluate-dynamics": Command(
        "Evaluate a policy over a grid of physical-parameter shifts (dynamics).",
        "robustrl.evaluate.config:DynamicsConfig",
        "robustrl.evaluate:evaluate_dynamics",
    ),
    "report": Command(
        "Write a self-contained HTML report of evaluation, dynamics and certificate files, or of a study folder.",
        "robustrl.report:ReportConfig",
        "robustrl.experiments.report:report_or_study",
        positional=("results",),
    ),
    "sweep": Command(
        "Run a study (TOML spec) on local workers or Ray into DIR/study.duckdb; run it again to resume.",
        "robustrl.experiments.cli:SweepConfig",
        "robustrl.experiments.cli:run_sweep",
        positional=("spec",),
    ),
    "results": Command(
        "Aggregate a study's results: IQM, median, mean with bootstrap CIs, probability of improvement.",
        "robustrl.experiments.cli:ResultsConfig",
        "robustrl.experiments.cli:run_results",
        positional=("study",),
    ),
    "dataset": Command(
        "Offline datasets: collect (Minari, from a policy or a D4RL-like recipe), corrupt (RIQL protocol), info.",
        "robustrl.offline.dataset_cli:DatasetConfig",
        "robustrl.offline.dataset_cli:dataset",
        positional=("action", "source"),
    ),
    "train-offline": Command(
        "Train an offline learner (BC, IQL, RIQL, CQL, TD3+BC) on a Minari dataset or transition file.",
        "robustrl.offline.train:OfflineTrainConfig",
        "robustrl.offline.train:train_offline",
    ),
}
"""Every subcommand: ``name -> Command(help, "module:ConfigClass", "module:entry_point")``."""


def _resolve(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def run_command(name: str, cfg: Any) -> Any:
    """Run subcommand ``name`` as the console script would, without parsing or printing.

    Args:
        name: a key of :data:`COMMANDS` (``"evaluate"``, ``"certify"``...).
        cfg: its config object, or a dict read back with ``config_from_dict`` (e.g. a saved result's
            ``config``).

    Returns:
        What the entry point returns (a typed result: ``EvaluationResult``, ``Certificate``...).

    Raises:
        ValueError: unknown command, or a bad config (from the entry point).
        TypeError: ``cfg`` is neither the command's config class nor a dict.
    """
    from robustrl.common.config import config_from_dict

    if name not in COMMANDS:
        raise ValueError(f"unknown command {name!r} (commands: {', '.join(COMMANDS)})")
    cfg_cls, run = COMMANDS[name].load()
    if isinstance(cfg, Mapping):
        cfg = config_from_dict(cfg_cls, dict(cfg))
    elif not isinstance(cfg, cfg_cls):
        raise TypeError(f"command {name!r} takes a {cfg_cls.__name__} or a dict, got {type(cfg).__name__}")
    return run(cfg)


def _not_on_command_line(cfg_cls: type) -> tuple[str, ...]:
    """Config fields with dict values (Python and config files only)."""
    hints = typing.get_type_hints(cfg_cls)
    return tuple(f.name for f in fields(cfg_cls) if hints[f.name] is dict or get_origin(hints[f.name]) is dict)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per command (configs imported lazily on use)."""
    from robustrl import __version__

    parser = argparse.ArgumentParser(
        prog="robustrl",
        description="Train RL agents, attack them, certify them, report how robust they are.",
    )
    parser.add_argument("--version", action="version", version=f"robustrl {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        sub.add_parser(name, help=cmd.help, description=cmd.help, add_help=False)
    return parser


def set_cli_threads() -> None:
    """One torch CPU thread for the command line (``ROBUSTRL_NUM_THREADS`` overrides; importing robustrl sets none).

    Two threads on a two-core machine collapse when anything else runs (measured 30× slower). Freed memory
    stays in the process too (:func:`robustrl.common.allocator.keep_freed_memory`).
    """
    import torch

    from robustrl.common.allocator import keep_freed_memory

    text = os.environ.get("ROBUSTRL_NUM_THREADS", "1")
    try:
        threads = int(text)
    except ValueError:
        threads = 0
    if threads < 1:
        raise SystemExit(f"robustrl: error: ROBUSTRL_NUM_THREADS must be a whole number ≥ 1, got {text!r}")
    torch.set_num_threads(threads)
    try:
        keep_freed_memory()
    except ValueError as err:
        raise SystemExit(f"robustrl: error: {err}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the console script; returns the process exit code."""
    from robustrl.common.config import add_config_arguments, config_from_namespace

    set_cli_threads()
    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    ns, rest = parser.parse_known_args(args)
    logging.basicConfig(level=logging.DEBUG if ns.verbose else logging.INFO, format="%(message)s", force=True)
    if ns.command is None:
        parser.print_help()
        return 2
    cmd = COMMANDS[ns.command]
    cfg_cls = _resolve(cmd.config)
    sub = argparse.ArgumentParser(prog=f"robustrl {ns.command}", description=cmd.help)
    add_config_arguments(sub, cfg_cls, positional=cmd.positional, skip=_not_on_command_line(cfg_cls))
    sub_ns = sub.parse_args(rest)
    try:
        cfg = config_from_namespace(cfg_cls, sub_ns)
        result = _resolve(cmd.run)(cfg)
    except (ValueError, FileNotFoundError, TypeError, KeyError) as err:
        print(f"robustrl {ns.command}: error: {err}", file=sys.stderr)
        return 1
    if result is not None:
        try:
            print(result)
        except BrokenPipeError:  # e.g. `robustrl envs | head`: the reader left, nothing is lost
            sys.stdout = open(os.devnull, "w")  # keeps the exit-time flush quiet
    return int(getattr(result, "exit_code", 0))  # a study with failed cells exits 3


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""The ``robustrl`` console script: each subcommand parses a typed config and calls the Python API.

Subcommands are listed in :data:`COMMANDS` as ``name -> "module:function"``. The function's module
defines a config dataclass; the function takes that config and returns an object the subcommand prints.
Modules are imported only when their subcommand runs, so ``robustrl --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


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
        "robustrl.agents.train:train",
    ),
    "certify": Command(
        "Certify the return under ℓ2 observation attacks (Policy Smoothing).",
        "robustrl.certify.cli:CertifyConfig",
        "robustrl.certify.cli:run_certify",
    ),
    "evaluate": Command(
        "Evaluate a policy under observation/action attacks or dynamics shifts.",
        "robustrl.evaluate.cli:EvaluateConfig",
        "robustrl.evaluate.cli:run_evaluate",
    ),
    "report": Command(
        "Write a self-contained HTML robustness report of evaluation, dynamics and certificate files.",
        "robustrl.report:ReportConfig",
        "robustrl.report:run_report",
        positional=("results",),
    ),
}


def _resolve(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the console script; returns the process exit code."""
    from robustrl.common.config import add_config_arguments, config_from_namespace

    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    ns, rest = parser.parse_known_args(args)
    logging.basicConfig(
        level=logging.DEBUG if ns.verbose else logging.INFO, format="%(message)s", force=True
    )
    if ns.command is None:
        parser.print_help()
        return 2
    cmd = COMMANDS[ns.command]
    cfg_cls = _resolve(cmd.config)
    sub = argparse.ArgumentParser(prog=f"robustrl {ns.command}", description=cmd.help)
    add_config_arguments(sub, cfg_cls, positional=cmd.positional)
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
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

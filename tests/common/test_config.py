import argparse
import dataclasses
from typing import Literal

import pytest

from robustrl.common.config import (
    add_config_arguments,
    config_from_dict,
    config_from_namespace,
    config_to_dict,
    field_docs,
)


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    """A toy config."""

    env: str
    """Environment id."""
    steps: int = 10
    """Gradient steps."""
    norm: Literal["linf", "l2"] = "linf"
    """Which ball."""
    budgets: tuple[float, ...] = (0.0, 0.1)
    """Budgets to try."""
    progress: bool = True
    """Show a progress bar."""
    sigma: float | None = None
    """Optional noise."""


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, ToyConfig)
    return config_from_namespace(ToyConfig, parser.parse_args(argv))


def test_field_docstrings_are_read_from_source():
    docs = field_docs(ToyConfig)
    assert docs["steps"] == "Gradient steps."
    assert docs["budgets"] == "Budgets to try."


def test_help_lists_docstrings_and_defaults():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, ToyConfig)
    text = parser.format_help()
    assert "Gradient steps. (default: 10)" in text
    assert "{linf,l2}" in text


def test_parse_types_defaults_and_flags():
    cfg = _parse(["--env", "CartPole-v1", "--steps", "3", "--norm", "l2", "--budgets", "0", "0.5", "--no-progress"])
    assert cfg == ToyConfig(env="CartPole-v1", steps=3, norm="l2", budgets=(0.0, 0.5), progress=False)
    assert _parse(["--env", "x"]) == ToyConfig(env="x")
    assert _parse(["--env", "x", "--sigma", "0.2"]).sigma == 0.2


@dataclasses.dataclass(frozen=True)
class OverrideConfig:
    """Override lists."""

    defense_set: tuple[str, ...] = ("eps=0.1",)
    """KEY=VALUE overrides."""
    budgets: tuple[float, ...] = (0.0,)
    """Budgets."""


def test_a_repeated_override_list_keeps_every_value_and_replaces_the_default():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, OverrideConfig)

    def parse(argv: list[str]) -> OverrideConfig:
        return config_from_namespace(OverrideConfig, parser.parse_args(argv))

    assert parse(["--defense-set", "a=1", "--defense-set", "b=2", "c=3"]).defense_set == ("a=1", "b=2", "c=3")
    assert parse(["--defense-set", "a=1"]).defense_set == ("a=1",)  # not ("eps=0.1", "a=1")
    assert parse([]).defense_set == ("eps=0.1",)  # the parser is reused: no state left from earlier parses
    assert parse(["--budgets", "0.2", "--budgets", "0.3"]).budgets == (0.3,)  # other lists: the last one wins


def test_bad_choice_and_missing_required_exit():
    with pytest.raises(SystemExit):
        _parse(["--env", "x", "--norm", "l3"])
    with pytest.raises(SystemExit):
        _parse([])


def test_dict_round_trip_and_unknown_keys():
    cfg = ToyConfig(env="Pendulum-v1", budgets=(1.0,), sigma=0.3)
    data = config_to_dict(cfg)
    assert data["budgets"] == [1.0]
    assert config_from_dict(ToyConfig, data) == cfg
    with pytest.raises(ValueError, match="bogus"):
        config_from_dict(ToyConfig, {**data, "bogus": 1})

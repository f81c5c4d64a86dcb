from __future__ import annotations

import pytest

from robustrl.agents import TrainConfig, train
from robustrl.common.limits import available_memory, check_count, check_fits, format_bytes
from robustrl.common.seeding import check_seed


def test_check_fits_names_the_request_and_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBUSTRL_MAX_MEMORY", "1G")
    assert available_memory() == 2**30
    check_fits(2**29, "--episodes 10")
    with pytest.raises(ValueError, match=r"--episodes 1e12 needs about 2\.0 GiB .* 1\.0 GiB is available"):
        check_fits(2**31, "--episodes 1e12")
    with pytest.raises(ValueError, match="unbounded"):
        check_fits(float("inf"), "--budgets 1e300")
    monkeypatch.setenv("ROBUSTRL_MAX_MEMORY", "lots")
    with pytest.raises(ValueError, match="ROBUSTRL_MAX_MEMORY"):
        available_memory()


def test_counts_are_whole_bounded_numbers() -> None:
    assert check_count(3.0, "n") == 3
    for bad, match in [(0, "≥ 1"), (2.5, "whole"), (float("nan"), "whole"), (True, "whole"), (2**41, "too large")]:
        with pytest.raises(ValueError, match=match):
            check_count(bad, "--n")
    assert format_bytes(1536) == "1.5 KiB"


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5])
def test_bad_seeds_are_named(seed: object) -> None:
    with pytest.raises(ValueError, match="seed must be a whole number"):
        check_seed(seed)
    with pytest.raises(ValueError, match="seed must be a whole number"):
        train(TrainConfig(seed=seed, total_steps=64))  # type: ignore[arg-type]


@pytest.mark.parametrize(("field", "value"), [("num_envs", 10**12), ("total_steps", 10**13), ("eval_episodes", 0)])
def test_train_sizes_its_request_before_any_work(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        train(TrainConfig(**{field: value}))  # type: ignore[arg-type]


def test_train_refuses_a_nan_target() -> None:
    with pytest.raises(ValueError, match="stop_at_return"):
        train(TrainConfig(stop_at_return=float("nan"), total_steps=64))

"""The command line refuses what it cannot do before doing any of it, and a killed run loses nothing.

* TorchScript policies are code: refused unless ``--trust-code``.
* Every request is sized first: a count or a grid that cannot fit fails in milliseconds, naming the option
  and the limit, and writes nothing.
* ``--out`` and ``--device`` are checked before the policy is even loaded (a missing policy file would
  fail later, so these tests pass one that does not exist).
* Messages name the input and the fix: a wrongly typed threat option, a bad seed, a directory given to
  ``report``, a policy that does not fit the env.
* ``robustrl evaluate`` and ``robustrl certify`` really SIGKILLed at several points leave the previous
  output at ``--out`` byte-identical and no temporaries a re-run does not clean; the re-run succeeds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from robustrl.cli import main
from robustrl.policies import export_torchscript, save_policy
from robustrl.policies.networks import ActorCriticPolicy

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")

MISSING = "no-such-policy.zip"
"""A policy path that does not exist: an error about it means a check ran too late."""


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small CartPole actor-critic as a robustrl zip and as a TorchScript file."""
    root = tmp_path_factory.mktemp("policies")
    env = gym.make("CartPole-v1")
    policy = ActorCriticPolicy(env.observation_space, env.action_space, pi_hidden=(8,), vf_hidden=(8,))
    env.close()
    torch.manual_seed(0)
    return {
        "zip": save_policy(policy, root / "pi.zip", env_id="CartPole-v1"),
        "torchscript": export_torchscript(policy, root / "pi.pt", env_id="CartPole-v1"),
    }


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``robustrl ARGS`` in process: ``(exit code, stderr)``."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def evaluate_args(policy: Path | str, *extra: str) -> list[str]:
    return ["evaluate", "--policy", str(policy), "--env", "CartPole-v1", "--threat", "uniform", "--budgets", "0",
            "0.1", "--episodes", "4", "--bootstrap-reps", "50", *extra]  # fmt: skip


def certify_args(policy: Path | str, *extra: str) -> list[str]:
    return ["certify", "--policy", str(policy), "--env", "CartPole-v1", "--sigma", "0.2", "--budgets", "0", "0.1",
            "--episodes", "200", "--no-progress", *extra]  # fmt: skip


def dynamics_args(policy: Path | str, *extra: str) -> list[str]:
    return ["evaluate-dynamics", "--policy", str(policy), "--env", "CartPole-v1", "--param", "length=0.5,1",
            "--episodes", "2", "--bootstrap-reps", "50", *extra]  # fmt: skip


# ------------------------------------------------------------------------------------------- --trust-code
def test_torchscript_policies_need_trust_code(
    policies: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = policies["torchscript"]
    for args in (evaluate_args(script), dynamics_args(script), certify_args(script)):
        out = tmp_path / f"{args[0]}.json"
        code, err = run_cli([*args, "--out", str(out)], capsys)
        assert code == 1 and "TorchScript module, which is code" in err and "--trust-code" in err, err
        assert not out.exists()
    for args in (evaluate_args(script), certify_args(script)):
        out = tmp_path / f"{args[0]}.json"
        code, err = run_cli([*args, "--out", str(out), "--trust-code"], capsys)
        assert code == 0, err
        assert json.loads(out.read_text())["config"]["trust_code"] is False  # a saved config never grants trust


# ------------------------------------------------------------------------------------------- sizing
OVERSIZED = [
    (certify_args(MISSING, "--budgets", "0:1e9:1e-9"), r"--budgets 0:1e9:1e-9 is 1e\+18 budgets.*limit"),
    (certify_args(MISSING, "--budgets", "0:1e300:1"), r"--budgets 0:1e300:1 is 1e\+300 budgets.*limit"),
    (certify_args(MISSING, "--budgets", "0:1:1e-8"), r"--budgets 0:1:1e-8 \(100000001 budgets\) needs .*available"),
    (certify_args(MISSING, "--episodes", "1000000000000"), r"--episodes 1000000000000 needs .*available"),
    (certify_args(MISSING, "--method", "cp", "--floor", "0", "--max-return", "1e12"), r"--max-return 1e\+12 .*avail"),
    (certify_args("POLICY", "--method", "cp", "--max-return", "1e12"), r"--max-return 1e\+12 .*available"),
    (certify_args("POLICY", "--num-envs", "1000000000"), r"num_envs=1000000000 .*available"),
    (evaluate_args(MISSING, "--episodes", "1000000000000"), r"--episodes 1000000000000 \(× 3 runs\) needs .*available"),
    (evaluate_args(MISSING, "--bootstrap-reps", "1000000000000"), r"--bootstrap-reps 1000000000000 needs .*available"),
    (evaluate_args(MISSING, "--budgets", "0", "1e300"), r"--budgets must be at most 3\.403e\+38"),
    (evaluate_args(MISSING, "--num-envs", "10000000000000"), r"--num-envs=10000000000000 is too large \(the limit"),
    (evaluate_args("POLICY", "--num-envs", "1000000000"), r"num_envs=1000000000 .*available"),
    (dynamics_args(MISSING, "--param", "length=0.5:1:100000", "gravity=1:10:100000"),
     r"--param length=0\.5:1:100000 gravity=1:10:100000 \(10000000000 grid points × 2 episodes\) needs .*available"),
    (dynamics_args(MISSING, "--param", "length=0.5:1:1000000000000000"), r"--param length=.*COUNT 1e\+15 .*limit"),
    (["report", "R.json", "--dpi", "100000"], r"--dpi=100000 is too large \(the limit is 1200\)"),
    (["report", "R.json", "--reps", "1000000000000"], r"--reps 1000000000000 needs .*available"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), OVERSIZED, ids=[" ".join(a[:1] + a[-2:]) for a, _ in OVERSIZED])
def test_requests_that_cannot_fit_fail_fast_naming_the_option(
    args: list[str],
    message: str,
    policies: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROBUSTRL_MAX_MEMORY", "4G")  # the same limits on every machine
    out = tmp_path / ("report" if args[0] == "report" else "out.json")
    args = [str(policies["zip"]) if a == "POLICY" else a for a in args]
    start = time.perf_counter()
    code, err = run_cli([*args, "--out", str(out)], capsys)
    assert code == 1 and re.search(message, err), err
    assert time.perf_counter() - start < 5  # refused up front, not after allocating
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------- --out, --device
def _bad_outs(tmp_path: Path) -> list[tuple[str, str]]:
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.json").write_text("precious")
    return [
        (str(tmp_path / "folder"), "is a directory, but a file is expected"),
        (str(tmp_path / "nope" / "out.json"), "parent folder .* does not exist"),
        ("", "--out is empty"),
    ]


@pytest.mark.parametrize("command", ["evaluate", "evaluate-dynamics", "certify"])
def test_bad_out_or_device_fails_before_the_policy_is_loaded(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make = {"evaluate": evaluate_args, "evaluate-dynamics": dynamics_args, "certify": certify_args}[command]
    for out, message in _bad_outs(tmp_path):
        code, err = run_cli([*make(MISSING), "--out", out], capsys)
        assert code == 1 and "--out" in err and re.search(message, err), err
    devices = [("foo", "is not a device to run on")]
    if not torch.cuda.is_available():
        devices.append(("cuda", "cannot be used here"))
    for device, message in devices:
        code, err = run_cli([*make(MISSING), "--device", device], capsys)
        assert code == 1 and f"--device {device!r} {message}" in err, err
    assert (tmp_path / "file.json").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.json", "folder"]


def test_report_and_demo_check_their_output_folder_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    for args in (["report", "never-read.json", "--out", str(afile)], ["demo", "--size", "quick", "--out", str(afile)]):
        code, err = run_cli(args, capsys)
        assert code == 1 and "--out" in err and "a folder is expected" in err, err
    assert afile.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


# ------------------------------------------------------------------------------------------- messages
def test_a_wrongly_typed_threat_option_names_the_threat_the_option_and_the_type(
    policies: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli([*evaluate_args(policies["zip"]), "--threat", "pgd", "--option", "pgd.steps=abc"], capsys)
    assert code == 1
    assert "--option 'pgd.steps=abc': option 'steps' of threat 'pgd' must be a whole number (int), got 'abc'" in err
    code, err = run_cli([*evaluate_args(policies["zip"]), "--threat", "pgd[norm=l3]"], capsys)
    assert code == 1 and "option 'norm' of threat 'pgd' must be one of linf, l2, got 'l3'" in err
    code, err = run_cli([*dynamics_args(policies["zip"]), "--threat", "pgd[random_start=maybe]"], capsys)
    assert code == 1 and "option 'random_start' of threat 'pgd' must be true or false (bool)" in err


@pytest.mark.parametrize("seed", ["-1", str(2**64)])
def test_bad_seeds_are_refused_by_every_entry_point(seed: str, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (evaluate_args(MISSING), dynamics_args(MISSING), certify_args(MISSING),
                 ["report", "never-read.json", "--out", "r"], ["demo", "--size", "quick", "--out", "d"]):  # fmt: skip
        code, err = run_cli([*args, "--seed", seed], capsys)
        assert code == 1 and f"--seed must be a whole number from 0 to {2**63 - 1}, got {seed}" in err, (args, err)


def test_report_of_a_directory_says_what_to_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(["report", str(tmp_path), "--out", str(tmp_path / "out")], capsys)
    assert code == 1 and "is a directory: pass the result JSON files in it" in err and "*.json" in err
    assert not (tmp_path / "out").exists()


def test_a_policy_that_does_not_fit_the_env_names_both_and_their_shapes(
    policies: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pol = str(policies["zip"])
    for args in (evaluate_args(pol), certify_args(pol, "--floor", "-2000")):
        args[args.index("CartPole-v1")] = "Pendulum-v1"
        code, err = run_cli(args, capsys)
        assert code == 1, err
        assert f"policy {pol!r} does not fit env 'Pendulum-v1'" in err
        assert "observations of shape (4,)" in err and "(3,)" in err
        assert "acts in Discrete(2)" in err and "takes Box of shape (1,)" in err


# ------------------------------------------------------------------------------------------- SIGKILL
def _temporaries(folder: Path, name: str) -> list[str]:
    return [p.name for p in folder.iterdir() if re.fullmatch(rf"\.{re.escape(name)}\..*\.tmp", p.name)]


def _kill(args: list[str], marker: bytes | None, timeout: float = 120.0) -> None:
    """Start ``robustrl ARGS`` and SIGKILL it at once (``marker`` None) or once its stderr shows ``marker``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "robustrl.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "ROBUSTRL_NUM_THREADS": "1"},
    )
    assert proc.stderr is not None
    try:
        if marker is not None:
            os.set_blocking(proc.stderr.fileno(), False)
            seen, deadline = b"", time.monotonic() + timeout
            while marker not in seen:
                if proc.poll() is not None:
                    pytest.fail(f"robustrl {args[0]} exited with {proc.returncode} before {marker!r}: {seen[-800:]!r}")
                if time.monotonic() > deadline:
                    pytest.fail(f"{marker!r} did not appear within {timeout} s")
                chunk = proc.stderr.read()
                seen += chunk or b""
                if not chunk:
                    time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.stderr.close()


@pytest.mark.parametrize(
    ("command", "points"),
    [
        ("evaluate", {"start": None, "rollouts": b"episodes"}),
        ("certify", {"start": None, "sampling": b"episodes", "bound": b"smoothed episodes in"}),
    ],
)
def test_a_killed_run_keeps_the_previous_output_and_a_rerun_succeeds(
    command: str,
    points: dict[str, bytes | None],
    policies: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "result.json"
    quick = evaluate_args(policies["zip"]) if command == "evaluate" else certify_args(policies["zip"])
    code, err = run_cli([*quick, "--out", str(out)], capsys)
    assert code == 0, err
    before = out.read_bytes()
    # long enough that no kill point can miss: 200000 episodes run for many seconds
    long = [*quick, "--out", str(out), "--episodes", "200000", "--seed", "1"]
    long += ["--progress"] if command == "evaluate" else ["--progress", "true"]
    for point, marker in points.items():
        _kill(long, marker)
        assert out.read_bytes() == before, point  # the earlier output is untouched
        leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name != out.name)
        assert leftovers == _temporaries(tmp_path, out.name), (point, leftovers)  # at most what a write cleans
    code, err = run_cli([*quick, "--out", str(out), "--seed", "2"], capsys)
    assert code == 0, err
    assert out.read_bytes() != before and json.loads(out.read_text())["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]

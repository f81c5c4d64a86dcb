"""Real sweeps on a real Ray (a local runtime with 2 CPUs, started once for this module): resume after SIGKILL.

The killed drivers are separate processes connected to this module's Ray with ``--ray-address``, as drivers
on a cluster are; Ray ends the tasks of a driver that dies.
"""

from __future__ import annotations

import time

import pytest
import ray
from studyutil import check_exactly_once, finished_files, kill, launch, tiny_spec, training_in_progress, wait_for

from robustrl.experiments.cells import load_study
from robustrl.experiments.cli import SweepConfig, run_sweep
from robustrl.experiments.executors import RayExecutor


@pytest.fixture(scope="module")
def ray_address():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_ray_executor_uses_the_running_ray_and_its_cpus(ray_address, tmp_path):
    cert = next(c for c in load_study(tiny_spec(tmp_path / "tiny.toml")).cells if c.stage == "certify")
    ex = RayExecutor(str(tmp_path))
    try:
        assert ex.capacity == 2
        ex.submit(cert.cell_hash, cert.task())  # its training cell never ran: no policy file
        (outcome,) = ex.wait(60)
    finally:
        ex.close()
    assert ray.is_initialized()  # an executor does not shut down a Ray it did not start
    assert outcome["cell_hash"] == cert.cell_hash and not outcome["ok"] and outcome["rows"] == []
    assert f"{cert.parent}/policy.zip" in outcome["error"]


def test_ray_sweep_resumes_after_sigkill(ray_address, tmp_path):
    spec = tiny_spec(tmp_path / "tiny.toml", steps=8192)
    out = tmp_path / "study"
    study = load_study(spec)

    proc = launch(spec, out, executor="ray", ray_address=ray_address, log=tmp_path / "1.log")
    wait_for(lambda: bool(training_in_progress(out)), 120, "a training cell to start", proc)
    kill(proc)
    assert training_in_progress(out), "the kill should leave an unfinished run folder"

    done_before = finished_files(out)
    proc = launch(spec, out, executor="ray", ray_address=ray_address, log=tmp_path / "2.log")
    wait_for(lambda: finished_files(out) >= done_before + 2, 120, "two more cells", proc)
    kill(proc)
    time.sleep(1.0)  # Ray ends the dead driver's tasks

    res = run_sweep(SweepConfig(spec, out, executor="ray", progress=False))
    assert res.complete and 0 < res.ran < len(study.cells)
    check_exactly_once(out, study)

import json
import math

import numpy as np
import pytest
import torch

from robustrl.common.io import atomic_path, read_json, write_json


def test_write_json_converts_arrays_and_non_finite(tmp_path):
    path = write_json(tmp_path / "a" / "r.json", {"t": torch.tensor([1.0, 2.0]), "n": np.float32(1.5), "x": math.inf})
    data = json.loads(path.read_text())
    assert data == {"t": [1.0, 2.0], "n": 1.5, "x": "inf"}


def test_failed_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_unserialisable_object_keeps_old_file(tmp_path):
    target = tmp_path / "r.json"
    write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        write_json(target, {"a": object()})
    assert read_json(target) == {"a": 1}


def test_read_json_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        read_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\x00{not json")
    with pytest.raises(ValueError, match="bad.json"):
        read_json(bad)


def test_result_files_get_ordinary_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        path = write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644


# ------------------------------------------------------------------ interrupted writes and their leftovers

_KILLED_WRITER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("io_under_test", sys.argv[1])
io = importlib.util.module_from_spec(spec)
spec.loader.exec_module(io)  # just this module: no torch import, so the test stays fast
with io.atomic_path(sys.argv[2]) as tmp, open(tmp, "wb") as f:
    for i in range(10_000):  # ~10 GB if never killed; the test kills it after the first MiB
        f.write(b"x" * (1 << 20))
        f.flush()
        if i == 0:
            print(tmp, flush=True)
"""


def _temporaries(folder, name):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}.") and p.name.endswith(".tmp"))


def _killed_mid_write(target):
    """Run a writer of ``target`` in a subprocess, SIGKILL it mid-write, return (pid, its temporary)."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import robustrl.common.io as io_module

    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, io_module.__file__, str(target)], stdout=subprocess.PIPE, text=True
    )
    try:
        tmp = Path(proc.stdout.readline().strip())
        assert tmp.stat().st_size >= 1 << 20  # it really is mid-write
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return proc.pid, tmp


def test_sigkill_mid_write_keeps_old_file_and_next_write_cleans_up(tmp_path):
    target = tmp_path / "result.json"
    write_json(target, {"complete": True})
    pid, tmp = _killed_mid_write(target)
    assert read_json(target) == {"complete": True}  # the previous complete file survives intact
    assert tmp.exists() and str(pid) in tmp.name  # the partial is left behind, named by its writer
    assert _temporaries(tmp_path, "result.json") == [tmp.name]
    write_json(target, {"complete": "again"})
    assert not tmp.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]
    assert read_json(target) == {"complete": "again"}


def test_cleanup_spares_live_writers_and_other_names(tmp_path):
    from robustrl.common.io import remove_stale_temporaries

    target = tmp_path / "r.json"
    _, dead_other = _killed_mid_write(tmp_path / "other.json")  # a dead writer of another name
    with atomic_path(target) as live:  # a live writer (this process) of the same name
        live.write_text("in progress")
        assert remove_stale_temporaries(target) == []
        write_json(target, {"a": 1})  # a concurrent write of the same name leaves the live temporary alone
        assert live.read_text() == "in progress"
    assert target.read_text() == "in progress"
    assert dead_other.exists()
    assert remove_stale_temporaries(tmp_path / "other.json") == [dead_other]


def test_uncheckable_temporaries_are_removed_only_when_old(tmp_path):
    import os
    import time

    from robustrl.common.io import STALE_TEMP_AGE_S

    target = tmp_path / "r.json"
    legacy = tmp_path / ".r.json.abc123xy.tmp"  # the pid-less name older versions left
    foreign = tmp_path / ".r.json.0000beef-1.k2j3h4g5.tmp"  # written on another host: its pid means nothing here
    fresh = tmp_path / ".r.json.0000beef-2.a1b2c3d4.tmp"
    for p in (legacy, foreign, fresh):
        p.write_text("partial")
    old = time.time() - STALE_TEMP_AGE_S - 60
    for p in (legacy, foreign):
        os.utime(p, (old, old))
    write_json(target, {"a": 1})
    assert not legacy.exists() and not foreign.exists()
    assert fresh.exists()  # a writer on another host may still be running


# ------------------------------------------------------------------ outputs that must not be replaced


def test_atomic_writes_refuse_symlink_and_fifo_outputs(tmp_path):
    import os

    real = tmp_path / "real.json"
    write_json(real, {"a": 1})
    link = tmp_path / "link.json"
    link.symlink_to(real)
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    for target in (link, fifo):
        with pytest.raises(ValueError, match=target.name):
            write_json(target, {"b": 2})
        with pytest.raises(ValueError, match=target.name), atomic_path(target):
            pytest.fail("the block must not run")
    assert link.is_symlink() and read_json(real) == {"a": 1}
    assert fifo.is_fifo()
    assert _temporaries(tmp_path, "link.json") == _temporaries(tmp_path, "pipe.json") == []


def test_atomic_path_refuses_a_symlink_created_during_the_write(tmp_path):
    real = tmp_path / "real.json"
    real.write_text("keep")
    target = tmp_path / "out.json"
    with pytest.raises(ValueError, match="symbolic link"), atomic_path(target) as tmp:
        tmp.write_text("new")
        target.symlink_to(real)
    assert target.is_symlink() and real.read_text() == "keep"
    assert _temporaries(tmp_path, "out.json") == []


# ------------------------------------------------------------------ check_output_path


def test_check_output_path_accepts_good_outputs(tmp_path):
    from robustrl.common.io import check_output_path

    existing = tmp_path / "old.json"
    existing.write_text("{}")
    assert check_output_path(tmp_path / "new.json", what="--out", kind="file") == tmp_path / "new.json"
    assert check_output_path(existing, what="--out", kind="file") == existing
    assert check_output_path(tmp_path, what="--out", kind="dir") == tmp_path
    assert check_output_path(tmp_path / "run", what="--out", kind="dir") == tmp_path / "run"
    deep = tmp_path / "a" / "b" / "r.json"
    assert check_output_path(deep, what="--out", kind="file", allow_missing_parents=True) == deep
    linked_dir = tmp_path / "runs"
    linked_dir.symlink_to(tmp_path / "a", target_is_directory=True)
    (tmp_path / "a").mkdir()
    assert check_output_path(linked_dir, what="--out", kind="dir") == linked_dir
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "old.json", "runs"]  # nothing created


BAD_OUTPUTS = {  # id: (path in the test folder, kind, what the message says)
    "empty": (lambda d: "", "file", "is empty"),
    "blank-dir": (lambda d: "  ", "dir", "is empty"),
    "dir-for-file": (lambda d: d, "file", "is a directory, but a file is expected"),
    "trailing-slash": (lambda d: f"{d}/sub/", "file", "names a folder"),
    "missing-parent": (lambda d: d / "missing" / "r.json", "file", "does not exist; create it first"),
    "missing-parent-dir": (lambda d: d / "missing" / "run", "dir", "does not exist; create it first"),
    "file-for-dir": (lambda d: d / "plain.txt", "dir", "but a folder is expected"),
    "file-as-parent": (lambda d: d / "plain.txt" / "r.json", "file", "is a file, not a folder"),
    "file-as-ancestor": (lambda d: d / "plain.txt" / "a" / "r.json", "file", "is a file, not a folder"),
    "symlink": (lambda d: d / "link.json", "file", "is a symbolic link"),
    "dangling-symlink-dir": (lambda d: d / "dangling", "dir", "is a symbolic link"),
    "fifo": (lambda d: d / "pipe", "file", "FIFO"),
    "fifo-dir": (lambda d: d / "pipe", "dir", "FIFO"),
    "unwritable-parent": (lambda d: d / "locked" / "r.json", "file", "not writable"),
    "unwritable-dir": (lambda d: d / "locked", "dir", "cannot write"),
}


@pytest.mark.parametrize(("make", "kind", "message"), BAD_OUTPUTS.values(), ids=BAD_OUTPUTS.keys())
def test_check_output_path_refuses_bad_outputs(tmp_path, monkeypatch, make, kind, message):
    import os
    import re

    from robustrl.common.io import check_output_path

    (tmp_path / "plain.txt").write_text("x")
    (tmp_path / "link.json").symlink_to(tmp_path / "plain.txt")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "pipe")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    access = os.access  # root may write to a 0o500 folder, so the denial is simulated for everyone
    monkeypatch.setattr(os, "access", lambda p, mode: access(p, mode) and os.fspath(p) != str(locked))
    path = make(tmp_path)
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        check_output_path(path, what="--out", kind=kind)
    assert str(err.value).startswith("--out")
    assert str(path).strip() == "" or repr(str(path)) in str(err.value)  # names the path as given


def test_check_output_path_rejects_unknown_kind(tmp_path):
    from robustrl.common.io import check_output_path

    with pytest.raises(ValueError, match="kind"):
        check_output_path(tmp_path / "x", what="--out", kind="folder")  # type: ignore[arg-type]

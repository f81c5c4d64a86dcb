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

"""JSON records: values made JSON-ready, settings hashes independent of key order, atomic files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lensfm_hf.training.records import json_ready, settings_key, write_json


def test_json_ready_turns_numpy_and_non_finite_values_into_json():
    value = {"a": np.float32(0.5), "b": np.int64(3), "c": (1, 2), "d": [float("nan"), math.inf, -math.inf], 4: "x"}
    ready = json_ready(value)
    assert ready == {"a": 0.5, "b": 3, "c": [1, 2], "d": [None, "inf", "-inf"], "4": "x"}
    assert type(ready["a"]) is float and type(ready["b"]) is int
    json.dumps(ready, allow_nan=False)  # strict JSON


def test_settings_key_is_order_independent():
    assert settings_key({"a": 1, "b": [1, 2]}) == settings_key({"b": [1, 2], "a": 1})
    assert settings_key({"a": 1}) != settings_key({"a": 2})
    assert settings_key({"a": np.float64(0.1), "t": (1,)}) == settings_key({"a": 0.1, "t": [1]})
    assert len(settings_key({})) == 64


def test_write_json_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "cell.json"
    write_json(path, {"mean": np.float32(0.25), "std": float("nan")})
    assert json.loads(path.read_text()) == {"mean": 0.25, "std": None}

    def failing(value, **kwargs):
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(json, "dumps", failing)
    with pytest.raises(RuntimeError, match="killed"):
        write_json(path, {"mean": 1.0})
    assert path.read_text().startswith("{") and json.loads(path.read_text())["mean"] == 0.25  # the old file whole
    assert [p.name for p in tmp_path.iterdir()] == ["cell.json"]  # no temporary file left

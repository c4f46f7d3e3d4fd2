"""scripts/check_device.py, the correctness run for GPUs, exercised on the CPU so that it keeps working."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_device.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("check_device", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_all_checks_pass_on_cpu(tmp_path):
    script = _load_script()
    out = tmp_path / "checks.json"
    argv = ["--device", "cpu", "--recipes", "model1", "lens_finding", "--num-images", "2", "--noise-images", "8"]
    assert script.main(argv + ["--compile-recipes", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["failures"] == []
    names = set(report["results"])
    # Every kind of check ran: Model 1 and lens finding carry noise, lens finding has an unlensed class.
    assert {"reference model1/cdm", "determinism model1/axion", "noise model1/no_sub", "gradient model1/cdm"} <= names
    assert {"noise lens_finding/non_lens", "stream lens_finding"} <= names
    assert "gradient lens_finding/non_lens" not in names  # no lens, nothing to differentiate
    assert report["results"]["reference model1/cdm"]["eager_relative_l2"] < 1e-5


def test_a_failed_check_is_reported_and_sets_the_exit_code():
    script = _load_script()
    # float32 on the "device" against the float64 reference differs by ~1e-7: a 1e-12 tolerance must fail.
    report = script.run_checks("cpu", ["model2"], 2, 8, set(), tolerance=1e-12)
    assert "reference model2/cdm" in report["failures"]
    assert not report["results"]["reference model2/cdm"]["ok"]
    assert report["results"]["determinism model2/cdm"]["ok"]
    argv = ["--device", "cpu", "--recipes", "model2", "--num-images", "2", "--compile-recipes", "--tolerance", "1e-12"]
    assert script.main(argv) == 1


@pytest.mark.slow
def test_gpu_checks_script_dry_run(tmp_path):
    """scripts/gpu_checks.sh end to end on the CPU (DRY_RUN=1), so that a GPU session can run it unchanged.

    Slow (an end-to-end run of four scripts); the dry run has no step time limits, so machine load cannot fail it."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable, "OUT": str(tmp_path)}
    result = subprocess.run(
        ["bash", str(SCRIPT.parent / "gpu_checks.sh")], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    expected = {"gpu.txt", "simulation.txt", "check_device.json", "check_device.txt", "pretraining.json"}
    assert expected <= {path.name for path in tmp_path.iterdir()}
    simulation = (tmp_path / "simulation.txt").read_text()
    assert "compiled img/s" in simulation and "cdm" in simulation
    assert json.loads((tmp_path / "check_device.json").read_text())["failures"] == []


def test_gpu_checks_dry_run_has_no_step_time_limits(tmp_path):
    """A busy machine must not fail the dry run: its steps run without `timeout` limits (duration 0); the GPU run
    keeps its limits. A stand-in `timeout` records the durations; PYTHON=true skips the real work."""
    import os
    import subprocess

    bin_dir, log = tmp_path / "bin", tmp_path / "durations.txt"
    bin_dir.mkdir()
    fake = bin_dir / "timeout"
    fake.write_text(f'#!/usr/bin/env bash\necho "$1" >> {log}\nshift\nexec "$@"\n')
    fake.chmod(0o755)
    durations = {}
    for dry_run in ("1", "0"):
        log.unlink(missing_ok=True)
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DRY_RUN": dry_run, "PYTHON": "true",
               "OUT": str(tmp_path / f"out{dry_run}")}
        for name in ("SIMULATION_SECONDS", "CHECK_SECONDS", "PYTEST_SECONDS", "PRETRAINING_SECONDS"):
            env.pop(name, None)
        subprocess.run(["bash", str(SCRIPT.parent / "gpu_checks.sh")], env=env, capture_output=True, text=True)
        durations[dry_run] = log.read_text().split()
    assert durations["1"] == ["0", "0", "0"]
    assert all(int(value) > 0 for value in durations["0"]) and len(durations["0"]) >= 3

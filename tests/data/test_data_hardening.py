"""Hostile and broken inputs for the importer and the dataset builder (issue 11, items 7, 8, 9).

The hostile `.npy` files are built opcode by opcode in `hostile_pickles`, so each differs from a
real DeepLenseSim file in exactly one place. The `.npy` reader's own tests (items 1, 2 and part of 9) are in
`test_data_npy.py`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest
from hostile_pickles import (
    SHAPE,
    op_float,
    op_global,
    op_str,
    op_value,
    random_image,
    write_axion_file,
    write_npy,
)
from test_data_importer import make_release

import lensfm_hf.data as data_package
from lensfm_hf.data import CorruptFileError, import_deeplensesim, simulate_dataset
from lensfm_hf.data import build
from lensfm_hf.data.folder import WORK_DIR_NAME, read_manifest, write_manifest
from lensfm_hf.data.importer import read_deeplensesim_image

def _shard_bytes(config_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(config_dir.glob("*.parquet"))}


# ----------------------------------------------------------------------------- item 9: every failure names the file


@pytest.mark.parametrize(
    "mass_ops, reason",
    [
        (op_value(10**400), r"1329-bit integer.*not a float axion mass"),  # float() raises OverflowError
        (op_float(1e300), r"not a positive float32 value"),  # becomes inf in the float32 column
        (op_float(float("inf")), r"not a positive float32 value"),
        (op_float(-1e-23), r"not a positive float32 value"),
    ],
    ids=["int_10_400", "1e300", "inf", "negative"],
)
def test_unusable_mass_is_skipped_with_the_file_named(tmp_path, fake_sim, mass_ops, reason):
    make_release(tmp_path / "release", per_class=(1, 1))
    bad = write_axion_file(tmp_path / "release" / "Model_II" / "axion" / "axion_sim_badmass.npy", random_image(),
                           mass_ops)
    with pytest.raises(CorruptFileError, match=rf"axion_sim_badmass\.npy: .*{reason}"):
        read_deeplensesim_image(bad, SHAPE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stats = import_deeplensesim(tmp_path / "release", config="model2", out_dir=tmp_path / "out")
    assert [path for path, _ in stats.skipped] == ["Model_II/axion/axion_sim_badmass.npy"]
    assert stats.counts["train"]["axion"] == 1
    assert any("axion_sim_badmass.npy" in str(w.message) for w in caught)


def test_cli_reports_a_bad_file_in_one_line(tmp_path, fake_sim, capsys):
    from lensfm_hf.cli import main

    make_release(tmp_path / "release", per_class=(1, 1))
    write_axion_file(tmp_path / "release" / "Model_II" / "axion" / "axion_sim_badmass.npy", random_image(),
                     op_value(10**400))
    args = ["import-deeplensesim", str(tmp_path / "release"), "--out", str(tmp_path / "out"), "--strict"]
    assert main(args) == 2
    err = capsys.readouterr().err  # also holds the progress bar
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "error" in line]
    assert line.startswith("lensfm import-deeplensesim: error: ") and "axion_sim_badmass.npy" in line


def test_named_pipe_is_skipped_without_being_opened(tmp_path, fake_sim):
    """A FIFO named like an image would block the import forever in open(); it must not be opened at all.

    A writer thread blocks in open() until a reader opens the pipe. It records whether the test had
    already finished the import when that happened; if the importer opened the pipe, it had not.
    """
    make_release(tmp_path / "release", per_class=(1, 1))
    fifo = tmp_path / "release" / "Model_II" / "cdm" / "cdm_sim_pipe.npy"
    os.mkfifo(fifo)
    import_done = threading.Event()
    opened_after_import = []

    def writer():
        with open(fifo, "wb"):  # blocks until the pipe has a reader
            opened_after_import.append(import_done.is_set())

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stats = import_deeplensesim(tmp_path / "release", config="model2", out_dir=tmp_path / "out")
    finally:
        import_done.set()
        release = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # lets the writer's open() return
        thread.join()
        os.close(release)
    assert opened_after_import == [True], "the importer opened the named pipe"
    skipped = dict(stats.skipped)
    assert "not a regular file" in skipped["Model_II/cdm/cdm_sim_pipe.npy"]
    assert stats.counts["train"]["cdm"] == 1


# ----------------------------------------------------------------------------- item 7: locked, exact resumes


def test_second_build_of_the_same_config_is_refused(tmp_path, fake_sim):
    """While one process builds a config, another simulate or import into that folder fails at once."""
    out = tmp_path / "ds"
    make_release(tmp_path / "release", per_class=(1, 1))
    holder = subprocess.Popen(
        [sys.executable, "-c", _LOCK_HOLDER, str(Path(data_package.__file__).resolve().parents[1]), str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RuntimeError, match=rf"being built by another process \(pid {holder.pid}"):
            simulate_dataset(out, "model2", train_per_class=1, test_per_class=0, seed=8)
        with pytest.raises(RuntimeError, match="being built by another process"):
            import_deeplensesim(tmp_path / "release", config="model2", out_dir=out)
        assert not (out / "model2").exists()
    finally:
        holder.stdin.close()
        holder.wait()
    simulate_dataset(out, "model2", train_per_class=1, test_per_class=0, seed=8)
    assert not (out / WORK_DIR_NAME).exists()  # no lock files left to upload


_LOCK_HOLDER = """
import sys, types
for name, folder in (("lensfm_hf", sys.argv[1]), ("lensfm_hf.data", sys.argv[1] + "/data")):
    package = types.ModuleType(name)  # skip the package __init__s: holding a lock needs only data/folder.py
    package.__path__ = [folder]
    sys.modules[name] = package
from lensfm_hf.data.folder import build_lock, config_lock_name
with build_lock(sys.argv[2], config_lock_name("model2")):
    print("locked", flush=True)
    sys.stdin.read()  # hold the lock until the test closes our stdin
"""


def test_temp_files_are_unique_per_process_and_call(tmp_path, fake_sim, monkeypatch):
    renamed = []
    real_replace = os.replace

    def recording_replace(src, dst):
        renamed.append((Path(src).name, Path(dst).name))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    simulate_dataset(tmp_path / "ds", "model2", train_per_class=2, test_per_class=0, shard_size=3)
    temps = [src for src, dst in renamed if dst.endswith((".parquet", ".json"))]
    assert temps and all(f"-{os.getpid()}-" in name for name in temps), temps
    assert len(set(temps)) == len(temps)  # the manifest is rewritten often, never under the same temp name


def test_resume_regenerates_a_bit_flipped_shard(tmp_path, fake_sim):
    kwargs = dict(config="model2", train_per_class=4, test_per_class=2, seed=3, shard_size=3)
    out = simulate_dataset(tmp_path / "ds", **kwargs)
    reference = _shard_bytes(out / "model2")
    victim = out / "model2" / "train-00001-of-00004.parquet"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the pixel data: the footer and its row count stay valid
    victim.write_bytes(bytes(data))

    fake_sim.calls.clear()
    with pytest.warns(UserWarning, match=r"train-00001-of-00004\.parquet no longer matches the SHA-256"):
        simulate_dataset(tmp_path / "ds", **kwargs)
    assert len(fake_sim.calls) == 3  # that one shard, three classes
    assert _shard_bytes(out / "model2") == reference


def test_resume_redoes_shards_without_a_recorded_hash(tmp_path, fake_sim):
    """A shard replaced by a crash before its hash reached the manifest cannot be trusted."""
    kwargs = dict(config="model2", train_per_class=2, test_per_class=1, seed=1, shard_size=3)
    out = simulate_dataset(tmp_path / "ds", **kwargs)
    reference = _shard_bytes(out / "model2")
    manifest = read_manifest(out / "model2")
    del manifest["shard_sha256"]["test-00000-of-00001.parquet"]
    write_manifest(out / "model2", manifest)
    fake_sim.calls.clear()
    with pytest.warns(UserWarning, match=r"test-00000-of-00001\.parquet has no recorded SHA-256"):
        simulate_dataset(tmp_path / "ds", **kwargs)
    assert [call[-1] for call in fake_sim.calls] == [
        build.shard_seed(1, "model2", "test", name, 0) for name in ("no_sub", "cdm", "axion")
    ]
    assert _shard_bytes(out / "model2") == reference


# ----------------------------------------------------------------------------- item 8: staged imports


def _make_failing(release: Path, how: str) -> dict:
    """Change `release` so that importing it fails; returns extra import_deeplensesim arguments."""
    cdm = release / "Model_II" / "cdm"
    if how == "unsafe_pickle":
        write_npy(cdm / "cdm_sim_evil.npy", op_global("posix", "system") + op_str("true") + b"\x85R")
        return {}
    if how == "strict":
        (cdm / "cdm_sim_garbage.npy").write_bytes(b"not a numpy file")
        return {"strict": True}
    for file in release.rglob("*.npy"):  # every file unreadable: "every .npy file was skipped"
        file.write_bytes(b"broken")
    return {}


@pytest.mark.parametrize("how", ["unsafe_pickle", "strict", "all_skipped"])
def test_failed_reimport_keeps_the_previous_import(tmp_path, fake_sim, hf_cache, how):
    make_release(tmp_path / "release", per_class=(2, 1))
    out = tmp_path / "out"
    import_deeplensesim(tmp_path / "release", config="model2", out_dir=out, shard_size=4)
    shards = _shard_bytes(out / "model2")
    manifest = (out / "model2" / "manifest.json").read_text()

    extra = _make_failing(tmp_path / "release", how)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError):
            import_deeplensesim(tmp_path / "release", config="model2", out_dir=out, shard_size=4, **extra)
    assert _shard_bytes(out / "model2") == shards
    assert (out / "model2" / "manifest.json").read_text() == manifest
    assert not (out / WORK_DIR_NAME).exists()  # the staging folder is gone
    from lensfm_hf.data import load_lensing_dataset

    assert load_lensing_dataset(out, "model2", split="train", cache_dir=hf_cache).num_rows == 6


def test_failed_overwrite_import_keeps_the_simulated_config(tmp_path, fake_sim):
    out = simulate_dataset(tmp_path / "out", "model2", train_per_class=1, test_per_class=0)
    shards = _shard_bytes(out / "model2")
    make_release(tmp_path / "release", per_class=(1, 1))
    _make_failing(tmp_path / "release", "unsafe_pickle")
    with pytest.raises(ValueError, match="cdm_sim_evil.npy"):
        import_deeplensesim(tmp_path / "release", config="model2", out_dir=out, overwrite=True)
    assert _shard_bytes(out / "model2") == shards
    assert read_manifest(out / "model2")["source"] == "simulation"


def test_import_killed_while_swapping_is_restored(tmp_path, fake_sim):
    """A kill between moving the old import aside and renaming the new one in loses nothing."""
    make_release(tmp_path / "release", per_class=(1, 1))
    out = tmp_path / "out"
    import_deeplensesim(tmp_path / "release", config="model2", out_dir=out)
    shards = _shard_bytes(out / "model2")
    aside = out / WORK_DIR_NAME / "replaced.model2.4242-0badcafe"
    aside.parent.mkdir()
    os.replace(out / "model2", aside)  # the state a kill between the two renames leaves
    _make_failing(tmp_path / "release", "unsafe_pickle")
    with pytest.warns(UserWarning, match="restoring"), pytest.raises(ValueError):
        import_deeplensesim(tmp_path / "release", config="model2", out_dir=out)
    assert _shard_bytes(out / "model2") == shards

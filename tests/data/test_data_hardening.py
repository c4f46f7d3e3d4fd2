"""Hostile and broken inputs for the importer and the dataset builder (issue 11, items 1, 2, 7, 8, 9).

The hostile `.npy` files are built opcode by opcode in `hostile_pickles`, so each differs from a
real DeepLenseSim file in exactly one place.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from hostile_pickles import (
    APPEND,
    EMPTY_LIST,
    op_array,
    op_bytes,
    op_dtype,
    op_float,
    op_float_image,
    op_global,
    op_int,
    op_object_array,
    op_scalar_mass,
    op_str,
    op_value,
    write_axion_file,
    write_npy,
)
from test_data_importer import make_release

import lensfm_hf.data as data_package
from lensfm_hf.data import CorruptFileError, import_deeplensesim, read_npy, simulate_dataset
from lensfm_hf.data import build, npy
from lensfm_hf.data.folder import WORK_DIR_NAME, read_manifest, write_manifest
from lensfm_hf.data.importer import read_deeplensesim_image

SHAPE = (64, 64)


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(SHAPE)


def _shard_bytes(config_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(config_dir.glob("*.parquet"))}


# ----------------------------------------------------------------------------- accepted variants


@pytest.mark.parametrize(
    "module, protocol, mass",
    [
        ("numpy._core.multiarray", 3, "scalar"),  # numpy 2, np.save's protocol 3
        ("numpy.core.multiarray", 3, "scalar"),  # numpy 1.x module names
        ("numpy.core.multiarray", 2, "codecs"),  # numpy < 1.16: bytes as _codecs.encode(str, 'latin1')
        ("numpy._core.multiarray", 3, "float"),  # a Python float mass
    ],
)
def test_opcode_reader_accepts_every_numpy_variant(tmp_path, module, protocol, mass):
    image = np.arange(64 * 64, dtype=">f4").reshape(SHAPE) / 7  # big-endian float32 is allowed too
    if protocol == 2:
        codec = op_global("_codecs", "encode")
        data = codec + op_str(image.tobytes().decode("latin1")) + op_str("latin1") + b"\x86R"
        mass_ops = op_global(module, "scalar") + op_dtype("f8", "<", 0)
        mass_ops += codec + op_str(np.float64(3e-23).tobytes().decode("latin1"))
        mass_ops += op_str("latin1") + b"\x86R" + b"\x86R"
    else:
        data = op_bytes(image.tobytes())
        mass_ops = op_scalar_mass(3e-23, module) if mass == "scalar" else op_float(3e-23)
    image_ops = op_array(SHAPE, op_dtype("f4", ">", 0), data, module)
    path = write_npy(tmp_path / "axion.npy", op_object_array([image_ops, mass_ops]), protocol=protocol)
    # numpy agrees that this is a valid file (loaded here only to cross-check the test's own bytes)
    reference = np.load(path, allow_pickle=True)
    loaded, loaded_mass = read_deeplensesim_image(path, SHAPE)
    np.testing.assert_array_equal(loaded[0], reference[0].astype(np.float32))
    assert loaded_mass == 3e-23 == float(reference[1])


@pytest.mark.parametrize(
    "layout",
    ["c_float64", "fortran_float64", "big_endian_float32", "float32_mass", "python_float_mass", "channel_axis"],
)
def test_numpy_written_axion_files_are_read_exactly(tmp_path, layout):
    """Files written by np.save(allow_pickle=True) in every layout a release may hold decode bit for bit."""
    image = _image(3)
    mass = np.float64(4.2e-23)
    if layout == "fortran_float64":
        image = np.asfortranarray(image)
    elif layout == "big_endian_float32":
        image = image.astype(">f4")
    elif layout == "float32_mass":
        mass = np.float32(4.2e-23)
    elif layout == "python_float_mass":
        mass = 4.2e-23
    elif layout == "channel_axis":
        image = image[None]
    item = np.empty(2, dtype=object)
    item[0], item[1] = image, mass
    np.save(tmp_path / "axion.npy", item, allow_pickle=True)
    loaded, loaded_mass = read_deeplensesim_image(tmp_path / "axion.npy", SHAPE)
    np.testing.assert_array_equal(loaded.reshape(SHAPE), image.reshape(SHAPE).astype(np.float32))
    assert loaded_mass == float(mass)
    raw = read_npy(tmp_path / "axion.npy")
    assert raw.dtype == object and raw.shape == (2,) and raw[0].dtype == image.dtype and raw[1] == mass


# ----------------------------------------------------------------------------- item 1: memory safety

_CRASH_PROBE = """
import sys, types
for name, folder in (("lensfm_hf", sys.argv[1]), ("lensfm_hf.data", sys.argv[1] + "/data")):
    package = types.ModuleType(name)  # skip the package __init__s (transformers, datasets): only the reader is needed
    package.__path__ = [folder]
    sys.modules[name] = package
from lensfm_hf.data.npy import read_deeplensesim_image
try:
    result = read_deeplensesim_image(sys.argv[2], (64, 64))
    print("RETURNED", type(result).__name__, flush=True)
    print(repr(result), flush=True)  # touches every element, as an import does
except Exception as err:
    print("RAISED", type(err).__name__, err, flush=True)
"""


@pytest.mark.parametrize("forged", ["mass_slot", "mass_slot_1d", "outer_array", "image_slot"])
def test_forged_object_dtype_flags_cannot_forge_pointers(tmp_path, forged):
    """An object dtype whose flags say "no references" (0, not 63) makes numpy read 8 raw bytes of the
    file as a PyObject*: reading the element segfaults, or yields any object the file points to.

    The reader runs in a subprocess so that a crash fails this test instead of killing pytest.
    """
    pointer = b"\x41" * 8  # a "PyObject*" at 0x4141414141414141
    forged_array = op_array((1,) if forged == "mass_slot_1d" else (), op_dtype("O8", "|", 0), op_bytes(pointer))
    if forged == "outer_array":
        opcodes = op_object_array([], flags=0, data=op_bytes(pointer * 2))
    elif forged == "image_slot":
        opcodes = op_object_array([forged_array, op_scalar_mass(3e-23)])
    else:
        opcodes = op_object_array([op_float_image(_image()), forged_array])
    path = write_npy(tmp_path / "axion_sim_forged.npy", opcodes)
    package_dir = str(Path(data_package.__file__).resolve().parents[1])
    result = subprocess.run(
        [sys.executable, "-c", _CRASH_PROBE, package_dir, str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"the reader crashed (exit {result.returncode}): {result.stderr[-2000:]}"
    assert result.stdout.startswith("RAISED CorruptFileError"), result.stdout[-2000:]
    assert "axion_sim_forged.npy: " in result.stdout


# ----------------------------------------------------------------------------- item 2: no allocation from file sizes


def _large_reconstruct(count: int) -> bytes:
    """`_reconstruct(ndarray, (count,), dtype('O'))`: numpy allocates count pointers when this runs."""
    dtype = op_global("numpy", "dtype") + op_str("O8") + b"\x89\x88\x87R"
    return (
        op_global("numpy._core.multiarray", "_reconstruct") + op_global("numpy", "ndarray")
        + op_int(count) + b"\x85" + dtype + b"\x87R"
    )


@pytest.mark.parametrize("kind", ["reconstruct_shape_in_mass_slot", "header_shape"])
def test_small_file_with_huge_shape_allocates_nothing(tmp_path, kind):
    count = 20_000_000  # 160 MB of pointers or float64 for a file of a few hundred bytes
    if kind == "header_shape":
        path = tmp_path / "cdm_sim_huge.npy"
        with open(path, "wb") as handle:
            np.lib.format.write_array_header_1_0(handle, {"descr": "<f8", "fortran_order": False, "shape": (count,)})
            handle.write(b"\0" * 16)
    else:
        path = write_npy(tmp_path / "axion_sim_huge.npy", op_object_array([op_float_image(_image()), _large_reconstruct(count)]))
    assert path.stat().st_size < 40_000
    tracemalloc.start()
    try:
        with pytest.raises(CorruptFileError, match=path.name):
            read_deeplensesim_image(path, SHAPE)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"reading a {path.stat().st_size}-byte file allocated {peak / 2**20:.0f} MiB"


def test_oversized_file_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "cdm_sim_big.npy"
    np.save(path, np.zeros(SHAPE))
    monkeypatch.setattr(npy, "MAX_NPY_BYTES", 1024)
    with pytest.raises(CorruptFileError, match=r"cdm_sim_big\.npy.*above the 1024-byte cap"):
        read_npy(path)


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
    bad = write_axion_file(tmp_path / "release" / "Model_II" / "axion" / "axion_sim_badmass.npy", _image(), mass_ops)
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
    write_axion_file(tmp_path / "release" / "Model_II" / "axion" / "axion_sim_badmass.npy", _image(), op_value(10**400))
    args = ["import-deeplensesim", str(tmp_path / "release"), "--out", str(tmp_path / "out"), "--strict"]
    assert main(args) == 2
    err = capsys.readouterr().err  # also holds the progress bar
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "error" in line]
    assert line.startswith("lensfm import-deeplensesim: error: ") and "axion_sim_badmass.npy" in line


@pytest.mark.parametrize("depth", [5_000, 50_000])
def test_deeply_nested_mass_is_a_clear_error(tmp_path, depth):
    """[[[[…]]]] as the mass: repr and float() of it used to raise RecursionError, with no file named."""
    nested = EMPTY_LIST * depth + APPEND * (depth - 1)
    path = write_axion_file(tmp_path / "axion_sim_nested.npy", _image(), nested)
    with pytest.raises(CorruptFileError, match=r"axion_sim_nested\.npy: ") as caught:
        read_deeplensesim_image(path, SHAPE)
    assert len(str(caught.value)) < 500


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
    assert not (out / WORK_DIR_NAME).exists()


def test_stack_global_names_are_checked_too(tmp_path):
    """Globals outside the allow-list are refused by name, even hidden behind a STACK_GLOBAL (protocol 4)."""
    evil = op_str("builtins") + op_str("eval") + b"\x93" + op_str("1") + b"\x85R"
    path = write_npy(tmp_path / "axion_sim_stack.npy", evil, protocol=4)
    with pytest.raises(data_package.UnsafePickleError, match=r"axion_sim_stack\.npy.*builtins\.eval"):
        read_npy(path)

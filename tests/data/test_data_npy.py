"""`lensfm_hf.data.npy`, the `.npy` reader that never unpickles: the numpy variants it accepts, and hostile files
(forged object dtypes, huge shapes, oversized files, deep nesting, disallowed globals) that it refuses safely
(issue 11, items 1, 2 and part of 9).

The hostile `.npy` files are built opcode by opcode in `hostile_pickles`, so each differs from a
real DeepLenseSim file in exactly one place. Hostile files met through the importer and the dataset builder:
`test_data_hardening.py`.
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hostile_pickles import (
    SHAPE,
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
    random_image,
    write_axion_file,
    write_npy,
)

import lensfm_hf.data as data_package
from lensfm_hf.data import npy
from lensfm_hf.data.npy import CorruptFileError, read_deeplensesim_image, read_npy

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
    image = random_image(3)
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
        opcodes = op_object_array([op_float_image(random_image()), forged_array])
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
        path = write_npy(tmp_path / "axion_sim_huge.npy", op_object_array([op_float_image(random_image()), _large_reconstruct(count)]))
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


@pytest.mark.parametrize("depth", [5_000, 50_000])
def test_deeply_nested_mass_is_a_clear_error(tmp_path, depth):
    """[[[[…]]]] as the mass: repr and float() of it used to raise RecursionError, with no file named."""
    nested = EMPTY_LIST * depth + APPEND * (depth - 1)
    path = write_axion_file(tmp_path / "axion_sim_nested.npy", random_image(), nested)
    with pytest.raises(CorruptFileError, match=r"axion_sim_nested\.npy: ") as caught:
        read_deeplensesim_image(path, SHAPE)
    assert len(str(caught.value)) < 500


# ----------------------------------------------------------------------------- disallowed globals


def test_stack_global_names_are_checked_too(tmp_path):
    """Globals outside the allow-list are refused by name, even hidden behind a STACK_GLOBAL (protocol 4)."""
    evil = op_str("builtins") + op_str("eval") + b"\x93" + op_str("1") + b"\x85R"
    path = write_npy(tmp_path / "axion_sim_stack.npy", evil, protocol=4)
    with pytest.raises(data_package.UnsafePickleError, match=r"axion_sim_stack\.npy.*builtins\.eval"):
        read_npy(path)

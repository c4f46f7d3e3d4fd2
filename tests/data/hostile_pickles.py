"""Build `.npy` files opcode by opcode, as numpy writes DeepLenseSim's [image, axion_mass] files, so
that tests can change one part (a dtype's flags, a shape, the mass) and keep the rest exact.

Nothing here unpickles; the files are bytes for the importer to refuse or accept.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

MARK, STOP, TUPLE, TUPLE1, TUPLE3 = b"(", b".", b"t", b"\x85", b"\x87"
REDUCE, BUILD, NONE, NEWTRUE, NEWFALSE = b"R", b"b", b"N", b"\x88", b"\x89"
EMPTY_LIST, APPEND, APPENDS = b"]", b"a", b"e"
# numpy's flag set for object dtypes; the forged-pointer attack sets 0 instead.
OBJECT_DTYPE_FLAGS = 63
SHAPE = (64, 64)  # a DeepLenseSim Model II image


def random_image(seed: int = 0) -> np.ndarray:
    """A float64 image of `SHAPE`, as the files hold, seeded."""
    return np.random.default_rng(seed).random(SHAPE)


def op_global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def op_int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)  # BININT


def op_str(text: str) -> bytes:
    data = text.encode("utf8")
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def op_bytes(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data  # BINBYTES


def op_float(value: float) -> bytes:
    return b"G" + struct.pack(">d", value)  # BINFLOAT


def op_value(value) -> bytes:
    """Any picklable value (e.g. a huge int as LONG1), as the opcodes pickle itself writes for it."""
    return pickle.dumps(value, protocol=3)[2:-1]


def op_tuple(*items: bytes) -> bytes:
    return MARK + b"".join(items) + TUPLE


def op_dtype(code: str, byteorder: str, flags: int, numpy_module: str = "numpy") -> bytes:
    """`dtype(code, False, True)` with numpy's state tuple (version 3, …, flags) set by BUILD."""
    state = op_tuple(op_int(3), op_str(byteorder), NONE, NONE, NONE, op_int(-1), op_int(-1), op_int(flags))
    return op_global(numpy_module, "dtype") + op_str(code) + NEWFALSE + NEWTRUE + TUPLE3 + REDUCE + state + BUILD


def op_array(shape, dtype: bytes, data: bytes, module: str = "numpy._core.multiarray") -> bytes:
    """`_reconstruct(ndarray, (0,), b'b')` then BUILD with (1, shape, dtype, fortran_order=False, data)."""
    shell = op_global(module, "_reconstruct") + op_global("numpy", "ndarray") + op_int(0) + TUPLE1
    shell += op_bytes(b"b") + TUPLE3 + REDUCE
    return shell + op_tuple(op_int(1), op_tuple(*map(op_int, shape)), dtype, NEWFALSE, data) + BUILD


def op_float_image(image: np.ndarray) -> bytes:
    image = np.ascontiguousarray(image, dtype="<f8")
    return op_array(image.shape, op_dtype("f8", "<", 0), op_bytes(image.tobytes()))


def op_scalar_mass(mass: float, module: str = "numpy._core.multiarray") -> bytes:
    """`scalar(dtype('f8'), 8 raw bytes)`: how a numpy float64 mass is pickled."""
    return op_global(module, "scalar") + op_dtype("f8", "<", 0) + op_bytes(struct.pack("<d", mass)) + b"\x86" + REDUCE


def op_object_array(items: list[bytes], flags: int = OBJECT_DTYPE_FLAGS, data: bytes | None = None) -> bytes:
    """The outer object array of shape (2,): a list of `items`, or raw `data` if given."""
    payload = data if data is not None else EMPTY_LIST + MARK + b"".join(items) + APPENDS
    return op_array((2,), op_dtype("O8", "|", flags), payload)


def write_npy(path: Path, opcodes: bytes, descr: str = "|O", shape=(2,), protocol: int = 3) -> Path:
    """A .npy file: a version-1 header, then `opcodes` as a pickle of `protocol` (PROTO … STOP)."""
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": descr, "fortran_order": False, "shape": shape})
        handle.write(b"\x80" + bytes([protocol]) + opcodes + STOP)
    return path


def write_axion_file(path: Path, image: np.ndarray, mass_opcodes: bytes) -> Path:
    """A DeepLenseSim axion file whose mass item is `mass_opcodes` (e.g. `op_scalar_mass(3e-23)`)."""
    return write_npy(path, op_object_array([op_float_image(image), mass_opcodes]))

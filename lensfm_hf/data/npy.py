"""Read DeepLenseSim `.npy` files, whose axion files are pickled `[image, axion_mass]`, without unpickling them: a
symbolic machine that calls nothing walks the pickle's opcodes (`pickletools.genops`), checks the exact structure
`np.save` writes, and decodes image and mass with `np.frombuffer` from checked dtypes, shapes and byte counts.
numpy's unpickling code never sees a byte of the file. Imports only numpy, so a crash probe can load it alone.
"""

from __future__ import annotations

import ast
import io
import math
import os
import pickletools
import reprlib
import stat
import struct
from pathlib import Path
from typing import Any

import numpy as np

# A DeepLenseSim image is at most 150×150 float64 (Model I, 176 KiB; Model IV is 64×64×3); the caps
# leave ample room for other releases while keeping a hostile file from claiming gigabytes.
MAX_NPY_BYTES = 16 << 20  # bytes of one .npy file, checked with fstat before it is read
MAX_IMAGE_ELEMENTS = 1 << 21  # pixels of one image (2048×1024), checked before any array exists
_MAX_HEADER_BYTES = 1 << 16  # numpy itself refuses headers above 10,000 bytes by default
# np.save writes about 40 opcodes for [image, mass]; these bounds only stop hostile files from
# making the symbolic walk slow or large, they are far above anything a real file needs.
_MAX_OPCODES = 100_000
_MAX_STACK = 10_000
_MAX_MEMO = 10_000
_MAX_MARKS = 32

# Image dtypes accepted, by the `descr` string of a .npy header; np.dtype is never built from file text.
_FLOAT_DESCRS = {descr: np.dtype(descr) for descr in ("<f4", "<f8", ">f4", ">f8")}
_OBJECT_DESCR = "|O"
_FLOAT32_MAX = float(np.finfo(np.float32).max)  # the axion_mass column is float32

# The globals DeepLenseSim's pickles name, by role. numpy 1.x files name `numpy.core.multiarray`,
# numpy 2 writes `numpy._core.multiarray`. These names are only matched, never imported or called.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): "_reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "_reconstruct",
    ("numpy.core.multiarray", "scalar"): "scalar",
    ("numpy._core.multiarray", "scalar"): "scalar",
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    # protocol 2 (numpy < 1.16 under Python 3) carries raw bytes as _codecs.encode(str, "latin1")
    ("_codecs", "encode"): "_codecs.encode",
}
# Opcodes np.save's protocols 2 and 3 use (plus protocol 4's framing, and the Python 2 string
# opcodes of files pickled there). Anything else is refused before it is interpreted.
_ALLOWED_OPCODES = frozenset(
    """PROTO FRAME STOP MARK GLOBAL STACK_GLOBAL REDUCE BUILD BINPUT LONG_BINPUT MEMOIZE BINGET LONG_BINGET
    EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 EMPTY_LIST LIST APPEND APPENDS NONE NEWTRUE NEWFALSE
    BININT BININT1 BININT2 LONG1 LONG4 BINFLOAT SHORT_BINBYTES BINBYTES BINBYTES8 SHORT_BINSTRING BINSTRING
    BINUNICODE SHORT_BINUNICODE BINUNICODE8""".split()
)
# dtype state tuples as numpy writes them: (version 3, byte order, names, fields, subarray, elsize,
# alignment, flags). 63 is numpy's flag set for object dtypes; a forged value is how a file turns
# raw bytes into PyObject pointers, so only these exact tuples are accepted.
_OBJECT_DTYPE_FLAGS = 63




class _ShortRepr(reprlib.Repr):
    """reprlib with bounded cost for file values: big bytes and ints are described, not rendered."""

    def __init__(self):
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother, self.maxlist, self.maxtuple = 3, 40, 40, 4, 8

    def repr_bytes(self, value: Any, level: int):
        return f"<{len(value)} bytes>"

    def repr_int(self, value: Any, level: int):
        if value.bit_length() > 64:  # repr of a huge int is slow, and refused above 4300 digits
            return f"<{value.bit_length()}-bit integer>"
        return repr(value)


_short_repr = _ShortRepr()


class UnsafePickleError(ValueError):
    """A `.npy` pickle names a global outside the numpy allow-list; nothing from it was executed."""


class CorruptFileError(ValueError):
    """A `.npy` file that cannot be parsed or does not hold a lensing image of the expected shape."""


def _describe(value: Any) -> str:
    """A short, always-safe description of a value taken from a file, for error messages."""
    if isinstance(value, _Node):
        return repr(value)
    try:
        return f"{type(value).__name__} {_short_repr.repr(value)}"
    except Exception:  # a value whose repr fails still gets a message
        return f"a {type(value).__name__}"


# ----------------------------------------------------------------------------- symbolic pickle machine


class _Node:
    """A global (`role`) or a call of one (`args`), with the state a BUILD gave it. Nothing is called."""

    __slots__ = ("role", "args", "state", "is_call")

    def __init__(self, role: str, args: tuple | None = None):
        self.role, self.args, self.state, self.is_call = role, args, None, args is not None

    def __repr__(self) -> str:
        return f"a call of {self.role}" if self.is_call else f"the global {self.role}"


_MARK = object()


def _walk_pickle(payload: bytes, source: str):
    """Run the pickle in `payload` symbolically and return its top object (lists, tuples, `_Node`s, scalars).

    Raises `UnsafePickleError` for a global outside `_ALLOWED_GLOBALS` and `CorruptFileError` for
    any other opcode, a malformed stream, or a walk beyond the size limits.
    """
    stream = io.BytesIO(payload)
    stack: list = []
    memo: dict = {}
    marks = 0

    def pop(count: int = 1) -> list:
        if len(stack) < count or any(item is _MARK for item in stack[len(stack) - count :]):
            raise CorruptFileError(f"{source}: broken pickle payload (stack underflow)")
        items = stack[len(stack) - count :]
        del stack[len(stack) - count :]
        return items

    def pop_to_mark() -> list:
        nonlocal marks
        for index in range(len(stack) - 1, -1, -1):
            if stack[index] is _MARK:
                items = stack[index + 1 :]
                del stack[index:]
                marks -= 1
                return items
        raise CorruptFileError(f"{source}: broken pickle payload (no MARK)")

    def global_node(module: str, name: str) -> _Node:
        if not isinstance(module, str) or not isinstance(name, str):
            raise CorruptFileError(f"{source}: broken pickle payload (a global named by non-strings)")
        role = _ALLOWED_GLOBALS.get((module, name))
        if role is None:
            raise UnsafePickleError(
                f"{source}: its pickle names the global {_short_repr.repr(module)[1:-1]}.{_short_repr.repr(name)[1:-1]}, "
                "which is not part of a DeepLenseSim image; refused without executing anything. Inspect or "
                "delete the file; only numpy arrays [image, axion_mass] are accepted"
            )
        return _Node(role)

    for count, (opcode, arg, _position) in enumerate(pickletools.genops(stream)):
        name = opcode.name
        if count >= _MAX_OPCODES or len(stack) > _MAX_STACK or len(memo) > _MAX_MEMO:
            raise CorruptFileError(
                f"{source}: its pickle exceeds {_MAX_OPCODES} opcodes, {_MAX_STACK} stack items or {_MAX_MEMO} memo "
                "entries; a DeepLenseSim image needs about 40"
            )
        if name not in _ALLOWED_OPCODES:
            raise CorruptFileError(f"{source}: its pickle uses the opcode {name}, which np.save never writes; refused")
        if name == "PROTO":
            if not 2 <= arg <= 5:
                raise CorruptFileError(f"{source}: pickle protocol {arg}; np.save writes protocol 2 or 3")
        elif name == "FRAME":
            pass
        elif name == "STOP":
            if marks or len(stack) != 1:
                raise CorruptFileError(f"{source}: broken pickle payload (stack of {len(stack)} items at STOP)")
            if stream.read(1):
                raise CorruptFileError(f"{source}: bytes follow the end of its pickle; refused")
            return stack[0]
        elif name == "MARK":
            marks += 1
            if marks > _MAX_MARKS:
                raise CorruptFileError(f"{source}: its pickle nests more than {_MAX_MARKS} MARKs; refused")
            stack.append(_MARK)
        elif name == "GLOBAL":
            module, _, attribute = arg.partition(" ")
            stack.append(global_node(module, attribute))
        elif name == "STACK_GLOBAL":
            module, attribute = pop(2)
            stack.append(global_node(module, attribute))
        elif name == "REDUCE":
            callee, args = pop(2)
            if not isinstance(callee, _Node) or callee.is_call or not isinstance(args, tuple):
                raise CorruptFileError(f"{source}: its pickle calls {_describe(callee)}; refused")
            if callee.role == "_codecs.encode":
                # The one call evaluated here: str → latin-1 bytes, with no codec lookup.
                if len(args) != 2 or not isinstance(args[0], str) or args[1] not in ("latin1", "latin-1"):
                    raise CorruptFileError(
                        f"{source}: _codecs.encode({', '.join(_describe(a) for a in args)}) is not allowed; "
                        "only latin-1 byte strings appear in numpy pickles"
                    )
                stack.append(args[0].encode("latin1"))
            else:
                stack.append(_Node(callee.role, args))
        elif name == "BUILD":
            target, state = pop(2)
            if not isinstance(target, _Node) or not target.is_call or target.state is not None:
                raise CorruptFileError(f"{source}: its pickle sets the state of {_describe(target)}; refused")
            target.state = state
            stack.append(target)
        elif name in ("BINPUT", "LONG_BINPUT", "MEMOIZE"):
            if not stack or stack[-1] is _MARK:
                raise CorruptFileError(f"{source}: broken pickle payload (memoizing nothing)")
            memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET"):
            if arg not in memo:
                raise CorruptFileError(f"{source}: broken pickle payload (memo {arg} was never stored)")
            stack.append(memo[arg])
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            stack.append(tuple(pop(int(name[-1]))))
        elif name == "TUPLE":
            stack.append(tuple(pop_to_mark()))
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "LIST":
            stack.append(pop_to_mark())
        elif name in ("APPEND", "APPENDS"):
            items = pop(1) if name == "APPEND" else pop_to_mark()
            target = stack[-1] if stack else None
            if not isinstance(target, list):
                raise CorruptFileError(f"{source}: its pickle appends to {_describe(target)}; refused")
            target.extend(items)
        elif name == "NONE":
            stack.append(None)
        elif name in ("NEWTRUE", "NEWFALSE"):
            stack.append(name == "NEWTRUE")
        else:  # numbers, bytes and strings: genops has already decoded the value
            stack.append(arg)
    raise CorruptFileError(f"{source}: broken pickle payload (no STOP)")


# ----------------------------------------------------------------------------- structure of a DeepLenseSim pickle


def _is_int(value: Any) -> bool:
    return type(value) is int  # bool is an int subclass and never a shape or version


def _dtype_of(node: Any, source: str, what: str) -> np.dtype:
    """The dtype a `dtype(...)` node with numpy's exact state describes; ours, never built from the file."""
    if not (isinstance(node, _Node) and node.is_call and node.role == "dtype"):
        raise CorruptFileError(f"{source}: {what} has dtype {_describe(node)}, not a numpy dtype")
    args, state = node.args, node.state
    if not (len(args) == 3 and isinstance(args[0], str) and args[1] is False and args[2] is True):
        raise CorruptFileError(f"{source}: {what} has dtype arguments {_describe(args)}; refused")
    if not (isinstance(state, tuple) and len(state) == 8 and _is_int(state[0]) and state[0] == 3):
        raise CorruptFileError(f"{source}: {what} has dtype state {_describe(state)}; refused")
    byteorder, names, fields, subarray, elsize, alignment, flags = state[1:]
    plain = (
        names is None and fields is None and subarray is None
        and _is_int(elsize) and elsize == -1 and _is_int(alignment) and alignment == -1 and _is_int(flags)
    )
    if plain and args[0] in ("O8", "O4") and byteorder == "|" and flags == _OBJECT_DTYPE_FLAGS:
        return np.dtype(object)
    if plain and args[0] in ("f4", "f8") and byteorder in ("<", ">") and flags == 0:
        return _FLOAT_DESCRS[byteorder + args[0]]
    raise CorruptFileError(
        f"{source}: {what} has dtype {_describe(args[0])} with state {_describe(state)}; only float32/float64 "
        f"images in an object array with numpy's own flags ({_OBJECT_DTYPE_FLAGS}) are accepted"
    )


def _array_state(node: Any, source: str, what: str) -> tuple:
    """(shape, dtype node, fortran_order, data) of an `_reconstruct(ndarray, (0,), b'b')` node after BUILD."""
    if not (isinstance(node, _Node) and node.is_call and node.role == "_reconstruct"):
        raise CorruptFileError(f"{source}: {what} is {_describe(node)}, not a numpy array")
    args, state = node.args, node.state
    shell = (
        len(args) == 3
        and isinstance(args[0], _Node) and not args[0].is_call and args[0].role == "ndarray"
        and isinstance(args[1], tuple) and len(args[1]) == 1 and _is_int(args[1][0]) and args[1][0] == 0
        and args[2] in (b"b", "b")
    )
    if not shell:
        raise CorruptFileError(f"{source}: {what} is _reconstruct{_describe(args)}; numpy writes (ndarray, (0,), b'b')")
    if not (isinstance(state, tuple) and len(state) == 5 and _is_int(state[0]) and state[0] == 1):
        raise CorruptFileError(f"{source}: {what} has array state {_describe(state)}; refused")
    _, shape, dtype, fortran_order, data = state
    if not (isinstance(shape, tuple) and len(shape) <= 3 and all(_is_int(d) and d >= 0 for d in shape)):
        raise CorruptFileError(f"{source}: {what} has shape {_describe(shape)}; refused")
    if not isinstance(fortran_order, bool):
        raise CorruptFileError(f"{source}: {what} has fortran_order {_describe(fortran_order)}; refused")
    return shape, dtype, fortran_order, data


def _raw_bytes(data: object, source: str, what: str) -> bytes:
    if isinstance(data, str):  # Python 2 pickles read with latin-1 carry bytes as str
        try:
            return data.encode("latin1")
        except UnicodeEncodeError:
            raise CorruptFileError(f"{source}: {what} holds text, not raw bytes") from None
    if not isinstance(data, bytes):
        raise CorruptFileError(f"{source}: {what} holds {_describe(data)}, not raw bytes")
    return data


def _float_array(
    shape: tuple, dtype: np.dtype, fortran_order: bool, data: object, source: str, what: str
) -> np.ndarray:
    """A float array decoded by `np.frombuffer` after the element count and byte count are checked."""
    count = math.prod(shape)
    if count > MAX_IMAGE_ELEMENTS:
        raise CorruptFileError(
            f"{source}: {what} claims shape {shape} ({count} pixels), above the cap of {MAX_IMAGE_ELEMENTS}; "
            "no DeepLenseSim image is that large"
        )
    raw = _raw_bytes(data, source, what)
    if len(raw) != count * dtype.itemsize:
        raise CorruptFileError(
            f"{source}: {what} of shape {shape} and dtype {dtype} needs {count * dtype.itemsize} bytes, "
            f"the file holds {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran_order else "C").copy()


def _mass_value(node: Any, source: str):
    """The axion mass item: a Python float or `scalar(dtype f4/f8, 4 or 8 raw bytes)`."""
    if type(node) is float:
        return node
    if isinstance(node, _Node) and node.is_call and node.role == "scalar" and node.state is None and len(node.args) == 2:
        dtype = _dtype_of(node.args[0], source, "the axion mass")
        if dtype.kind == "f":
            raw = _raw_bytes(node.args[1], source, "the axion mass")
            if len(raw) == dtype.itemsize:
                return np.frombuffer(raw, dtype=dtype)[0]
    raise CorruptFileError(f"{source}: the second item is {_describe(node)}, not a float axion mass in eV")


def _decode_deeplensesim_pickle(payload: bytes, header_shape: tuple, source: str) -> tuple[np.ndarray, object]:
    """(image, mass) from the pickle of an object array [image, mass] of `header_shape` (2 items)."""
    top = _walk_pickle(payload, source)
    shape, dtype_node, _, items = _array_state(top, source, "the pickled object")
    if _dtype_of(dtype_node, source, "the pickled object") != np.dtype(object):
        raise CorruptFileError(f"{source}: the header says object array, the pickle holds a numeric one")
    if shape != header_shape:
        raise CorruptFileError(f"{source}: header shape {header_shape} but the pickle holds shape {shape}")
    if not (isinstance(items, list) and len(items) == 2):
        raise CorruptFileError(f"{source}: object array items are {_describe(items)}; expected [image, axion_mass]")
    image_shape, image_dtype_node, fortran_order, data = _array_state(items[0], source, "the image")
    image_dtype = _dtype_of(image_dtype_node, source, "the image")
    if image_dtype.kind != "f" or len(image_shape) < 2:
        raise CorruptFileError(f"{source}: the image is {image_dtype} of shape {image_shape}; expected a float image")
    image = _float_array(image_shape, image_dtype, fortran_order, data, source, "the image")
    return image, _mass_value(items[1], source)


# ----------------------------------------------------------------------------- .npy files


def _parse_header(buffer: io.BytesIO, source: str) -> tuple[str, bool, tuple]:
    """(descr, fortran_order, shape) of a .npy header (versions 1–3), checked against our allow-list."""
    magic = buffer.read(8)
    if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
        raise CorruptFileError(f"{source}: not a .npy file (no \\x93NUMPY magic)")
    version = (magic[6], magic[7])
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise CorruptFileError(f"{source}: .npy format version {version[0]}.{version[1]} is not supported")
    length_format = "<H" if version == (1, 0) else "<I"
    length_bytes = buffer.read(struct.calcsize(length_format))
    if len(length_bytes) < struct.calcsize(length_format):
        raise CorruptFileError(f"{source}: truncated .npy header")
    (length,) = struct.unpack(length_format, length_bytes)
    if length > _MAX_HEADER_BYTES:
        raise CorruptFileError(f"{source}: .npy header of {length} bytes (at most {_MAX_HEADER_BYTES}); refused")
    text = buffer.read(length)
    if len(text) < length:
        raise CorruptFileError(f"{source}: truncated .npy header")
    try:
        # literal_eval builds only Python literals (what np.save writes); nothing is called
        header = ast.literal_eval(text.decode("utf8" if version == (3, 0) else "latin1"))
    except Exception as err:
        raise CorruptFileError(f"{source}: unreadable .npy header ({type(err).__name__})") from None
    if not (isinstance(header, dict) and set(header) == {"descr", "fortran_order", "shape"}):
        raise CorruptFileError(f"{source}: .npy header {_describe(header)} lacks descr, fortran_order and shape")
    descr, fortran_order, shape = header["descr"], header["fortran_order"], header["shape"]
    if not isinstance(descr, str) or (descr not in _FLOAT_DESCRS and descr != _OBJECT_DESCR):
        raise CorruptFileError(
            f"{source}: dtype {_describe(descr)}; DeepLenseSim images are float32/float64 arrays or "
            "object arrays [image, axion_mass]"
        )
    if not isinstance(fortran_order, bool):
        raise CorruptFileError(f"{source}: fortran_order {_describe(fortran_order)} in the .npy header")
    if not (isinstance(shape, tuple) and len(shape) <= 3 and all(_is_int(d) and d >= 0 for d in shape)):
        raise CorruptFileError(f"{source}: shape {_describe(shape)} in the .npy header; refused")
    return descr, fortran_order, shape


def _read_regular_file(path: Path) -> bytes:
    """The bytes of `path`, refusing anything but a regular file of at most `MAX_NPY_BYTES`."""
    try:
        info = os.stat(path)
    except OSError as err:
        raise CorruptFileError(f"{path}: cannot be read ({err.strerror or err})") from None
    # Checked before opening: opening a named pipe for reading blocks until something writes to it.
    if not stat.S_ISREG(info.st_mode):
        raise CorruptFileError(f"{path}: not a regular file (a pipe, device or socket named .npy); remove it")
    try:
        # O_NONBLOCK: if the path was swapped for a pipe after the check, open still returns at once
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as err:
        raise CorruptFileError(f"{path}: cannot be read ({err.strerror or err})") from None
    with os.fdopen(fd, "rb", buffering=0) as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise CorruptFileError(f"{path}: not a regular file (a pipe, device or socket named .npy); remove it")
        if info.st_size > MAX_NPY_BYTES:
            raise CorruptFileError(
                f"{path}: {info.st_size} bytes, above the {MAX_NPY_BYTES}-byte cap for one image; "
                "not a DeepLenseSim image file"
            )
        chunks, size = [], 0
        while size <= info.st_size:  # read at most one byte past the stat size: a growing file is refused
            chunk = handle.read(info.st_size + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    data = b"".join(chunks)
    if len(data) != info.st_size:
        raise CorruptFileError(f"{path}: changed size while being read")
    return data


def _read_image_and_mass(path: str | os.PathLike) -> tuple[np.ndarray, object, tuple | None]:
    """(image, mass or None, header shape of an object array or None) from one .npy file.

    The image is a float array decoded with `np.frombuffer`; `mass` is the second item of an object
    array [image, mass]. Raises `UnsafePickleError` or `CorruptFileError`, both naming the file.
    """
    path = Path(path)
    source = str(path)
    try:
        buffer = io.BytesIO(_read_regular_file(path))
        descr, fortran_order, shape = _parse_header(buffer, source)
        payload = buffer.read()
        if descr == _OBJECT_DESCR:
            if math.prod(shape) != 2:
                raise CorruptFileError(
                    f"{source}: object array of shape {shape}; a DeepLenseSim file holds [image, axion_mass]"
                )
            image, mass = _decode_deeplensesim_pickle(payload, shape, source)
            return image, mass, shape
        return _float_array(shape, _FLOAT_DESCRS[descr], fortran_order, payload, source, "the array"), None, None
    except (UnsafePickleError, CorruptFileError):
        raise
    except Exception as err:  # anything unforeseen still names the file and never aborts an import
        raise CorruptFileError(f"{source}: unreadable ({type(err).__name__}: {_describe(str(err))})") from None


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """Read a DeepLenseSim `.npy` file without unpickling anything.

    A float32/float64 array comes back as it is; an object array [image, axion_mass] is decoded
    from its pickle's opcodes (see the module docstring) and rebuilt as a fresh object array.
    Raises `UnsafePickleError` for a pickle naming a non-numpy global, `CorruptFileError` otherwise.
    """
    image, mass, object_shape = _read_image_and_mass(path)
    if object_shape is None:
        return image
    array = np.empty(2, dtype=object)
    array[0], array[1] = image, mass
    return array.reshape(object_shape)


def read_deeplensesim_image(path: str | os.PathLike, image_shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    """One released image as ((1, H, W) float32, axion_mass in eV or NaN).

    Accepts a float32/float64 (H, W) or (1, H, W) array, or an object array `[image, axion_mass]`.
    Every problem raises `CorruptFileError` (or `UnsafePickleError`) naming the file.
    """
    array, mass, _ = _read_image_and_mass(path)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.shape != tuple(image_shape):
        raise CorruptFileError(f"{path}: image shape {array.shape}, expected {tuple(image_shape)} or (1, H, W)")
    if not np.all(np.isfinite(array)):
        raise CorruptFileError(f"{path}: image holds NaN or infinite pixels")
    with np.errstate(over="ignore"):
        image = array.astype(np.float32)[None]
    if not np.all(np.isfinite(image)):
        raise CorruptFileError(f"{path}: image pixels exceed the float32 range (±3.4e38)")
    if mass is None:
        return image, float("nan")
    mass = float(mass)  # a float or a numpy float scalar by construction: never overflows
    if not (math.isfinite(mass) and 0 < mass <= _FLOAT32_MAX):
        raise CorruptFileError(
            f"{path}: axion mass {_describe(mass)} eV is not a positive float32 value (DeepLenseSim draws 1e-24–1e-22 eV)"
        )
    return image, mass

"""A pure-numpy reader for IDX files (the MNIST / Fashion-MNIST format), gzipped or not.

Format: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64), the number of dimensions, then one big-endian uint32 per
dimension, then the values in C order, big-endian.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np

from ..errors import InputError

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CHUNK = 1 << 20  # gzip payloads are read in chunks of this many bytes


def read_idx(path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into an array.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    ndarray
        Shape as declared in the header, native byte order.

    Raises
    ------
    InputError
        Missing file, bad magic number, unknown type code, or a data size that does not
        match the header (a truncated file).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"path: IDX file {str(p)!r} does not exist")
    try:
        with open(p, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
        with (gzip.open(p, "rb") if gz else open(p, "rb")) as fh:
            return _read_stream(fh, p, None if gz else p.stat().st_size)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise InputError(f"path: cannot read IDX file {str(p)!r}: {exc}") from None


def _read_stream(fh, p: Path, file_size: int | None) -> np.ndarray:
    """Read header and payload; ``file_size`` is None for a gzip stream (size unknown).

    Nothing is allocated from the declared shape before the data is known to be there: a
    corrupt header can declare terabytes.
    """
    head = fh.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise InputError(f"path: {str(p)!r} is not an IDX file (bad magic number)")
    code, ndim = head[2], head[3]
    if code not in IDX_TYPES:
        raise InputError(f"path: {str(p)!r} has unknown IDX type code 0x{code:02x}")
    dims = fh.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise InputError(f"path: IDX file {str(p)!r} is truncated inside its header")
    shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
    stored = np.dtype(IDX_TYPES[code])
    expected = math.prod(shape) * stored.itemsize  # Python ints: no overflow

    def mismatch(held) -> InputError:
        return InputError(f"path: IDX file {str(p)!r} declares shape {shape} ({expected} bytes of data) "
                          f"but holds {held} bytes")

    if file_size is not None:
        held = file_size - 4 - 4 * ndim
        if held != expected:
            raise mismatch(held)
        # read straight into the result (one copy, writeable), then fix the byte order in place
        out = np.empty(shape, dtype=stored)
        got = fh.readinto(memoryview(out.reshape(-1).view(np.uint8))) if expected else 0
        extra = len(fh.read(1))
        if got != expected or extra:  # the file changed while being read
            raise mismatch(f"at least {got + extra}" if extra else got)
    else:
        # bounded read: memory grows with the data actually there, never past expected + 1
        buf = bytearray()
        while len(buf) <= expected:
            chunk = fh.read(min(_CHUNK, expected + 1 - len(buf)))
            if not chunk:
                break
            buf += chunk
        if len(buf) != expected:
            raise mismatch(f"at least {len(buf)}" if len(buf) > expected else len(buf))
        out = np.frombuffer(buf, dtype=stored).reshape(shape) if expected else np.empty(shape, dtype=stored)
    native = stored.newbyteorder("=")
    if native != stored:
        out.byteswap(inplace=True)
        out = out.view(native)
    return out


def write_idx(path, array) -> None:
    """Write ``array`` as an uncompressed IDX file (used to make test fixtures)."""
    arr = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_TYPES.items()}
    code = codes.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise InputError(f"array: IDX cannot store dtype {arr.dtype}")
    head = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    Path(path).write_bytes(head + arr.astype(IDX_TYPES[code]).tobytes())

"""Validated numpy columns as Arrow arrays: what the bulk loader hands to the database.

The ADBC drivers (:mod:`ingest.load`) bind Arrow arrays to the database in C, so the
rows never become Python objects. Numeric columns are passed without copying;
byte-string columns (FITS) become Arrow strings by building the offsets and the
data buffer with numpy, because ``pyarrow.array`` on a fixed-width numpy ``S``
array goes element by element and takes several times longer; the buffer is
checked to be valid UTF-8 by Arrow. The Arrow types follow the data-model types,
so they match the database columns exactly (PostgreSQL's binary COPY needs that).
"""
from __future__ import annotations

import string

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["ARROW_TYPES", "text_array", "column_array", "build_id", "has_duplicates"]

#: Arrow type of each data-model datatype.
ARROW_TYPES = {
    "boolean": pa.bool_(), "short": pa.int16(), "int": pa.int32(), "long": pa.int64(),
    "float": pa.float32(), "double": pa.float64(), "char": pa.string(),
}


def _validity(mask: np.ndarray | None) -> pa.Buffer | None:
    if mask is None or not mask.any():
        return None
    return pa.py_buffer(np.packbits(~mask, bitorder="little"))


def text_array(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """A numpy text column ('S' UTF-8 bytes, 'U' or object) as an Arrow string array."""
    if values.dtype.kind != "S":
        return pa.array(values, type=pa.string(),
                        mask=mask if mask is not None and mask.any() else None)
    n = len(values)
    width = max(values.dtype.itemsize, 1)
    values = np.ascontiguousarray(values)
    lengths = np.strings.str_len(values).astype(np.int64)
    if mask is not None:
        lengths[mask] = 0
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    kind = pa.large_string() if offsets[-1] >= 2**31 else pa.string()
    if kind == pa.string():
        offsets = offsets.astype(np.int32)
    body = values.view(np.uint8).reshape(n, width)[np.arange(width) < lengths[:, None]]
    arr = pa.Array.from_buffers(kind, n, [_validity(mask), pa.py_buffer(offsets),
                                          pa.py_buffer(body)])
    try:
        arr.validate(full=True)                        # UTF-8 check, in C++
    except pa.ArrowInvalid:                            # not UTF-8: replace bad bytes
        text = np.char.decode(values, "utf-8", errors="replace")
        return pa.array(text, type=pa.string(), mask=mask)
    return arr.cast(pa.string()) if kind != pa.string() else arr


def column_array(values, mask: np.ndarray | None, datatype: str) -> pa.Array:
    """One validated column (numpy or Arrow) as an Arrow array of the data-model type."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    if datatype == "char":
        return text_array(values, mask)
    kind = ARROW_TYPES[datatype]
    values = np.ascontiguousarray(values)
    if mask is not None and mask.any():
        return pa.array(values, type=kind, mask=mask)
    return pa.array(values, type=kind)


def _int_text(values: np.ndarray) -> np.ndarray:
    """Integers as decimal byte strings ('S'): formatted by Arrow in C++, then laid
    out at a fixed width with numpy (numpy's own int-to-bytes cast is ~10x slower)."""
    arr = pc.cast(pa.array(values), pa.string())
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], np.int32, n + 1, arr.offset * 4)
    data = np.frombuffer(arr.buffers()[2], np.uint8)
    lengths = np.diff(offsets)
    width = max(int(lengths.max()) if n else 1, 1)
    out = np.zeros((n, width), np.uint8)
    out[np.arange(width) < lengths[:, None]] = data[offsets[0]:offsets[-1]]
    return out.view(f"S{width}").ravel()


def build_id(template: str, columns: dict[str, np.ndarray]) -> np.ndarray:
    """Values of an id column from ``template`` (str.format fields), vectorised.

    Byte strings ('S') when every text field is bytes (FITS input), else 'U'.
    """
    fields = []
    for literal, fname, _spec, _conv in string.Formatter().parse(template):
        if literal:
            fields.append(literal)
        if fname is not None:
            vals = columns[fname]
            fields.append(_int_text(vals) if vals.dtype.kind in "iu" else vals)
    arrays = [f for f in fields if not isinstance(f, str)]
    if not arrays:
        raise ValueError(f"id template {template!r} names no column")
    as_bytes = all(a.dtype.kind == "S" for a in arrays)
    result = None
    for f in fields:
        if isinstance(f, str):
            f = np.array(f.encode() if as_bytes else f)
        elif not as_bytes and f.dtype.kind != "U":
            f = np.char.decode(f, "utf-8", errors="replace") if f.dtype.kind == "S" \
                else f.astype(str)
        result = f if result is None else np.strings.add(result, f)
    return result


def has_duplicates(columns: list[np.ndarray]) -> bool:
    """Whether two rows have equal values in all ``columns`` (hashing, in C++).

    The columns are packed into one fixed-width byte string per row; equal keys
    give equal bytes (text is padded with NULs to the column width).
    """
    n = len(columns[0])
    if n < 2:
        return False
    packed = np.empty(n, dtype=[(f"k{i}", c.dtype) for i, c in enumerate(columns)])
    for i, c in enumerate(columns):
        packed[f"k{i}"] = c
    width = packed.dtype.itemsize
    keys = pa.Array.from_buffers(pa.binary(width), n,
                                 [None, pa.py_buffer(packed.view(np.uint8))])
    return len(pc.unique(keys)) != n

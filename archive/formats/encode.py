"""Bulk conversion of row chunks into typed numpy columns, shared by every writer.

A chunk (a list of row tuples, as ``QueryResult.chunks()`` yields them) is
transposed once with ``zip(*chunk)`` and each column is converted by its
*declared* VOTable datatype, not by the Python types the database happened to
return: SQLite gives booleans as 0/1 and may give ints for float columns,
PostgreSQL gives ``Decimal`` for numeric expressions. Numbers become numpy arrays
plus a null mask; text stays a list of ``str`` (nulls as ``""``) plus a mask;
arrays (xtype point/circle/polygon) become float arrays.

Text in VOTable and FITS is ASCII: ``ascii_text`` writes any other character as
a Python backslash escape (``\\xfc``, ``\\u2713``, ``\\U0001f600``), and ASCII
control characters too, so the binary streams never carry bytes that readers
would decode wrongly (astropy refuses non-ASCII ``char`` bytes; STILTS reads them
as Latin-1) and TABLEDATA never carries characters XML forbids. CSV, TSV, JSON and
HTML carry the text unchanged as UTF-8.
"""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import FatalFault, UsageFault

__all__ = ["NUMERIC_DTYPES", "ColumnLayout", "Column", "ArrowTextColumn", "layout_for",
           "layouts_for", "encode_chunk", "arrow_columns", "column_chunks", "ascii_text", "control_escaped", "clip_text", "format_numbers",
           "format_array", "python_values"]

#: numpy dtypes (native order) of the numeric VOTable datatypes.
NUMERIC_DTYPES = {
    "boolean": np.dtype(np.bool_),
    "unsignedByte": np.dtype(np.uint8),
    "short": np.dtype(np.int16),
    "int": np.dtype(np.int32),
    "long": np.dtype(np.int64),
    "float": np.dtype(np.float32),
    "double": np.dtype(np.float64),
}
TEXT_TYPES = ("char", "unicodeChar")
_ARRAY_ELEMENT_TYPES = ("short", "int", "long", "float", "double", "unsignedByte")


@dataclass(frozen=True)
class ColumnLayout:
    """How one result column is stored: kind, numpy dtype, element count.

    ``kind`` is "scalar" (one number or boolean), "text" (char/unicodeChar) or
    "array" (a numeric array such as a point). ``count`` is the fixed element
    count (``None`` when variable), ``maximum`` the bound of ``N*`` arraysizes.
    """

    name: str
    datatype: str
    kind: str
    dtype: np.dtype | None
    count: int | None
    maximum: int | None
    xtype: str | None

    @property
    def variable(self) -> bool:
        return self.count is None


def _parse_arraysize(name: str, arraysize: str | None) -> tuple[int | None, int | None]:
    """(fixed count, maximum) of an arraysize; (None, max|None) when variable."""
    text = (arraysize or "").strip()
    if not text:
        return 1, None
    dims = text.split("x")
    try:
        fixed = [int(d) for d in dims[:-1]]
        last = dims[-1]
        if last.endswith("*"):
            if fixed:
                raise ValueError
            return None, (int(last[:-1]) if last[:-1] else None)
        total = int(np.prod(fixed + [int(last)]))
    except ValueError:
        raise FatalFault(f"column {name}: arraysize {arraysize!r} is not supported") from None
    if total < 1:
        raise FatalFault(f"column {name}: arraysize {arraysize!r} is not supported")
    return total, None


def layout_for(column) -> ColumnLayout:
    """The ColumnLayout of a ResultColumn; FatalFault for datatypes we cannot write."""
    dt = column.datatype
    if dt in TEXT_TYPES:
        count, maximum = _parse_arraysize(column.name, column.arraysize or "*")
        return ColumnLayout(column.name, dt, "text", None, count, maximum, column.xtype)
    if dt not in NUMERIC_DTYPES:
        raise FatalFault(f"column {column.name}: datatype {dt!r} cannot be written; "
                         f"supported: {', '.join([*NUMERIC_DTYPES, *TEXT_TYPES])}")
    count, maximum = _parse_arraysize(column.name, column.arraysize)
    if count == 1 and (column.arraysize or "1").strip() == "1":
        return ColumnLayout(column.name, dt, "scalar", NUMERIC_DTYPES[dt], 1, None,
                            column.xtype)
    if dt not in _ARRAY_ELEMENT_TYPES:
        raise FatalFault(f"column {column.name}: arrays of {dt} are not supported")
    return ColumnLayout(column.name, dt, "array", NUMERIC_DTYPES[dt], count, maximum,
                        column.xtype)


def layouts_for(columns) -> list[ColumnLayout]:
    return [layout_for(c) for c in columns]


@dataclass
class Column:
    """One column of one chunk: ``values`` and the boolean null ``mask``.

    scalar: ndarray of the layout dtype (nulls hold 0/False/NaN);
    text: list of str (nulls ""); array: 2-d ndarray (fixed count, nulls NaN) or a
    list of 1-d ndarrays (variable, nulls empty).
    """

    values: object
    mask: np.ndarray


class ArrowTextColumn(Column):
    """A text column backed by a pyarrow string array (columnar results).

    ``values`` (the list of str, nulls "") is built on first use; the BINARY2
    writer reads ``arrow`` directly (offsets and bytes) and never needs it.
    """

    def __init__(self, arrow, mask: np.ndarray):
        self.arrow = arrow
        self.mask = mask
        self._values = None

    @property
    def values(self) -> list[str]:
        if self._values is None:
            import pyarrow.compute as pc
            array = pc.fill_null(self.arrow, "") if self.arrow.null_count else self.arrow
            self._values = array.to_pylist()
        return self._values

    @values.setter
    def values(self, value) -> None:
        self._values = value


def arrow_columns(batch, layouts: list[ColumnLayout]) -> list[Column]:
    """The columns of a pyarrow RecordBatch, converted by declared datatype without
    per-cell Python work (numbers: numpy views or casts; text: ArrowTextColumn).
    Columns the columnar path does not produce (arrays) go through ``encode_chunk``."""
    import pyarrow.compute as pc
    if batch.num_columns != len(layouts):
        raise FatalFault(f"rows have {batch.num_columns} values but {len(layouts)} "
                         "columns are declared")
    n = batch.num_rows
    out = []
    for lay, array in zip(layouts, batch.columns):
        mask = (array.is_null().to_numpy(zero_copy_only=False) if array.null_count
                else np.zeros(n, bool))
        if lay.kind == "text":
            out.append(ArrowTextColumn(array, mask))
            continue
        if lay.kind != "scalar":
            out.append(encode_chunk([(v,) for v in array.to_pylist()], [lay])[0])
            continue
        dtype = lay.dtype
        if array.null_count:
            array = pc.fill_null(array, False if array.type == "bool" else 0)
        values = array.to_numpy(zero_copy_only=False)
        if values.dtype.kind not in "iufb":
            raise FatalFault(f"column {lay.name}: a value does not fit datatype "
                             f"{lay.datatype}: {array.type}")
        if dtype.kind == "b":
            values = values != 0
        elif dtype.kind == "f":
            if mask.any():
                values = values.astype(dtype)             # a writable copy
                values[mask] = np.nan                     # nulls are NaN, as on the row path
            else:
                values = values.astype(dtype, copy=False)
        else:
            values = values.astype(dtype, copy=False)
        out.append(Column(values, mask))
    return out


def column_chunks(result, layouts: list[ColumnLayout]):
    """(row count, columns) per chunk of ``result``: from its Arrow batches when it
    is columnar, else from its row chunks. Closing this generator closes the
    result's iterator (and so gives the database connection back)."""
    if getattr(result, "columnar", False):
        source = iter(result.batches())
        convert = arrow_columns
        size = lambda b: b.num_rows                       # noqa: E731
    else:
        source = iter(result.chunks())
        convert = encode_chunk
        size = len
    try:
        for piece in source:
            n = size(piece)
            if n:
                yield n, convert(piece, layouts)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


def encode_chunk(chunk: Sequence[tuple], layouts: list[ColumnLayout]) -> list[Column]:
    """Transpose ``chunk`` and convert each column by its declared datatype."""
    n = len(chunk)
    if n == 0:
        return [_empty(lay) for lay in layouts]
    columns = list(zip(*chunk))
    if len(columns) != len(layouts):
        raise FatalFault(f"rows have {len(columns)} values but {len(layouts)} columns "
                         "are declared")
    out = []
    for lay, values in zip(layouts, columns):
        try:
            if lay.kind == "scalar":
                out.append(_scalar(values, lay))
            elif lay.kind == "text":
                out.append(_text(values, lay))
            else:
                out.append(_array(values, lay))
        except FatalFault:
            raise
        except OverflowError as exc:
            if lay.datatype not in ("short", "int", "long"):
                raise FatalFault(f"column {lay.name}: a value does not fit datatype "
                                 f"{lay.datatype}: {exc}") from exc
            # SQLite turns an integer overflow of + - * into a REAL: the query's doing
            raise UsageFault(f"column {lay.name}: a value is outside the range of a 64-bit "
                             "integer (an integer overflow in the query's arithmetic); "
                             "CAST an operand to DOUBLE PRECISION") from exc
        except (TypeError, ValueError) as exc:
            raise FatalFault(f"column {lay.name}: a value does not fit datatype "
                             f"{lay.datatype}: {exc}") from exc
    return out


def _empty(lay: ColumnLayout) -> Column:
    mask = np.zeros(0, bool)
    if lay.kind == "scalar":
        return Column(np.zeros(0, lay.dtype), mask)
    if lay.kind == "text":
        return Column([], mask)
    if lay.count is not None:
        return Column(np.zeros((0, lay.count), lay.dtype), mask)
    return Column([], mask)


def _null_mask(values: tuple) -> np.ndarray:
    # elementwise comparison of an object array runs in C: no Python loop per cell
    return np.asarray(np.array(values, dtype=object) == None, dtype=bool)  # noqa: E711


def _scalar(values: tuple, lay: ColumnLayout) -> Column:
    dtype = lay.dtype
    if dtype.kind in "fb":
        # float(None) is NaN for numpy, so one conversion gives values and nulls;
        # booleans go through float so that 0/1, True/False and None all work
        arr = np.array(values, dtype=np.float64)
        mask = np.isnan(arr)
        if dtype.kind == "b":
            return Column(arr != 0, mask)
        if dtype != arr.dtype:
            arr = arr.astype(dtype)
        return Column(arr, mask)
    try:
        return Column(np.array(values, dtype=dtype), np.zeros(len(values), bool))
    except TypeError:
        pass                                          # nulls among the integers
    mask = _null_mask(values)
    arr = np.zeros(len(values), dtype=dtype)
    present = [v for v, m in zip(values, mask.tolist()) if not m]
    if present:
        arr[~mask] = np.array(present, dtype=dtype)
    return Column(arr, mask)


def _cell_text(value, timestamp: bool):
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    return str(value)


def _text(values: tuple, lay: ColumnLayout) -> Column:
    timestamp = lay.xtype == "timestamp"
    try:
        joined = "".join(values)          # fast path: every value is a str
        strings = list(values)
        mask = np.zeros(len(values), bool)
    except TypeError:
        converted = [_cell_text(v, timestamp) for v in values]
        mask = np.fromiter((v is None for v in converted), bool, len(converted))
        strings = [v if v is not None else "" for v in converted]
        joined = "".join(strings)
    if timestamp and " " in joined:
        # DALI timestamps are YYYY-MM-DDThh:mm:ss; SQL gives a space before the time
        strings = [s.replace(" ", "T", 1) for s in strings]
    return Column(strings, mask)


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf)",
                     re.IGNORECASE)


def _array_cell(value, dtype) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, str):
        # geometry as text ("1.5 2.5", "{1.5,2.5}", "(1.5, 2.5)"): take the numbers
        return np.array([float(t) for t in _NUMBER.findall(value)], dtype=dtype)
    return np.asarray(value, dtype=dtype).ravel()


def _array(values: tuple, lay: ColumnLayout) -> Column:
    cells = [_array_cell(v, lay.dtype) for v in values]
    mask = np.fromiter((c is None for c in cells), bool, len(cells))
    if lay.count is None:
        empty = np.zeros(0, lay.dtype)
        cells = [c if c is not None else empty for c in cells]
        if lay.maximum is not None:
            cells = [c[:lay.maximum] for c in cells]
        return Column(cells, mask)
    fill = np.nan if lay.dtype.kind == "f" else 0
    arr = np.full((len(cells), lay.count), fill, dtype=lay.dtype)
    for i, c in enumerate(cells):
        if c is not None:
            k = min(len(c), lay.count)
            arr[i, :k] = c[:k]
    return Column(arr, mask)


# -- text helpers ----------------------------------------------------------------------

_UNSAFE = re.compile(r"[^\x20-\x7e\t\n]")
_PRINTABLE = bytes(range(0x20, 0x7f)) + b"\t\n"     # what ASCII text may hold


def _escape_one(s: str) -> str:
    s = s.encode("ascii", "backslashreplace").decode("ascii")
    if _UNSAFE.search(s):
        s = _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", s)
    return s


def ascii_text(strings: list[str]) -> list[str]:
    """``strings`` with non-ASCII and control characters as backslash escapes.

    Tab and newline are kept. The common all-ASCII case costs one join and one
    regular-expression scan per chunk, not a Python call per value.
    """
    joined = "".join(strings)
    if joined.isascii() and not joined.encode("ascii").translate(None, _PRINTABLE):
        return strings
    return [_escape_one(s) for s in strings]


def control_escaped(strings: list[str]) -> list[str]:
    """``strings`` with only ASCII control characters escaped (for unicodeChar)."""
    joined = "".join(strings)
    if joined.isprintable() or not _CONTROL.search(joined):
        return strings
    return [_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", s) for s in strings]


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clip_text(strings: list[str], lay: ColumnLayout) -> list[str]:
    """Cut values to the declared maximum length (``N`` or ``N*``)."""
    limit = lay.count if lay.count is not None else lay.maximum
    if limit is None or not strings or max(map(len, strings)) <= limit:
        return strings
    return [s[:limit] for s in strings]


def format_numbers(col: Column, lay: ColumnLayout, *, true: str, false: str,
                   posinf: str = "inf", neginf: str = "-inf") -> list[str]:
    """Scalar column as text, vectorised: shortest round-trip digits, nulls ``""``.

    float columns are printed at float32 precision (``0.1``, not
    ``0.10000000149011612``), since that is what the column holds.
    """
    arr, mask = col.values, col.mask
    kind = lay.dtype.kind
    if kind == "b":
        text = np.where(arr, true, false).tolist()
    elif lay.dtype == np.float32:
        text = arr.astype(str).tolist()       # numpy knows the shortest float32 digits
    elif kind == "f":
        text = list(map(repr, arr.tolist()))  # faster than numpy's astype(str)
    else:
        text = list(map(str, arr.tolist()))
    bad = mask | ~np.isfinite(arr) if kind == "f" else mask
    if bad.any():
        for i in np.flatnonzero(bad).tolist():
            v = arr[i]
            text[i] = "" if mask[i] or v != v else (posinf if v > 0 else neginf)
    return text


def _array_text(arr: np.ndarray, nan: str, posinf: str, neginf: str) -> np.ndarray:
    text = arr.astype(str)
    if arr.dtype.kind == "f" and arr.size and not np.isfinite(arr).all():
        text = np.where(np.isnan(arr), nan, text)
        text = np.where(np.isposinf(arr), posinf, np.where(np.isneginf(arr), neginf, text))
    return text


def format_array(col: Column, lay: ColumnLayout, sep: str = " ", *, nan: str = "NaN",
                 posinf: str = "+Inf", neginf: str = "-Inf",
                 blank_nulls: bool = True) -> list[str]:
    """Numeric array column as text: elements separated by ``sep``, nulls ``""``.

    With ``blank_nulls=False`` a null fixed-size float array is written as its NaN
    elements (``NaN NaN``), as VOTable TABLEDATA readers expect for points.
    """
    if lay.count is not None:
        rows = _array_text(col.values, nan, posinf, neginf).tolist()
    else:
        rows = [_array_text(c, nan, posinf, neginf).tolist() for c in col.values]
    out = [sep.join(r) for r in rows]
    if not blank_nulls and lay.count is not None and lay.dtype.kind == "f":
        return out
    if col.mask.any():
        out = ["" if m else s for s, m in zip(out, col.mask.tolist())]
    return out


def python_values(col: Column, lay: ColumnLayout) -> list:
    """Column as JSON-ready Python objects: numbers, bools, str, lists; nulls None.

    NaN and infinities become None (JSON has no such numbers).
    """
    if lay.kind == "text":
        if col.mask.any():
            return [None if m else s for s, m in zip(col.values, col.mask.tolist())]
        return col.values
    if lay.kind == "scalar":
        arr = col.values
        mask = col.mask
        if lay.dtype.kind == "f":
            mask = mask | ~np.isfinite(arr)
            if lay.dtype == np.float32:
                # the shortest float32 digits, read back as a double, print as such
                arr = arr.astype(str).astype(np.float64)
        values = arr.tolist()
        if mask.any():
            return [None if m else v for v, m in zip(values, mask.tolist())]
        return values
    if lay.count is not None:
        rows = col.values.astype(np.float64).tolist() if lay.dtype.kind == "f" \
            else col.values.tolist()
    else:
        rows = [c.tolist() for c in col.values]
    rows = [[x if x == x and x not in (float("inf"), float("-inf")) else None for x in r]
            for r in rows] if lay.dtype.kind == "f" else rows
    return [None if m else r for r, m in zip(rows, col.mask.tolist())]

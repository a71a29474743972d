"""Validation of an input table against the data model, vectorised over columns.

:func:`prepare` maps the input columns to the data-model columns (``Column.input_names``,
case-insensitive), converts each to its data-model type, checks required values,
NaN and infinities, ranges (``Column.minimum``/``maximum``), enumerations
(``Column.choices``), duplicate keys, builds the
id column from ``Table.id_template`` when the file lacks it, and adds the spatial index
columns of positional tables. Every check is a numpy operation on a whole column;
Python loops over rows run only to describe an error that has been found.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

import datamodel
from archive import sky

from .arrow import build_id, column_array, has_duplicates
from .errors import IngestError
from .threads import column_map

__all__ = ["Prepared", "prepare", "build_id", "MAX_REPORTED"]

#: How many rows with the same problem (column and kind) are kept for the message.
MAX_REPORTED = 5
#: How many problems an error message lists at most.
MAX_LISTED = 10

_INT_RANGES = {"short": (-2**15, 2**15 - 1), "int": (-2**31, 2**31 - 1),
               "long": (-2**63, 2**63 - 1)}
_INT_DTYPES = {"short": np.int16, "int": np.int32, "long": np.int64}
_FLOAT_DTYPES = {"float": np.float32, "double": np.float64}
_TRUE = {"1", "t", "true", "y", "yes"}
_FALSE = {"0", "f", "false", "n", "no"}


@dataclass
class Prepared:
    """Validated columns ready for loading: values and null masks, in load order.

    ``values`` are numpy arrays (text as 'S' UTF-8 bytes or 'U') or, for an id
    built from the keys, an Arrow array; ``types`` are the data-model datatypes.
    """

    table: datamodel.Table
    nrows: int
    names: list[str] = field(default_factory=list)        # database column names
    values: list = field(default_factory=list)
    nulls: list[np.ndarray | None] = field(default_factory=list)   # None: no nulls
    types: list[str] = field(default_factory=list)        # data-model datatypes
    ignored: list[str] = field(default_factory=list)      # input columns not in the model
    missing: list[str] = field(default_factory=list)      # model columns not in the input

    def column(self, name: str):
        return self.values[self.names.index(name)]

    def arrow(self, order: np.ndarray | None = None, release: bool = False) -> pa.Table:
        """The rows as an Arrow table (in ``order`` if given), typed like the database.

        ``release=True`` drops each numpy column once converted, so the data are
        held about once, not twice, at the peak.
        """
        taken = None if order is None else pa.array(order)

        def convert(i: int) -> pa.Array:
            vals, null, dt = self.values[i], self.nulls[i], self.types[i]
            if order is not None:
                if isinstance(vals, (pa.Array, pa.ChunkedArray)):
                    vals = vals.take(taken)
                else:
                    vals = vals[order]
                null = None if null is None else null[order]
            array = column_array(vals, null, dt)
            if release:
                self.values[i] = None
            return array

        return pa.table(column_map(convert, range(len(self.values))), names=self.names)


class _Problems:
    """Collects problems as (row index, column, message) and raises one IngestError.

    ``total`` counts every problem found; ``items`` keeps the first MAX_REPORTED of
    each kind, of which the MAX_LISTED first rows are listed.
    """

    def __init__(self, filename: str):
        self.filename = filename
        self.items: list[tuple[int, str, str]] = []
        self.total = 0
        self.flagged: dict[str, np.ndarray] = {}     # per column: rows already reported

    def add_rows(self, bad: np.ndarray, column: str, describe):
        if column in self.flagged:
            bad = bad & ~self.flagged[column]
            self.flagged[column] |= bad
        else:
            self.flagged[column] = np.array(bad, dtype=bool, copy=True)
        idx = np.flatnonzero(bad)
        self.total += len(idx)
        for i in idx[:MAX_REPORTED]:
            self.items.append((int(i), column, describe(int(i))))

    def add(self, row: int, column: str, message: str):
        self.total += 1
        self.items.append((row, column, message))

    def merge(self, other: "_Problems"):
        self.items.extend(other.items)
        self.total += other.total

    def bad_rows(self, columns, nrows: int) -> np.ndarray:
        """Rows with a problem in any of ``columns`` (labels)."""
        bad = np.zeros(nrows, dtype=bool)
        for label, rows in self.flagged.items():
            if label in columns:
                bad |= rows
        return bad

    def raise_if_any(self):
        if not self.total:
            return
        self.items.sort(key=lambda item: item[0])
        listed = self.items[:MAX_LISTED]
        lines = [f"{self.filename}: row {i + 1}, column {col}: {msg}" for i, col, msg in listed]
        head = f"{self.filename}: {self.total} problem(s); nothing was ingested"
        if len(listed) < self.total:
            head += f" (the first {len(listed)} listed)"
            lines.append(f"... and {self.total - len(listed)} more problem(s)")
        raise IngestError("\n".join([head, *lines]))


def _plain(value) -> str:
    """A cell as written: text stripped (bytes decoded), numbers by numpy's shortest
    repr of their own type (a float32 1.7 is 1.7, not 1.7000000476837158)."""
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8", errors="replace").strip()
    if isinstance(value, (str, np.str_)):
        return str(value).strip()
    return str(value)


def _show(value) -> str:
    """A cell as written, text quoted."""
    if isinstance(value, (bytes, np.bytes_, str, np.str_)):
        return repr(_plain(value))
    return _plain(value)


def _as_array(col) -> tuple[np.ndarray, np.ndarray]:
    """Plain ndarray and mask (True = missing) of an astropy column."""
    mask = np.ma.getmaskarray(col) if np.ma.isMaskedArray(col) or hasattr(col, "mask") \
        else np.zeros(len(col), dtype=bool)
    data = np.asarray(col.data if hasattr(col, "data") else col)
    if np.ma.isMaskedArray(data):
        data = data.data
    if data.ndim != 1:
        raise ValueError("multidimensional")
    return data, np.asarray(mask, dtype=bool).copy()


def _text(data: np.ndarray) -> np.ndarray:
    """Text values of a string or object array, stripped.

    Byte strings (FITS) stay bytes ('S', UTF-8): decoding a million of them to
    numpy unicode costs more than the whole load; they become Arrow strings
    (UTF-8 checked) in :meth:`Prepared.arrow`. Other input becomes 'U'.
    """
    if data.dtype.kind == "S":
        return np.strings.strip(data)
    if data.dtype.kind == "O":
        data = np.array(["" if v is None else str(v) for v in data.tolist()], dtype=str)
    return np.strings.strip(data.astype(str))


def _parse_failures(text: np.ndarray, ok_mask: np.ndarray, parse) -> np.ndarray:
    """Element-wise fallback (only after a vectorised parse failed): bad positions."""
    bad = np.zeros(len(text), dtype=bool)
    for i in np.flatnonzero(~ok_mask):
        try:
            parse(text[i])
        except (ValueError, OverflowError):
            bad[i] = True
    return bad


def _convert(data, mask, col: datamodel.Column, label: str, problems: _Problems):
    """Convert one input column to the data-model type: (values, null mask, written).

    ``written`` holds the values as the file writes them (the text of a CSV cell,
    a FITS float32 as a float32), for messages.
    """
    kind = data.dtype.kind
    written = data
    n = len(data)
    dt = col.datatype
    if dt == "char":
        if kind in "USO":
            values = _text(data)
        elif kind == "b":
            values = np.where(data, "T", "F")
        else:
            values = data.astype(str)
        mask = mask | (np.strings.str_len(values) == 0)
        return values, mask, values

    if kind in "USO":                      # text input (CSV, or strings in FITS/VOTable)
        text = _text(data)
        if text.dtype.kind == "S":
            text = np.char.decode(text, "utf-8", errors="replace")
        mask = mask | (text == "")
        written = text
        text = np.where(mask, "0", text)
        if dt == "boolean":
            low = np.strings.lower(text)
            is_true = np.isin(low, list(_TRUE))
            bad = ~(is_true | np.isin(low, list(_FALSE))) & ~mask
            problems.add_rows(bad, label, lambda i: f"{_show(text[i])} is not a boolean "
                                                    "(expected true/false, 1/0, T/F)")
            return is_true, mask, written
        kind, target, parse, what = (("i", np.int64, int, "an integer")
                                     if dt in _INT_DTYPES else
                                     ("f", np.float64, float, "a number"))
        try:
            parsed = text.astype(target)
        except (ValueError, OverflowError):
            bad = _parse_failures(text, mask, parse)
            problems.add_rows(bad, label, lambda i: f"{_show(text[i])} is not {what} "
                                                    f"({dt} expected)")
            parsed = np.where(bad, "0", text).astype(target)
        data = parsed

    if dt == "boolean":
        if kind == "b":
            return data.astype(bool), mask, written
        if kind in "iu":
            bad = ~np.isin(data, (0, 1)) & ~mask
            problems.add_rows(bad, label, lambda i: f"{_plain(written[i])} is not a boolean "
                                                    "(0 or 1)")
            return data == 1, mask, written
        problems.add_rows(~mask, label, lambda i: f"{_show(written[i])} is not a boolean "
                                                  f"(input type {data.dtype})")
        return np.zeros(n, dtype=bool), mask, written

    if kind not in "biuf":
        problems.add_rows(~mask, label, lambda i: f"{_show(written[i])} is not a number "
                                                  f"({dt} expected, input type {data.dtype})")
        return np.zeros(n, dtype=np.float64), mask, written

    if dt in _INT_DTYPES:
        if kind == "f":
            nan = np.isnan(data)
            mask = mask | nan
            good = ~mask
            bad = good & ((~np.isfinite(data)) | (data != np.round(data)))
            problems.add_rows(bad, label, lambda i: f"{_show(written[i])} is not an integer "
                                                    f"({dt} expected)")
            data = np.where(good & ~bad, data, 0)
        lo, hi = _INT_RANGES[dt]
        too_big = ~mask & ((data < lo) | (data > hi))
        problems.add_rows(too_big, label,
                          lambda i: f"{_plain(written[i])} does not fit a {dt} integer")
        values = np.where(too_big | mask, 0, data).astype(_INT_DTYPES[dt])
        return values, mask, written

    values = data.astype(_FLOAT_DTYPES[dt])
    nan = np.isnan(values)
    if col.required or col.role in ("ra", "dec"):
        problems.add_rows(nan & ~mask, label, lambda i: "NaN is not allowed here")
    mask = mask | nan
    inf = np.isinf(values) & ~mask
    problems.add_rows(inf, label, lambda i: f"{_plain(written[i])} is not a finite number")
    return values, mask, written


def _check_range(values, mask, written, col: datamodel.Column, label, problems):
    if col.datatype not in ("short", "int", "long", "float", "double"):
        return
    good = ~mask
    if col.minimum is not None:
        bad = good & (values < col.minimum)
        problems.add_rows(bad, label, lambda i: f"{_plain(written[i])} is below the minimum "
                                                f"{col.minimum:g}")
    if col.maximum is not None:
        if col.maximum_exclusive:
            bad = good & (values >= col.maximum)
            rel = "at or above the (exclusive) maximum"
        else:
            bad = good & (values > col.maximum)
            rel = "above the maximum"
        problems.add_rows(bad, label, lambda i: f"{_plain(written[i])} is {rel} {col.maximum:g}")


def _report_duplicates(problems: _Problems, key: tuple[str, ...],
                       values: dict[str, np.ndarray], rows: np.ndarray) -> None:
    """Add a problem for each row of ``rows`` whose key an earlier one has already."""
    cols = {c: values[c][rows] for c in key}
    dups, ndups = _duplicates(cols, key, len(rows))
    key_text = ", ".join(key)
    for first, second in dups:
        first, second = int(rows[first]), int(rows[second])
        shown = ", ".join(_plain(values[c][first]) for c in key)
        problems.add(second, key_text, f"duplicate key ({key_text}) = ({shown}), "
                                       f"already on row {first + 1}")
    problems.total += ndups - len(dups)


def _label(col: datamodel.Column, source: str) -> str:
    """How messages name a column: as the file does, with the database name if other."""
    return source if source.lower() == col.name else f"{source} ({col.name})"


def _duplicates(prep_cols: dict[str, np.ndarray], key: tuple[str, ...], nrows: int):
    """Indices (first, second) of rows with equal keys, or an empty list."""
    if nrows < 2:
        return [], 0
    if len(key) == 1:
        k = prep_cols[key[0]]
        order = np.argsort(k, kind="stable")
        ks = k[order]
        same = ks[1:] == ks[:-1]
    else:
        order = np.lexsort([prep_cols[c] for c in reversed(key)])
        same = np.ones(nrows - 1, dtype=bool)
        for c in key:
            ks = prep_cols[c][order]
            same &= ks[1:] == ks[:-1]
    pos = np.flatnonzero(same)
    return [(int(min(order[p], order[p + 1])), int(max(order[p], order[p + 1])))
            for p in pos[:MAX_REPORTED]], int(len(pos))


def _check_column(data, col: datamodel.Column, source: str, filename: str,
                  problems: _Problems) -> tuple[np.ndarray, np.ndarray]:
    """Input column ``source`` converted to ``col``'s type and checked: (values, nulls).

    Problems are added to ``problems``, which belongs to this column alone: columns
    are checked side by side in threads (:func:`ingest.threads.column_map`).
    """
    label = _label(col, source)
    try:
        raw, mask = _as_array(data[source])
    except ValueError:
        raise IngestError(f"{filename}: column {source}: multidimensional values "
                          f"cannot be stored in {col.name}") from None
    vals, mask, written = _convert(raw, mask, col, label, problems)
    if col.required:
        problems.add_rows(mask, label, lambda i: "a value is required (empty or null)")
    _check_range(vals, mask, written, col, label, problems)
    if col.choices:
        allowed = [c.encode() for c in col.choices] if vals.dtype.kind == "S" \
            else list(col.choices)
        problems.add_rows(~mask & ~np.isin(vals, allowed), label,
                          lambda i: f"{_show(vals[i])} is not one of "
                                    f"{', '.join(col.choices)}")
    if col.datatype == "char" and col.arraysize and col.arraysize.isdigit():
        width = int(col.arraysize)
        too_long = ~mask & (np.strings.str_len(vals) > width)
        if vals.dtype.kind == "S" and too_long.any():      # bytes: count characters
            idx = np.flatnonzero(too_long)
            too_long[idx] = np.strings.str_len(
                np.char.decode(vals[idx], "utf-8", errors="replace")) > width
        problems.add_rows(too_long, label,
                          lambda i: f"{_show(vals[i])} is longer than {width} characters")
    return vals, mask


def _spatial_columns(table: datamodel.Table, values: dict[str, np.ndarray]):
    """``(name, values)`` of the spatial index columns of a positional table."""
    if not table.positional:
        return []
    ra = values[table.role_column("ra").name]
    dec = values[table.role_column("dec").name]
    x, y, z = sky.unit_vectors(ra, dec)
    return [("_hpx", sky.healpix_index(ra, dec)), ("_x", x), ("_y", y), ("_z", z)]


def prepare(table: datamodel.Table, data, filename: str) -> Prepared:
    """Validate the astropy table ``data`` as rows of ``table``; raise IngestError.

    The returned columns are in the order of the data model followed, for
    positional tables, by ``_hpx, _x, _y, _z``.
    """
    nrows = len(data)
    by_upper: dict[str, str] = {}
    for name in data.colnames:
        up = name.strip().upper()
        if up in by_upper:
            raise IngestError(f"{filename}: column {name} appears twice "
                              "(column names are case-insensitive)")
        by_upper[up] = name
    problems = _Problems(filename)
    prep = Prepared(table=table, nrows=nrows)
    sources: list[tuple[datamodel.Column, str]] = []
    missing = []
    for col in table.columns:
        source = next((by_upper[n] for n in col.input_names if n in by_upper), None)
        if source is None:
            if col.required and not (col.role == "id" and table.id_template):
                missing.append(col)
            continue
        sources.append((col, source))
    if missing:
        names = ", ".join(" or ".join(c.input_names) for c in missing)
        raise IngestError(f"{filename}: required column(s) missing: {names} "
                          f"(catalogue {table.name}; the file has: {', '.join(data.colnames)})")
    used = {source for _col, source in sources}

    def check(item: tuple[datamodel.Column, str]):
        found = _Problems(filename)             # one per column: no state shared by threads
        return (*_check_column(data, *item, filename, found), found)

    values: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    for (col, _source), (vals, mask, found) in zip(sources, column_map(check, sources)):
        values[col.name], masks[col.name] = vals, mask
        problems.merge(found)                   # in column order, as one pass would
        problems.flagged.update(found.flagged)
    if problems.total:
        # duplicate keys are reported with the other problems, among the rows whose
        # key values are valid
        labels = {col.name: _label(col, source) for col, source in sources}
        valid = ~problems.bad_rows({labels[c] for c in table.key}, nrows)
        _report_duplicates(problems, table.key, values, np.flatnonzero(valid))
        problems.raise_if_any()

    # the id, the duplicate test and the spatial columns need only checked columns:
    # computed side by side
    id_col = table.role_column("id")
    make_id = id_col is not None and id_col.name not in values and table.id_template
    tasks = [lambda: build_id(table.id_template, values) if make_id else None,
             lambda: has_duplicates([values[c] for c in table.key]) if nrows > 1 else False,
             lambda: _spatial_columns(table, values)]
    ids, has_dups, spatial = column_map(lambda task: task(), tasks)
    if make_id:
        values[id_col.name] = ids
        masks[id_col.name] = np.zeros(nrows, dtype=bool)
    if has_dups:
        _report_duplicates(problems, table.key, values, np.arange(nrows))
    problems.raise_if_any()

    for col in table.columns:
        if col.name in values:
            prep.names.append(col.name)
            prep.types.append(col.datatype)
            prep.values.append(values[col.name])
            m = masks[col.name]
            prep.nulls.append(m if m.any() else None)
    for name, arr in spatial:
        prep.names.append(name)
        prep.values.append(arr)
        prep.nulls.append(None)
        prep.types.append("long" if name == "_hpx" else "double")
    prep.ignored = [n for n in data.colnames if n not in used]
    prep.missing = [col.name for col in table.columns if col.name not in values]
    return prep

"""Fast reading of uploaded VOTables whose data is a BINARY or BINARY2 stream (no Flask).

astropy.io.votable reads the header (RESOURCE, TABLE, FIELD, VALUES: every
attribute, the null values, xtypes) and stays the reader of record; only the
base64 data stream of BINARY and BINARY2 tables is decoded here, with numpy.
Why by hand: astropy's binary reader runs a Python loop per row and per cell
(``TableElement._parse_binary``), about 50-100 us per row of a three-column
table, so a 100,000-row upload took seconds before the query even started;
numpy decodes the same stream in milliseconds (a Python loop remains only for
variable-length strings, to find the row boundaries).

The result is what astropy would give for the same document: the same values,
the same masks (BINARY2 null flags, VALUES null, NaN), the same refusals.
Anything this module does not handle exactly like astropy (several tables, a
STREAM with href or gzip encoding, bit, complex or array columns, non-ASCII
``char`` bytes, a truncated stream) makes ``read_binary_votable`` return None,
and the caller reads the document with astropy as before.
"""
from __future__ import annotations

import base64
import binascii
import io
import re

import numpy as np

__all__ = ["read_binary_votable"]

_TABLE = re.compile(rb"<TABLE[\s>/]")
_DATA_OPEN = re.compile(rb"<DATA[\s>]")
_DATA_CLOSE = re.compile(rb"</DATA\s*>")
_STREAM = re.compile(rb"\s*<(BINARY2?)\s*>\s*<STREAM((?:\s+[^>]*)?)>([^<]*)</STREAM\s*>"
                     rb"\s*</\1\s*>\s*\Z")
_ENCODING = re.compile(rb"""\A\s*encoding\s*=\s*(["'])base64\1\s*\Z""")

#: big-endian numpy dtypes of the fixed-size scalar VOTable datatypes handled here
_NUMERIC = {"unsignedByte": ">u1", "short": ">i2", "int": ">i4", "long": ">i8",
            "float": ">f4", "double": ">f8", "boolean": "S1"}
_NATIVE = {"unsignedByte": np.uint8, "short": np.int16, "int": np.int32, "long": np.int64,
           "float": np.float32, "double": np.float64}
_TRUE = np.frombuffer(b"Tt1", np.uint8)
_FALSE = np.frombuffer(b"Ff0", np.uint8)


def _outside_comments(content: bytes, pos: int) -> bool:
    start = content.rfind(b"<!--", 0, pos)
    return start == -1 or content.find(b"-->", start, pos) != -1


def _only(pattern: re.Pattern, content: bytes):
    """The one match of ``pattern`` in ``content``, or None if there are 0 or 2+."""
    it = pattern.finditer(content)
    first = next(it, None)
    if first is None or next(it, None) is not None:
        return None
    return first if _outside_comments(content, first.start()) else None


def _split(content: bytes):
    """(header document without DATA, binary mode 1 or 2, base64 text) or None."""
    table = _only(_TABLE, content)
    data = _only(_DATA_OPEN, content)
    if table is None or data is None or data.start() < table.start():
        return None
    close = _DATA_CLOSE.search(content, data.end())
    if close is None:
        return None
    gt = content.find(b">", data.start())
    if gt == -1 or gt >= close.start() or content[gt - 1:gt] == b"/":
        return None
    inner = _STREAM.match(content, gt + 1, close.start())
    if inner is None:
        return None
    attributes = inner.group(2)
    if attributes.strip() and not _ENCODING.match(attributes):
        return None                        # href, gzip, dynamic: astropy's business
    header = content[:data.start()] + content[close.end():]
    mode = 2 if inner.group(1) == b"BINARY2" else 1
    return header, mode, inner.group(3)


def _layout(fields):
    """Per field: (kind, itemsize or element size); None if a field is not handled."""
    out = []
    for f in fields:
        datatype, arraysize = f.datatype, f.arraysize
        if datatype in ("char", "unicodeChar"):
            size = 1 if datatype == "char" else 2
            text = arraysize or "1"
            if text.endswith("*"):
                out.append(("var", size))
                continue
            try:
                count = int(text)
            except ValueError:
                return None
            if count < 1:
                return None
            out.append(("fixed", size * count))
        elif datatype in _NUMERIC and arraysize in (None, "1"):
            out.append(("fixed", np.dtype(_NUMERIC[datatype]).itemsize))
        else:
            return None
    return out


def _rows(raw: bytes, layout, prefix: int):
    """Row segment starts: an int64 array (segments x rows); a segment starts at the
    row's beginning or after a variable-length field. None if the stream does not
    end at a row boundary (astropy would drop a partial last row)."""
    # fixed bytes of each segment before the variable field that ends it (the last
    # segment runs to the end of the row)
    fixed, sizes = [prefix], []
    for kind, size in layout:
        if kind == "fixed":
            fixed[-1] += size
        else:
            sizes.append(size)
            fixed.append(0)
    total = len(raw)
    if not sizes:
        width = fixed[0]
        if width == 0 or total % width:
            return None
        return (np.arange(total // width, dtype=np.int64) * width)[None, :]
    starts = [[] for _ in fixed]
    appends = [s.append for s in starts]
    last = len(fixed) - 1
    from_bytes = int.from_bytes
    pos = 0
    while pos < total:
        for k in range(last):
            appends[k](pos)
            pos += fixed[k]
            pos += 4 + from_bytes(raw[pos:pos + 4], "big") * sizes[k]
        appends[last](pos)
        pos += fixed[last]
    if pos != total:
        return None
    return np.array(starts, dtype=np.int64)


def _gather(buf: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` bytes at each position, as a (rows, size) uint8 array (copied
    from a strided view of the buffer: no index array of rows x size)."""
    if not len(positions):
        return np.empty((0, size), dtype=np.uint8)
    return np.lib.stride_tricks.sliding_window_view(buf, size)[positions]


def _texts(raw: bytes, starts, lengths, unicode: bool) -> list[str]:
    codec = "utf_16_be" if unicode else "ascii"
    width = 2 if unicode else 1
    return [raw[p:p + n * width].decode(codec)
            for p, n in zip(starts.tolist(), lengths.tolist())]


def _decode(fields, layout, raw: bytes, mode: int):
    """Masked column arrays like astropy's ``table.array[name]``; None if unsure."""
    prefix = (len(fields) + 7) // 8 if mode == 2 else 0
    segments = _rows(raw, layout, prefix)
    if segments is None:
        return None
    nrows = segments.shape[1]
    buf = np.frombuffer(raw, dtype=np.uint8)
    if mode == 2:
        flags = np.unpackbits(_gather(buf, segments[0], prefix), axis=1,
                              bitorder="big")[:, :len(fields)].astype(bool)
    columns = []
    segment, offset = 0, prefix
    for i, (f, (kind, size)) in enumerate(zip(fields, layout)):
        at = segments[segment] + offset
        if kind == "var":
            lengths = _gather(buf, at, 4).view(">u4").ravel().astype(np.int64)
            values = _texts(raw, at + 4, lengths, f.datatype == "unicodeChar")
            segment, offset = segment + 1, 0
            # strings are never masked: astropy ignores their BINARY2 null flags
            columns.append(np.ma.MaskedArray(np.array(values, dtype=object),
                                             mask=np.zeros(nrows, bool)))
            continue
        offset += size
        cells = _gather(buf, at, size)
        if f.datatype in ("char", "unicodeChar"):
            unicode = f.datatype == "unicodeChar"
            values = [v.split("\0", 1)[0] for v in _texts(
                raw, at, np.full(nrows, size // (2 if unicode else 1)), unicode)]
            columns.append(np.ma.MaskedArray(np.array(values, dtype=object),
                                             mask=np.zeros(nrows, bool)))
            continue
        if f.datatype == "boolean":
            byte = cells[:, 0]
            values = np.isin(byte, _TRUE)
            mask = ~(values | np.isin(byte, _FALSE))
        else:
            values = cells.view(_NUMERIC[f.datatype]).ravel().astype(_NATIVE[f.datatype])
            null = getattr(f.converter, "null", None)
            if null is not None:
                mask = values == null
            elif values.dtype.kind == "f":
                mask = np.isnan(values)
            else:
                mask = np.zeros(nrows, bool)
        if mode == 2:
            mask = mask | flags[:, i]
        columns.append(np.ma.MaskedArray(values, mask=mask))
    return columns, nrows


def read_binary_votable(content: bytes):
    """(astropy table element, list of masked column arrays, row count) for a
    single-table VOTable with a BINARY or BINARY2 base64 stream, or None when the
    document is anything else (the caller then lets astropy read all of it).
    Errors of the header are astropy's (raised as they come)."""
    from astropy.io import votable
    split = _split(content)
    if split is None:
        return None
    header, mode, text = split
    doc = votable.parse(io.BytesIO(header), verify="ignore")
    table = doc.get_first_table()
    fields = table.fields
    layout = _layout(fields)
    if layout is None or not fields:
        return None
    try:
        raw = base64.b64decode(text)
    except (binascii.Error, ValueError):
        return None
    try:
        decoded = _decode(fields, layout, raw, mode)
    except (UnicodeDecodeError, IndexError, ValueError):
        return None                    # astropy gives the reader's own error message
    if decoded is None:
        return None
    columns, nrows = decoded
    return table, columns, nrows

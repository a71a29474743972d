"""VOTable 1.4 writers (BINARY2 and TABLEDATA) and the DALI error document.

The document structure (FIELDs, INFOs, service-descriptor RESOURCEs, the
QUERY_STATUS INFOs) comes from ``templates/formats/votable.xml``; rows are
encoded here, one chunk at a time, with numpy.

BINARY2 rows are a null-flag bitmap (one bit per column, most significant bit
first) followed by the values in big-endian order; variable-length values
(``char`` with arraysize ``*`` or ``N*``, variable arrays) are a 4-byte element
count followed by the elements. A chunk is laid out as alternating fixed-width
blocks (a packed numpy structured array, which also carries the count of the
variable value that follows it) and variable values, and joined in one
``bytes.join``. Base64 is written in whole 3-byte groups; the 0-2 byte
remainder is carried to the next chunk.

If anything fails while rows are streamed, the DATA and TABLE are closed and a
trailing ``<INFO name="QUERY_STATUS" value="ERROR">`` says what happened, so
the document stays well-formed (the rows written so far remain readable).
"""
from __future__ import annotations

import base64
import dataclasses
from functools import lru_cache
from operator import attrgetter
from typing import Iterator

import numpy as np

from ..errors import ArchiveFault
from ..result import ResultColumn
from .encode import (Column, ColumnLayout, ascii_text, clip_text, control_escaped,
                     encode_chunk, format_array, format_numbers, layouts_for)
from .stream import GuardedStream
from .templating import macros

__all__ = ["render_binary2", "render_tabledata", "error_document", "stream_votable"]


def error_document(message, *, scs: bool = False) -> bytes:
    """A DALI error VOTable: ``QUERY_STATUS=ERROR`` with ``message`` as its text.

    With ``scs=True`` also the Simple Cone Search 1.03 form, ``<INFO name="Error"
    value="message"/>``, which is what pyvo and TOPCAT look for in cone-search
    answers. ``message`` may be a string or an ArchiveFault.
    """
    if isinstance(message, ArchiveFault):
        message = message.message
    return str(macros("votable.xml").error(str(message), scs)).encode("utf-8")


def render_binary2(result, *, errors: str = "document", **_options) -> Iterator[bytes]:
    """Stream ``result`` as a BINARY2 VOTable."""
    return stream_votable(result, "BINARY2", errors=errors)


def render_tabledata(result, *, errors: str = "document", **_options) -> Iterator[bytes]:
    """Stream ``result`` as a TABLEDATA VOTable."""
    return stream_votable(result, "TABLEDATA", errors=errors)


def stream_votable(result, serialization: str, *, errors: str = "document"
                   ) -> Iterator[bytes]:
    """The VOTable document of ``result`` in pieces.

    ``errors="document"`` ends the document with an ERROR INFO if streaming
    fails; ``errors="raise"`` does the same and then re-raises (for writers of
    files, e.g. async jobs, that must record the failure).
    """
    if serialization not in ("BINARY2", "TABLEDATA"):
        raise ValueError(f"unknown VOTable serialization {serialization!r}")
    key = _columns_key(result.columns)
    if key is None:
        layouts = layouts_for(result.columns)    # unsupported columns fail before any byte
        plan = None
    else:
        layouts, plan = _layouts_cached(key)
    if serialization == "BINARY2":
        encoder = _Binary2(layouts, plan)
    else:
        encoder = _TableData(layouts)
    return _generate(result, key, serialization, encoder, errors)


# -- caches of what depends only on the column metadata ---------------------------------
#
# Services that answer many small queries with the same columns (cone search) would
# otherwise spend most of their time rendering the same FIELD list with Jinja and
# building the same encoder layout. Both are cached under the full content of the
# columns (every ResultColumn attribute) and INFOs, so two results share a header
# only if the template would render them identically.

_COLUMN_ATTRS = tuple(f.name for f in dataclasses.fields(ResultColumn))
_column_values = attrgetter(*_COLUMN_ATTRS)


def _columns_key(columns) -> tuple | None:
    """A hashable key of everything the header says about ``columns`` (None: do
    not cache, e.g. for column objects of another type)."""
    if not all(type(c) is ResultColumn for c in columns):
        return None
    key = tuple(map(_column_values, columns))
    try:
        hash(key)
    except TypeError:
        return None
    return key


@lru_cache(maxsize=256)
def _layouts_cached(key: tuple) -> tuple[list[ColumnLayout], tuple]:
    layouts = layouts_for([ResultColumn(*values) for values in key])
    return layouts, _binary2_plan(layouts)


@lru_cache(maxsize=256)
def _head_cached(key: tuple, infos: tuple, serialization: str) -> bytes:
    return _head([ResultColumn(*values) for values in key], list(infos), serialization)


def _head(columns, infos, serialization) -> bytes:
    return str(macros("votable.xml").head(columns, infos, serialization)).encode("utf-8")


@lru_cache(maxsize=64)
def _foot_cached(serialization: str, status: str, message: str, resources: tuple) -> bytes:
    return _foot(serialization, status, message, list(resources))


def _foot(serialization, status, message, resources) -> bytes:
    return str(macros("votable.xml").foot(serialization, status, message,
                                          resources)).encode("utf-8")


def _generate(result, key, serialization, encoder, errors):
    infos = tuple((n, v, t) for n, v, t in result.infos)
    try:
        hash(infos)
    except TypeError:                              # unhashable INFO values: no cache
        key = None
    if key is not None:
        yield _head_cached(key, infos, serialization)
    else:
        yield _head(result.columns, list(infos), serialization)
    stream = GuardedStream(result, encoder.layouts, "a VOTable")
    yield from stream.encoded(encoder.encode_columns)
    tail = encoder.finish()
    status, message = stream.status()
    resources = tuple(result.resources)
    try:
        foot = _foot_cached(serialization, status, message, resources)
    except TypeError:                              # unhashable resource fragments
        foot = _foot(serialization, status, message, list(resources))
    yield tail + foot
    stream.raise_failure(errors)


# -- BINARY2 ---------------------------------------------------------------------------

class _Binary2:
    """Encodes chunks of rows into base64 BINARY2 text."""

    def __init__(self, layouts: list[ColumnLayout], plan: tuple | None = None):
        self.layouts = layouts
        self.rows = 0
        self._carry = b""
        self.segments = plan if plan is not None else _binary2_plan(layouts)

    def encode(self, chunk) -> bytes:
        """Encode a chunk of row tuples."""
        if len(chunk) == 0 or not self.layouts:
            return b""
        return self.encode_columns(len(chunk), encode_chunk(chunk, self.layouts))

    def encode_columns(self, n: int, cols: list[Column]) -> bytes:
        """Encode ``n`` rows given as converted columns (``encode.Column``)."""
        if n == 0 or not self.layouts:
            return b""
        varcols = {i: _variable_bytes(cols[i], self.layouts[i])
                   for i, lay in enumerate(self.layouts) if lay.variable}
        pieces = []
        for seg in self.segments:
            if seg[0] == "var":
                pieces.append(varcols[seg[1]][1:])
                continue
            _, members, dtype = seg
            block = np.empty(n, dtype=dtype)
            for fname, i in members:
                if i is None:
                    masks = np.column_stack([c.mask for c in cols])
                    block[fname] = np.packbits(masks, axis=1)
                elif fname[0] == "n":
                    block[fname] = varcols[i][0]
                else:
                    block[fname] = _fixed_values(cols[i], self.layouts[i])
            pieces.append(block)
        raw = _assemble(n, pieces)
        self.rows += n
        raw = self._carry + raw
        cut = len(raw) - len(raw) % 3
        self._carry = raw[cut:]
        return base64.b64encode(raw[:cut]) + b"\n" if cut else b""

    def finish(self) -> bytes:
        tail = base64.b64encode(self._carry) + b"\n" if self._carry else b""
        self._carry = b""
        return tail


def _binary2_plan(layouts: list[ColumnLayout]) -> tuple:
    """The row layout of BINARY2 for ``layouts``: alternating fixed blocks
    ``("fixed", [(field, column index or None)], dtype)`` and variable values
    ``("var", column index)``."""
    segments = []
    nbytes = (len(layouts) + 7) // 8
    fields = [("nulls", np.uint8, (nbytes,))] if layouts else []
    members: list[tuple[str, int | None]] = [("nulls", None)] if layouts else []
    for i, lay in enumerate(layouts):
        if lay.variable:
            fields.append((f"n{i}", ">i4"))
            members.append((f"n{i}", i))
            segments.append(("fixed", tuple(members), np.dtype(fields)))
            segments.append(("var", i))
            fields, members = [], []
        else:
            fields.append((f"c{i}",) + _fixed_dtype(lay))
            members.append((f"c{i}", i))
    if fields:
        segments.append(("fixed", tuple(members), np.dtype(fields)))
    return tuple(segments)


def _fixed_dtype(lay: ColumnLayout) -> tuple:
    if lay.kind == "scalar":
        return ("S1",) if lay.datatype == "boolean" else (lay.dtype.newbyteorder(">"),)
    if lay.kind == "text":
        width = lay.count * (2 if lay.datatype == "unicodeChar" else 1)
        return (f"S{width}",)
    return (lay.dtype.newbyteorder(">"), (lay.count,))


def _fixed_values(col: Column, lay: ColumnLayout):
    if lay.kind == "scalar":
        if lay.datatype == "boolean":
            return np.where(col.mask, b"?", np.where(col.values, b"T", b"F"))
        return col.values
    if lay.kind == "text":
        if lay.datatype == "unicodeChar":
            return [s.encode("utf-16-be")[:2 * lay.count]
                    for s in control_escaped(col.values)]
        # numpy cuts to the width, or pads with NULs, which readers strip
        return np.array(ascii_text(col.values), dtype=f"S{lay.count}")
    return col.values


def _variable_values(col: Column, lay: ColumnLayout) -> tuple[np.ndarray, list[bytes]]:
    """(element counts, encoded values) of a variable-length column."""
    if lay.kind == "text":
        if lay.datatype == "unicodeChar":
            data = [s.encode("utf-16-be") for s in clip_text(control_escaped(col.values), lay)]
            counts = np.fromiter(map(len, data), np.int32, len(data)) // 2
            return counts, data
        strings = clip_text(ascii_text(col.values), lay)
        return (np.fromiter(map(len, strings), np.int32, len(strings)),
                list(map(str.encode, strings)))
    big = lay.dtype.newbyteorder(">")
    data = [c.astype(big).tobytes() for c in col.values]
    return np.fromiter(map(len, col.values), np.int32, len(data)), data


_PRINTABLE_BYTES = np.zeros(256, bool)
_PRINTABLE_BYTES[0x20:0x7f] = True
_PRINTABLE_BYTES[[0x09, 0x0a]] = True          # what ``ascii_text`` leaves unescaped


def _arrow_ascii(col, lay: ColumnLayout):
    """(counts, byte lengths, bytes) of an Arrow string column straight from its
    offsets and data buffers, if every value is printable ASCII within the declared
    maximum (the common case); else None, and the per-value path escapes them."""
    array = getattr(col, "arrow", None)
    if array is None:
        return None
    import pyarrow as pa
    import pyarrow.compute as pc
    if not pa.types.is_string(array.type):
        return None
    if array.null_count:
        array = pc.fill_null(array, "")
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], np.int32, len(array) + 1, array.offset * 4)
    data = (np.frombuffer(buffers[2], np.uint8)[offsets[0]:offsets[-1]]
            if buffers[2] is not None else np.zeros(0, np.uint8))
    lengths = np.diff(offsets).astype(np.int64)
    if data.size and not _PRINTABLE_BYTES[data].all():
        return None
    if lay.maximum is not None and lengths.size and lengths.max() > lay.maximum:
        return None
    return lengths.astype(np.int32), lengths, data


def _variable_bytes(col: Column, lay: ColumnLayout):
    """(element counts, byte lengths, concatenated bytes as uint8) of a
    variable-length column, in row order."""
    if lay.kind == "text" and lay.datatype == "char":
        fast = _arrow_ascii(col, lay)
        if fast is not None:
            return fast
        strings = clip_text(ascii_text(col.values), lay)
        lengths = np.fromiter(map(len, strings), np.int64, len(strings))
        data = np.frombuffer("".join(strings).encode("ascii"), np.uint8)
        return lengths.astype(np.int32), lengths, data
    counts, values = _variable_values(col, lay)
    lengths = np.fromiter(map(len, values), np.int64, len(values))
    return counts, lengths, np.frombuffer(b"".join(values), np.uint8)


def _assemble(n: int, pieces: list) -> bytes:
    """The BINARY2 bytes of ``n`` rows from their segments, without a Python step
    per row: fixed blocks (structured arrays, one record per row) and variable
    values (byte lengths, concatenated bytes) are scattered into one buffer at
    each row's offset (numpy fancy indexing)."""
    if len(pieces) == 1 and isinstance(pieces[0], np.ndarray):
        return pieces[0].tobytes()
    lengths = np.zeros(n, np.int64)
    for p in pieces:
        lengths += p.dtype.itemsize if isinstance(p, np.ndarray) else p[0]
    ends = np.cumsum(lengths)
    out = np.empty(int(ends[-1]) if n else 0, np.uint8)
    pos = ends - lengths                          # where the next segment of each row goes
    for p in pieces:
        if isinstance(p, np.ndarray):
            width = p.dtype.itemsize
            if width:
                out[pos[:, None] + np.arange(width)] = p.view(np.uint8).reshape(n, width)
            pos += width
        else:
            sizes, data = p
            if data.size:
                starts = np.cumsum(sizes) - sizes   # of each value within ``data``
                out[np.repeat(pos - starts, sizes) + np.arange(data.size)] = data
            pos += sizes
    return out.tobytes()


# -- TABLEDATA -------------------------------------------------------------------------

# The row markup is the fixed <TR><TD>..</TD></TR> pattern, applied with str.join
# for speed; everything else in the document comes from the template.
_ROW = "<TR><TD>{}</TD></TR>\n".format
_CELL_SEP = "</TD><TD>".join


class _TableData:
    """Encodes chunks of rows into TABLEDATA rows."""

    def __init__(self, layouts: list[ColumnLayout]):
        self.layouts = layouts
        self.rows = 0

    def encode(self, chunk) -> bytes:
        if not chunk:
            return b""
        return self.encode_columns(len(chunk), encode_chunk(chunk, self.layouts))

    def encode_columns(self, n: int, cols: list[Column]) -> bytes:
        if not n:
            return b""
        texts = [_cell_texts(c, lay) for c, lay in zip(cols, self.layouts)]
        self.rows += n
        if not texts:
            return ("<TR></TR>\n" * n).encode()
        return "".join(map(_ROW, map(_CELL_SEP, zip(*texts)))).encode("utf-8")

    def finish(self) -> bytes:
        return b""


def _xml_escape(strings: list[str]) -> list[str]:
    joined = "".join(strings)
    if "&" not in joined and "<" not in joined and ">" not in joined:
        return strings
    return [s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            for s in strings]


def _cell_texts(col: Column, lay: ColumnLayout) -> list[str]:
    if lay.kind == "scalar":
        return format_numbers(col, lay, true="T", false="F", posinf="+Inf", neginf="-Inf")
    if lay.kind == "text":
        safe = control_escaped if lay.datatype == "unicodeChar" else ascii_text
        return _xml_escape(clip_text(safe(col.values), lay))
    return format_array(col, lay, blank_nulls=False)

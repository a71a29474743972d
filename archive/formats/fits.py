"""FITS writer: an empty primary HDU and the result as a BINTABLE extension.

A FITS header must state the row count (NAXIS2), the width of every string
column (TFORMn = ``wA``) and the heap size (PCOUNT) before the first row, and
HTTP output cannot seek back to fix them. So the writer works in two passes with
flat memory: it first spools the encoded chunks (numpy arrays, pickled) to a
temporary file while counting rows, the longest string of each variable-width
``char`` column, the longest variable array and which columns hold nulls; then
it builds the header with astropy (``BinTableHDU.from_columns`` of zero rows,
which validates the column formats) and writes the rows as big-endian records,
chunk by chunk, followed by the heap of variable-length arrays (``P`` columns,
e.g. polygons) and the padding to 2880 bytes.

Columns: boolean ``L`` (null = 0 byte), unsignedByte ``B``, short ``I``, int
``J``, long ``K`` (a column with nulls gets TNULLn = the type's smallest value,
or its largest if the smallest occurs in the data; for bytes the largest value
that does not occur), float ``E`` and double ``D`` (null = NaN), char and
unicodeChar ``wA`` (ASCII, other characters as backslash escapes; null = empty;
fixed ``arraysize`` N gives w = N, variable ones the longest value), fixed
arrays ``nD`` etc., variable arrays ``PD(max)``. Units go to TUNITn,
descriptions to TCOMMn, UCDs and utypes to TUCDn/TUTYPn (the STILTS convention).
An overflow is flagged by the OVERFLOW keyword; INFOs become COMMENT cards.

Errors while spooling propagate before the first byte is produced, so a view
that primes the generator can still answer with an error document.
"""
from __future__ import annotations

import pickle
import tempfile
from typing import Iterator

import numpy as np
from astropy.io import fits as afits

from .encode import ColumnLayout, ascii_text, clip_text, column_chunks, layouts_for

__all__ = ["render_fits"]

BLOCK = 2880
_CODES = {"boolean": "L", "unsignedByte": "B", "short": "I", "int": "J", "long": "K",
          "float": "E", "double": "D"}
_TNULL = ("unsignedByte", "short", "int", "long")


def render_fits(result, *, tmpdir: str | None = None, **_options) -> Iterator[bytes]:
    """Stream ``result`` as a FITS file (spooled through a temporary file in ``tmpdir``)."""
    layouts = layouts_for(result.columns)
    return _generate(result, layouts, tmpdir)


class _Stats:
    def __init__(self, layouts):
        self.rows = 0
        self.widths = [0] * len(layouts)      # longest text / variable array
        self.nulls = [False] * len(layouts)
        self.heap = 0
        self.chunks = 0
        self.lo = [None] * len(layouts)       # range of the integer values seen
        self.hi = [None] * len(layouts)
        self.bytes_seen = [np.zeros(256, bool) for _ in layouts]   # unsignedByte values

    def tnull(self, i: int, lay: ColumnLayout) -> int | None:
        """A TNULL for column i outside the values seen, if it holds nulls."""
        if not self.nulls[i] or lay.datatype not in _TNULL or lay.kind == "text":
            return None
        if lay.datatype == "unsignedByte":
            free = np.flatnonzero(~self.bytes_seen[i])
            return int(free[-1]) if free.size else 255
        info = np.iinfo(lay.dtype)
        if self.lo[i] is None or self.lo[i] > info.min:
            return int(info.min)
        if self.hi[i] < info.max:
            return int(info.max)
        return int(info.min)      # every value of the type occurs: nothing is free


def _spool(result, layouts, spool) -> _Stats:
    stats = _Stats(layouts)
    chunks = column_chunks(result, layouts)
    try:
        for n, cols in chunks:
            stored = []
            for i, (col, lay) in enumerate(zip(cols, layouts)):
                stats.nulls[i] |= bool(col.mask.any())
                values = col.values
                if lay.datatype in _TNULL and lay.kind != "text":
                    present = values[~col.mask] if lay.kind == "scalar" else \
                        (values[~col.mask] if lay.count is not None
                         else np.concatenate(list(values) or [np.zeros(0, lay.dtype)]))
                    if present.size and lay.datatype == "unsignedByte":
                        stats.bytes_seen[i][present] = True
                    if present.size:
                        lo, hi = int(present.min()), int(present.max())
                        stats.lo[i] = lo if stats.lo[i] is None else min(stats.lo[i], lo)
                        stats.hi[i] = hi if stats.hi[i] is None else max(stats.hi[i], hi)
                if lay.kind == "text":
                    values = np.array(clip_text(ascii_text(col.values), lay), dtype=str)
                    stats.widths[i] = max(stats.widths[i], values.dtype.itemsize // 4)
                elif lay.kind == "array" and lay.variable:
                    counts = [len(v) for v in values]
                    stats.widths[i] = max(stats.widths[i], max(counts))
                    stats.heap += sum(counts) * lay.dtype.itemsize
                stored.append((values, col.mask))
            pickle.dump((n, stored), spool, protocol=pickle.HIGHEST_PROTOCOL)
            stats.rows += n
            stats.chunks += 1
    finally:
        chunks.close()
    return stats


def _ascii(text) -> str:
    return ascii_text([str(text)])[0] if text is not None else ""


def _fits_columns(columns, layouts, stats) -> list[afits.Column]:
    out = []
    for i, (c, lay) in enumerate(zip(columns, layouts)):
        code = "A" if lay.kind == "text" else _CODES[lay.datatype]
        null = None
        if lay.kind == "text":
            width = lay.count if lay.count is not None else max(stats.widths[i], 1)
            form = f"{width}A"
        elif lay.kind == "scalar":
            form = code
        elif lay.variable:
            form = f"P{code}({stats.widths[i]})"
        else:
            form = f"{lay.count}{code}"
        null = stats.tnull(i, lay)
        out.append(afits.Column(name=_ascii(c.name), format=form,
                                unit=_ascii(c.unit) or None, null=null))
    return out


def _header(result, layouts, stats) -> tuple[afits.Header, np.dtype]:
    cols = _fits_columns(result.columns, layouts, stats)
    hdu = afits.BinTableHDU.from_columns(cols, nrows=0)
    hdr = hdu.header
    hdr["NAXIS2"] = stats.rows
    hdr["PCOUNT"] = stats.heap
    hdr["EXTNAME"] = "RESULT"
    for i, c in enumerate(result.columns, start=1):
        if c.description:
            hdr[f"TCOMM{i}"] = _ascii(c.description)
        if c.ucd:
            hdr[f"TUCD{i}"] = _ascii(c.ucd)
        if c.utype:
            hdr[f"TUTYP{i}"] = _ascii(c.utype)
    if result.overflow:
        hdr["OVERFLOW"] = (True, "result truncated at the row limit (MAXREC)")
    for name, value, text in result.infos:
        hdr.add_comment(_ascii(f"{name} = {value if value is not None else ''}"
                               + (f": {text}" if text else "")))
    dtype = np.dtype([(f"c{i}",) + _record_field(lay, cols[i]) for i, lay in enumerate(layouts)])
    if dtype.itemsize != hdr["NAXIS1"]:
        raise RuntimeError(f"FITS row layout mismatch: {dtype.itemsize} != {hdr['NAXIS1']}")
    return hdr, dtype


def _record_field(lay: ColumnLayout, col: afits.Column) -> tuple:
    if lay.kind == "text":
        return (f"S{int(col.format[:-1])}",)
    if lay.datatype == "boolean" and lay.kind == "scalar":
        return ("S1",)
    big = lay.dtype.newbyteorder(">")
    if lay.kind == "scalar":
        return (big,)
    if lay.variable:
        return (">i4", (2,))
    return (big, (lay.count,))


def _generate(result, layouts, tmpdir):
    with tempfile.TemporaryFile(dir=tmpdir, prefix="extras-fits-") as spool:
        stats = _spool(result, layouts, spool)
        hdr, dtype = _header(result, layouts, stats)
        yield afits.PrimaryHDU().header.tostring().encode("ascii")
        yield hdr.tostring().encode("ascii")
        spool.seek(0)
        written = 0
        heap_offset = 0
        with tempfile.TemporaryFile(dir=tmpdir, prefix="extras-fits-heap-") as heap:
            for _ in range(stats.chunks):
                n, stored = pickle.load(spool)
                block = np.zeros(n, dtype=dtype)
                for i, (lay, (values, mask)) in enumerate(zip(layouts, stored)):
                    heap_offset = _fill(block, f"c{i}", lay, values, mask, stats.tnull(i, lay),
                                        heap, heap_offset)
                data = block.tobytes()
                written += len(data)
                yield data
            if heap_offset:
                heap.seek(0)
                while True:
                    piece = heap.read(1 << 20)
                    if not piece:
                        break
                    written += len(piece)
                    yield piece
        if written % BLOCK:
            yield b"\0" * (BLOCK - written % BLOCK)


def _fill(block, name, lay, values, mask, tnull, heap, heap_offset) -> int:
    if lay.kind == "text":
        block[name] = values.astype(block.dtype[name])
    elif lay.kind == "scalar" and lay.datatype == "boolean":
        block[name] = np.where(mask, b"\0", np.where(values, b"T", b"F"))
    elif lay.kind == "scalar":
        if tnull is not None:
            values = np.where(mask, tnull, values)
        block[name] = values
    elif lay.variable:
        counts = np.fromiter(map(len, values), np.int64, len(values))
        offsets = heap_offset + np.concatenate(([0], np.cumsum(counts)[:-1])) \
            * lay.dtype.itemsize
        block[name][:, 0] = counts
        block[name][:, 1] = offsets
        big = lay.dtype.newbyteorder(">")
        data = b"".join(v.astype(big).tobytes() for v in values)
        heap.write(data)
        heap_offset += len(data)
    else:
        if tnull is not None:
            values = np.where(mask[:, None], tnull, values)
        block[name] = values
    return heap_offset

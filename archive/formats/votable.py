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
import logging
from itertools import chain
from typing import Iterator

import numpy as np

from ..errors import ArchiveFault
from .encode import (Column, ColumnLayout, ascii_text, clip_text, control_escaped,
                     encode_chunk, format_array, format_numbers, layouts_for)
from .templating import macros

__all__ = ["render_binary2", "render_tabledata", "error_document", "stream_votable"]

log = logging.getLogger(__name__)


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
    layouts = layouts_for(result.columns)        # unsupported columns fail before any byte
    tpl = macros("votable.xml")
    if serialization == "BINARY2":
        encoder = _Binary2(layouts)
    elif serialization == "TABLEDATA":
        encoder = _TableData(layouts)
    else:
        raise ValueError(f"unknown VOTable serialization {serialization!r}")
    return _generate(result, tpl, serialization, encoder, errors)


def _generate(result, tpl, serialization, encoder, errors):
    infos = [(n, v, t) for n, v, t in result.infos]
    yield str(tpl.head(result.columns, infos, serialization)).encode("utf-8")
    chunks = iter(result.chunks())
    failure = None
    try:
        for chunk in chunks:
            data = encoder.encode(chunk)
            if data:
                yield data
    except Exception as exc:                      # noqa: BLE001 - reported in the document
        log.exception("error while streaming a VOTable")
        failure = exc
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    tail = encoder.finish()
    if failure is not None:
        status, message = "ERROR", _failure_text(failure, encoder.rows)
    else:
        status, message = ("OVERFLOW" if result.overflow else "OK"), ""
    yield tail + str(tpl.foot(serialization, status, message,
                              list(result.resources))).encode("utf-8")
    if failure is not None and errors == "raise":
        raise failure


def _failure_text(exc: BaseException, rows: int) -> str:
    detail = exc.message if isinstance(exc, ArchiveFault) else f"{type(exc).__name__}: {exc}"
    return f"the result is incomplete: streaming failed after {rows} rows: {detail}"


# -- BINARY2 ---------------------------------------------------------------------------

class _Binary2:
    """Encodes chunks of rows into base64 BINARY2 text."""

    def __init__(self, layouts: list[ColumnLayout]):
        self.layouts = layouts
        self.rows = 0
        self._carry = b""
        self._nbytes = (len(layouts) + 7) // 8
        # segments: ("fixed", [(field, column index or None)], dtype) or ("var", index)
        self.segments = []
        fields = [("nulls", np.uint8, (self._nbytes,))] if layouts else []
        members: list[tuple[str, int | None]] = [("nulls", None)] if layouts else []
        for i, lay in enumerate(layouts):
            if lay.variable:
                fields.append((f"n{i}", ">i4"))
                members.append((f"n{i}", i))
                self.segments.append(("fixed", members, np.dtype(fields)))
                self.segments.append(("var", i))
                fields, members = [], []
            else:
                fields.append((f"c{i}",) + _fixed_dtype(lay))
                members.append((f"c{i}", i))
        if fields:
            self.segments.append(("fixed", members, np.dtype(fields)))

    def encode(self, chunk) -> bytes:
        n = len(chunk)
        if n == 0 or not self.layouts:
            return b""
        cols = encode_chunk(chunk, self.layouts)
        varcols = {i: _variable_values(cols[i], self.layouts[i])
                   for i, lay in enumerate(self.layouts) if lay.variable}
        pieces = []
        for seg in self.segments:
            if seg[0] == "var":
                pieces.append(varcols[seg[1]][1])
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
        if len(pieces) == 1:
            raw = pieces[0].tobytes()
        else:
            lists = [p if isinstance(p, list)
                     else p.view(np.dtype((np.void, p.dtype.itemsize))).tolist()
                     for p in pieces]
            raw = b"".join(chain.from_iterable(zip(*lists)))
        self.rows += n
        raw = self._carry + raw
        cut = len(raw) - len(raw) % 3
        self._carry = raw[cut:]
        return base64.b64encode(raw[:cut]) + b"\n" if cut else b""

    def finish(self) -> bytes:
        tail = base64.b64encode(self._carry) + b"\n" if self._carry else b""
        self._carry = b""
        return tail


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
        cols = encode_chunk(chunk, self.layouts)
        texts = [_cell_texts(c, lay) for c, lay in zip(cols, self.layouts)]
        self.rows += len(chunk)
        if not texts:
            return ("<TR></TR>\n" * len(chunk)).encode()
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

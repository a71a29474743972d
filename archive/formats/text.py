"""CSV (RFC 4180) and TSV writers.

Both start with a header line of column names and write nulls as empty fields;
booleans are ``true``/``false``, float columns are printed with float32
precision, text is UTF-8 and unchanged. CSV quotes fields that need it (comma,
double quote, CR, LF) with the C-implemented :mod:`csv` writer, lines end in
CRLF. TSV (text/tab-separated-values) cannot quote, so tab, newline, carriage
return and backslash inside values are written as ``\\t``, ``\\n``, ``\\r`` and
``\\\\``; lines end in LF.

A failure while streaming cannot be reported inside these formats: the writer
re-raises, so the server aborts the response and the client sees a truncated
transfer instead of a silently short table.
"""
from __future__ import annotations

import csv
import io
from typing import Iterator

from .encode import column_chunks, format_array, format_numbers, layouts_for

__all__ = ["render_csv", "render_tsv", "column_texts"]


def column_texts(cols, layouts) -> list[list[str]]:
    """Converted columns (``encode.Column``) as lists of strings (nulls empty)."""
    out = []
    for col, lay in zip(cols, layouts):
        if lay.kind == "scalar":
            out.append(format_numbers(col, lay, true="true", false="false"))
        elif lay.kind == "text":
            out.append(col.values)
        else:
            out.append(format_array(col, lay, nan="NaN", posinf="Infinity",
                                    neginf="-Infinity"))
    return out


def render_csv(result, **_options) -> Iterator[bytes]:
    """Stream ``result`` as CSV with a header line."""
    layouts = layouts_for(result.columns)
    return _csv(result, layouts)


def _csv(result, layouts):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([c.name for c in result.columns])
    yield buf.getvalue().encode("utf-8")
    chunks = column_chunks(result, layouts)
    try:
        for _n, cols in chunks:
            buf.seek(0)
            buf.truncate()
            writer.writerows(zip(*column_texts(cols, layouts)))
            yield buf.getvalue().encode("utf-8")
    finally:
        chunks.close()


_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _tsv_escape(values: list[str]) -> list[str]:
    joined = "".join(values)
    if "\t" in joined or "\n" in joined or "\r" in joined or "\\" in joined:
        return [v.translate(_TSV_ESCAPES) for v in values]
    return values


def render_tsv(result, **_options) -> Iterator[bytes]:
    """Stream ``result`` as tab-separated values with a header line."""
    layouts = layouts_for(result.columns)
    return _tsv(result, layouts)


def _tsv(result, layouts):
    yield ("\t".join(_tsv_escape([c.name for c in result.columns])) + "\n").encode("utf-8")
    chunks = column_chunks(result, layouts)
    try:
        for _n, converted in chunks:
            cols = [_tsv_escape(c) for c in column_texts(converted, layouts)]
            lines = "\n".join(map("\t".join, zip(*cols)))
            yield (lines + "\n").encode("utf-8")
    finally:
        chunks.close()

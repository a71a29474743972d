"""JSON writer: ``{"columns": [...], "data": [[...], ...], "overflow": bool}``.

``columns`` describes each column (name, datatype, arraysize, unit, ucd, utype,
xtype, description; absent values as null); ``data`` holds one array per row.
NaN and infinities are null (JSON has no such numbers), booleans are true/false
whatever the database returned. ``status`` is "OK", "OVERFLOW" or "ERROR"; on
an error while streaming the document still closes, with ``error`` holding the
message. ``infos`` carries the result's (name, value, text) INFO triples.
"""
from __future__ import annotations

import json as _json
from typing import Iterator

from .encode import layouts_for, python_values
from .stream import GuardedStream

__all__ = ["render_json"]

_COLUMN_KEYS = ("name", "datatype", "arraysize", "unit", "ucd", "utype", "xtype",
                "description")


def _dumps(value) -> str:
    return _json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def render_json(result, *, errors: str = "document", **_options) -> Iterator[bytes]:
    """Stream ``result`` as one JSON object."""
    layouts = layouts_for(result.columns)
    return _generate(result, layouts, errors)


def _generate(result, layouts, errors):
    columns = [{k: getattr(c, k) for k in _COLUMN_KEYS} for c in result.columns]
    infos = [{"name": n, "value": v, "text": t} for n, v, t in result.infos]
    yield ('{"columns":' + _dumps(columns) + ',"infos":' + _dumps(infos)
           + ',"data":[').encode("utf-8")
    stream = GuardedStream(result, layouts, "JSON")

    def encode(_n, cols) -> bytes:
        values = [python_values(c, lay) for c, lay in zip(cols, layouts)]
        text = _dumps(list(zip(*values)))[1:-1]
        return (text if not stream.rows else "," + text).encode("utf-8")

    yield from stream.encoded(encode)
    status, message = stream.status()
    tail = {"overflow": status == "OVERFLOW", "status": status}
    if message:
        tail["error"] = message
    yield ("]," + _dumps(tail)[1:]).encode("utf-8")
    stream.raise_failure(errors)

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
import logging
from typing import Iterator

from ..errors import ArchiveFault
from .encode import column_chunks, layouts_for, python_values

__all__ = ["render_json"]

log = logging.getLogger(__name__)

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
    first = True
    rows = 0
    failure = None
    chunks = column_chunks(result, layouts)
    try:
        for n, cols in chunks:
            values = [python_values(c, lay) for c, lay in zip(cols, layouts)]
            text = _dumps(list(zip(*values)))[1:-1]
            yield (text if first else "," + text).encode("utf-8")
            first = False
            rows += n
    except Exception as exc:                      # noqa: BLE001 - reported in the document
        log.exception("error while streaming JSON")
        failure = exc
    finally:
        chunks.close()
    tail = {"overflow": bool(result.overflow) if failure is None else False}
    if failure is None:
        tail["status"] = "OVERFLOW" if result.overflow else "OK"
    else:
        detail = failure.message if isinstance(failure, ArchiveFault) else \
            f"{type(failure).__name__}: {failure}"
        tail["status"] = "ERROR"
        tail["error"] = f"the result is incomplete: streaming failed after {rows} rows: {detail}"
    yield ("]," + _dumps(tail)[1:]).encode("utf-8")
    if failure is not None and errors == "raise":
        raise failure

"""HTML writer: a self-contained page with the result table, streamed per chunk.

The page comes from ``templates/formats/table.html`` (autoescaped; no Flask
context, its own inline style). Nulls are empty cells; an error while streaming
closes the table and ends the page with the message.
"""
from __future__ import annotations

import logging
from typing import Iterator

from ..errors import ArchiveFault
from .encode import layouts_for
from .templating import macros
from .encode import column_chunks
from .text import column_texts

__all__ = ["render_html"]

log = logging.getLogger(__name__)


def render_html(result, *, title: str = "Query result", errors: str = "document",
                **_options) -> Iterator[bytes]:
    """Stream ``result`` as an HTML page titled ``title``."""
    layouts = layouts_for(result.columns)
    return _generate(result, layouts, title, errors)


def _generate(result, layouts, title, errors):
    tpl = macros("table.html")
    yield str(tpl.head(title, result.columns, list(result.infos))).encode("utf-8")
    rows = 0
    failure = None
    chunks = column_chunks(result, layouts)
    try:
        for n, converted in chunks:
            cols = column_texts(converted, layouts)
            yield str(tpl.rows(zip(*cols))).encode("utf-8")
            rows += n
    except Exception as exc:                      # noqa: BLE001 - reported in the page
        log.exception("error while streaming HTML")
        failure = exc
    finally:
        chunks.close()
    if failure is None:
        status, message = ("OVERFLOW" if result.overflow else "OK"), ""
    else:
        detail = failure.message if isinstance(failure, ArchiveFault) else \
            f"{type(failure).__name__}: {failure}"
        status = "ERROR"
        message = f"The result is incomplete: streaming failed after {rows} rows: {detail}"
    yield str(tpl.foot(status, message, rows)).encode("utf-8")
    if failure is not None and errors == "raise":
        raise failure

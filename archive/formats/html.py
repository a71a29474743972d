"""HTML writer: a self-contained page with the result table, streamed per chunk.

The page comes from ``templates/formats/table.html`` (autoescaped; no Flask
context, its own inline style). Nulls are empty cells; an error while streaming
closes the table and ends the page with the message. ``links`` ({column index: URL
prefix}) makes the cells of those columns links (the value URL-quoted after the
prefix): the views use it to lead from a result row to its detection or source page.
``nav`` ((label, URL) pairs) puts links above the table: the way home and back to the
form that made the query.
"""
from __future__ import annotations

from typing import Iterator

from .encode import layouts_for
from .stream import GuardedStream
from .templating import macros
from .text import column_texts

__all__ = ["render_html"]


def render_html(result, *, title: str = "Query result", errors: str = "document",
                links: dict[int, str] | None = None,
                nav: list[tuple[str, str]] | None = None, **_options) -> Iterator[bytes]:
    """Stream ``result`` as an HTML page titled ``title``."""
    layouts = layouts_for(result.columns)
    prefixes = [(links or {}).get(i) for i in range(len(result.columns))]
    return _generate(result, layouts, title, errors, prefixes, list(nav or ()))


def _generate(result, layouts, title, errors, prefixes, nav):
    tpl = macros("table.html")
    yield str(tpl.head(title, result.columns, list(result.infos), nav)).encode("utf-8")
    stream = GuardedStream(result, layouts, "HTML")
    yield from stream.encoded(lambda _n, cols: str(
        tpl.rows(zip(*column_texts(cols, layouts)), prefixes)).encode("utf-8"))
    status, message = stream.status()
    yield str(tpl.foot(status, message[:1].upper() + message[1:], stream.rows)).encode("utf-8")
    stream.raise_failure(errors)

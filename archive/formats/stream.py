"""Streaming a result into a document that reports its own failure.

VOTable (an INFO with ``QUERY_STATUS=ERROR``), HTML (the page's last paragraph) and
JSON (``status`` and ``error``) are already on their way to the client when
reading or encoding the rows can still fail: a database error, a time limit, a
value the format cannot carry. Such a failure must not cut the answer off: the
writer closes its document and says there that the result is incomplete and why.
:class:`GuardedStream` is that loop for all three writers.
"""
from __future__ import annotations

import logging
from typing import Callable, Iterator

from ..errors import ArchiveFault
from .encode import Column, ColumnLayout, column_chunks

__all__ = ["GuardedStream", "incomplete_text"]

log = logging.getLogger(__name__)


def incomplete_text(exc: BaseException, rows: int) -> str:
    """What a document says when streaming failed after ``rows`` rows."""
    detail = exc.message if isinstance(exc, ArchiveFault) else f"{type(exc).__name__}: {exc}"
    return f"the result is incomplete: streaming failed after {rows} rows: {detail}"


class GuardedStream:
    """The rows of ``result`` encoded chunk by chunk, with any failure kept, not raised.

    ``what`` names the format in the server log.
    """

    def __init__(self, result, layouts: list[ColumnLayout], what: str):
        self.result = result
        self.layouts = layouts
        self.what = what
        self.rows = 0                           # rows encoded so far
        self.failure: Exception | None = None

    def encoded(self, encode: Callable[[int, list[Column]], bytes | None]) -> Iterator[bytes]:
        """``encode(row_count, columns)`` of each chunk, empty pieces left out.

        An exception while reading or encoding ends the iteration; it is logged and
        kept in ``failure``. The result's rows are closed in every case.
        """
        chunks = column_chunks(self.result, self.layouts)
        try:
            for n, cols in chunks:
                data = encode(n, cols)
                self.rows += n
                if data:
                    yield data
        except Exception as exc:                      # noqa: BLE001 - reported in the document
            log.exception("error while streaming %s", self.what)
            self.failure = exc
        finally:
            chunks.close()

    def status(self) -> tuple[str, str]:
        """``(QUERY_STATUS value, message)``: OK, OVERFLOW, or ERROR with the reason."""
        if self.failure is None:
            return ("OVERFLOW" if self.result.overflow else "OK"), ""
        return "ERROR", incomplete_text(self.failure, self.rows)

    def raise_failure(self, errors: str) -> None:
        """Raise the failure again when the caller asked for ``errors="raise"``
        (async jobs: the job then ends in ERROR instead of COMPLETED)."""
        if self.failure is not None and errors == "raise":
            raise self.failure

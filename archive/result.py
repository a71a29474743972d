"""What a query gives back: its columns and its rows, streamed once.

``ResultColumn`` is a ``datamodel.Field`` (name, datatype, unit, UCD, ...) plus the
VOTable ID a DataLink service descriptor can ``ref``; published columns become
result columns with ``ResultColumn.of(column)``. ``QueryResult`` holds the columns,
the INFOs and extra RESOURCEs of the answer and a one-shot source of rows (row
chunks, or Arrow record batches for columnar results); it applies the row limit
itself, so ``overflow`` and ``row_count`` are known once the rows are consumed.

This module is below the executor and the format writers: both import it, it
imports neither.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from datamodel.types import Field

__all__ = ["ResultColumn", "QueryResult", "columns_of"]


@dataclass(frozen=True)
class ResultColumn(Field):
    """Metadata of one result column: what a VOTable FIELD (or FITS column) says."""

    field_id: str | None = None   # VOTable ID attribute (DataLink service descriptors)

    @classmethod
    def of(cls, field: Field, **changes) -> "ResultColumn":
        """The result column of a data-model ``field``, with ``changes`` applied."""
        values = {f.name: getattr(field, f.name) for f in dataclasses.fields(Field)}
        if isinstance(field, ResultColumn):
            values["field_id"] = field.field_id
        values.update(changes)
        return cls(**values)


def columns_of(fields: Iterable[Field]) -> list[ResultColumn]:
    """ResultColumns for data-model columns (or other Fields)."""
    return [ResultColumn.of(f) for f in fields]


class QueryResult:
    """A query's columns and a one-shot stream of its rows.

    Give exactly one row source: ``chunks`` (an iterator of lists of row tuples) or
    ``batches`` (an iterator of pyarrow RecordBatches: a columnar result). The source
    may yield more than ``maxrec`` rows (the executor fetches ``maxrec + 1`` to know);
    the result passes on at most ``maxrec``, sets ``overflow`` when there were more,
    and closes the source however the iteration ends (the executor's clean-up runs in
    the source's ``finally``). ``infos`` are (name, value, text) triples for the
    VOTable INFO elements; ``resources`` are extra VOTable RESOURCE fragments (XML
    text, e.g. DataLink service descriptors).
    """

    def __init__(self, columns: Sequence[ResultColumn], *, maxrec: int | None,
                 chunks: Iterator[list[tuple]] | None = None, batches: Iterator | None = None,
                 overflow: bool = False, infos: Iterable[tuple[str, str, str]] = (),
                 resources: Iterable[str] = ()):
        if (chunks is None) == (batches is None):
            raise TypeError("a QueryResult takes exactly one of chunks and batches")
        self.columns = list(columns)
        self.maxrec = maxrec
        self.overflow = overflow
        self.row_count = 0
        self.infos = list(infos)
        self.resources = list(resources)
        self._source = batches if batches is not None else chunks
        self._columnar = batches is not None
        self._taken = False

    @classmethod
    def empty(cls, columns: Sequence[ResultColumn], *, maxrec: int | None = None,
              overflow: bool = False) -> "QueryResult":
        """A result without rows (MAXREC=0 answers, empty searches)."""
        return cls(columns, maxrec=maxrec, chunks=iter(()), overflow=overflow)

    def __repr__(self) -> str:
        return (f"QueryResult({[c.name for c in self.columns]}, maxrec={self.maxrec}, "
                f"columnar={self._columnar})")

    @property
    def columnar(self) -> bool:
        """True if ``batches()`` is available (the writers prefer it to ``chunks()``)."""
        return self._columnar

    def batches(self) -> Iterator:
        """The rows as pyarrow RecordBatches (columnar results only)."""
        if not self._columnar:
            raise TypeError("this result is not columnar; use chunks()")
        return self._limited(lambda batch: batch.num_rows, lambda batch, n: batch.slice(0, n))

    def chunks(self) -> Iterator[list[tuple]]:
        """The rows as lists of row tuples (columnar results are converted)."""
        if self._columnar:
            return _rows_of(self.batches(), self.columns)
        return self._limited(len, lambda chunk, n: chunk[:n])

    def _limited(self, size, head) -> Iterator:
        if self._taken:
            raise RuntimeError("the rows of a QueryResult can be read only once")
        self._taken = True
        source, maxrec = self._source, self.maxrec
        try:
            for part in source:
                n = size(part)
                if maxrec is not None and self.row_count + n > maxrec:
                    keep = maxrec - self.row_count
                    self.overflow = True
                    if keep:
                        self.row_count += keep
                        yield head(part, keep)
                    return
                self.row_count += n
                if n:
                    yield part
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()


def _rows_of(batches, columns) -> Iterator[list[tuple]]:
    """Row tuples of Arrow batches, with the Python types the row path gives
    (booleans as bool, nulls as None)."""
    import pyarrow.compute as pc
    try:
        for batch in batches:
            values = []
            for array, col in zip(batch.columns, columns):
                if col.datatype == "boolean" and array.type != "bool":
                    array = pc.not_equal(array, 0)          # SQLite: integers
                values.append(array.to_pylist())
            yield list(zip(*values))
    finally:
        batches.close()

"""A cache of web search results, keyed by the normalised query (no Flask).

Paging through a result, sorting it by another column or opening a shared URL again
does not run the search again: the whole filtered result (every column, at most
``maxrec`` rows) is kept once as an Arrow IPC file (LZ4) in the ``search_cache``
table of the database, so every gunicorn worker shares it; pages are then sorted and
cut from it with pyarrow, decompressing only the columns a page needs (the sort
column and the key first, then the columns shown). The key is a digest of what selects the rows (catalogue,
resolved position, area, constraints, maxrec), not of the page, the sort, the columns
or the format, nor of the text typed in the position box ("M 31" and its coordinates
share an entry).

Only results of ``SEARCH_CACHE_MIN_ROWS`` to ``SEARCH_CACHE_MAX_ROWS`` rows are
kept (smaller ones are answered by the database faster than by the cache); the
entries together stay under ``SEARCH_CACHE_MAX_BYTES`` (least recently used first
out; 0 turns the cache off). Ingesting a catalogue again deletes its entries in the
same transaction (``ingest/load.py``).

The order of a cached page is the database's: the sort column with NULLs last, then
the table's key; text compares byte-wise (pyarrow compares UTF-8 bytes), as the
database's ORDER BY of ``query.statement`` does on SQLite and PostgreSQL alike
(``COLLATE "C"`` there, whatever the database's own collation).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from ..db import search_cache
from .params import DISTANCE, Search
from ..query import execute
from .query import Page, bytewise_text, count, result_columns, statement

__all__ = ["key_of", "cached_page", "Settings"]

_TYPES = {"boolean": pa.bool_(), "short": pa.int16(), "int": pa.int32(),
          "long": pa.int64(), "float": pa.float64(), "double": pa.float64(),
          "char": pa.string()}
# LZ4 rather than zstd: a third larger (22 against 17 MB for 100,000 aperiodic rows)
# but decompressed three times faster (12 against 27 ms of CPU for the columns of a
# page; benchmarks/README.md, "Web portal"), which every cached page pays
_IPC = pa.ipc.IpcWriteOptions(compression="lz4")
#: how entries are written; part of the key, so entries of an older layout are never
#: read (they are evicted first, being the least recently used)
_LAYOUT = "arrow-file-lz4"


@dataclasses.dataclass(frozen=True)
class Settings:
    min_rows: int
    max_rows: int
    max_bytes: int

    @classmethod
    def of(cls, config) -> "Settings":
        return cls(int(config["SEARCH_CACHE_MIN_ROWS"]), int(config["SEARCH_CACHE_MAX_ROWS"]),
                   int(config["SEARCH_CACHE_MAX_BYTES"]))


def key_of(search: Search) -> str:
    """The digest of what selects the rows of ``search``."""
    query = {"layout": _LAYOUT, "catalogue": search.table.name, "maxrec": search.maxrec,
             "shape": search.shape if search.spatial else None,
             "ra": None if search.ra is None else repr(float(search.ra)),
             "dec": None if search.dec is None else repr(float(search.dec)),
             "radius": None if search.radius_deg is None else repr(search.radius_deg),
             "box": None if search.box is None else [repr(float(v)) for v in search.box],
             "constraints": sorted([c.column, c.op, repr(c.value)]
                                   for c in search.constraints)}
    return hashlib.sha256(json.dumps(query, sort_keys=True).encode()).hexdigest()


def _whole(search: Search) -> Search:
    """The same search with every column, in the default order."""
    return dataclasses.replace(search, columns=[c.name for c in search.table.columns],
                               sort=None, order="asc")


def _build(readonly, search: Search, timeout: float, counted: int
           ) -> tuple[pa.Table, int]:
    """The whole result as an Arrow table, and its row count (maxrec + 1 if cut);
    ``counted``: the matching rows, counted up to maxrec + 1."""
    whole = _whole(search)
    stmt = statement(whole, bytewise_text(readonly))
    if counted <= whole.maxrec:
        # Every matching row is kept, so the database need not order them: pages are
        # sorted here, down to the table's key, whatever order the rows came in.
        # Ordering by the key made SQLite walk the whole table by its key index
        # instead of the HEALPix ranges of the area (twice the time for a 100,000-row
        # range of the 1,000,000-row archive, benchmarks/web.py). A cut result keeps
        # the order: its rows are the first maxrec by the key.
        stmt = stmt.order_by(None)
    result = execute(readonly, stmt, result_columns(whole), maxrec=whole.maxrec,
                     timeout=timeout)
    rows = [r for chunk in result.chunks() for r in chunk]
    values = zip(*rows) if rows else [[] for _ in result.columns]
    arrays = {c.name: pa.array(v, type=_TYPES[c.datatype])
              for c, v in zip(result.columns, values)}
    total = len(rows) + (1 if result.overflow else 0)
    return pa.table(arrays), total


def _encode(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema, options=_IPC) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _reader(payload: bytes) -> Callable[[list[str]], pa.Table]:
    """``read(names)``: the named columns of a stored result (only those are
    decompressed)."""
    buffer = pa.py_buffer(payload)
    schema = pa.ipc.open_file(buffer).schema

    def read(names: list[str]) -> pa.Table:
        fields = sorted({schema.get_field_index(n) for n in names})
        options = pa.ipc.IpcReadOptions(included_fields=fields)
        return pa.ipc.open_file(buffer, options=options).read_all()
    return read


def _lookup(engine, key: str) -> tuple[Callable[[list[str]], pa.Table], int] | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(search_cache.c.rows, search_cache.c.payload)
                           .where(search_cache.c.key == key)).first()
    if row is None:
        return None
    try:        # the use is recorded on a best-effort basis (a busy database: skipped)
        with engine.begin() as conn:
            conn.execute(search_cache.update().where(search_cache.c.key == key).values(
                hits=search_cache.c.hits + 1, used=time.time()))
    except sa.exc.OperationalError:
        pass
    return _reader(row.payload), int(row.rows)


def _store(engine, key: str, search: Search, table: pa.Table, total: int,
           max_bytes: int) -> None:
    payload = _encode(table)
    if len(payload) > max_bytes:
        return
    try:
        with engine.begin() as conn:
            conn.execute(search_cache.insert().values(
                key=key, catalogue=search.table.name, rows=total, size=len(payload),
                hits=0, used=time.time(), payload=payload))
    except sa.exc.IntegrityError:
        return                     # another worker stored the same result meanwhile
    _evict(engine, max_bytes)


def _evict(engine, max_bytes: int) -> None:
    """Drop the least recently used entries beyond ``max_bytes`` in all."""
    with engine.begin() as conn:
        entries = conn.execute(sa.select(search_cache.c.key, search_cache.c.size)
                               .order_by(search_cache.c.used.desc())).all()
        kept, old = 0, []
        for entry in entries:
            kept += entry.size
            if kept > max_bytes:
                old.append(entry.key)
        if old:
            conn.execute(search_cache.delete().where(search_cache.c.key.in_(old)))


def _page_rows(read: Callable[[list[str]], pa.Table], search: Search,
               names: list[str]) -> list[tuple]:
    """The rows of the page, columns ``names``; ``read(names)`` gives columns of the
    whole result."""
    sort = search.sort or (DISTANCE if search.positional else None)
    keys = [(sort, "descending" if search.order == "desc" else "ascending", "at_end")
            ] if sort else []
    keys += [(k, "ascending", "at_end") for k in search.table.key if k != sort]
    order = pc.sort_indices(read([k for k, _, _ in keys]), sort_keys=keys)
    offset = (search.page - 1) * search.per_page
    size = max(0, min(search.per_page, search.maxrec - offset))
    chosen = read(names).take(order[offset:offset + size]).select(names)
    columns = [chosen.column(i).to_pylist() for i in range(len(names))]
    return list(zip(*columns))


def cached_page(engine, readonly, search: Search, *, timeout: float,
                settings: Settings) -> tuple[Page | None, int | None]:
    """``(page, None)`` from the cache (filled first when the result is worth it), or
    ``(None, total)`` when the result is not cached (``total``: its counted rows, or
    None when not counted)."""
    if settings.max_bytes <= 0:
        return None, None
    key = key_of(search)
    found = _lookup(engine, key)
    if found is None:
        total = count(readonly, search, timeout=timeout)
        if not settings.min_rows <= min(total, search.maxrec) <= settings.max_rows:
            return None, total
        table, total = _build(readonly, search, timeout, total)
        _store(engine, key, search, table, total, settings.max_bytes)
        read = table.select
    else:
        read, total = found
    columns = result_columns(search)
    rows = _page_rows(read, search, [c.name for c in columns])
    return Page(columns, rows, search.page, search.per_page, total, search.maxrec), None

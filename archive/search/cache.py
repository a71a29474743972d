"""A cache of web search results, keyed by the normalised query (no Flask).

Paging through a result, sorting it by another column or opening a shared URL again
does not run the search again: the whole filtered result (every column, at most
``maxrec`` rows) is kept once as an Arrow IPC stream (zstd) in the ``search_cache``
table of the database, so every gunicorn worker shares it; pages are then sorted and
cut from it with pyarrow. The key is a digest of what selects the rows (catalogue,
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

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from ..db import search_cache
from .params import DISTANCE, Search
from .query import Page, count, result_columns, run

__all__ = ["key_of", "cached_page", "Settings"]

_TYPES = {"boolean": pa.bool_(), "short": pa.int16(), "int": pa.int32(),
          "long": pa.int64(), "float": pa.float64(), "double": pa.float64(),
          "char": pa.string()}
_IPC = pa.ipc.IpcWriteOptions(compression="zstd")


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
    query = {"catalogue": search.table.name, "maxrec": search.maxrec,
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


def _build(readonly, search: Search, timeout: float) -> tuple[pa.Table, int]:
    """The whole result as an Arrow table, and its row count (maxrec + 1 if cut)."""
    whole = _whole(search)
    result = run(readonly, whole, timeout=timeout)
    rows = [r for chunk in result.chunks() for r in chunk]
    arrays = {c.name: pa.array([r[i] for r in rows], type=_TYPES[c.datatype])
              for i, c in enumerate(result.columns)}
    total = len(rows) + (1 if result.overflow else 0)
    return pa.table(arrays), total


def _encode(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_IPC) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _decode(payload: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(payload)).read_all()


def _lookup(engine, key: str) -> tuple[pa.Table, int] | None:
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
    return _decode(row.payload), int(row.rows)


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


def _page_rows(table: pa.Table, search: Search, names: list[str]) -> list[tuple]:
    sort = search.sort or (DISTANCE if search.positional else None)
    keys = [(sort, "descending" if search.order == "desc" else "ascending", "at_end")
            ] if sort else []
    keys += [(k, "ascending", "at_end") for k in search.table.key if k != sort]
    order = pc.sort_indices(table, sort_keys=keys)
    offset = (search.page - 1) * search.per_page
    size = max(0, min(search.per_page, search.maxrec - offset))
    chosen = table.take(order[offset:offset + size]).select(names)
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
        table, total = _build(readonly, search, timeout)
        _store(engine, key, search, table, total, settings.max_bytes)
    else:
        table, total = found
    columns = result_columns(search)
    rows = _page_rows(table, search, [c.name for c in columns])
    return Page(columns, rows, search.page, search.per_page, total, search.maxrec), None

"""The one query executor shared by TAP, cone search, the web form and downloads.

It runs a bound SQLAlchemy statement on the read-only engine under a time limit,
fetches at most ``maxrec + 1`` rows to know about overflow, and yields rows in
chunks so that callers can stream results of any size with flat memory.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .errors import FatalFault, QueryTimeout, UsageFault

__all__ = ["ResultColumn", "QueryResult", "execute", "interrupt", "sqlite_authorizer",
           "columns_from_model",
           "CHUNK_ROWS"]

CHUNK_ROWS = 10000


@dataclass
class ResultColumn:
    """Metadata of one result column: what a VOTable FIELD (or FITS column) says."""

    name: str
    datatype: str                 # VOTable datatype
    arraysize: str | None = None
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    xtype: str | None = None
    description: str | None = None
    field_id: str | None = None   # VOTable ID attribute (DataLink service descriptors)


def columns_from_model(columns) -> list[ResultColumn]:
    """ResultColumns for data-model columns."""
    return [ResultColumn(c.name, c.datatype, c.arraysize, c.unit, c.ucd, c.utype, c.xtype,
                         c.description) for c in columns]


@dataclass
class QueryResult:
    """A running query: column metadata and a one-shot iterator of row chunks.

    ``overflow`` is known once ``chunks()`` is exhausted (True if more than
    ``maxrec`` rows matched). ``infos`` are (name, value, text) triples for the
    VOTable INFO elements; ``resources`` are extra VOTable RESOURCE fragments
    (XML text, e.g. DataLink service descriptors).
    """

    columns: list[ResultColumn]
    _chunks: Iterator[list[tuple]]
    maxrec: int | None
    overflow: bool = False
    row_count: int = 0
    infos: list[tuple[str, str, str]] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)

    def chunks(self) -> Iterator[list[tuple]]:
        return self._chunks


# -- SQLite read-only enforcement -------------------------------------------------------

_DENIED = {getattr(sqlite3, n) for n in (
    "SQLITE_ATTACH", "SQLITE_DETACH", "SQLITE_PRAGMA", "SQLITE_CREATE_INDEX",
    "SQLITE_CREATE_TABLE", "SQLITE_CREATE_TRIGGER", "SQLITE_CREATE_VIEW",
    "SQLITE_DROP_INDEX", "SQLITE_DROP_TABLE", "SQLITE_DROP_TRIGGER", "SQLITE_DROP_VIEW",
    "SQLITE_ALTER_TABLE", "SQLITE_REINDEX", "SQLITE_ANALYZE", "SQLITE_CREATE_VTABLE",
    "SQLITE_DROP_VTABLE", "SQLITE_TRANSACTION", "SQLITE_SAVEPOINT")}
_WRITES = {sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE}
_TEMP_OK = {getattr(sqlite3, n) for n in (
    "SQLITE_CREATE_TEMP_TABLE", "SQLITE_DROP_TEMP_TABLE", "SQLITE_CREATE_TEMP_INDEX",
    "SQLITE_DROP_TEMP_INDEX")}


def sqlite_authorizer(action, arg1, arg2, dbname, _source):
    """Refuse anything but reading the archive; temporary tables (uploads) are allowed."""
    if action in _TEMP_OK:
        return sqlite3.SQLITE_OK
    if action in _WRITES:
        return sqlite3.SQLITE_OK if dbname == "temp" else sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and arg2 and arg2.lower() in (
            "load_extension", "readfile", "writefile", "edit"):
        return sqlite3.SQLITE_DENY
    if action in _DENIED:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


# -- execution ------------------------------------------------------------------------

def _with_limit(stmt, maxrec: int | None):
    if maxrec is None or not hasattr(stmt, "limit"):
        return stmt
    current = stmt._limit if getattr(stmt, "_limit_clause", None) is not None else None
    if isinstance(current, int) and current <= maxrec:
        return stmt            # TOP n <= MAXREC: no overflow possible, keep the query as is
    # no TOP, or TOP n > MAXREC: the first maxrec + 1 rows tell whether there is overflow
    return stmt.limit(maxrec + 1)


#: the DBAPI connection of the query each thread is running (see ``interrupt``)
_running: dict[int, tuple[str, object]] = {}


def interrupt(thread_id: int) -> bool:
    """Stop the query that thread ``thread_id`` is running (UWS ABORT, execution
    duration); it then fails with an "interrupted" error. False if none runs."""
    entry = _running.get(thread_id)
    if entry is None:
        return False
    dialect, raw = entry
    try:
        if dialect == "sqlite":
            raw.interrupt()
        elif dialect == "postgresql":
            raw.cancel()
    except Exception:
        return False
    return True


def execute(engine: Engine, stmt, columns: Sequence[ResultColumn], *, maxrec: int | None,
            timeout: float, chunk_rows: int = CHUNK_ROWS,
            setup: Callable[[sa.Connection], None] | None = None) -> QueryResult:
    """Run ``stmt`` read-only and return a streaming QueryResult.

    ``setup(conn)`` runs first on the same connection (e.g. to load uploaded tables
    into temporary tables). The connection stays open until the chunks are
    exhausted or the iterator is closed. Errors raised before the first row (syntax
    errors of the database, timeouts) are raised here, not while streaming.
    """
    stmt = _with_limit(stmt, maxrec)
    conn = engine.connect()
    state = {"deadline": time.monotonic() + timeout}
    dialect = engine.dialect.name
    thread = threading.get_ident()
    try:
        raw = conn.connection.dbapi_connection
        _running[thread] = (dialect, raw)
        if dialect == "sqlite":
            raw.set_progress_handler(
                lambda: 1 if time.monotonic() > state["deadline"] else 0, 20000)
        elif dialect == "postgresql" and setup is not None:
            # uploads: a READ ONLY transaction cannot CREATE TEMP TABLE, so this one
            # starts writable, ``setup`` creates and fills its temporary tables, and
            # the transaction is made READ ONLY before the query runs (rolled back at
            # the end, which drops the temporary tables)
            if raw.info.transaction_status:
                raw.rollback()
            raw.read_only = False
        if dialect == "postgresql":
            conn.exec_driver_sql(f"SET statement_timeout = {int(timeout * 1000)}")
        if setup is not None:
            setup(conn)
            if dialect == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        cursor = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(stmt)
        first = cursor.fetchmany(chunk_rows)
    except BaseException as exc:
        _running.pop(thread, None)
        _close(conn, dialect, setup is not None)
        raise _translate(exc, timeout) from exc
    result = QueryResult(list(columns), iter(()), maxrec)

    def generate() -> Iterator[list[tuple]]:
        try:
            chunk = first
            while chunk:
                if maxrec is not None and result.row_count + len(chunk) > maxrec:
                    keep = maxrec - result.row_count
                    result.overflow = True
                    if keep:
                        result.row_count += keep
                        yield [tuple(r) for r in chunk[:keep]]
                    return
                result.row_count += len(chunk)
                yield [tuple(r) for r in chunk]
                try:
                    chunk = cursor.fetchmany(chunk_rows)
                except Exception as exc:
                    raise _translate(exc, timeout) from exc
        finally:
            _running.pop(thread, None)
            _close(conn, dialect, setup is not None)

    result._chunks = generate()
    return result


def _close(conn, dialect, temporary=False):
    """Give the connection back; with ``temporary`` (uploads were loaded) drop the
    temporary tables (SQLite keeps them on the pooled connection) or end the
    transaction that held them and restore READ ONLY (PostgreSQL)."""
    try:
        raw = conn.connection.dbapi_connection
        if dialect == "sqlite":
            raw.set_progress_handler(None, 0)
            if temporary:
                names = [r[0] for r in raw.execute(
                    "SELECT name FROM temp.sqlite_master WHERE type = 'table'")]
                previous = raw.isolation_level
                raw.isolation_level = None
                try:
                    for name in names:
                        raw.execute('DROP TABLE IF EXISTS temp."{}"'.format(
                            name.replace('"', '""')))
                finally:
                    raw.isolation_level = previous
        elif dialect == "postgresql" and temporary:
            conn.rollback()
            raw.rollback()
            raw.read_only = True
        conn.close()
    except Exception:
        try:
            conn.invalidate()
        except Exception:
            pass


def _translate(exc: BaseException, timeout: float) -> BaseException:
    text = str(exc)
    if "interrupted" in text or "statement timeout" in text or "canceling statement" in text:
        return QueryTimeout(f"the query ran longer than the limit of {timeout:g} s; "
                            "narrow it down or submit it as an asynchronous job")
    if isinstance(exc, sa.exc.DBAPIError):
        orig = getattr(exc, "orig", exc)
        if "not authorized" in str(orig) or "read-only" in str(orig):
            return UsageFault(f"the query tried something that is not allowed: {orig}")
        sqlstate = getattr(orig, "sqlstate", None) or ""
        if sqlstate.startswith("22"):
            # PostgreSQL "data exception": the query's own arithmetic failed (division by
            # zero, ACOS(2), a value out of range), which is the request's fault
            message = str(orig).splitlines()[0] if str(orig) else sqlstate
            return UsageFault(f"the query failed on a value: {message}")
        return FatalFault(f"the database could not run the query: {orig}")
    return exc

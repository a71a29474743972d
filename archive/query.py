"""The one query executor shared by TAP, cone search, the web form and downloads.

It runs a bound SQLAlchemy statement on the read-only engine under a time limit,
fetches at most ``maxrec + 1`` rows to know about overflow, and hands the rows to a
``QueryResult`` (``archive.result``) as a stream of chunks, so that callers can
stream results of any size with flat memory.

There are three ways to read the rows, chosen per statement, and one skeleton for
all of them (``_stream``: open, first fetch, then fetch until done, one clean-up and
one error translation however it ends):

* a SQLAlchemy statement on a pooled connection (``_StatementRows``);
* a ``PreparedStatement``: services that run the same query shape over and over
  with new values (cone search) build it with ``bindparam()``s; it is compiled by
  SQLAlchemy once per dialect, and each execution only binds the values and runs the
  SQL text on the DBAPI cursor (``_PreparedRows``);
* a plain scan of one table, which the caller declares (``plain_scan``; the ADQL
  translator knows it), read as Arrow batches through ADBC (``_ColumnarRows``,
  ``archive.columnar``).
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .errors import FatalFault, QueryTimeout, TransientFault, UsageFault
from .prepared import LIMIT_PARAM, PreparedStatement, pg_plain_cursor
from .result import QueryResult, ResultColumn

__all__ = ["PreparedStatement", "execute", "interrupt", "CHUNK_ROWS"]

CHUNK_ROWS = 10000


# -- execution ------------------------------------------------------------------------

def _with_limit(stmt, maxrec: int | None, top: int | None):
    """``stmt`` limited to ``maxrec + 1`` rows, unless its own TOP (``top``) is smaller."""
    if maxrec is None or not hasattr(stmt, "limit"):
        return stmt
    if top is not None and top <= maxrec:
        return stmt            # TOP n <= MAXREC: no overflow possible, keep the query as is
    # no TOP, or TOP n > MAXREC: the first maxrec + 1 rows tell whether there is overflow
    return stmt.limit(maxrec + 1)


#: the DBAPI connection of the query each thread is running (see ``interrupt``)
_running: dict[int, object] = {}


def interrupt(thread_id: int) -> bool:
    """Stop the query that thread ``thread_id`` is running (UWS ABORT, execution
    duration); it then fails with an "interrupted" error. False if none runs."""
    rows = _running.get(thread_id)
    if rows is None:
        return False
    try:
        rows.interrupt()
    except Exception:
        return False
    return True


class _Budget:
    """The time limit of one query, spent only while the database works.

    A synchronous result streams for as long as the client takes to read it; the
    limit bounds the database's work (executing and fetching), not the download.
    ``pause()`` after each fetch stops the clock, ``resume()`` before the next one
    restarts it with what is left. ``expired`` is the SQLite progress handler
    (it only runs while SQLite works, i.e. inside a fetch). PostgreSQL bounds each
    statement (each FETCH of a server-side cursor) by ``statement_timeout`` and
    ``pause()`` stops a query whose fetches together went past the limit.
    """

    __slots__ = ("timeout", "left", "deadline", "started")

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.left = timeout
        self.started = time.monotonic()
        self.deadline = self.started + timeout

    def expired(self) -> int:
        return 1 if time.monotonic() > self.deadline else 0

    def resume(self) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + self.left

    def pause(self) -> None:
        now = time.monotonic()
        self.left -= now - self.started
        self.deadline = float("inf")
        if self.left < 0:
            raise _timeout_fault(self.timeout)


def _timeout_fault(timeout: float) -> QueryTimeout:
    return QueryTimeout(f"the query ran longer than the limit of {timeout:g} s "
                        "(QUERY_TIMEOUT); "
                        "narrow it down or submit it as an asynchronous job")


class _NotColumnar(Exception):
    """The columnar reader cannot serve this statement: take the ordinary path."""


def execute(engine: Engine, stmt, columns: Sequence[ResultColumn], *, maxrec: int | None,
            timeout: float, top: int | None = None, offset: int = 0,
            plain_scan: bool = False, chunk_rows: int = CHUNK_ROWS,
            setup: Callable[[sa.Connection], None] | None = None,
            params: dict | None = None) -> QueryResult:
    """Run ``stmt`` read-only and return a streaming QueryResult.

    ``top`` is the statement's own row limit (ADQL TOP), which the caller must give
    if it has one; ``plain_scan`` says that the statement reads the columns of one
    table without WHERE, grouping, ordering or joins (with at most TOP and OFFSET
    ``offset``), so that every row read is a row returned: such statements may be
    read columnar. The ADQL translator knows all three (``Translation``).
    ``setup(conn)`` runs first on the same connection (e.g. to load uploaded tables
    into temporary tables). The connection stays open until the rows are exhausted
    or their iterator is closed. Errors raised before the first row (syntax errors of
    the database, timeouts) are raised here, not while streaming. ``stmt`` may be a
    ``PreparedStatement``, run with the values ``params``.
    """
    columns = list(columns)
    # a read replica's engine names the primary's read-only engine (archive.replicas)
    primary = getattr(engine, "archive_primary", None)
    if setup is not None and primary is not None:
        engine = primary            # a hot standby cannot create temporary tables
    run = (stmt, columns, maxrec, timeout, top, offset, plain_scan, chunk_rows, setup, params)
    try:
        return _execute(engine, *run)
    except _ConnectionLost as lost:
        if primary is None or engine is primary:
            raise _translate(lost.__cause__, timeout) from lost.__cause__
        # the replica went away before the first row: nothing was sent, ask the primary
        return _execute(primary, *run)


class _ConnectionLost(Exception):
    """The database connection broke before the first row (``__cause__``: the error)."""


def _execute(engine, stmt, columns, maxrec, timeout, top, offset, plain_scan, chunk_rows,
             setup, params) -> QueryResult:
    if isinstance(stmt, PreparedStatement):
        rows = _PreparedRows(engine, stmt, params or {}, maxrec, setup)
        return _stream(rows, columns, maxrec, timeout, chunk_rows)
    if params:
        raise TypeError("params are for PreparedStatements; bind values into the statement")
    stmt = _with_limit(stmt, maxrec, top)
    if plain_scan and setup is None:
        from . import columnar
        found = columnar.plan(engine, stmt, columns, offset) if columnar.available(
            engine.dialect.name) and getattr(engine, "archive_columnar", True) else None
        if found is not None:
            try:
                return _stream(_ColumnarRows(engine, found, columns, chunk_rows), columns,
                               maxrec, timeout, chunk_rows)
            except _NotColumnar:
                pass                   # e.g. unexpected column types: the ordinary path
    return _stream(_StatementRows(engine, stmt, maxrec, setup, chunk_rows), columns, maxrec,
                   timeout, chunk_rows)


def _stream(rows, columns: list, maxrec: int | None, timeout: float,
            chunk_rows: int) -> QueryResult:
    """The skeleton every execution path shares: open and read the first chunk here
    (so that errors of the statement are raised to the caller), then a generator
    reading the rest; one clean-up and one error translation however it ends."""
    thread = threading.get_ident()
    _running[thread] = rows
    try:
        rows.open(timeout)
        first = rows.fetch(chunk_rows)
    except _NotColumnar:
        _running.pop(thread, None)
        rows.close(broken=True)
        raise
    except BaseException as exc:
        _running.pop(thread, None)
        error = rows.error(exc)
        lost = rows.connection_lost(error)
        rows.close(broken=True)
        if lost:
            raise _ConnectionLost() from error
        raise _translate(error, timeout) from exc

    def generate():
        try:
            part = first
            while part is not None:
                yield part
                try:
                    part = rows.fetch(chunk_rows)
                except Exception as exc:
                    raise _translate(rows.error(exc), timeout) from exc
        finally:
            _running.pop(thread, None)
            rows.close()

    if rows.columnar:
        return QueryResult(columns, maxrec=maxrec, batches=generate())
    return QueryResult(columns, maxrec=maxrec, chunks=generate())


class _ConnectionRows:
    """Rows read from a pooled SQLAlchemy connection of ``engine`` (the statement and
    prepared paths): time limit, interruption, temporary tables of ``setup``."""

    columnar = False

    def __init__(self, engine: Engine, maxrec: int | None, setup):
        self.engine = engine
        self.dialect = engine.dialect.name
        self.maxrec = maxrec
        self.setup = setup
        self.conn = None
        self.raw = None
        self.budget = None

    def open(self, timeout: float) -> None:
        """Make a connection ready for one user query and start it.

        Installs the time limit (SQLite progress handler, PostgreSQL
        statement_timeout) and runs ``setup``. With uploads on PostgreSQL a READ
        ONLY transaction cannot CREATE TEMP TABLE, so the transaction starts
        writable, ``setup`` creates and fills its temporary tables, and it is made
        READ ONLY before the query runs (rolled back at the end, which drops them).
        """
        self.budget = _Budget(timeout)
        self.conn = conn = self.engine.connect()
        raw = self.raw = conn.connection.dbapi_connection
        if self.dialect == "sqlite":
            raw.set_progress_handler(self.budget.expired, 20000)
        elif self.dialect == "postgresql" and self.setup is not None:
            if raw.info.transaction_status:
                raw.rollback()
            raw.read_only = False
        if self.dialect == "postgresql":
            # LOCAL: it ends with the transaction, so it never stays on a server
            # connection that a pooler (pgbouncer) then gives to another client
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout * 1000)}")
        if self.setup is not None:
            self.setup(conn)
            if self.dialect == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        self.start()

    def start(self) -> None:
        raise NotImplementedError

    def fetchmany(self, n: int) -> list:
        raise NotImplementedError

    def fetch(self, n: int) -> list | None:
        """The next chunk of at most ``n`` row tuples, None at the end."""
        self.budget.resume()
        chunk = self.fetchmany(n)
        self.budget.pause()
        return chunk or None

    def interrupt(self) -> None:
        if self.dialect == "sqlite":
            self.raw.interrupt()
        elif self.dialect == "postgresql":
            self.raw.cancel()

    def error(self, exc: BaseException) -> BaseException:
        return exc

    def connection_lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the connection broke (the server went away)."""
        if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
            return True
        raw = self.raw
        return raw is not None and bool(getattr(raw, "broken", False))

    def close_cursor(self) -> None:
        pass

    def close(self, broken: bool = False) -> None:
        """Give the connection back; after ``setup`` (uploads were loaded) drop the
        temporary tables (SQLite keeps them on the pooled connection) or end the
        transaction that held them and restore READ ONLY (PostgreSQL)."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            self.close_cursor()
        except Exception:
            pass
        temporary = self.setup is not None
        try:
            raw = conn.connection.dbapi_connection
            if self.dialect == "sqlite":
                raw.set_progress_handler(None, 0)
                if temporary:
                    _drop_temporary_tables(raw)
            elif self.dialect == "postgresql" and temporary:
                conn.rollback()
                raw.rollback()
                raw.read_only = True
            conn.close()
        except Exception:
            try:
                conn.invalidate()
            except Exception:
                pass


def _drop_temporary_tables(raw) -> None:
    names = [r[0] for r in raw.execute(
        "SELECT name FROM temp.sqlite_master WHERE type = 'table'")]
    previous = raw.isolation_level
    raw.isolation_level = None
    try:
        for name in names:
            # names come from sqlite_master, not from a request
            raw.execute('DROP TABLE IF EXISTS temp."{}"'.format(name.replace('"', '""')))
    finally:
        raw.isolation_level = previous


class _StatementRows(_ConnectionRows):
    """A SQLAlchemy statement, executed on the connection."""

    def __init__(self, engine, stmt, maxrec, setup, chunk_rows):
        super().__init__(engine, maxrec, setup)
        self.stmt = stmt
        self.chunk_rows = chunk_rows
        self.cursor = None

    def start(self) -> None:
        # SQLite's cursor makes rows only as they are fetched: a plain execute.
        # PostgreSQL, at most maxrec + 1 rows (the LIMIT _with_limit added): a plain
        # cursor too, one round trip, and the query may be planned in parallel (never
        # done for the server-side cursor of stream_results, used for larger results)
        plain = self.dialect == "sqlite" or (
            self.dialect == "postgresql" and hasattr(self.stmt, "limit")
            and pg_plain_cursor(self.maxrec))
        if plain:
            self.cursor = self.conn.execute(self.stmt)
        else:
            self.cursor = self.conn.execution_options(
                stream_results=True, yield_per=self.chunk_rows).execute(self.stmt)
        self.fetchmany = _row_source(self.cursor, plain)

    def close_cursor(self) -> None:
        if self.cursor is not None:
            self.cursor.close()          # a server-side cursor left at overflow


def _row_source(cursor_result, plain: bool):
    """A ``fetchmany(n)`` giving lists of row tuples from a SQLAlchemy result.

    When SQLAlchemy would convert no value of the result (no result processor:
    numbers and text; booleans and timestamps have one on SQLite) and nothing was
    read ahead (a plain cursor, not ``stream_results``, which buffers a row), the
    DBAPI cursor's own ``fetchmany`` gives the same values as plain tuples: no Row
    object per row, no copy into a tuple (streaming a 672,000-row cross-match result:
    8.6 s -> 7.1 s). ``_processors`` is SQLAlchemy's per-column list of result
    processors (pinned 2.1, no public equivalent); if it is missing, rows go
    through SQLAlchemy.
    """
    processors = getattr(getattr(cursor_result, "_metadata", None), "_processors", None)
    raw = getattr(cursor_result, "cursor", None)
    if plain and raw is not None and processors is not None and not any(processors):
        return raw.fetchmany

    def fetchmany(n: int) -> list[tuple]:
        return [tuple(r) for r in cursor_result.fetchmany(n)]
    return fetchmany


class _PreparedRows(_ConnectionRows):
    """A PreparedStatement: its cached SQL text run on the DBAPI cursor."""

    def __init__(self, engine, prepared: PreparedStatement, params: dict, maxrec, setup):
        super().__init__(engine, maxrec, setup)
        limited = maxrec is not None
        if limited:
            params = {**params, LIMIT_PARAM: maxrec + 1}
        self.sql, self.values = prepared.parameters(engine.dialect, limited, params)
        self.cursor = None

    def start(self) -> None:
        if self.dialect == "postgresql" and not pg_plain_cursor(self.maxrec):
            self.cursor = self.raw.cursor(name=f"prepared_{id(self)}")   # server side
        else:
            self.cursor = self.raw.cursor()
        self.cursor.execute(self.sql, self.values)

    def fetchmany(self, n: int) -> list:
        return self.cursor.fetchmany(n)

    def error(self, exc: BaseException) -> BaseException:
        """A DBAPI error raised on the raw cursor, wrapped as SQLAlchemy would wrap it
        (so that ``_translate`` and callers see the same exceptions on both paths)."""
        dbapi = self.engine.dialect.loaded_dbapi
        if isinstance(exc, dbapi.Error):
            return sa.exc.DBAPIError.instance(self.sql, self.values, exc, dbapi.Error,
                                              dialect=self.engine.dialect)
        return exc

    def close_cursor(self) -> None:
        if self.cursor is not None:
            self.cursor.close()


class _ColumnarRows:
    """A plain scan read as Arrow record batches (``archive.columnar``); the time
    limit is checked between batches (ADBC cannot be interrupted inside one)."""

    columnar = True

    def __init__(self, engine, found, columns, chunk_rows: int):
        self.engine = engine
        self.found = found
        self.columns = columns
        self.chunk_rows = chunk_rows
        self.query = None
        self.timeout = None

    def open(self, timeout: float) -> None:
        from .columnar import ColumnarQuery
        self.timeout = timeout
        sql, values, types = self.found
        try:
            self.query = ColumnarQuery(self.engine, sql, values, types, self.chunk_rows,
                                       self.columns)
        except Exception as exc:
            raise _NotColumnar(str(exc)) from exc      # e.g. the driver cannot open the file
        self.first = True

    def fetch(self, _n: int):
        try:
            batch = self.query.next_batch()
        except TypeError as exc:
            if self.first:
                raise _NotColumnar(str(exc)) from exc   # unexpected column types
            raise
        self.first = False
        if self.query.seconds > self.timeout:
            raise _timeout_fault(self.timeout)
        return batch

    def interrupt(self) -> None:
        self.query.interrupt()

    def error(self, exc: BaseException) -> BaseException:
        return exc

    def connection_lost(self, _exc: BaseException) -> bool:
        return False        # a failed open is _NotColumnar: the ordinary path runs

    def close(self, broken: bool = False) -> None:
        if self.query is not None:
            self.query.close(broken=broken)


#: SQLite's messages for its fixed limits on statement size
_TOO_COMPLEX = ("parser stack overflow", "Expression tree is too large", "too many columns",
                "too many terms", "too many SQL variables", "too many FROM clause terms")


def _translate(exc: BaseException, timeout: float) -> BaseException:
    if isinstance(exc, QueryTimeout):
        return exc
    text = str(exc)
    if "conflict with recovery" in text:
        # a read replica cancelled the query to replay the primary's changes
        return TransientFault("the read replica cancelled the query to apply changes of "
                              "the primary; run it again")
    if "interrupted" in text or "statement timeout" in text or "canceling statement" in text:
        return _timeout_fault(timeout)
    if isinstance(exc, sa.exc.DBAPIError):
        orig = getattr(exc, "orig", exc)
        if "not authorized" in str(orig) or "read-only" in str(orig):
            return UsageFault(f"the query tried something that is not allowed: {orig}")
        if any(m in str(orig) for m in _TOO_COMPLEX):
            # SQLite's fixed limits (parser stack, expression depth, columns, terms):
            # the ADQL translator bounds queries below them; anything else that
            # reaches one is still the query's doing
            return UsageFault(f"the query is too complex for the database: {orig}")
        sqlstate = getattr(orig, "sqlstate", None) or ""
        if exc.connection_invalidated or sqlstate.startswith(("08", "57P")):
            # the connection was lost (class 08) or the server is shutting down or
            # restarting (57P01-57P03): nothing wrong with the query, try it again
            return TransientFault("the connection to the archive database was lost (the "
                                  "database restarted?); run the query again")
        if sqlstate.startswith("22"):
            # PostgreSQL "data exception": the query's own arithmetic failed (division by
            # zero, ACOS(2), a value out of range), which is the request's fault
            message = str(orig).splitlines()[0] if str(orig) else sqlstate
            return UsageFault(f"the query failed on a value: {message}")
        # the first line only: the rest quotes the SQL (hidden columns, table names)
        first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        return FatalFault(f"the database could not run the query: {first}")
    return exc

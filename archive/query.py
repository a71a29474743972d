"""The one query executor shared by TAP, cone search, the web form and downloads.

It runs a bound SQLAlchemy statement on the read-only engine under a time limit,
fetches at most ``maxrec + 1`` rows to know about overflow, and yields rows in
chunks so that callers can stream results of any size with flat memory.

Services that run the same query shape over and over with new values (cone
search) wrap a statement built with ``bindparam()``s in a ``PreparedStatement``:
it is compiled by SQLAlchemy once per dialect, and each execution only binds
the values and runs the SQL text on the DBAPI cursor (no statement building,
cache-key generation or result-metadata work per request).
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

__all__ = ["ResultColumn", "QueryResult", "PreparedStatement", "execute", "interrupt",
           "sqlite_authorizer", "columns_from_model", "CHUNK_ROWS"]

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
    #: columnar results (``archive.columnar``): a one-shot iterator of Arrow record
    #: batches; ``chunks()`` then converts them to row tuples for callers that want rows
    _batches: Iterator | None = field(default=None, repr=False)

    @property
    def columnar(self) -> bool:
        """True if ``batches()`` is available (the writers prefer it to ``chunks()``)."""
        return self._batches is not None

    def batches(self) -> Iterator:
        """The rows as pyarrow RecordBatches (columnar results only)."""
        if self._batches is None:
            raise TypeError("this result is not columnar; use chunks()")
        return self._batches

    def chunks(self) -> Iterator[list[tuple]]:
        if self._batches is not None:
            return _rows_of(self._batches, self.columns)
        return self._chunks


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
        close = getattr(batches, "close", None)
        if close is not None:
            close()


#: Name of the bound LIMIT a PreparedStatement gets for ``maxrec``.
LIMIT_PARAM = "_maxrec_limit"
#: PostgreSQL: a statement whose LIMIT allows more rows than this is read through a
#: server-side cursor (flat memory); smaller ones with a plain cursor (psycopg keeps
#: the result in libpq's compact form and makes Python rows only as they are fetched).
_PG_CLIENT_CURSOR_ROWS = 100000


def _pg_plain_cursor(maxrec: int | None) -> bool:
    """PostgreSQL: whether a statement limited to ``maxrec`` + 1 rows (None: not
    limited) runs on a plain cursor rather than a server-side one."""
    return maxrec is not None and maxrec + 1 <= _PG_CLIENT_CURSOR_ROWS


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positions: tuple[str, ...] | None    # positional paramstyles: bind names in order
    defaults: dict                        # values of the binds that carry one (literals)
    required: frozenset                   # binds the caller must give
    processors: tuple                     # (name, bind processor) for types that need one


class PreparedStatement:
    """A statement with ``bindparam()`` placeholders, compiled once per dialect.

    ``execute(engine, prepared, columns, params={name: value}, ...)`` runs it with
    new values: SQLAlchemy builds and compiles the SQL once (so the SQL still comes
    from SQLAlchemy and every value stays a bound parameter), and each execution
    only binds the values and runs the SQL text on the DBAPI cursor. ``maxrec``
    becomes a bound LIMIT, so the statement itself must have none. Rows come as
    the DBAPI returns them, without SQLAlchemy's result processing (SQLite gives
    booleans as 0/1, for example), which the format writers handle since they
    convert values by the declared datatype. Not for statements that need
    per-execution rendering (expanding IN lists, ``literal_execute``).
    """

    def __init__(self, stmt):
        if getattr(stmt, "_limit_clause", None) is not None:
            raise ValueError("a PreparedStatement gets its LIMIT from maxrec; "
                             "the statement must not have one")
        self.statement = stmt
        self._compiled: dict[tuple[str, bool], _Compiled] = {}

    def compiled(self, dialect, limited: bool) -> _Compiled:
        """The SQL text and parameter plan for ``dialect`` (cached)."""
        key = (dialect.name, limited)
        found = self._compiled.get(key)
        if found is None:
            stmt = self.statement
            if limited:
                stmt = stmt.limit(sa.bindparam(LIMIT_PARAM, type_=sa.Integer))
            compiled = stmt.compile(dialect=dialect)
            names = compiled.params                   # every bind name -> value or None
            binds = {name: compiled.binds[name] for name in names}
            processors = []
            for name, bind in binds.items():
                proc = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if proc is not None:
                    processors.append((name, proc))
            positions = compiled.positiontup
            found = _Compiled(
                compiled.string, tuple(positions) if positions is not None else None,
                {n: v for n, v in names.items() if not binds[n].required},
                frozenset(n for n, b in binds.items() if b.required), tuple(processors))
            self._compiled[key] = found
        return found

    def parameters(self, dialect, limited: bool, params: dict):
        """(SQL text, DBAPI parameters) for one execution with ``params``."""
        compiled = self.compiled(dialect, limited)
        missing = compiled.required.difference(params)
        if missing:
            raise FatalFault(f"prepared statement run without a value for "
                             f"{', '.join(sorted(missing))}")
        values = {**compiled.defaults, **params}
        for name, proc in compiled.processors:
            values[name] = proc(values[name])
        if compiled.positions is not None:
            return compiled.sql, tuple([values[n] for n in compiled.positions])
        return compiled.sql, values


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
        if dialect == "columnar":
            raw.interrupt()
        elif dialect == "sqlite":
            raw.interrupt()
        elif dialect == "postgresql":
            raw.cancel()
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
    return QueryTimeout(f"the query ran longer than the limit of {timeout:g} s; "
                        "narrow it down or submit it as an asynchronous job")


def _sqlite_file(engine: Engine) -> str | None:
    """The database file of a SQLite engine (cached on the engine), for ADBC."""
    path = getattr(engine, "_archive_sqlite_path", None)
    if path is None and engine.url.database and engine.url.database != ":memory:":
        path = engine.url.database                # sqlite:///path engines
    if path is None:
        # the read-only engine (archive.db) connects through a creator with a
        # file: URI; its connections carry ``sqlite_authorizer`` from checkout
        path = ""
        with engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            raw.set_authorizer(None)          # PRAGMA is refused by the authorizer
            try:
                for _seq, name, file in raw.execute("PRAGMA database_list"):
                    if name == "main":
                        path = file or ""
            finally:
                raw.set_authorizer(sqlite_authorizer)
        engine._archive_sqlite_path = path
    return path or None


def _execute_columnar(engine: Engine, stmt, columns, *, maxrec, timeout, chunk_rows):
    """``execute`` through ``archive.columnar`` (ADBC, Arrow batches) when the
    statement qualifies; None otherwise. Same limits, overflow logic and errors."""
    from . import columnar
    dialect = engine.dialect.name
    if not columnar.available(dialect):
        return None
    try:
        if dialect == "sqlite" and not _sqlite_file(engine):
            return None
        found = columnar.plan(engine, stmt, columns)
    except Exception:                     # anything unexpected: the ordinary path
        return None
    if found is None:
        return None
    sql, values, types = found
    thread = threading.get_ident()
    try:
        query = columnar.ColumnarQuery(engine, sql, values, types, chunk_rows, columns)
    except Exception:
        return None                        # e.g. the driver cannot open the file
    _running[thread] = ("columnar", query)
    try:
        first = query.next_batch()
        if query.seconds > timeout:
            raise _timeout_fault(timeout)
    except BaseException as exc:
        _running.pop(thread, None)
        query.close(broken=True)
        if isinstance(exc, TypeError):
            return None                    # unexpected column types: ordinary path
        raise _translate(exc, timeout) from exc
    result = QueryResult(list(columns), iter(()), maxrec)

    def generate():
        try:
            batch = first
            while batch is not None:
                n = batch.num_rows
                if maxrec is not None and result.row_count + n > maxrec:
                    keep = maxrec - result.row_count
                    result.overflow = True
                    if keep:
                        result.row_count += keep
                        yield batch.slice(0, keep)
                    return
                result.row_count += n
                if n:
                    yield batch
                try:
                    batch = query.next_batch()
                except Exception as exc:
                    raise _translate(exc, timeout) from exc
                if query.seconds > timeout:
                    raise _timeout_fault(timeout)
        finally:
            _running.pop(thread, None)
            query.close()

    result._batches = generate()
    return result


def execute(engine: Engine, stmt, columns: Sequence[ResultColumn], *, maxrec: int | None,
            timeout: float, chunk_rows: int = CHUNK_ROWS,
            setup: Callable[[sa.Connection], None] | None = None,
            params: dict | None = None) -> QueryResult:
    """Run ``stmt`` read-only and return a streaming QueryResult.

    ``setup(conn)`` runs first on the same connection (e.g. to load uploaded tables
    into temporary tables). The connection stays open until the chunks are
    exhausted or the iterator is closed. Errors raised before the first row (syntax
    errors of the database, timeouts) are raised here, not while streaming.
    ``stmt`` may be a ``PreparedStatement``, run with the values ``params``.
    """
    if isinstance(stmt, PreparedStatement):
        return _execute_prepared(engine, stmt, params or {}, columns, maxrec=maxrec,
                                 timeout=timeout, chunk_rows=chunk_rows, setup=setup)
    if params:
        raise TypeError("params are for PreparedStatements; bind values into the statement")
    stmt = _with_limit(stmt, maxrec)
    if setup is None:
        fast = _execute_columnar(engine, stmt, columns, maxrec=maxrec, timeout=timeout,
                                 chunk_rows=chunk_rows)
        if fast is not None:
            return fast
    conn = engine.connect()
    budget = _Budget(timeout)
    dialect = engine.dialect.name
    thread = threading.get_ident()
    try:
        _prepare_connection(conn, dialect, thread, budget, timeout, setup)
        # SQLite's cursor makes rows only as they are fetched: a plain execute.
        # PostgreSQL, at most maxrec + 1 rows (the LIMIT _with_limit added): a plain
        # cursor too, one round trip, and the query may be planned in parallel (never
        # done for the server-side cursor of stream_results, used for larger results)
        plain = dialect == "sqlite" or (
            dialect == "postgresql" and hasattr(stmt, "limit") and _pg_plain_cursor(maxrec))
        if plain:
            cursor = conn.execute(stmt)
        else:
            cursor = conn.execution_options(stream_results=True,
                                            yield_per=chunk_rows).execute(stmt)
        fetchmany, as_tuples = _row_source(cursor, plain)
        first = fetchmany(chunk_rows)
        budget.pause()
    except BaseException as exc:
        _running.pop(thread, None)
        _close(conn, dialect, setup is not None)
        raise _translate(exc, timeout) from exc
    result = QueryResult(list(columns), iter(()), maxrec)

    def fetch():
        try:
            budget.resume()
            chunk = fetchmany(chunk_rows)
            budget.pause()
            return chunk
        except Exception as exc:
            raise _translate(exc, timeout) from exc

    def finish():
        _running.pop(thread, None)
        _close_cursor(cursor)          # a server-side cursor left at overflow
        _close(conn, dialect, setup is not None)

    result._chunks = _stream(result, first, fetch, finish, as_tuples=as_tuples)
    return result


def _row_source(cursor_result, plain: bool):
    """(fetchmany, as_tuples) for reading a result's rows.

    When SQLAlchemy would convert no value of the result (no result processor:
    numbers and text; booleans and timestamps have one on SQLite) and nothing was
    read ahead (a plain cursor, not ``stream_results``, which buffers a row), the
    DBAPI cursor's own ``fetchmany`` gives the same values as plain tuples: no Row
    object per row, no copy into a tuple (streaming a 672,000-row cross-match result:
    8.6 s -> 7.1 s). ``_processors`` is SQLAlchemy's per-column list of result
    processors (pinned 2.1); if it is missing, rows go through SQLAlchemy.
    """
    processors = getattr(getattr(cursor_result, "_metadata", None), "_processors", None)
    raw = getattr(cursor_result, "cursor", None)
    if plain and raw is not None and processors is not None and not any(processors):
        return raw.fetchmany, False
    return cursor_result.fetchmany, True


def _execute_prepared(engine: Engine, prepared: PreparedStatement, params: dict,
                      columns: Sequence[ResultColumn], *, maxrec: int | None, timeout: float,
                      chunk_rows: int, setup) -> QueryResult:
    """``execute`` for a PreparedStatement: the same connection handling, time
    limit, read-only rules and overflow logic, with the cached SQL text run on the
    DBAPI cursor."""
    limited = maxrec is not None
    if limited:
        params = {**params, LIMIT_PARAM: maxrec + 1}
    sql, values = prepared.parameters(engine.dialect, limited, params)
    conn = engine.connect()
    budget = _Budget(timeout)
    dialect = engine.dialect.name
    thread = threading.get_ident()
    cursor = None
    try:
        raw = _prepare_connection(conn, dialect, thread, budget, timeout, setup)
        if dialect == "postgresql" and not _pg_plain_cursor(maxrec):
            cursor = raw.cursor(name=f"prepared_{thread}_{id(params)}")   # server side
        else:
            cursor = raw.cursor()
        cursor.execute(sql, values)
        first = cursor.fetchmany(chunk_rows)
        budget.pause()
    except BaseException as exc:
        _running.pop(thread, None)
        _close_cursor(cursor)
        _close(conn, dialect, setup is not None)
        raise _translate(_wrapped(exc, engine, sql, values), timeout) from exc
    result = QueryResult(list(columns), iter(()), maxrec)

    def fetch():
        try:
            budget.resume()
            chunk = cursor.fetchmany(chunk_rows)
            budget.pause()
            return chunk
        except Exception as exc:
            raise _translate(_wrapped(exc, engine, sql, values), timeout) from exc

    def finish():
        _running.pop(thread, None)
        _close_cursor(cursor)
        _close(conn, dialect, setup is not None)

    result._chunks = _stream(result, first, fetch, finish, as_tuples=False)
    return result


def _wrapped(exc: BaseException, engine: Engine, sql: str, values) -> BaseException:
    """A DBAPI error raised on the raw cursor, wrapped as SQLAlchemy would wrap it
    (so that ``_translate`` and callers see the same exceptions on both paths)."""
    dbapi = engine.dialect.loaded_dbapi
    if isinstance(exc, dbapi.Error):
        return sa.exc.DBAPIError.instance(sql, values, exc, dbapi.Error,
                                          dialect=engine.dialect)
    return exc


def _close_cursor(cursor) -> None:
    if cursor is not None:
        try:
            cursor.close()
        except Exception:
            pass




def _prepare_connection(conn, dialect: str, thread: int, budget, timeout: float, setup):
    """Make ``conn`` ready for one user query; returns its DBAPI connection.

    Registers it for ``interrupt``, installs the time limit (SQLite progress
    handler, PostgreSQL statement_timeout) and runs ``setup``. With uploads on
    PostgreSQL a READ ONLY transaction cannot CREATE TEMP TABLE, so the transaction
    starts writable, ``setup`` creates and fills its temporary tables, and it is made
    READ ONLY before the query runs (rolled back at the end, which drops them).
    """
    raw = conn.connection.dbapi_connection
    _running[thread] = (dialect, raw)
    if dialect == "sqlite":
        raw.set_progress_handler(budget.expired, 20000)
    elif dialect == "postgresql" and setup is not None:
        if raw.info.transaction_status:
            raw.rollback()
        raw.read_only = False
    if dialect == "postgresql":
        conn.exec_driver_sql(f"SET statement_timeout = {int(timeout * 1000)}")
    if setup is not None:
        setup(conn)
        if dialect == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    return raw

def _stream(result: QueryResult, first: list, fetch, finish, *,
            as_tuples: bool) -> Iterator[list]:
    """Yield row chunks, ``first`` then ``fetch()`` until empty, stopping after
    ``result.maxrec`` rows (setting ``result.overflow``) and counting
    ``result.row_count``; ``finish()`` runs however the iteration ends."""
    maxrec = result.maxrec
    try:
        chunk = first
        while chunk:
            if as_tuples:
                chunk = [tuple(r) for r in chunk]
            if maxrec is not None and result.row_count + len(chunk) > maxrec:
                keep = maxrec - result.row_count
                result.overflow = True
                if keep:
                    result.row_count += keep
                    yield chunk[:keep]
                return
            result.row_count += len(chunk)
            yield chunk
            chunk = fetch()
    finally:
        finish()

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
    if isinstance(exc, QueryTimeout):
        return exc
    text = str(exc)
    if "interrupted" in text or "statement timeout" in text or "canceling statement" in text:
        return _timeout_fault(timeout)
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

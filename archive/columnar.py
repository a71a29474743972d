"""Columnar fetching of bulk results: SQLite and PostgreSQL through ADBC into Arrow
record batches.

Python's ``sqlite3`` makes one Python object per cell, which dominates the cost of
streaming large results (a 200,000-row, 39-column TAP result is 7.8 million
objects). The ADBC SQLite driver (``adbc-driver-sqlite``) steps the same SQLite
statement in C and hands back Arrow record batches, from which the format writers
take numpy columns without any per-cell Python work.

The driver has two limits that decide when it may be used (``plan`` returns None
otherwise, and ``archive.query.execute`` takes its ordinary path):

* It cannot be interrupted (no progress handler, ``AdbcStatementCancel`` is not
  implemented), so the time limit can only be checked between batches. It is
  therefore used only for statements whose work per batch is bounded by the batch
  size: a plain ``SELECT <table columns> FROM <one table>`` with at most LIMIT and
  a moderate OFFSET, without WHERE, GROUP BY, HAVING, DISTINCT, ORDER BY, joins or
  subqueries (every fetched row is a row read). The ADQL translator knows when a
  query is such a plain scan and says so (``Translation.plain_scan``). That is the bulk-download shape
  (``SELECT TOP 200000 * FROM extras.aperiodic``); anything that could scan or sort
  without producing rows keeps the interruptible ``sqlite3`` path.
* It infers each column's Arrow type from the first batch and fails on a later
  value of another type; a column that is NULL throughout the first batch would be
  inferred as integer. The statement therefore starts with a *type witness* row
  (``SELECT 0.0, 0, '' ... UNION ALL SELECT * FROM (<query>)``) holding a value
  of the declared SQLite type of every column, which is dropped. Columns are plain
  table columns, whose storage class SQLite fixes by the column affinity (REAL,
  INTEGER, TEXT), and ingest validates every value, so later batches agree.

PostgreSQL: the ADBC PostgreSQL driver (``adbc-driver-postgresql``, libpq) runs
the same plain scans through ``COPY ... TO STDOUT (FORMAT binary)`` and decodes
them into Arrow in C, several times faster than making Python rows with psycopg.
The column types are PostgreSQL's own, so no type witness is needed; the session
is READ ONLY; batches are sized by bytes (``adbc.postgresql.batch_size_hint_bytes``,
from the requested rows per chunk and the width of the columns).

Security: the ADBC connection opens the file with ``mode=ro`` (SQLite refuses every
write: INSERT, CREATE, DROP ... fail with "attempt to write a readonly database"),
but the pysqlite authorizer cannot be installed on it, so ATTACH and PRAGMA would
not be refused. That does not matter here: the SQL run on this connection is built
by this module from a SQLAlchemy ``Select`` checked to be a plain column list of
one published table, compiled with bound parameters; no text from a request reaches
it.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Iterator, Sequence

import sqlalchemy as sa

__all__ = ["available", "plan", "ColumnarQuery", "MAX_OFFSET"]

try:                                     # optional: without it every query uses sqlite3
    import adbc_driver_sqlite.dbapi as _adbc
    import pyarrow as pa
except ImportError:                      # pragma: no cover - both are pinned dependencies
    _adbc = None
    pa = None
try:
    import adbc_driver_postgresql.dbapi as _adbc_pg
except ImportError:                      # pragma: no cover - a pinned dependency
    _adbc_pg = None

#: Largest OFFSET served columnar: skipping rows happens in the first batch, which
#: cannot be interrupted (about a second per million rows).
MAX_OFFSET = 1_000_000

_AFFINITY = {"boolean": "INTEGER", "unsignedByte": "INTEGER", "short": "INTEGER",
             "int": "INTEGER", "long": "INTEGER", "float": "REAL", "double": "REAL",
             "char": "TEXT", "unicodeChar": "TEXT"}
_WITNESS = {"INTEGER": "0", "REAL": "0.0", "TEXT": "''"}
_SA_TYPES = {"INTEGER": (sa.Integer, sa.Boolean), "REAL": (sa.Float,),
             "TEXT": (sa.String,)}


def available(dialect: str = "sqlite") -> bool:
    """Whether the ADBC driver for ``dialect`` and pyarrow are installed."""
    if pa is None:
        return False
    return {"sqlite": _adbc, "postgresql": _adbc_pg}.get(dialect) is not None


def _arrow_type(affinity: str):
    return {"INTEGER": pa.int64(), "REAL": pa.float64(), "TEXT": pa.string()}[affinity]


def plan(engine, stmt, columns: Sequence, offset: int = 0) -> tuple[str, list, list] | None:
    """(SQL, parameters, expected Arrow types) to run ``stmt`` columnar, or None
    when it does not qualify (see the module documentation). The caller has declared
    ``stmt`` a plain scan (``archive.query.execute(plain_scan=True)``) with OFFSET
    ``offset``; this checks what the columnar reader itself needs: one table, plain
    columns of types it reads, an OFFSET it can skip quickly."""
    dialect = engine.dialect.name
    if not available(dialect) or not isinstance(stmt, sa.Select):
        return None
    if dialect == "sqlite" and _database_path(engine) is None:
        return None
    if offset > MAX_OFFSET:
        return None
    froms = stmt.get_final_froms()
    if len(froms) != 1:
        return None
    table = froms[0]
    base = table.element if isinstance(table, sa.sql.expression.Alias) else table
    if not isinstance(base, sa.Table):
        return None
    selected = list(stmt.selected_columns)
    if len(selected) != len(columns) or not selected:
        return None
    affinities = []
    for expr, col in zip(selected, columns):
        inner = expr.element if isinstance(expr, sa.sql.elements.Label) else expr
        if not isinstance(inner, sa.Column) or inner.table is not table:
            return None
        affinity = _AFFINITY.get(col.datatype)
        if affinity is None or (col.arraysize not in (None, "", "1")
                                and affinity != "TEXT") or col.xtype:
            return None                  # arrays, timestamps, geometry: ordinary path
        if not isinstance(inner.type, _SA_TYPES[affinity]):
            return None                  # declared and stored types disagree
        affinities.append(affinity)
    compiled = stmt.compile(dialect=engine.dialect)
    params = compiled.construct_params()
    if any(not isinstance(v, int) for v in params.values()):
        return None                      # only LIMIT/OFFSET are expected here
    if dialect == "postgresql":
        # the only values are the integers LIMIT and OFFSET (checked above): they
        # are written into the SQL, which has no other parameters
        sql = stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
        return str(sql), [], None
    names = compiled.positiontup or []
    if set(names) != set(params):
        return None
    values = [params[n] for n in names]
    witness = ", ".join(f"{_WITNESS[a]} AS w{i}" for i, a in enumerate(affinities))
    sql = f"SELECT {witness} UNION ALL SELECT * FROM ({compiled.string})"
    return sql, values, [_arrow_type(a) for a in affinities]


def _database_path(engine) -> str | None:
    """The file of the read-only SQLite engine (``archive.db``: ``creator`` with
    ``file:<path>?mode=ro``; plain ``sqlite:///path`` URLs too)."""
    path = getattr(engine, "archive_sqlite_path", None)
    if path:
        return path
    database = engine.url.database
    if database and database != ":memory:":
        return database
    return None


# -- connections --------------------------------------------------------------------

_POOL: dict[str, queue.SimpleQueue] = {}
_POOL_LOCK = threading.Lock()
_POOL_SIZE = 8


def _source(engine) -> str:
    """What a pooled connection is opened on: the SQLite file, or the libpq URI."""
    if engine.dialect.name == "postgresql":
        return engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
    return _database_path(engine)


def _connect(path: str):
    if path.startswith(("postgresql:", "postgres:")):
        return _connect_postgresql(path)
    conn = _adbc.connect(f"file:{path}?mode=ro", autocommit=True)
    cur = conn.cursor()
    try:
        # no mmap: a bulk scan would map (and count in the worker's resident memory)
        # every page of the table it reads; a small page cache suffices for a scan
        for pragma in ("PRAGMA busy_timeout=30000", "PRAGMA cache_size=-8192",
                       "PRAGMA mmap_size=0"):
            cur.execute(pragma)
            cur.fetchall()
    finally:
        cur.close()
    return conn


def _connect_postgresql(uri: str):
    conn = _adbc_pg.connect(uri, autocommit=True)
    cur = conn.cursor()
    try:
        # every statement of this session runs in a READ ONLY transaction
        cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    finally:
        cur.close()
    return conn


def _text_type(t) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _number_type(t) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


#: Bytes per value assumed when sizing PostgreSQL batches (text: a typical identifier).
_VALUE_BYTES = {"char": 24, "unicodeChar": 24, "double": 8, "long": 8, "float": 4,
                "int": 4, "short": 2, "boolean": 1, "unsignedByte": 1}


def _checkout(path: str):
    with _POOL_LOCK:
        pool = _POOL.setdefault(path, queue.SimpleQueue())
    try:
        return pool.get_nowait()
    except queue.Empty:
        return _connect(path)


def _checkin(path: str, conn) -> None:
    pool = _POOL.get(path)
    if pool is not None and pool.qsize() < _POOL_SIZE:
        pool.put(conn)
    else:
        conn.close()


class _Prefetch:
    """Reads batches ahead in a thread, so that the database steps through the next
    batch while the caller encodes the last one (the driver and pyarrow release the
    GIL while they read). At most ``depth`` batches wait; ``stop`` ends the thread
    before the reader it uses is closed."""

    def __init__(self, read, depth: int = 2):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(read,), daemon=True,
                                        name="columnar-prefetch")
        self._thread.start()

    def _run(self, read):
        try:
            while not self._stop.is_set():
                batch = read()
                self._put(("batch", batch))
                if batch is None:
                    return
        except BaseException as exc:       # handed to the reader of the results
            self._put(("error", exc))

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def get(self):
        kind, value = self._queue.get()
        if kind == "error":
            raise value
        return value

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class ColumnarQuery:
    """One running columnar query: ``next_batch()`` gives Arrow record batches
    (the witness row removed) until None; ``seconds`` is the time spent in the
    database so far; ``close()`` gives the connection back. The first batch is
    read in the caller's thread (errors of the statement surface there); the
    following ones are read ahead by a ``_Prefetch`` thread."""

    def __init__(self, engine, sql: str, values: list, types: list | None,
                 chunk_rows: int, columns: Sequence = ()):
        self.path = _source(engine)
        self.types = types
        self.seconds = 0.0
        self.interrupted = False
        self._witness = types is not None         # SQLite: the first row is the witness
        # PostgreSQL: the types of the first batch must suit the declared datatypes
        self._check_kinds = None if types is not None else [
            _text_type if c.datatype in ("char", "unicodeChar") else _number_type
            for c in columns]
        self._conn = _checkout(self.path)
        self._cursor = self._conn.cursor()
        self._reader = None
        self._prefetch = None
        self._first = True
        started = time.monotonic()
        try:
            if engine.dialect.name == "postgresql":
                width = sum(_VALUE_BYTES.get(c.datatype, 8) for c in columns) or 8
                self._cursor.adbc_statement.set_options(**{
                    "adbc.postgresql.batch_size_hint_bytes": str(int(chunk_rows) * width)})
            else:
                self._cursor.adbc_statement.set_options(
                    **{"adbc.sqlite.query.batch_rows": str(int(chunk_rows))})
            self._cursor.execute(sql, values)
            self._reader = self._cursor.fetch_record_batch()
        except BaseException:
            self.close(broken=True)
            raise
        finally:
            self.seconds += time.monotonic() - started

    def interrupt(self) -> None:
        """Make the next ``next_batch`` fail with "interrupted" (UWS ABORT)."""
        self.interrupted = True

    def next_batch(self):
        if self.interrupted:
            raise RuntimeError("interrupted")
        if self._first:                  # in this thread: errors of the statement surface here
            self._first = False
            return self._read()
        if self._prefetch is None:
            self._prefetch = _Prefetch(self._read)
        return self._prefetch.get()

    def _read(self):
        if self.interrupted:
            raise RuntimeError("interrupted")
        started = time.monotonic()
        try:
            batch = self._reader.read_next_batch()
        except StopIteration:
            return None
        finally:
            self.seconds += time.monotonic() - started
        if self._witness:
            self._witness = False
            for i, expected in enumerate(self.types):
                if batch.schema.field(i).type != expected:
                    raise TypeError(f"column {i}: the database returned "
                                    f"{batch.schema.field(i).type}, not {expected}")
            batch = batch.slice(1)
        elif self._check_kinds is not None:
            kinds, self._check_kinds = self._check_kinds, None
            for i, (kind, field) in enumerate(zip(kinds, batch.schema)):
                if not kind(field.type):
                    raise TypeError(f"column {i}: the database returned {field.type}")
        return batch

    def batches(self) -> Iterator:
        while True:
            batch = self.next_batch()
            if batch is None:
                return
            yield batch

    def __del__(self):
        # a result that was never read to the end nor closed: release the statement
        # before the connection (ADBC refuses to close a connection with open ones)
        try:
            self.close(broken=True)
        except Exception:
            pass

    def close(self, broken: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._prefetch is not None:
            self._prefetch.stop()          # the thread may be inside the reader
        try:
            if self._reader is not None:
                self._reader.close()
            self._cursor.close()
        except Exception:
            broken = True
        if broken:
            try:
                conn.close()
            except Exception:
                pass
        else:
            _checkin(self.path, conn)

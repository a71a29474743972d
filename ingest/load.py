"""Bulk loading of validated rows: one transaction, chunks, replace by key.

The rows arrive as one Arrow table (:meth:`ingest.validate.Prepared.arrow`) and go
to the database through ADBC (``adbc_driver_sqlite``, ``adbc_driver_postgresql``),
whose drivers bind the Arrow arrays in C (PostgreSQL: binary ``COPY``): no Python
object is made per value, which is where the speed comes from.

Loading is all-or-nothing: every statement -- the temporary table of the file's
keys, the removal of the rows with those keys (so re-ingesting gives the same
state), the appends and any index rebuilds -- runs in one transaction on one
ADBC connection, rolled back on any failure. SQL text is compiled by SQLAlchemy
from the table objects of :mod:`archive.db`.

When the rows of the file outnumber those the table keeps (the first load of a
catalogue, typically) the table's indexes are dropped before the delete and the
inserts and created again after them, inside the same transaction: building a
B-tree once is several times faster than maintaining it row by row.

SQLite loads run in a forked child process: see :func:`_in_child` for why.
"""
from __future__ import annotations

import multiprocessing
import pickle
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archive import db as archive_db

from .validate import Prepared

__all__ = ["LoadReport", "load", "CHUNK_ROWS"]

#: Rows converted and sent to the database at a time.
CHUNK_ROWS = 100_000
#: Files with at least this many rows, more than the table keeps, rebuild the indexes.
REBUILD_MIN_ROWS = 10_000


@dataclass
class LoadReport:
    table: str
    inserted: int
    replaced: int
    total: int
    rebuilt_indexes: bool


def _compile(stmt, dialect) -> str:
    return str(stmt.compile(dialect=dialect))


def _staging_table(target: sa.Table, key: tuple[str, ...]) -> sa.Table:
    md = sa.MetaData()
    return sa.Table("ingest_staging_keys", md,
                    *[sa.Column(k, target.c[k].type) for k in key],
                    prefixes=["TEMPORARY"],
                    postgresql_on_commit="DROP")


class _Session:
    """One ADBC connection for the whole load: compiled SQL and Arrow bulk inserts.

    SQLite: ``adbc_driver_sqlite`` on the database file, in autocommit mode with
    the transaction issued by hand (``BEGIN IMMEDIATE`` takes the write lock up
    front, so no other writer can slip in between the count and the delete);
    PostgreSQL: ``adbc_driver_postgresql`` (libpq), autocommit off, so every
    statement runs in one transaction, DDL included. Rows go in with
    ``adbc_ingest``, which binds the Arrow arrays in C (PostgreSQL: binary COPY).
    """

    def __init__(self, url, dialect):
        self.dialect = dialect
        self.name = dialect.name
        if self.name == "sqlite":
            import adbc_driver_sqlite.dbapi as adbc
            if not url.database or url.database == ":memory:":
                raise ValueError("catalogue ingest needs an SQLite database file, "
                                 "not an in-memory database")
            self.conn = adbc.connect(url.database, autocommit=True)
        elif self.name == "postgresql":
            import adbc_driver_postgresql.dbapi as adbc
            uri = url.set(drivername="postgresql").render_as_string(hide_password=False)
            self.conn = adbc.connect(uri)
        else:
            raise ValueError(f"catalogue ingest supports SQLite and PostgreSQL, not {self.name}")
        self.cur = self.conn.cursor()
        if self.name == "sqlite":
            # the archive's settings (archive.db), plus sorter threads for CREATE INDEX
            for pragma in ("busy_timeout=30000", "cache_size=-262144", "temp_store=MEMORY",
                           "threads=2"):
                self.execute(f"PRAGMA {pragma}")

    def execute(self, stmt):
        if isinstance(stmt, (sa.sql.ClauseElement, sa.schema.ExecutableDDLElement)):
            stmt = _compile(stmt, self.dialect)
        self.cur.execute(stmt)
        try:
            self.cur.fetchall()             # finish the statement (PRAGMAs return rows)
        except Exception:
            pass

    def scalar(self, stmt):
        self.cur.execute(_compile(stmt, self.dialect))
        return self.cur.fetchone()[0]

    def insert_rows(self, table: sa.Table, data: pa.Table):
        """Append the Arrow table ``data`` (columns named like ``table``'s) to ``table``."""
        temporary = "TEMPORARY" in table._prefixes
        self.cur.adbc_ingest(table.name, data, mode="append", temporary=temporary)

    def begin(self):
        if self.name == "sqlite":
            self.execute("BEGIN IMMEDIATE")
        # PostgreSQL: autocommit is off, the driver is already in a transaction

    def commit(self):
        if self.name == "sqlite":
            self.execute("COMMIT")
        else:
            self.conn.commit()

    def rollback(self):
        try:
            if self.name == "sqlite":
                self.cur.execute("ROLLBACK")
            else:
                self.conn.rollback()
        except Exception:   # no transaction open (it failed early): nothing to undo
            pass

    def close(self):
        try:
            self.cur.close()
        finally:
            self.conn.close()


def _pg_analyze(session: _Session, table: sa.Table) -> str:
    # the name quoted by SQLAlchemy's PostgreSQL identifier preparer
    return "ANALYZE " + session.dialect.identifier_preparer.format_table(table)


def _stage_keys(session: _Session, target: sa.Table, keys: pa.Table) -> tuple[sa.Table, int]:
    """A temporary table of the file's keys; returns it and how many table rows match."""
    staging = _staging_table(target, tuple(keys.column_names))
    session.execute(sa.schema.CreateTable(staging))
    session.insert_rows(staging, keys)
    if session.name == "sqlite":
        session.execute(sa.schema.CreateIndex(sa.Index("ingest_staging_keys_ix",
                                                       *staging.c)))
    else:
        session.execute(_pg_analyze(session, staging))
    matched = session.scalar(sa.select(sa.func.count()).select_from(target).where(
        _matches(staging, target)))
    return staging, matched


def _matches(staging: sa.Table, target: sa.Table):
    cond = sa.and_(*[staging.c[c.name] == target.c[c.name] for c in staging.c])
    return sa.exists().where(cond)


def _load_order(prep: Prepared) -> np.ndarray | None:
    """Rows of positional tables are stored in HEALPix order: the rows of a cone sit
    together in the table, so a cone search reads a few pages instead of one per row."""
    if "_hpx" not in prep.names:
        return None
    return np.argsort(prep.column("_hpx"), kind="stable")


def load(engine: Engine, prep: Prepared,
         progress: Callable[[int, int], None] | None = None) -> LoadReport:
    """Load ``prep`` into its table in one transaction (see the module docstring)."""
    target = archive_db.table_for(prep.table)
    data = prep.arrow(_load_order(prep), release=True)
    args = (engine.url, engine.dialect, target, data, tuple(prep.table.key),
            prep.table.name)
    if engine.dialect.name == "sqlite":
        return _in_child(_load, args, progress)
    return _load(*args, progress=progress)


def _load(url, dialect, target: sa.Table, data: pa.Table, key: tuple[str, ...],
          name: str, progress=None) -> LoadReport:
    nrows = data.num_rows
    session = _Session(url, dialect)
    rebuild = False
    try:
        session.begin()
        count = sa.select(sa.func.count()).select_from(target)
        existing = session.scalar(count)
        staging, replaced = None, 0
        if existing:
            staging, replaced = _stage_keys(session, target, data.select(list(key)))
        remaining = existing - replaced
        indexes = sorted(target.indexes, key=lambda ix: ix.name)
        rebuild = nrows > remaining and nrows >= REBUILD_MIN_ROWS
        if rebuild:            # before the delete: no index maintenance for it either
            for ix in indexes:
                session.execute(sa.schema.DropIndex(ix))
        if staging is not None:
            if replaced:
                session.execute(target.delete().where(_matches(staging, target)))
            session.execute(sa.schema.DropTable(staging))
        for start in range(0, nrows, CHUNK_ROWS):
            chunk = data.slice(start, CHUNK_ROWS)
            session.insert_rows(target, chunk)
            if progress:
                progress(len(chunk), nrows)
        if rebuild:
            for ix in indexes:
                session.execute(sa.schema.CreateIndex(ix))
        if session.name == "postgresql":
            session.execute(_pg_analyze(session, target))
        total = session.scalar(count)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    return LoadReport(name, nrows, replaced, total, rebuild)


def _child_main(pipe, func, args):
    def report(done, total):
        pipe.send(("progress", done, total))
    try:
        result = ("done", func(*args, progress=report))
    except BaseException as exc:      # sent back and raised again in the parent
        try:
            pickle.dumps(exc)
            result = ("error", exc)
        except Exception:
            result = ("error", RuntimeError(f"{type(exc).__name__}: {exc}"))
    pipe.send(result)
    pipe.close()


def _in_child(func, args, progress):
    """Run ``func(*args, progress=...)`` in a forked process; its result or exception.

    The ADBC SQLite driver carries its own copy of the SQLite library. Two copies
    of SQLite in one process must never have the same database file open: POSIX
    advisory locks belong to the process, so one copy closing its file descriptor
    silently drops the other copy's locks, which corrupts the database
    (https://www.sqlite.org/howtocorrupt.html, 2.2.1) -- and the archive's own
    connections (sqlite3 module, SQLAlchemy pool) are open in this process. In a
    child process each library's locks are its own. The child inherits the Arrow
    table by fork (copy-on-write, no copy made) and never touches the parent's
    connections; progress and the outcome come back through a pipe.
    """
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(child_end, func, args), daemon=True)
    proc.start()
    child_end.close()
    outcome = None
    try:
        while True:
            try:
                message = parent_end.recv()
            except EOFError:
                break
            if message[0] == "progress":
                if progress:
                    progress(message[1], message[2])
            else:
                outcome = message
                break
    except BaseException:
        proc.terminate()          # e.g. Ctrl-C: the child's transaction is rolled back
        proc.join()
        raise
    finally:
        parent_end.close()
    proc.join()
    if outcome is None:
        raise RuntimeError(f"the loading process died (exit code {proc.exitcode}); "
                           "the database is unchanged")
    if outcome[0] == "error":
        raise outcome[1]
    return outcome[1]

"""Bulk loading of validated rows: one transaction, chunks, replace by key.

The rows arrive as one Arrow table (:meth:`ingest.validate.Prepared.arrow`) and go
to the database through ADBC (``adbc_driver_sqlite``, ``adbc_driver_postgresql``),
whose drivers bind the Arrow arrays in C (PostgreSQL: binary ``COPY``): no Python
object is made per value, which is where the speed comes from.

Loading is all-or-nothing: every statement -- the staged keys and the checks
(:mod:`ingest.staging`), the removal of the rows with those keys (re-ingesting
gives the same state), the appends, any index rebuilds -- runs in one transaction
on one ADBC connection, rolled back on any failure or refusal (a dry run always).

When the rows of the file outnumber those the table keeps (the first load of a
catalogue, typically) the table's indexes are dropped before the delete and the
inserts and created again after them, inside the same transaction: building a
B-tree once is several times faster than maintaining it row by row.

SQLite loads run in a forked child process: see :func:`_in_child` for why. Large
SQLite loads use every core: helper processes write the later parts of the rows
into part files of their own while the loading process inserts the first part
into the table, which then takes each part file in with one ``INSERT INTO table
SELECT * FROM part.table``. When the indexes are being rebuilt SQLite copies
those records as they are (its transfer optimisation: same table definition, no
index on the target), without decoding a value, so inserting a million rows
costs about the time of one part. The part files are outside the archive's
database and removed in every case; the archive's table changes only inside the
one transaction.
"""
from __future__ import annotations

import ctypes
import dataclasses
import logging
import multiprocessing
import os
import pickle
import signal
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archive import db as archive_db
from archive.progress import Forwarder, Progress

from .errors import IngestError
from .staging import (Checks, delete_matching, find_refusals, pg_analyze, stage_keys,
                      staged_rows)
from .validate import Prepared

__all__ = ["LoadReport", "load", "CHUNK_ROWS"]

log = logging.getLogger(__name__)

#: Rows converted and sent to the database at a time.
CHUNK_ROWS = 100_000
#: Files with at least this many rows, more than the table keeps, rebuild the indexes.
REBUILD_MIN_ROWS = 10_000
#: Rows per part below which SQLite loads are not split over processes.
PART_MIN_ROWS = 100_000
#: PostgreSQL: loads bringing at least this fraction of the table's rows ANALYZE it
#: (autovacuum's own default threshold, autovacuum_analyze_scale_factor).
ANALYZE_FRACTION = 0.1
#: Most parts of one load (each part file is attached to the loading connection,
#: and SQLite attaches at most 10 databases by default).
MAX_PARTS = 8


@dataclass
class LoadReport:
    table: str
    inserted: int
    replaced: int
    total: int
    rebuilt_indexes: bool
    refusals: list[str] = field(default_factory=list)
    dry_run: bool = False


def _compile(stmt, dialect) -> str:
    return str(stmt.compile(dialect=dialect))


class _Session:
    """One ADBC connection for the whole load: compiled SQL and Arrow bulk inserts.

    SQLite: ``adbc_driver_sqlite`` on the database file, in autocommit mode with
    the transaction issued by hand (``BEGIN IMMEDIATE`` takes the write lock up
    front, so no other writer can slip in between the count and the delete);
    PostgreSQL: ``adbc_driver_postgresql`` (libpq), autocommit off, so every
    statement runs in one transaction, DDL included. Rows go in with
    ``adbc_ingest``, which binds the Arrow arrays in C (PostgreSQL: binary COPY).
    """

    def __init__(self, url, dialect, pragmas=()):
        self.dialect = dialect
        self.name = dialect.name
        self.pragmas = tuple(pragmas)
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
            # the archive's busy timeout and cache, plus sorter threads for CREATE
            # INDEX: SQLite sorts in worker threads only when its temporary files
            # may be files (temp_store=MEMORY turns the workers off); 1,000,000 rows,
            # four indexes: 6.2 s with MEMORY, 4.9 s with FILE
            for pragma in ("busy_timeout=30000", "cache_size=-262144", "temp_store=FILE",
                           "threads=2", *pragmas):
                self.execute(f"PRAGMA {pragma}")

    def execute(self, stmt, parameters=None):
        if isinstance(stmt, (sa.sql.ClauseElement, sa.schema.ExecutableDDLElement)):
            stmt = _compile(stmt, self.dialect)
        self.cur.execute(stmt, parameters)
        try:
            self.cur.fetchall()             # finish the statement (PRAGMAs return rows)
        except Exception:
            pass

    def scalar(self, stmt):
        self.cur.execute(_compile(stmt, self.dialect))
        return self.cur.fetchone()[0]

    def rows(self, stmt) -> list[tuple]:
        # the literals are integers made here (LIMIT, CASE results): inlined
        self.cur.execute(str(stmt.compile(dialect=self.dialect,
                                          compile_kwargs={"literal_binds": True})))
        return self.cur.fetchall()

    def insert_rows(self, table: sa.Table, data: pa.Table):
        """Append the Arrow table ``data`` (columns named like ``table``'s) to ``table``."""
        temporary = "TEMPORARY" in table._prefixes
        self.cur.adbc_ingest(table.name, data, mode="append", temporary=temporary)

    def begin(self, read_only: bool = False):
        if self.name == "sqlite":
            # a dry run only reads the archive: a deferred transaction takes no
            # write lock (its staging table is in the connection's temp database)
            self.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")
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


def _pg_vacuum(session: _Session, table: sa.Table) -> None:
    """PostgreSQL, after the commit: VACUUM the table, so that the new rows' hint bits
    and the visibility map are set now instead of by the first queries (a 1,000,000-row
    load: 1.8 s, after which a full COUNT(*) takes 96-107 ms instead of 160-233 ms,
    and index-only scans work at once). VACUUM cannot run in a transaction. The rows
    are committed already: a failure here is logged, not raised."""
    try:
        session.conn.adbc_connection.set_autocommit(True)
        session.execute("VACUUM " + session.dialect.identifier_preparer.format_table(table))
    except Exception as exc:                      # noqa: BLE001 - the load itself succeeded
        log.warning("VACUUM of %s after the load failed (autovacuum will do it): %s",
                    table.name, exc)


def _load_order(prep: Prepared) -> np.ndarray | None:
    """Rows of positional tables are stored in HEALPix order: the rows of a cone sit
    together in the table, so a cone search reads a few pages instead of one per row."""
    if "_hpx" not in prep.names:
        return None
    return np.argsort(prep.column("_hpx"), kind="stable")


def load(engine: Engine, prep: Prepared, progress: Progress | None = None,
         checks: Checks | None = None) -> LoadReport:
    """Load ``prep`` into its table in one transaction (see the module docstring);
    ``progress`` (:mod:`archive.progress`) gets the steps loading, indexing and
    committing.

    ``checks`` (default: replace mode, no check of emptied values) say what
    to refuse; a refused load raises :class:`IngestError` and writes nothing, a dry
    run returns the report, refusals included, and writes nothing either.
    """
    checks = checks or Checks(prep.table.name, allow_empty=True)
    target = archive_db.table_for(prep.table)
    order = _load_order(prep)
    # columns with empty cells: only those that may be null (required ones are checked)
    checks = dataclasses.replace(checks, with_nulls=tuple(
        n for n, null in zip(prep.names, prep.nulls)
        if null is not None and n not in prep.table.key))
    data = prep.arrow(order, release=True)
    staged = staged_rows(prep, data, order, checks.with_nulls)
    args = (engine.url, engine.dialect, target, data, staged, tuple(prep.table.key),
            prep.table.name, checks)
    if engine.dialect.name == "sqlite":
        return _in_child(_load, args, progress)
    return _load(*args, progress=Progress.of(progress))


def _load(url, dialect, target: sa.Table, data: pa.Table, staged: pa.Table,
          key: tuple[str, ...], name: str, checks: Checks,
          progress: Progress) -> LoadReport:
    nrows = data.num_rows
    # part files are started before this process opens the database (the helpers
    # are forked from it and must not inherit an open connection)
    parts = (_start_parts(url, dialect, target, data)
             if dialect.name == "sqlite" and not checks.dry_run else [])
    session = None
    rebuild = False
    try:
        progress.start(f"loading {name}", nrows, "rows")
        session = _Session(url, dialect)
        session.begin(read_only=checks.dry_run)
        count = sa.select(sa.func.count()).select_from(target)
        existing = session.scalar(count)
        staging, replaced = None, 0
        if existing:
            staging, replaced = stage_keys(session, target, staged, key, checks.with_nulls)
        refusals = (find_refusals(session, staging, target, key, replaced, checks, name)
                    if replaced else [])
        if refusals or checks.dry_run:
            session.rollback()
            if refusals and not checks.dry_run:
                raise IngestError("; ".join(refusals) + "; nothing was ingested")
            return LoadReport(name, nrows, replaced, existing - replaced + nrows, False,
                              refusals, dry_run=True)
        remaining = existing - replaced
        indexes = sorted(target.indexes, key=lambda ix: ix.name)
        rebuild = nrows > remaining and nrows >= REBUILD_MIN_ROWS
        if rebuild:            # before the delete: no index maintenance for it either
            for ix in indexes:
                session.execute(sa.schema.DropIndex(ix))
        if staging is not None:
            if replaced == existing:   # every row is replaced: no join (SQLite empties
                session.execute(target.delete())        # the table's B-tree at once)
            elif replaced:
                delete_matching(session, staging, target, key)
            session.execute(sa.schema.DropTable(staging))
        own_rows = parts[0].start if parts else nrows
        for start in range(0, own_rows, CHUNK_ROWS):
            chunk = data.slice(start, min(CHUNK_ROWS, own_rows - start))
            session.insert_rows(target, chunk)
            progress.advance(len(chunk))
        for part in parts:
            part.transfer(session, target)
            progress.advance(part.rows)
        progress.start(f"indexing {name}")
        if rebuild:
            for ix in indexes:
                session.execute(sa.schema.CreateIndex(ix))
        if session.name == "postgresql" and nrows >= ANALYZE_FRACTION * (remaining + nrows):
            # statistics for the planner, committed with the rows; a small update
            # leaves them to autovacuum (ANALYZE of 1,000,000 rows takes 1.3 s)
            session.execute(pg_analyze(session, target))
        total = session.scalar(count)
        progress.start(f"committing {name}")
        # cached web search results of this table are out of date (archive.search.cache)
        # (``name`` is the data model's table name: a literal is safe)
        session.execute(str(archive_db.search_cache.delete().where(
            archive_db.search_cache.c.catalogue == name).compile(
                dialect=dialect, compile_kwargs={"literal_binds": True})))
        session.commit()
        if session.name == "postgresql":
            _pg_vacuum(session, target)
        progress.finish()
    except BaseException:
        progress.finish(failed=True)
        if session is not None:
            session.rollback()
        raise
    finally:
        try:
            if session is not None:
                session.close()
        finally:
            for part in parts:
                part.discard()
    return LoadReport(name, nrows, replaced, total, rebuild)


# -- parts written by helper processes (SQLite) ------------------------------------------

class _Part:
    """Rows ``start:stop`` of the load, written by a forked helper into a file of its own."""

    def __init__(self, path: Path, start: int, stop: int, process, pipe):
        self.path, self.start, self.stop = path, start, stop
        self.process, self.pipe = process, pipe

    @property
    def rows(self) -> int:
        return self.stop - self.start

    def transfer(self, session: _Session, target: sa.Table) -> None:
        """Wait for the helper, then append its rows to ``target`` (same transaction)."""
        try:
            outcome = self.pipe.recv()
        except EOFError:                     # the helper died without a word
            outcome = None
        self.process.join()
        if outcome is None or outcome[0] != "done":
            detail = outcome[1] if outcome else f"exit code {self.process.exitcode}"
            raise RuntimeError(f"writing rows {self.start + 1}-{self.stop} (in load order) "
                               f"failed: {detail}")
        # attached until the connection closes (SQLite cannot detach a database a
        # transaction has read), hence one schema name per part
        schema = f"ingest_part_{self.start}"
        session.execute(f"ATTACH DATABASE ? AS {schema}", (str(self.path),))
        # ``SELECT *`` without a column list, between tables made by the same
        # CREATE TABLE: the form SQLite copies record by record
        session.execute(f"INSERT INTO main.{_quoted(session, target)} "
                        f"SELECT * FROM {schema}.{_quoted(session, target)}")

    def discard(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()
        self.pipe.close()
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)


def _quoted(session: _Session, table: sa.Table) -> str:
    return session.dialect.identifier_preparer.quote(table.name)


def _start_parts(url, dialect, target: sa.Table, data: pa.Table) -> list[_Part]:
    """Fork one helper per spare core, each writing a share of the rows (the last
    ones) into its own part file next to the database; none for small loads."""
    nrows = data.num_rows
    nparts = min(os.cpu_count() or 1, nrows // PART_MIN_ROWS, MAX_PARTS)
    if nparts < 2 or nrows < REBUILD_MIN_ROWS:
        return []
    bounds = [nrows * k // nparts for k in range(nparts + 1)]
    directory = Path(url.database).resolve().parent
    _remove_stale_parts(directory)
    ctx = multiprocessing.get_context("fork")
    parts = []
    try:
        for k in range(1, nparts):
            path = directory / f".ingest-part-{os.getpid()}-{uuid.uuid4().hex[:8]}.sqlite"
            receiver, sender = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_write_part, daemon=True,
                               args=(sender, path, dialect, target, data,
                                     bounds[k], bounds[k + 1], os.getpid()))
            proc.start()
            sender.close()
            parts.append(_Part(path, bounds[k], bounds[k + 1], proc, receiver))
    except BaseException:
        for part in parts:
            part.discard()
        raise
    return parts


def _remove_stale_parts(directory: Path) -> None:
    """Remove part files left by a load whose process was killed (SIGKILL, power
    loss): their names carry the loading process's id, which no longer runs."""
    for path in directory.glob(".ingest-part-*-*.sqlite*"):
        try:
            pid = int(path.name.split("-")[2])
        except (IndexError, ValueError):
            continue
        try:
            os.kill(pid, 0)                  # signal 0: only asks whether it exists
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except PermissionError:              # another user's running process
            pass


def _die_with_parent(parent: int) -> None:
    """Linux: have the kernel kill this forked process (SIGKILL) when its parent dies.

    A loading process outliving the command that started it (``kill -9`` of the
    command, the OOM killer) would commit a load its operator stopped; with this
    it dies too and SQLite rolls its transaction back. Python has no binding for
    prctl(PR_SET_PDEATHSIG), hence ctypes.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))          # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):               # not Linux: nothing to set
        return
    if os.getppid() != parent:                      # the parent died before the prctl
        os._exit(1)


def _write_part(pipe, path: Path, dialect, target: sa.Table, data: pa.Table,
                start: int, stop: int, parent: int) -> None:
    """Helper process: rows ``start:stop`` into a new file holding ``target``'s table
    (no indexes, no journal: the file is thrown away if anything fails)."""
    _die_with_parent(parent)
    try:
        session = _Session(sa.engine.make_url(f"sqlite:///{path}"), dialect,
                           pragmas=(f"page_size={archive_db.SQLITE_PAGE_SIZE}",
                                    "journal_mode=OFF", "synchronous=OFF"))
        try:
            session.execute("BEGIN")
            session.execute(sa.schema.CreateTable(target, include_foreign_key_constraints=[]))
            for first in range(start, stop, CHUNK_ROWS):
                session.insert_rows(target, data.slice(first, min(CHUNK_ROWS, stop - first)))
            session.execute("COMMIT")
        finally:
            session.close()
        pipe.send(("done", stop - start))
    except BaseException as exc:             # reported to the loading process
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        pipe.close()


def _child_main(pipe, func, args, parent):
    _die_with_parent(parent)
    try:
        result = ("done", func(*args, progress=Forwarder(pipe)))
    except BaseException as exc:      # sent back and raised again in the parent
        try:
            pickle.loads(pickle.dumps(exc))     # some driver errors do not round-trip
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
    # not daemonic: it forks the part-file helpers (it is always joined or
    # terminated below)
    proc = ctx.Process(target=_child_main, args=(child_end, func, args, os.getpid()))
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
                if progress is not None:
                    progress.replay(message[1:])
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

"""Bulk loading of validated rows: one transaction, chunks, replace by key.

Loading is all-or-nothing: every statement, the removal of rows whose keys the
file carries (so re-ingesting gives the same state), the inserts and any index
rebuilds run in one transaction that is rolled back on any failure. SQL text is
compiled by SQLAlchemy from the table objects of :mod:`archive.db` (and composed
with :mod:`psycopg.sql` for PostgreSQL's COPY); the rows are passed to the driver
in bulk (SQLite ``executemany``, PostgreSQL ``COPY``), which is where the speed
comes from.

When the rows of the file outnumber those already in the table (the first load of
a catalogue, typically) the table's secondary indexes are dropped before the
inserts and created again after them, inside the same transaction: building a
B-tree once is several times faster than maintaining it row by row.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archive import db as archive_db

from .validate import Prepared

__all__ = ["LoadReport", "load", "CHUNK_ROWS"]

#: Rows converted and sent to the database at a time.
CHUNK_ROWS = 50_000
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
    """The raw DBAPI side of one load: execute compiled SQL, bulk-insert rows."""

    def __init__(self, raw, dialect):
        self.raw = raw
        self.dbapi = raw.driver_connection
        self.dialect = dialect
        self.name = dialect.name
        self.cur = self.dbapi.cursor()

    def execute(self, stmt):
        if isinstance(stmt, (sa.sql.ClauseElement, sa.schema.ExecutableDDLElement)):
            stmt = _compile(stmt, self.dialect)
        self.cur.execute(stmt)

    def scalar(self, stmt):
        self.execute(stmt)
        return self.cur.fetchone()[0]

    def insert_rows(self, table: sa.Table, names: list[str], rows: list[tuple]):
        if self.name == "sqlite":
            compiled = table.insert().values(
                {n: sa.bindparam(n) for n in names}).compile(dialect=self.dialect)
            # pysqlite compiles to qmark parameters; the rows must follow their order
            assert list(compiled.positiontup) == list(names), compiled.positiontup
            self.cur.executemany(str(compiled), rows)
        else:
            from psycopg import sql
            copy_stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names)))
            with self.cur.copy(copy_stmt) as copy:
                for row in rows:
                    copy.write_row(row)


def _pg_analyze(table: sa.Table):
    from psycopg import sql
    return sql.SQL("ANALYZE {}").format(sql.Identifier(table.name))


def _begin(session: _Session):
    if session.name == "sqlite":
        session.saved_isolation = session.dbapi.isolation_level
        session.dbapi.isolation_level = None      # we issue BEGIN/COMMIT ourselves
        session.execute("BEGIN IMMEDIATE")
    # psycopg opens a transaction with the first statement (autocommit is off)


def _commit(session: _Session):
    if session.name == "sqlite":
        session.execute("COMMIT")
    else:
        session.dbapi.commit()


def _rollback(session: _Session):
    try:
        if session.name == "sqlite":
            if session.dbapi.in_transaction:
                session.execute("ROLLBACK")
        else:
            session.dbapi.rollback()
    except Exception:  # the original error matters more; the connection is discarded
        session.raw.invalidate()


def _delete_existing(session: _Session, target: sa.Table, prep: Prepared) -> int:
    """Remove rows whose key is in the file; returns how many were removed."""
    key = prep.table.key
    staging = _staging_table(target, key)
    session.execute(sa.schema.CreateTable(staging))
    idx = [prep.names.index(k) for k in key]
    for start in range(0, prep.nrows, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, prep.nrows)
        rows = list(zip(*[prep.values[i][start:stop].tolist() for i in idx]))
        session.insert_rows(staging, list(key), rows)
    if session.name == "sqlite":
        session.execute(sa.schema.CreateIndex(sa.Index("ingest_staging_keys_ix",
                                                       *staging.c)))
    else:
        session.execute(_pg_analyze(staging))
    cond = sa.and_(*[staging.c[k] == target.c[k] for k in key])
    session.execute(target.delete().where(sa.exists().where(cond)))
    removed = session.cur.rowcount
    session.execute(sa.schema.DropTable(staging))
    return max(removed, 0)


def load(engine: Engine, prep: Prepared,
         progress: Callable[[int, int], None] | None = None) -> LoadReport:
    """Load ``prep`` into its table in one transaction (see the module docstring)."""
    target = archive_db.table_for(prep.table)
    raw = engine.raw_connection()
    session = _Session(raw, engine.dialect)
    rebuild = False
    try:
        _begin(session)
        count = sa.select(sa.func.count()).select_from(target)
        existing = session.scalar(count)
        replaced = _delete_existing(session, target, prep) if existing else 0
        remaining = existing - replaced
        indexes = sorted(target.indexes, key=lambda ix: ix.name)
        rebuild = prep.nrows > remaining and prep.nrows >= REBUILD_MIN_ROWS
        if rebuild:
            for ix in indexes:
                session.execute(sa.schema.DropIndex(ix))
        for start in range(0, prep.nrows, CHUNK_ROWS):
            stop = min(start + CHUNK_ROWS, prep.nrows)
            session.insert_rows(target, prep.names, prep.rows(start, stop))
            if progress:
                progress(stop - start, prep.nrows)
        if rebuild:
            for ix in indexes:
                session.execute(sa.schema.CreateIndex(ix))
        if session.name == "postgresql":
            session.execute(_pg_analyze(target))
        total = session.scalar(count)
        _commit(session)
    except BaseException:
        _rollback(session)
        raise
    finally:
        if session.name == "sqlite" and hasattr(session, "saved_isolation"):
            try:
                session.dbapi.isolation_level = session.saved_isolation
            except Exception:
                pass
        session.cur.close()
        raw.close()
    return LoadReport(prep.table.name, prep.nrows, replaced, total, rebuild)

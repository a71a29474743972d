"""The query executor: read-only, time-limited, maxrec + 1 overflow, chunked streaming."""
import pytest
import sqlalchemy as sa

import datamodel
from archive.db import Database, catalogue_tables
from archive.errors import ArchiveFault, FatalFault, QueryTimeout, UsageFault
from archive.query import execute
from archive.result import ResultColumn
from helpers import longterm_rows, result_rows

LONGTERM = catalogue_tables["longterm"]


@pytest.fixture
def database(empty_config):
    db = Database(empty_config["DATABASE_URL"])
    with db.engine.begin() as conn:
        conn.execute(LONGTERM.insert(), longterm_rows(250))
    yield db
    db.dispose()


COLS = [ResultColumn("srcid", "long"), ResultColumn("n_obs", "int")]


def test_rows_stream_in_chunks_without_overflow(database):
    stmt = sa.select(LONGTERM.c.srcid, LONGTERM.c.n_obs).order_by(LONGTERM.c.srcid)
    result = execute(database.readonly, stmt, COLS, maxrec=1000, timeout=10, chunk_rows=64)
    chunks = list(result.chunks())
    assert [len(c) for c in chunks] == [64, 64, 64, 58]
    assert [r[0] for c in chunks for r in c] == list(range(1, 251))
    assert result.overflow is False and result.row_count == 250


@pytest.mark.parametrize("maxrec, top, expected, overflow", [
    (100, None, 100, True),      # MAXREC truncates: overflow
    (250, None, 250, False),     # exactly all rows: no overflow
    (0, None, 0, True),          # MAXREC=0: metadata only, overflow
    (100, 50, 50, False),        # TOP below MAXREC wins, no overflow
    (100, 200, 100, True),       # TOP above MAXREC: truncated at MAXREC
])
def test_maxrec_and_top(database, maxrec, top, expected, overflow):
    stmt = sa.select(LONGTERM.c.srcid, LONGTERM.c.n_obs).order_by(LONGTERM.c.srcid)
    if top is not None:
        stmt = stmt.limit(top)
    result = execute(database.readonly, stmt, COLS, maxrec=maxrec, timeout=10, chunk_rows=30,
                     top=top)
    rows = result_rows(result)
    assert len(rows) == expected and result.overflow is overflow
    assert [r[0] for r in rows] == list(range(1, expected + 1))


@pytest.mark.parametrize("statement", [
    "DELETE FROM longterm",
    "UPDATE longterm SET n_obs = 0",
    "INSERT INTO longterm (iauname, srcid, ra, dec, _hpx, _x, _y, _z) "
    "VALUES ('x', 999999, 0, 0, 0, 1, 0, 0)",
    "DROP TABLE longterm",
    "CREATE TABLE evil (a int)",
])
def test_writes_are_refused(database, statement):
    if database.dialect == "sqlite":
        # the authorizer refuses the statement
        with pytest.raises(UsageFault, match="not allowed"):
            execute(database.readonly, sa.text(statement), COLS, maxrec=10, timeout=10)
    else:
        # PostgreSQL: the executor's server-side cursor cannot even hold a write ...
        with pytest.raises(ArchiveFault):
            execute(database.readonly, sa.text(statement), COLS, maxrec=10, timeout=10)
        # ... and every transaction of the read-only engine is READ ONLY
        with database.readonly.connect() as conn:
            with pytest.raises(sa.exc.DBAPIError, match="read-only transaction"):
                conn.exec_driver_sql(statement)
    with database.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(LONGTERM)).scalar() == 250
        assert conn.execute(sa.select(sa.func.min(LONGTERM.c.n_obs))).scalar() == 2


@pytest.mark.parametrize("statement", ["ATTACH DATABASE '/tmp/x.sqlite' AS x",
                                       "PRAGMA writable_schema = 1"])
def test_sqlite_attach_and_pragma_are_refused(database, statement):
    if database.dialect != "sqlite":
        pytest.skip("SQLite-only statements")
    with pytest.raises(UsageFault, match="not allowed"):
        execute(database.readonly, sa.text(statement), COLS, maxrec=10, timeout=10)


def test_a_long_query_is_stopped_at_the_time_limit(database):
    t = [LONGTERM.alias(f"t{i}") for i in range(5)]
    heavy = sa.select(sa.func.count()).select_from(*t).where(
        t[0].c.ra + t[1].c.ra + t[2].c.ra + t[3].c.ra + t[4].c.ra > 0)
    with pytest.raises(QueryTimeout, match="limit of 0.5 s"):
        result = execute(database.readonly, heavy, [ResultColumn("n", "long")], maxrec=10,
                         timeout=0.5)
        result_rows(result)


def test_value_errors_of_the_query_are_usage_faults(database):
    stmt = sa.select(sa.cast(LONGTERM.c.n_obs, sa.Integer) / (LONGTERM.c.n_obs - LONGTERM.c.n_obs))
    if database.dialect == "sqlite":
        rows = result_rows(execute(database.readonly, stmt, COLS[:1], maxrec=5, timeout=10))
        assert rows[0] == (None,)           # SQLite: division by zero gives NULL
    else:
        with pytest.raises(UsageFault, match="division by zero"):
            result_rows(execute(database.readonly, stmt, COLS[:1], maxrec=5, timeout=10))


def test_database_errors_that_are_ours_are_fatal(database):
    with pytest.raises(FatalFault, match="could not run the query"):
        execute(database.readonly, sa.text("SELECT nosuchcolumn FROM longterm"), COLS,
                maxrec=5, timeout=10)


@pytest.mark.parametrize("name", [n for n, t in datamodel.TABLES.items()
                                  if any(c.indexed and c.name == t.key[0]
                                         for c in t.columns)])
def test_leading_key_column_is_searched_through_the_key_index(empty_config, name):
    """Indexed columns that lead the table's key get no index of their own: the
    key's index answers them (one index fewer to build at every ingest)."""
    table = catalogue_tables[name]
    key = datamodel.TABLES[name].key
    assert [ix.name for ix in table.indexes if ix.name != f"ux_{table.name}_key"
            and [c.name for c in ix.columns] == [key[0]]] == []
    db = Database(empty_config["DATABASE_URL"])
    try:
        column = table.c[key[0]]
        value = 1 if isinstance(column.type, sa.Integer) else "0100010101"
        stmt = sa.select(column).where(column == value)
        sql = str(stmt.compile(dialect=db.engine.dialect,
                               compile_kwargs={"literal_binds": True}))
        with db.engine.connect() as conn:
            if db.dialect == "postgresql":
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
                plan = conn.exec_driver_sql("EXPLAIN " + sql).all()
            else:
                plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
            conn.rollback()
        text = "\n".join(str(row[-1]) for row in plan)
        assert f"ux_{table.name}_key" in text, text
    finally:
        db.dispose()


@pytest.mark.parametrize("with_boolean", [False, True])
def test_rows_come_back_with_the_values_sqlalchemy_gives(database, with_boolean):
    """Numbers and text are read from the DBAPI cursor directly (no result processor
    applies); a boolean column has one on SQLite, and its values are still Python
    bools. Either way the chunks are plain tuples with the stored values."""
    cols = [LONGTERM.c.srcid, LONGTERM.c.iauname, LONGTERM.c.ra]
    meta = [ResultColumn("srcid", "long"), ResultColumn("iauname", "char", arraysize="*"),
            ResultColumn("ra", "double")]
    if with_boolean:
        cols.append(LONGTERM.c.var_flag)
        meta.append(ResultColumn("var_flag", "boolean"))
    stmt = sa.select(*cols).where(LONGTERM.c.srcid <= 30).order_by(LONGTERM.c.srcid)
    result = execute(database.readonly, stmt, meta, maxrec=1000, timeout=30, chunk_rows=7)
    rows = result_rows(result)
    assert all(type(row) is tuple for row in rows)
    with database.engine.connect() as conn:
        expected = [tuple(r) for r in conn.execute(stmt)]
    assert rows == expected and len(rows) == 30
    assert rows[4][:3] == (5, "3XMM J000004", pytest.approx(10.04))
    if with_boolean:
        assert [r[3] for r in rows] == [(k - 1) % 3 == 0 for k in range(1, 31)]
        assert {type(r[3]) for r in rows} == {bool}

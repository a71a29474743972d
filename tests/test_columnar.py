"""The columnar fast path (ADBC SQLite/PostgreSQL -> Arrow batches -> numpy) and the time limit.

The fast path must give exactly what the ordinary sqlite3 path gives, for every
datatype, nulls (also a column that is NULL throughout the first batch, which the
ADBC driver would infer as integer) and non-ASCII text; it must be used only for
plain single-table scans; and the query time limit must bound the database's work,
not the time a client takes to read the result.
"""
import base64
import math
import re
import threading
import time

import numpy as np
import pytest
import sqlalchemy as sa

import archive.columnar as columnar
from archive.db import Database
from archive.errors import QueryTimeout
from archive.formats import all_formats
from archive.query import execute, interrupt
from archive.result import ResultColumn
from helpers import first_table, result_rows

META = sa.MetaData()
ALLTYPES = sa.Table(
    "alltypes", META,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("b", sa.Boolean(create_constraint=False)),
    sa.Column("s", sa.SmallInteger),
    sa.Column("i", sa.Integer),
    sa.Column("l", sa.BigInteger),
    sa.Column("f", sa.REAL),
    sa.Column("d", sa.Double),
    sa.Column("cfix", sa.String),
    sa.Column("cvar", sa.String),
    sa.Column("u", sa.String),
)
COLUMNS = [ResultColumn("id", "int"), ResultColumn("b", "boolean"),
           ResultColumn("s", "short"), ResultColumn("i", "int"), ResultColumn("l", "long"),
           ResultColumn("f", "float"), ResultColumn("d", "double"),
           ResultColumn("cfix", "char", arraysize="4"), ResultColumn("cvar", "char", arraysize="*"),
           ResultColumn("u", "unicodeChar", arraysize="*")]
TEXTS = ["plain", "Zürich", "✓ check", "<&> \"quoted\"", "tab\there", "", "x" * 40,
         "emoji 😀", "ctrl\x01char", "new\nline"]
NROWS = 57
FIRST_NULLS = 12        # every nullable column is NULL in the first rows (> one chunk)
CHUNK = 5


def _row(k: int) -> dict:
    if k < FIRST_NULLS or k % 7 == 3:
        return {"id": k}
    return {"id": k, "b": k % 2 == 0, "s": (-1) ** k * (k * 101 % 32000),
            "i": (-1) ** k * k * 1_000_003, "l": (-1) ** k * (2 ** 62 - k),
            "f": k / 3.0, "d": math.pi * k * 1e-5 if k % 5 else float("inf"),
            "cfix": f"{k:04d}", "cvar": TEXTS[k % len(TEXTS)],
            "u": TEXTS[(k + 3) % len(TEXTS)]}


@pytest.fixture
def database(empty_config):
    db = Database(empty_config["DATABASE_URL"])
    META.create_all(db.engine)
    with db.engine.begin() as conn:
        for k in range(NROWS):
            conn.execute(ALLTYPES.insert(), [{c.name: None for c in ALLTYPES.columns}
                                             | _row(k)])
    yield db
    db.dispose()


@pytest.fixture
def slow_path(monkeypatch):
    """A switch that makes ``execute`` take the ordinary path."""
    def disable():
        monkeypatch.setattr(columnar, "plan", lambda *args: None)
    return disable


def _plain():
    return sa.select(*ALLTYPES.c)


def _rows(result):
    """The rows, the ``float`` (32-bit) column as float32: PostgreSQL's row path
    gives its shortest decimal text, the columnar path the same float32 widened."""
    f = [c.name for c in COLUMNS].index("f")
    return [tuple(np.float32(v) if i == f and v is not None else v
                  for i, v in enumerate(row))
            for row in result_rows(result)]


def test_fast_path_rows_match_the_data(database):
    result = execute(database.readonly, _plain(), COLUMNS, maxrec=1000, timeout=30, plain_scan=True,
                     chunk_rows=CHUNK)
    assert result.columnar is True
    rows = sorted(_rows(result))
    assert len(rows) == NROWS and result.overflow is False and result.row_count == NROWS
    for row in rows:
        expected = _row(row[0])
        for col, value in zip(COLUMNS, row):
            want = expected.get(col.name)
            if col.name == "b" and want is not None:
                assert bool(value) is want
            elif col.name == "f" and want is not None:
                assert value == pytest.approx(want, rel=1e-6)
            else:
                assert value == want, (col.name, row[0])


def test_fast_path_rows_identical_to_slow_path(database, slow_path):
    fast = execute(database.readonly, _plain(), COLUMNS, maxrec=40, timeout=30, plain_scan=True,
                   chunk_rows=CHUNK)
    fast_rows, fast_overflow = _rows(fast), fast.overflow
    slow_path()
    slow = execute(database.readonly, _plain(), COLUMNS, maxrec=40, timeout=30, plain_scan=True,
                   chunk_rows=CHUNK)
    assert slow.columnar is False
    assert fast_rows == _rows(slow)
    assert fast_overflow is slow.overflow is True and len(fast_rows) == 40


def _normalised(key: str, body: bytes) -> bytes:
    """The document with BINARY2 base64 decoded (line breaks fall at chunk ends,
    which differ between the paths) and the request date removed."""
    if key == "votable":
        match = re.search(rb"<STREAM encoding=\"base64\">(.*?)</STREAM>", body, re.S)
        data = base64.b64decode(b"".join(match.group(1).split()))
        body = body[:match.start(1)] + data + body[match.end(1):]
    return body


@pytest.mark.parametrize("key", [f.key for f in all_formats()])
def test_every_format_identical_on_both_paths(database, slow_path, key):
    fmt = next(f for f in all_formats() if f.key == key)
    fast = execute(database.readonly, _plain(), COLUMNS, maxrec=50, timeout=30, plain_scan=True,
                   chunk_rows=CHUNK)
    fast_body = b"".join(fmt.render(fast))
    slow_path()
    slow = execute(database.readonly, _plain(), COLUMNS, maxrec=50, timeout=30, plain_scan=True,
                   chunk_rows=CHUNK)
    slow_body = b"".join(fmt.render(slow))
    assert _normalised(key, fast_body) == _normalised(key, slow_body)
    if key.startswith("votable"):
        table = first_table(fast_body)
        assert len(table.array) == 50
        cvar = {int(i): v for i, v in zip(table.array["id"], table.array["cvar"])}
        assert cvar[21] == "Z\\xfcrich"           # non-ASCII char: backslash escape
        u = {int(i): v for i, v in zip(table.array["id"], table.array["u"])}
        assert u[18] == "Zürich"                  # unicodeChar keeps it


@pytest.mark.parametrize("shape", ["where", "order", "group", "join", "expression",
                                   "distinct"])
def test_fast_path_only_for_declared_plain_scans(database, shape):
    """Only statements the caller declares plain scans (the ADQL translator knows)
    are read columnar; the others, and plain ones not declared, take the row path."""
    t = ALLTYPES
    other = t.alias("o")
    stmt, cols = {
        "where": (sa.select(t.c.id).where(t.c.id > 3), COLUMNS[:1]),
        "order": (sa.select(t.c.id).order_by(t.c.d), COLUMNS[:1]),
        "group": (sa.select(t.c.s).group_by(t.c.s), [COLUMNS[2]]),
        "join": (sa.select(t.c.id).select_from(t.join(other, t.c.id == other.c.id)),
                 COLUMNS[:1]),
        "expression": (sa.select((t.c.id + 1).label("id")), COLUMNS[:1]),
        "distinct": (sa.select(t.c.s).distinct(), [COLUMNS[2]]),
    }[shape]
    result = execute(database.readonly, stmt, cols, maxrec=100, timeout=30)
    assert result.columnar is False
    assert _rows(result)
    undeclared = execute(database.readonly, _plain(), COLUMNS, maxrec=100, timeout=30)
    assert undeclared.columnar is False and len(_rows(undeclared)) == NROWS


def test_columnar_connection_refuses_writes(database):
    if database.dialect == "sqlite":
        path = database.readonly.archive_sqlite_path
        refusal = "readonly"
    else:
        path = columnar._source(database.readonly)
        refusal = "read-only transaction"
    conn = columnar._connect(path)
    try:
        for statement in ("INSERT INTO alltypes (id) VALUES (1000)",
                          "DELETE FROM alltypes", "DROP TABLE alltypes",
                          "CREATE TABLE evil (a integer)"):
            cur = conn.cursor()
            with pytest.raises(Exception, match=refusal):
                cur.execute(statement)
            cur.close()
    finally:
        conn.close()
    with database.engine.connect() as check:
        assert check.execute(sa.select(sa.func.count()).select_from(ALLTYPES)
                             ).scalar_one() == NROWS


def test_columnar_time_limit(database):
    with pytest.raises(QueryTimeout, match="limit of"):
        execute(database.readonly, _plain(), COLUMNS, maxrec=100, timeout=1e-9, plain_scan=True)


def test_columnar_interrupt_ends_votable_with_error(database):
    result = execute(database.readonly, _plain(), COLUMNS, maxrec=100, timeout=30, plain_scan=True,
                     chunk_rows=CHUNK)
    fmt = next(f for f in all_formats() if f.key == "votable")
    pieces = fmt.render(result)
    head = next(pieces)
    assert interrupt(threading.get_ident()) is True
    body = head + b"".join(pieces)
    assert b'<INFO name="QUERY_STATUS" value="ERROR">' in body
    assert b"the result is incomplete" in body and body.rstrip().endswith(b"</VOTABLE>")
    first_table(body)                   # still a well-formed VOTable


@pytest.mark.parametrize("plain", [True, False])
def test_time_limit_does_not_count_a_slow_client(database, plain):
    """A client that reads slowly does not run into the query time limit."""
    stmt = _plain() if plain else sa.select(*ALLTYPES.c).where(ALLTYPES.c.id >= 0)
    result = execute(database.readonly, stmt, COLUMNS, maxrec=1000, timeout=0.5,
                     chunk_rows=CHUNK, plain_scan=plain)
    chunks = result.chunks()
    rows = list(next(chunks))
    time.sleep(0.8)                                 # longer than the limit
    for chunk in chunks:
        rows += chunk
        time.sleep(0.02)
    assert len(rows) == NROWS and result.overflow is False


def test_abandoned_result_stops_the_prefetch_thread(database):
    """Batches after the first are read ahead by a thread; a result the client
    stops reading (a closed connection) stops that thread and frees the statement."""

    def prefetchers():
        return [t for t in threading.enumerate() if t.name == "columnar-prefetch"]

    assert prefetchers() == []
    result = execute(database.readonly, _plain(), COLUMNS, maxrec=1000, timeout=30, plain_scan=True,
                     chunk_rows=CHUNK)
    chunks = result.chunks()
    first, second = next(chunks), next(chunks)
    assert 0 < len(first) + len(second) < NROWS
    assert len(prefetchers()) == 1                 # reading ahead
    chunks.close()
    assert prefetchers() == []
    # the connection went back to the pool in a usable state
    again = execute(database.readonly, _plain(), COLUMNS, maxrec=1000, timeout=30, plain_scan=True,
                    chunk_rows=CHUNK)
    assert len(_rows(again)) == NROWS

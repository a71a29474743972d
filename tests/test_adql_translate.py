"""Translation: validation against the catalogue, result metadata, dialect SQL shapes."""
from __future__ import annotations

from archive.db import PUBLISHED

import pytest
import sqlalchemy as sa

from archive.errors import UsageFault
from archive.tap.adql import (AmbiguousColumnError, ArgumentCountError, Catalog,
                              QueryTooComplexError, UnknownColumnError, UnknownFunctionError,
                              UnknownTableError, Upload, UnsupportedError, translate)
from archive.tap.adql.errors import ADQLValidationError
from archive.result import ResultColumn

CATALOG = Catalog.of(PUBLISHED)
DIALECTS = ("sqlite", "postgresql")

ERRORS = [
    # query, error class, (line, column), text in message
    ("SELECT ra FROM extras.nothere", UnknownTableError, (1, 16), "unknown table 'extras.nothere'"),
    ("SELECT ra FROM aperiodic_x", UnknownTableError, (1, 16), "unknown table"),
    ("SELECT rax FROM extras.aperiodic", UnknownColumnError, (1, 8), "unknown column 'rax'"),
    ("SELECT a.rax FROM extras.aperiodic AS a", UnknownColumnError, (1, 8), "'rax' in table 'a'"),
    ("SELECT b.ra FROM extras.aperiodic AS a", UnknownTableError, (1, 8), "no table called 'b'"),
    ("SELECT ra FROM extras.aperiodic AS a,\n extras.longterm AS b", AmbiguousColumnError,
     (1, 8), "'ra' is ambiguous"),
    ('SELECT "_hpx" FROM extras.aperiodic', UnknownColumnError, (1, 8), "'_hpx'"),
    ("SELECT \"RA\" FROM extras.aperiodic", UnknownColumnError, (1, 8), "'RA'"),
    ("SELECT sqlite_version() FROM extras.aperiodic", UnknownFunctionError, (1, 8),
     "unknown function 'sqlite_version'"),
    ("SELECT ra FROM extras.aperiodic WHERE pg_sleep(5) = 1", UnknownFunctionError, (1, 39),
     "pg_sleep"),
    ("SELECT load_extension('/tmp/x.so') FROM extras.aperiodic", UnknownFunctionError, (1, 8),
     "load_extension"),
    ("SELECT randomblob(1000000000) FROM extras.aperiodic", UnknownFunctionError, (1, 8),
     "randomblob"),
    ("SELECT ra FROM extras.aperiodic WHERE\n  SIN(ra, dec) > 0", ArgumentCountError, (2, 3),
     "SIN takes 1 argument, not 2"),
    ("SELECT ATAN2(ra) FROM extras.aperiodic", ArgumentCountError, (1, 8), "ATAN2 takes 2"),
    ("SELECT PI(1) FROM extras.aperiodic", ArgumentCountError, (1, 8), "PI takes 0"),
    ("SELECT POINT(ra, dec) FROM extras.aperiodic", UnsupportedError, (1, 8),
     "cannot be used as a value"),
    ("SELECT ra FROM extras.aperiodic WHERE CONTAINS(POINT('GALACTIC', ra, dec), "
     "CIRCLE(1, 2, 3)) = 1", UnsupportedError, (1, 54), "only ICRS"),
    ("SELECT ra FROM extras.aperiodic WHERE ra", ADQLValidationError, (1, 39),
     "needs a condition"),
    ("SELECT ra > 1 FROM extras.aperiodic", ADQLValidationError, (1, 8), "condition"),
    ("SELECT ra FROM extras.aperiodic WHERE camera > 1", ADQLValidationError, (1, 39),
     "cannot compare a string with a number"),
    ("SELECT ra FROM extras.aperiodic WHERE ra LIKE 'x'", ADQLValidationError, (1, 39),
     "LIKE compares strings"),
    ("SELECT camera, ra FROM extras.aperiodic GROUP BY camera", ADQLValidationError, (1, 16),
     "neither in GROUP BY"),
    ("SELECT ra FROM extras.aperiodic WHERE COUNT(*) > 1", ADQLValidationError, (1, 33),
     "not allowed in WHERE"),
    ("SELECT ra FROM extras.aperiodic ORDER BY 3", ADQLValidationError, (1, 42),
     "position 3"),
    ("SELECT ra FROM extras.aperiodic UNION SELECT ra, dec FROM extras.longterm",
     ADQLValidationError, (1, 1), "numbers of columns"),
    ("SELECT ra FROM extras.aperiodic, extras.aperiodic", ADQLValidationError, (1, 34),
     "give it an alias"),
    ("SELECT RAND(3) FROM extras.aperiodic", UnsupportedError, (1, 8), "seed"),
    ("SELECT ROUND(ra, dec) FROM extras.aperiodic", ADQLValidationError, (1, 18),
     "constant integer"),
    ("SELECT ra FROM extras.aperiodic LEFT JOIN extras.longterm AS l", ADQLValidationError,
     (1, 16), "needs ON or USING"),
    ("SELECT CAST(ra AS TIMESTAMP) FROM extras.aperiodic", UnsupportedError, (1, 19),
     "TIMESTAMP"),
    ("SELECT COUNT(ra, dec) FROM extras.aperiodic", ArgumentCountError, (1, 8), "COUNT takes 1"),
    ("SELECT AVG(camera) FROM extras.aperiodic", ADQLValidationError, (1, 8), "numeric"),
]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("query, cls, position, text", ERRORS, ids=[e[0][:50] for e in ERRORS])
def test_validation_errors(query, cls, position, text, dialect):
    with pytest.raises(cls) as info:
        translate(query, CATALOG, dialect)
    err = info.value
    assert isinstance(err, UsageFault)
    assert text in err.message
    assert (err.line, err.column) == position, err.message


COLUMNS = [
    ("SELECT ra, dec AS d, COUNT(*) AS n FROM extras.aperiodic GROUP BY ra, dec",
     [("ra", "double", "deg", "pos.eq.ra;meta.main"), ("d", "double", "deg", "pos.eq.dec;meta.main"),
      ("n", "long", None, None)]),
    ("SELECT ra * 2, ra / 2, src_num + 1, COUNT(*), AVG(src_num), MAX(ra), SUM(src_num) "
     "FROM extras.aperiodic GROUP BY ra, src_num",
     [("expr", "double", None, None), ("expr_2", "double", None, None),
      ("expr_3", "long", None, None), ("count", "long", None, None),
      ("avg", "double", None, None), ("max", "double", "deg", None),
      ("sum", "long", None, None)]),
    ("SELECT DISTANCE(POINT(ra, dec), POINT(1, 2)), CONTAINS(POINT(ra, dec), "
     "CIRCLE(1, 2, 3)) AS c, COORD1(POINT(ra, dec)) FROM extras.aperiodic",
     [("distance", "double", None, None), ("c", "int", None, None),
      ("ra", "double", "deg", "pos.eq.ra;meta.main")]),
    ("SELECT \"size\", LOWER(column_name), CAST(indexed AS SMALLINT) FROM TAP_SCHEMA.columns",
     [("size", "int", None, None), ("lower", "char", None, None), ("indexed", "short", None, None)]),
    ("SELECT s.x FROM (SELECT ra AS x FROM extras.aperiodic) AS s",
     [("x", "double", "deg", "pos.eq.ra;meta.main")]),
]


@pytest.mark.parametrize("query, expected", COLUMNS, ids=[c[0][:40] for c in COLUMNS])
def test_result_columns(query, expected):
    for dialect in DIALECTS:
        t = translate(query, CATALOG, dialect)
        assert [(c.name, c.datatype, c.unit, c.ucd) for c in t.columns] == expected


def test_tables_used_and_star_never_hidden_columns():
    t = translate("SELECT * FROM extras.aperiodic AS a JOIN extras.longterm AS l "
                  "ON a.srcid = l.srcid", CATALOG, "sqlite")
    assert t.tables == ["extras.aperiodic", "extras.longterm"]
    assert not any(c.name in ("_hpx", "_x", "_y", "_z") for c in t.columns)
    t = translate("SELECT a.* FROM extras.aperiodic AS a", CATALOG, "postgresql")
    assert [c.name for c in t.columns] == [c.name for c in CATALOG.find(None, ("aperiodic", 0))[0]
                                           .columns]


def test_uploads_are_tables_of_tap_upload():
    md = sa.MetaData()
    table = sa.Table("tmp_upload_1", md, sa.Column("id", sa.Integer), sa.Column("ra", sa.Double),
                     sa.Column("dec", sa.Double), prefixes=["TEMPORARY"])
    cols = [ResultColumn("id", "int"), ResultColumn("ra", "double", unit="deg"),
            ResultColumn("dec", "double", unit="deg")]
    catalog = Catalog.of(PUBLISHED, [Upload("MyList", cols, table, ra="ra", dec="dec")])
    t = translate("SELECT u.id, a.extras_id FROM TAP_UPLOAD.mylist AS u JOIN extras.aperiodic AS a "
                  "ON 1 = CONTAINS(POINT(a.ra, a.dec), CIRCLE(u.ra, u.dec, 0.01))", catalog,
                  "sqlite")
    assert "tmp_upload_1" in t.sql("sqlite") and "TAP_UPLOAD.MyList" in t.tables
    with pytest.raises(UnknownTableError):
        translate("SELECT * FROM TAP_UPLOAD.mylist", CATALOG, "sqlite")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_dialect_specific_sql(dialect):
    sql = translate("SELECT ROUND(ra, 2), LOG(ra), LOG10(ra), COT(ra), MOD(ra, 2), RAND() "
                    "FROM extras.aperiodic WHERE camera LIKE 'P%' AND camera ILIKE 'p%'",
                    CATALOG, dialect).sql(dialect)
    if dialect == "postgresql":
        assert "round(CAST(aperiodic.ra AS NUMERIC), 2)" in sql and "cot(" in sql
        assert "ILIKE" in sql and "random()" in sql and "ln(" in sql
    else:
        assert "round(aperiodic.ra, 2)" in sql and "tan(" in sql and "GLOB 'P*'" in sql
        assert "ln(" in sql and "log10(" in sql


@pytest.mark.parametrize("dialect", DIALECTS)
def test_crossmatch_uses_unit_vectors_not_trigonometry(dialect):
    sql = translate("SELECT a.srcid FROM extras.aperiodic AS a JOIN extras.longterm AS l "
                    "ON 1 = CONTAINS(POINT(a.ra, a.dec), CIRCLE(l.ra, l.dec, 0.001))",
                    CATALOG, dialect).sql(dialect)
    on = sql.split(" ON ", 1)[1]
    assert "a._x * l._x + a._y * l._y + a._z * l._z >=" in on
    assert "cos(" not in on and "sin(" not in on


@pytest.mark.parametrize("dialect", DIALECTS)
def test_constant_circle_uses_hpx_ranges(dialect):
    sql = translate("SELECT extras_id FROM extras.aperiodic WHERE 1 = CONTAINS(POINT(ra, dec), "
                    "CIRCLE(10, 20, 0.1))", CATALOG, dialect).sql(dialect)
    assert "_hpx" in sql and "_x" in sql


def test_moderate_nesting_translates_and_compiles_both_dialects():
    expr = "ra"
    for _ in range(18):          # 3 levels each (call, arguments, +): within MAX_DEPTH
        expr = f"ABS({expr} + 1)"
    for dialect in DIALECTS:
        t = translate(f"SELECT {expr} FROM extras.aperiodic", CATALOG, dialect)
        assert t.sql(dialect).count("abs(") == 18


def test_too_many_tables_refused():
    froms = ", ".join(f"extras.aperiodic AS a{i}" for i in range(20))
    with pytest.raises(QueryTooComplexError, match="more than"):
        translate(f"SELECT COUNT(*) FROM {froms}", CATALOG, "sqlite")


def test_unknown_dialect():
    with pytest.raises(ValueError, match="unknown SQL dialect"):
        translate("SELECT ra FROM extras.aperiodic", CATALOG, "oracle")

"""The ADQL 2.1 grammar: what parses, what does not, and where the error is reported."""
from __future__ import annotations

import pytest
from lark import Tree

from archive.errors import UsageFault
from archive.tap.adql import ADQLSyntaxError, QueryTooComplexError, parse

VALID = [
    "SELECT * FROM t",
    "select ra, dec from extras.aperiodic",
    "SELECT DISTINCT TOP 10 a AS x, b y FROM s.t AS u WHERE a > 1 ORDER BY x DESC OFFSET 5",
    "SELECT TOP 10 DISTINCT a FROM t",
    "SELECT t.*, u.b FROM t, u WHERE t.a = u.a",
    "SELECT a FROM t JOIN u ON t.a = u.a LEFT OUTER JOIN v USING (a) NATURAL RIGHT JOIN w",
    "SELECT a FROM t FULL OUTER JOIN u ON t.a = u.a CROSS JOIN v INNER JOIN x ON 1 = 1",
    "SELECT a FROM (t JOIN u USING (a))",
    "SELECT a FROM (SELECT a FROM t) AS s",
    "SELECT a FROM t WHERE a IN (SELECT b FROM u) AND EXISTS (SELECT 1 FROM v)",
    "SELECT a FROM t WHERE a NOT IN (1, 2, 3) AND b NOT BETWEEN 1 AND 2 AND c IS NOT NULL",
    "SELECT a FROM t WHERE a LIKE 'x%' OR a NOT ILIKE '%Y' OR NOT (b < 2)",
    "SELECT (SELECT MAX(a) FROM t) AS m, ((SELECT 1 FROM t)) FROM u",
    "SELECT a FROM t UNION SELECT a FROM u INTERSECT SELECT a FROM v EXCEPT ALL SELECT a FROM w",
    "(SELECT a FROM t ORDER BY a) UNION ALL (SELECT b FROM u) ORDER BY 1",
    "WITH x AS (SELECT a FROM t), y AS (SELECT b FROM u) SELECT * FROM x, y",
    "SELECT COUNT(*), COUNT(DISTINCT a), AVG(b), SUM(ALL c) FROM t GROUP BY d HAVING COUNT(*) > 1",
    "SELECT -a + +b * (c - d) / 2.5e-3 || 'x' || \"Mixed Case\" FROM t",
    "SELECT CAST(a AS DOUBLE PRECISION), CAST(b AS CHAR(10)), CAST(c AS BIGINT) FROM t",
    "SELECT CASE WHEN a > 1 THEN 'x' ELSE 'y' END, CASE a WHEN 1 THEN 2 END FROM t",
    "SELECT COALESCE(a, b, 0), .5, 1., 1E3, 'it''s' FROM t",
    "SELECT DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 1, 2)) FROM t",
    "SELECT * FROM t WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE('ICRS', 10, 20, 0.5))",
    "SELECT * FROM t WHERE CONTAINS(POINT(ra, dec), POLYGON(1, 2, 3, 4, 5, 6)) = 1",
    "SELECT dec, Dec, DEC FROM t",
    "SELECT \"size\" FROM TAP_SCHEMA.columns",
    "SELECT a FROM t -- a comment\n WHERE a > 1 -- another",
    "SELECT a FROM t;",
]


@pytest.mark.parametrize("query", VALID)
def test_valid_queries_parse(query):
    assert isinstance(parse(query), Tree)


INVALID = [
    # query, line, column, text in the message
    ("SELEC a FROM t", 1, 1, "SELECT"),
    ("SELECT a FROM t WHERE", 1, 22, "expected"),
    ("SELECT a FROM t; DROP TABLE t", 1, 18, "the end of the query"),
    ("SELECT a FROM t -- comment\n; DELETE FROM t", 2, 3, "the end of the query"),
    ("SELECT a FROM t /* hidden */ WHERE 1=1", 1, 17, "unexpected"),
    ("SELECT size FROM t", 1, 8, "reserved word"),
    ("SELECT a FROM t AS select", 1, 20, "reserved word"),
    ("SELECT a FROM t\nWHERE a = = 1", 2, 11, "unexpected"),
    ("SELECT a FROM t WHERE a = 'unterminated", 1, 27, "unexpected character"),
    ("SELECT a FROM t ORDER a", 1, 23, "BY"),
    ("SELECT TOP x a FROM t", 1, 12, "unsigned integer"),
    ("SELECT a FROM t WHERE b IN ()", 1, 29, "expected"),
    ("SELECT point FROM t", 1, 8, "reserved word"),
    ("", 1, 1, "empty"),
    ("SELECT a FROM", 1, 14, "ends too early"),
    ("SELECT a FROM t LIMIT 10", 1, 23, "unexpected '10'"),
    ("SELECT a FROM t WHERE a = $1", 1, 27, "unexpected character"),
]


@pytest.mark.parametrize("query, line, column, text", INVALID)
def test_syntax_errors_name_position_and_expectation(query, line, column, text):
    with pytest.raises(ADQLSyntaxError) as info:
        parse(query)
    err = info.value
    assert isinstance(err, UsageFault)
    assert (err.line, err.column) == (line, column), err.message
    assert text in err.message
    assert f"line {line}, column {column}" in err.message


def test_comment_hides_nothing_after_the_line():
    tree = parse("SELECT a FROM t -- WHERE secret = 1; DROP TABLE t\n")
    assert "secret" not in str(tree)


def test_deep_nesting_is_refused_not_a_crash():
    deep = "SELECT " + "(" * 5000 + "1" + ")" * 5000 + " FROM t"
    parse("SELECT " + "(" * 30 + "1" + ")" * 30 + " FROM t")     # parentheses do not nest the tree
    nested_fn = "SELECT " + "ABS(" * 2000 + "1" + ")" * 2000 + " FROM t"
    with pytest.raises(QueryTooComplexError, match="nested too deeply"):
        parse(nested_fn)
    parse(deep)   # redundant parentheses are flattened by the grammar, never recursive
    with pytest.raises(QueryTooComplexError):
        condition = "1 = 1"
        for _ in range(200):
            condition = f"a IN (SELECT b FROM u WHERE {condition})"
        parse("SELECT a FROM t WHERE " + condition)


def test_long_flat_lists_are_fine():
    parse("SELECT a FROM t WHERE " + " OR ".join(f"a = {i}" for i in range(2000)))
    parse("SELECT a FROM t WHERE a IN (" + ", ".join(str(i) for i in range(5000)) + ")")


def test_too_long_query_refused():
    with pytest.raises(QueryTooComplexError, match="characters long"):
        parse("SELECT a FROM t WHERE a IN (" + "1, " * 50000 + "1)")


CLI = [
    (["--syntax-only", "SELECT a FROM t"], 0, "valid"),
    (["--syntax-only", "SELECT a FROM t; DROP TABLE t"], 1, "line 1, column 18"),
    (["--dialect", "sqlite", "SELECT TOP 2 ra FROM extras.aperiodic"], 0, "LIMIT 2"),
    (["--dialect", "postgresql", "SELECT ra FROM extras.aperiodic WHERE camera ILIKE 'p%'"], 0,
     "ILIKE"),
    (["--dialect", "sqlite", "SELECT nope FROM extras.aperiodic"], 1, "unknown column 'nope'"),
    (["--dialect", "sqlite", "SELECT pg_sleep(1) FROM extras.aperiodic"], 1, "unknown function"),
]


@pytest.mark.parametrize("args, status, text", CLI)
def test_cli(runner, args, status, text):
    result = runner.invoke(["adql", *args])
    assert result.exit_code == status, result.output
    assert text in result.output


def test_cli_uses_archive_dialect(runner, tmp_path):
    result = runner.invoke(["--database-url", f"sqlite:///{tmp_path}/a.sqlite", "adql",
                            "SELECT camera FROM extras.aperiodic WHERE camera LIKE 'P%'"])
    assert result.exit_code == 0 and "GLOB" in result.output

"""Hostile and degenerate ADQL through /tap/sync (and /scs) on both backends: every one
is a 400 with a message naming the problem, or the correct result; never a 500 nor a
dead worker. The limits are those of archive.tap.adql.parser (docs/adql.md)."""
from __future__ import annotations

import io

import pytest
import requests
from astropy.io import votable

from archive.tap.adql.parser import (MAX_DEPTH, MAX_LITERALS, MAX_SELECT_ITEMS,
                                     MAX_SORT_TERMS)
from helpers import query_error, query_status, votable_of

T = "extras.aperiodic"


def _post(client, query, **params):
    return client.post("/tap/sync", data={"LANG": "ADQL", "QUERY": query, **params})


def _refused(client, query, fragment):
    response = _post(client, query)
    assert response.status_code == 400, response.data[:500]
    message = query_error(response)
    assert fragment in message, message
    _no_secrets(message)
    return message


def _no_secrets(text: str):
    """No hidden column, SQL text or server path in a message."""
    for secret in ("_hpx", "_x", "_y", "_z", "/tmp", "/work", "Traceback", "SELECT "):
        assert secret not in text, text


def _rows(response):
    assert response.status_code == 200, response.data[:500]
    vot = votable_of(response.data)
    assert query_status(vot) == ["OK"]
    return vot.get_first_table().array


CHAIN = 10_000


@pytest.mark.parametrize("op, term", [("||", "'a'"), ("+", "ra"), ("*", "ra"), ("-", "ra"),
                                      ("/", "ra")])
def test_long_operator_chains_are_refused(client, op, term):
    query = f"SELECT TOP 1 {f' {op} '.join([term] * CHAIN)} FROM {T}"
    assert len(query) < 100_000
    _refused(client, query, f"an expression chains {CHAIN} terms")


@pytest.mark.parametrize("shape", ["ABS(", "SIN(", "(ra + ", "(- ", "(SELECT TOP 1 ra FROM "
                                   f"{T} WHERE ra > "])
def test_deep_nesting_of_any_shape_is_refused(client, shape):
    n = 3000 if len(shape) < 10 else 1000
    query = f"SELECT TOP 1 {shape * n}ra{')' * n} FROM {T}"
    assert len(query) < 100_000
    message = _refused(client, query, "nested too deeply" if "+" not in shape else "")
    assert "nested too deeply" in message or "chains" in message


def test_nested_not_is_refused(client):
    _refused(client, f"SELECT TOP 1 ra FROM {T} WHERE " + "NOT " * 5000 + "ra > 1",
             "nested too deeply")


SHAPES = {
    "functions": lambda n: f"SELECT TOP 1 {'SIN(' * n}ra{')' * n} FROM {T}",
    "functions of sums": lambda n: f"SELECT TOP 1 {'ABS(1 + ' * n}ra{')' * n} FROM {T}",
    "sum": lambda n: f"SELECT TOP 1 {' + '.join(['ra'] * n)} FROM {T}",
    "concatenation": lambda n: f"SELECT TOP 1 {' || '.join(['iauname'] * n)} FROM {T}",
    "NOT": lambda n: f"SELECT TOP 1 ra FROM {T} WHERE {'NOT ' * n}ra > 1",
    "minus": lambda n: f"SELECT TOP 1 {'- ' * n}ra FROM {T}",
    "subqueries": lambda n: (f"SELECT TOP 1 ra FROM {T} WHERE ra IN "
                             + f"(SELECT ra FROM {T} WHERE ra IN " * n
                             + f"(SELECT ra FROM {T})" + ")" * n),
    "CONTAINS in functions": lambda n: (f"SELECT TOP 1 {'ABS(' * n}CONTAINS(POINT(ra, dec), "
                                        f"CIRCLE(10, 0, 1)){')' * n} FROM {T}"),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_every_depth_up_to_the_limit_runs(client, shape):
    """Up to the limit every depth runs on both databases (SQLite's parser stack and
    SQLAlchemy's recursive compiler included) and beyond it the answer is the 400:
    never a 500, whatever the shape."""
    accepted = 0
    for n in range(1, MAX_DEPTH + 2):
        response = _post(client, SHAPES[shape](n))
        if response.status_code == 400:
            message = query_error(response)
            assert "nested too deeply" in message or "chains" in message, message
            break
        assert response.status_code == 200, response.data[-400:]
        assert query_status(votable_of(response.data)) == ["OK"]
        accepted = n
    else:
        pytest.fail(f"{shape}: {MAX_DEPTH + 1} levels were accepted")
    assert accepted >= {"subqueries": 8, "functions of sums": 15}.get(shape, 25), accepted


@pytest.mark.parametrize("op", ["OR", "AND"])
def test_long_and_or_chains_run_correctly(client, op):
    """9,000-term AND/OR chains (beyond SQLite's expression depth of 1000) are nested
    balanced and give the right answer."""
    if op == "OR":
        cond = " OR ".join(["ra<0"] * 8999 + ["ra>=0"])
        expected = "all"
    else:
        cond = " AND ".join(["ra>=0"] * 8999 + ["ra<0"])
        expected = "none"
    rows = _rows(_post(client, f"SELECT COUNT(*) AS n FROM {T} WHERE {cond}"))
    total = _rows(_post(client, f"SELECT COUNT(*) AS n FROM {T}"))["n"][0]
    assert rows["n"][0] == (total if expected == "all" else 0)


@pytest.mark.parametrize("query, fragment", [
    (f"SELECT TOP 1 {', '.join(['ra'] * (MAX_SELECT_ITEMS + 1))} FROM {T}",
     f"the select list has {MAX_SELECT_ITEMS + 1} items; at most {MAX_SELECT_ITEMS}"),
    (f"SELECT TOP 1 {', '.join(['a.*'] * 30)} FROM {T} AS a",
     "columns (after * is expanded)"),
    (f"SELECT TOP 1 ra FROM {T} ORDER BY {', '.join(['ra'] * 3000)}",
     f"the ORDER BY has 3000 terms; at most {MAX_SORT_TERMS}"),
    (f"SELECT TOP 1 ra FROM {T} GROUP BY {', '.join(['ra'] * 3000)}",
     f"the GROUP BY has 3000 terms; at most {MAX_SORT_TERMS}"),
    (f"SELECT TOP 1 ra FROM {T} WHERE ra IN ({', '.join(['1'] * (MAX_LITERALS + 1))})",
     f"more than {MAX_LITERALS} literal values"),
])
def test_width_limits(client, query, fragment):
    _refused(client, query, fragment)


def test_widest_accepted_lists_run(client):
    rows = _rows(_post(client, f"SELECT TOP 1 {', '.join(['ra'] * MAX_SELECT_ITEMS)} "
                               f"FROM {T} ORDER BY {', '.join(['dec'] * MAX_SORT_TERMS)}"))
    assert len(rows.dtype.names) == MAX_SELECT_ITEMS
    rows = _rows(_post(client, f"SELECT COUNT(*) AS n FROM {T} WHERE srcid IN "
                               f"({', '.join(str(i) for i in range(1, 9000))})"))
    expected = _rows(_post(client, f"SELECT COUNT(*) AS n FROM {T} WHERE srcid BETWEEN 1 "
                                   "AND 8999"))
    assert rows["n"][0] == expected["n"][0]


@pytest.mark.parametrize("condition", [
    "ra = NULL", "NULL <> ra", "ra IN (NULL)", "ra IN (1, NULL)", "ra NOT IN (NULL)",
    "ra BETWEEN NULL AND 1", "NULL = NULL", "ra > NULL",
    "(CASE ra WHEN NULL THEN 1 ELSE 0 END) = 1", "iauname LIKE NULL",
])
def test_comparisons_with_null_are_refused(client, condition):
    if "iauname" in condition:
        condition = condition.replace("iauname", "extras_id || ''")
    _refused(client, f"SELECT TOP 1 ra FROM {T} WHERE {condition}", "IS NULL or IS NOT NULL")


def test_null_elsewhere_still_works(client):
    rows = _rows(_post(client, f"SELECT TOP 1 COALESCE(NULL, ra) AS a, "
                               f"CASE WHEN ra > 0 THEN NULL ELSE 1 END AS b FROM {T} "
                               "WHERE ra IS NOT NULL"))
    assert len(rows) == 1


@pytest.mark.parametrize("query, fragment", [
    (f"SELECT TOP 1 ra FROM {T} OFFSET 99999999999999999999", "OFFSET 99999999999999999999 is too large"),
    (f"SELECT TOP 1 ra FROM {T} OFFSET 9223372036854775808", "is too large; the largest"),
    (f"SELECT TOP 99999999999999999999 ra FROM {T}", "TOP 99999999999999999999 is too large"),
    (f"SELECT ra FROM (SELECT TOP {'9' * 5000} ra FROM {T}) AS s", "(5000 digits) is too large"),
    (f"SELECT TOP 1 ROUND(ra, 99999999999) FROM {T}", "digits of ROUND must be between -300"),
    (f"SELECT TOP 1 ROUND(ra, -400) FROM {T}", "digits of ROUND must be between"),
    (f"SELECT TOP 1 TRUNCATE(ra, 400) FROM {T}", "digits of TRUNCATE must be between"),
    (f"SELECT TOP 1 CAST(ra AS CHAR(99999999999)) FROM {T}", "length of CHAR in CAST"),
    (f"SELECT TOP 1 CAST(ra AS VARCHAR(0)) FROM {T}", "length of VARCHAR in CAST"),
    (f"SELECT TOP 1 {'9' * 5000} FROM {T}", "(5000 characters) is too large"),
    (f"SELECT TOP 1 ra FROM {T} WHERE ra < 1.{'5' * 5000}e999", "is too large"),
    (f"SELECT TOP 1 1e999 FROM {T}", "the number 1e999 is too large"),
    (f"SELECT TOP 1 0xFFFFFFFFFFFFFFFF FROM {T}", "hexadecimal number 0xFFFFFFFFFFFFFFFF"),
])
def test_numeric_overflows_are_refused(client, query, fragment):
    _refused(client, query, fragment)


def test_large_numbers_in_range_work(client):
    rows = _rows(_post(client, f"SELECT TOP 1 1.{'5' * 5000} AS a, {'9' * 300} AS b, "
                               f"ROUND(ra, 300) AS c, TRUNCATE(1e300, 5) AS d, "
                               f"TRUNCATE(ra, -300) AS e, ra FROM {T} OFFSET 9223372036854775807"))
    assert len(rows) == 0
    rows = _rows(_post(client, f"SELECT TOP 1 1.{'5' * 5000} AS a, TRUNCATE(1e300, 5) AS d, "
                               f"TRUNCATE(ra, -300) AS e, TRUNCATE(2.567, 2) AS f FROM {T}"))
    assert rows["a"][0] == 1.5555555555555556 and rows["d"][0] == 1e300
    assert rows["e"][0] == 0.0 and rows["f"][0] == pytest.approx(2.56, abs=1e-12)


def test_integer_overflow_is_an_error_not_a_short_result(client, app):
    """``long`` arithmetic that overflows: PostgreSQL refuses it, SQLite turns it into
    a REAL that the writers refuse. Either way a 400 for CSV and TSV (the first rows
    are encoded before the status is sent), never a 200 cut short; a VOTable says it
    in its QUERY_STATUS."""
    query = f"SELECT TOP 5 srcid + 9223372036854775807 AS big FROM {T}"
    expected = ("bigint out of range" if app.config["BACKEND"] == "postgresql"
                else "outside the range of a 64-bit integer")
    for fmt in ("csv", "tsv"):
        response = _post(client, query, RESPONSEFORMAT=fmt)
        assert response.status_code == 400, response.data[:300]
        assert expected in query_error(response)
    response = _post(client, query)
    if response.status_code == 400:
        assert expected in query_error(response)
    else:
        vot = votable.parse(io.BytesIO(response.data))
        infos = [i for r in vot.resources for i in r.infos if i.name == "QUERY_STATUS"]
        assert infos[-1].value == "ERROR" and expected in infos[-1].content


@pytest.mark.parametrize("where, fragment", [
    ("1 = CONTAINS(POINT(ra, dec), CIRCLE(10, 1e308, 1))", "Dec of a position must be between"),
    ("1 = CONTAINS(POINT(ra, dec), CIRCLE(1e308 * 10, 0, 1))", "RA of a position must be a finite"),
    ("1 = CONTAINS(POINT(ra, dec), POLYGON(0, 0, 180, 0, 90, 0))", "coincide or are antipodal"),
    ("1 = CONTAINS(POINT(ra, dec), POLYGON(0, 0, 0, 0, 0, 0))", "coincide or are antipodal"),
    ("1 = CONTAINS(POINT(ra, dec), POLYGON(0, 0, 10, 0, 5, 0))", "POLYGON:"),
    ("DISTANCE(POINT(ra, dec), POINT(1e999, 0)) < 1", "the number 1e999 is too large"),
    ("DISTANCE(ra, dec, 10, 1e300) < 1", "Dec of a position must be between"),
])
def test_degenerate_geometry_is_refused(client, where, fragment):
    _refused(client, f"SELECT TOP 1 ra FROM {T} WHERE {where}", fragment)


@pytest.mark.parametrize("radius", ["5e-324", "1e-320", "0"])
def test_subnormal_radii_give_the_exact_answer(client, radius):
    for where in (f"1 = CONTAINS(POINT(ra, dec), CIRCLE(10, 0, {radius}))",
                  f"DISTANCE(POINT(ra, dec), POINT(10, 0)) < {radius}"):
        assert len(_rows(_post(client, f"SELECT ra FROM {T} WHERE {where}"))) == 0
    response = client.get(f"/scs/aperiodic?RA=10&DEC=0&SR={radius}")
    assert response.status_code == 200
    vot = votable_of(response.data)
    assert query_status(vot) == ["OK"] and len(vot.get_first_table().array) == 0


@pytest.mark.parametrize("join", ["JOIN", "INNER JOIN", "LEFT JOIN", "LEFT OUTER JOIN",
                                  "RIGHT JOIN", "FULL OUTER JOIN"])
def test_join_without_condition_is_refused(client, join):
    kind = join.split()[0] if join != "JOIN" else "INNER"
    _refused(client, f"SELECT TOP 1 a.ra FROM {T} AS a {join} {T} AS b",
             f"{kind} JOIN needs ON or USING")


def test_cross_join_still_works(client):
    rows = _rows(_post(client, f"SELECT TOP 3 a.ra FROM {T} AS a CROSS JOIN {T} AS b"))
    assert len(rows) == 3


def test_hexadecimal_literals(client):
    rows = _rows(_post(client, f"SELECT TOP 1 0xFF AS h, 0x1f + 1 AS k, 0X7FFFFFFFFFFFFFFF "
                               f"AS m, 0xFF FROM {T} WHERE 0x10 = 16"))
    assert (rows["h"][0], rows["k"][0], rows["m"][0]) == (255, 32, 2 ** 63 - 1)
    assert rows.dtype.names == ("h", "k", "m", "expr")
    assert rows["expr"][0] == 255


@pytest.mark.parametrize("query", [
    f'SELECT TOP 1 "_x" FROM {T}',
    f'SELECT TOP 1 a."_hpx" FROM {T} AS a',
    f'SELECT TOP 1 nosuchcolumn FROM {T}',
    f"SELECT TOP 1 ra FROM {T} WHERE dec = 'a'",
    f"SELECT TOP 1 ra FROM {T} WHERE 1 = CONTAINS(POINT(ra, dec), POLYGON(0, 0, 10, 0, 5, 0))",
    f"SELECT TOP 1 ra FROM {T} WHERE ACOS(2) > 0",
    f"SELECT TOP 1 ra FROM {T} WHERE ra / 0 > 1",
    f"SELECT TOP 1 CAST(iauname AS INTEGER) FROM {T}",
    f"SELECT TOP 1 COUNT(*) FROM {T} WHERE ra IN (SELECT ra, dec FROM {T})",
])
def test_error_messages_name_no_hidden_column_sql_or_path(client, app, query):
    if "_hpx" in query or '"_x"' in query:
        # the column typed is echoed, but the answer is that for any unknown column
        hidden = "_hpx" if "_hpx" in query else "_x"
        text = query_error(_post(client, query))
        other = query_error(_post(client, query.replace(hidden, "nosuchcolumn")))
        assert text.replace(hidden, "nosuchcolumn") == other
        query = query.replace(hidden, "nosuchcolumn")
    response = _post(client, query)
    assert response.status_code in (200, 400), response.data[:500]
    text = response.get_data(as_text=True)
    if response.status_code == 400:
        text = query_error(response)
    for secret in ("_hpx", '"_x', "._x", "_y", "_z", app.config["DATA_DIR"], "/work",
                   "Traceback", "aperiodic._"):
        assert secret not in text, text


def test_a_worker_survives_a_10000_term_chain(live_server):
    """Under gunicorn: the chain that made a worker segfault is a 400, and the same
    server answers the next requests."""
    for op, term in (("||", "'a'"), ("+", "ra"), ("-", "ra")):
        query = f"SELECT TOP 1 {f' {op} '.join([term] * CHAIN)} FROM {T}"
        response = requests.post(live_server + "/tap/sync",
                                  data={"LANG": "ADQL", "QUERY": query}, timeout=60)
        assert response.status_code == 400
        assert f"chains {CHAIN} terms" in response.text
    nested = f"SELECT TOP 1 {'ABS(' * CHAIN}ra{')' * CHAIN} FROM {T}"
    response = requests.post(live_server + "/tap/sync",
                             data={"LANG": "ADQL", "QUERY": nested}, timeout=60)
    assert response.status_code == 400 and "nested too deeply" in response.text
    ok = requests.post(live_server + "/tap/sync", data={
        "LANG": "ADQL", "QUERY": f"SELECT TOP 2 ra FROM {T}", "RESPONSEFORMAT": "csv"},
        timeout=60)
    assert ok.status_code == 200 and len(ok.text.strip().splitlines()) == 3
    assert requests.get(live_server + "/", timeout=30).status_code == 200

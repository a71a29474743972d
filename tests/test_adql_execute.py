"""Translated ADQL executed on both backends, checked against independent computations.

A small archive is filled through SQLAlchemy inserts (``filled``); results of each
query are compared with numpy/Python on the same rows. The demo archive tests check
geometry against a brute-force astropy separation and the use of the spatial index.
"""
from __future__ import annotations

from archive.db import PUBLISHED

import math

import numpy as np
import pytest
import sqlalchemy as sa

from archive.db import Database, catalogue_tables
from archive.errors import QueryTimeout, UsageFault
from archive.query import execute
from archive.sky import healpix_index, unit_vectors
from archive.tap.adql import Catalog, translate
from conftest import BACKENDS, new_database_url
from helpers import result_rows

N = 240
CATALOG = Catalog.of(PUBLISHED)


def f32(value) -> float:
    """A float exactly representable in the REAL (float4) columns of PostgreSQL."""
    return float(np.float32(value))


def _rows(seed=7):
    rng = np.random.default_rng(seed)
    ra = np.concatenate([rng.uniform(10, 11, N - 40), rng.uniform(359.5, 360, 20),
                         rng.uniform(0, 0.5, 20)])
    dec = np.concatenate([rng.uniform(-5, -4, N - 40), rng.uniform(-0.3, 0.3, 40)])
    x, y, z = unit_vectors(ra, dec)
    hpx = healpix_index(ra, dec)
    longterm = []
    for i in range(N):
        longterm.append(dict(
            iauname=f"4XMM J{i:04d}{'ab' if i % 3 else 'AB'}", srcid=1000 + i, ra=float(ra[i]),
            dec=float(dec[i]), radec_err=f32(rng.uniform(0.5, 3)),
            lii=None, bii=None, n_obs=int(rng.integers(1, 12)) if i % 10 else None,
            n_det=int(rng.integers(0, 12)), flux_max=f32(rng.lognormal(-30, 1)),
            flux_min=f32(rng.lognormal(-31, 1)), var_ratio=f32(rng.uniform(1, 50)),
            var_chi2=f32(rng.uniform(0, 100)), var_prob=f32(rng.uniform(0, 1)),
            fvar=f32(rng.uniform(0, 2)), fvar_err=f32(rng.uniform(0, 0.5)),
            var_flag=bool(i % 4 == 0),
            _hpx=int(hpx[i]), _x=float(x[i]), _y=float(y[i]), _z=float(z[i])))
    points = []
    for i in range(0, N, 2):           # every other source has 1..3 points
        for k in range(1 + i % 3):
            points.append(dict(srcid=1000 + i, obs_id=f"0{i:05d}{k:04d}",
                               mjd_start=51000.0 + i + k, mjd_stop=51000.5 + i + k,
                               flux=f32(rng.lognormal(-30, 1)) if k else None,
                               flux_err=f32(rng.uniform(0, 1e-14)), ul_flag=bool(k == 2)))
    classes = []
    for i in range(0, N, 3):           # a third of the sources (and 5 others) are classified
        classes.append(dict(iauname=longterm[i]["iauname"], srcid=1000 + i, ra=float(ra[i]),
                            dec=float(dec[i]), radec_err=1.0,
                            src_class=["AGN", "STAR", "XRB", "CV"][i % 4],
                            class_prob=f32(rng.uniform(0, 1)), method="ml",
                            n_xmatch=int(i % 5)))
    for j in range(5):
        classes.append(dict(iauname=f"X{j}", srcid=5000 + j, ra=1.0 + j, dec=2.0,
                            radec_err=None, src_class="GAL", class_prob=None, method=None,
                            n_xmatch=None))
    for c in classes:
        cx, cy, cz = unit_vectors(c["ra"], c["dec"])
        c.update(_hpx=int(healpix_index(c["ra"], c["dec"])), _x=float(cx), _y=float(cy),
                 _z=float(cz))
    return longterm, points, classes


@pytest.fixture(scope="module", params=BACKENDS)
def filled(request, tmp_path_factory):
    """A small archive with known rows, one per backend (the queries only read it)."""
    db = Database(new_database_url(request.param, tmp_path_factory.mktemp(request.param)))
    longterm, points, classes = _rows()
    with db.engine.begin() as conn:
        conn.execute(catalogue_tables["longterm"].insert(), longterm)
        conn.execute(catalogue_tables["longterm_points"].insert(), points)
        conn.execute(catalogue_tables["classification"].insert(), classes)
    yield db, {"longterm": longterm, "points": points, "classes": classes}
    db.dispose()


def run(db, adql, maxrec=None, timeout=20.0):
    t = translate(adql, CATALOG, db.dialect)
    result = execute(db.readonly, t.statement, t.columns, maxrec=maxrec, timeout=timeout)
    return t, result_rows(result)


def col(rows, i=0):
    return [r[i] for r in rows]


# -- plain SQL features ----------------------------------------------------------------------

def test_count_and_where(filled):
    db, d = filled
    _, rows = run(db, "SELECT COUNT(*) AS n FROM extras.longterm")
    assert rows == [(N,)]
    expect = sum(1 for r in d["longterm"] if r["n_obs"] is not None and r["n_obs"] > 5)
    _, rows = run(db, "select count(*) from EXTRAS.LONGTERM where N_OBS > 5 and n_obs is not null")
    assert rows[0][0] == expect


def test_arithmetic_is_true_division_and_typed(filled):
    db, d = filled
    t, rows = run(db, "SELECT srcid, n_det / 4, n_det * 2 + 1, -n_det, n_det - 0.5 "
                      "FROM extras.longterm ORDER BY srcid")
    assert [c.datatype for c in t.columns] == ["long", "double", "long", "long", "double"]
    for r, src in zip(rows, d["longterm"]):
        assert r[1] == pytest.approx(src["n_det"] / 4)
        assert r[2] == src["n_det"] * 2 + 1 and r[3] == -src["n_det"]
        assert r[4] == pytest.approx(src["n_det"] - 0.5)


MATH = [
    ("ABS(dec)", lambda r: abs(r["dec"])),
    ("CEILING(dec)", lambda r: math.ceil(r["dec"])),
    ("FLOOR(dec)", lambda r: math.floor(r["dec"])),
    ("ROUND(ra, 2)", lambda r: round(r["ra"], 2)),
    ("ROUND(n_det * 10 + 5, -1)", lambda r: math.floor((r["n_det"] * 10 + 5) / 10 + 0.5) * 10),
    ("ROUND(dec)", lambda r: math.copysign(math.floor(abs(r["dec"]) + 0.5), r["dec"])),
    ("TRUNCATE(dec, 1)", lambda r: math.trunc(r["dec"] * 10) / 10),
    ("TRUNCATE(dec)", lambda r: float(math.trunc(r["dec"]))),
    ("SQRT(ra)", lambda r: math.sqrt(r["ra"])),
    ("LOG(ra)", lambda r: math.log(r["ra"])),
    ("LOG10(ra)", lambda r: math.log10(r["ra"])),
    ("EXP(var_prob)", lambda r: math.exp(r["var_prob"])),
    ("POWER(var_prob, 3)", lambda r: r["var_prob"] ** 3),
    ("MOD(n_det, 3)", lambda r: r["n_det"] % 3),
    ("MOD(ra, 2.5)", lambda r: math.fmod(r["ra"], 2.5)),
    ("DEGREES(var_prob)", lambda r: math.degrees(r["var_prob"])),
    ("RADIANS(ra)", lambda r: math.radians(r["ra"])),
    ("PI() * 2", lambda r: 2 * math.pi),
    ("SIN(RADIANS(ra))", lambda r: math.sin(math.radians(r["ra"]))),
    ("COS(RADIANS(dec))", lambda r: math.cos(math.radians(r["dec"]))),
    ("TAN(var_prob)", lambda r: math.tan(r["var_prob"])),
    ("COT(var_prob + 0.1)", lambda r: 1 / math.tan(r["var_prob"] + 0.1)),
    ("ASIN(var_prob)", lambda r: math.asin(r["var_prob"])),
    ("ACOS(var_prob)", lambda r: math.acos(r["var_prob"])),
    ("ATAN(ra)", lambda r: math.atan(r["ra"])),
    ("ATAN2(dec, ra)", lambda r: math.atan2(r["dec"], r["ra"])),
]


@pytest.mark.parametrize("expr, expected", MATH, ids=[m[0] for m in MATH])
def test_math_functions(filled, expr, expected):
    db, d = filled
    t, rows = run(db, f"SELECT srcid, {expr} AS v FROM extras.longterm ORDER BY srcid")
    assert t.columns[1].name == "v"
    got = np.array(col(rows, 1), dtype=float)
    want = np.array([expected(r) for r in d["longterm"]], dtype=float)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_rand_is_uniform(filled):
    db, _ = filled
    _, rows = run(db, "SELECT RAND() FROM extras.longterm")
    values = np.array(col(rows))
    assert values.min() >= 0 and values.max() < 1 and 0.3 < values.mean() < 0.7


STRINGS = [
    ("iauname LIKE '4XMM J000%ab'", lambda r: r["iauname"].startswith("4XMM J000")
     and r["iauname"].endswith("ab")),
    ("iauname LIKE '%AB'", lambda r: r["iauname"].endswith("AB")),
    ("iauname NOT LIKE '%AB'", lambda r: not r["iauname"].endswith("AB")),
    ("iauname ILIKE '%ab'", lambda r: r["iauname"].lower().endswith("ab")),
    ("iauname LIKE '4XMM_J0010%'", lambda r: r["iauname"].startswith("4XMM J0010")),
    ("LOWER(iauname) = '4xmm j0003ab'", lambda r: r["iauname"].lower() == "4xmm j0003ab"),
    ("UPPER(iauname) || '!' = '4XMM J0004AB!'", lambda r: r["iauname"].upper() == "4XMM J0004AB"),
]


@pytest.mark.parametrize("cond, expected", STRINGS, ids=[s[0] for s in STRINGS])
def test_string_conditions(filled, cond, expected):
    db, d = filled
    _, rows = run(db, f"SELECT srcid FROM extras.longterm WHERE {cond} ORDER BY srcid")
    assert col(rows) == [r["srcid"] for r in d["longterm"] if expected(r)]


CONDITIONS = [
    ("n_det BETWEEN 3 AND 6", lambda r: 3 <= r["n_det"] <= 6),
    ("n_det NOT BETWEEN 3 AND 6", lambda r: not 3 <= r["n_det"] <= 6),
    ("n_det IN (1, 2, 9)", lambda r: r["n_det"] in (1, 2, 9)),
    ("n_det NOT IN (1, 2, 9)", lambda r: r["n_det"] not in (1, 2, 9)),
    ("n_obs IS NULL", lambda r: r["n_obs"] is None),
    ("NOT (n_det > 3 OR dec < -4.5)", lambda r: not (r["n_det"] > 3 or r["dec"] < -4.5)),
    ("var_flag = 1", lambda r: r["var_flag"]),
    ("var_flag = 0 AND n_det >= 10", lambda r: not r["var_flag"] and r["n_det"] >= 10),
    ("COALESCE(n_obs, -1) = -1", lambda r: r["n_obs"] is None),
    ("CASE WHEN n_det > 5 THEN 'hi' ELSE 'lo' END = 'hi'", lambda r: r["n_det"] > 5),
    ("CAST(ra AS INTEGER) = 10", lambda r: int(r["ra"]) == 10),
    ("srcid IN (SELECT srcid FROM extras.classification WHERE src_class = 'AGN')",
     lambda r: (r["srcid"] - 1000) % 3 == 0 and (r["srcid"] - 1000) % 4 == 0),
    ("EXISTS (SELECT 1 FROM extras.longterm_points AS p WHERE p.srcid = longterm.srcid "
     "AND p.ul_flag = 1)", lambda r: (r["srcid"] - 1000) % 2 == 0 and (r["srcid"] - 1000) % 3 == 2),
    ("n_det > (SELECT AVG(n_det) FROM extras.longterm)", None),
]


@pytest.mark.parametrize("cond, expected", CONDITIONS, ids=[c[0][:40] for c in CONDITIONS])
def test_conditions(filled, cond, expected):
    db, d = filled
    if expected is None:
        mean = np.mean([r["n_det"] for r in d["longterm"]])
        expected = lambda r: r["n_det"] > mean   # noqa: E731
    _, rows = run(db, f"SELECT srcid FROM extras.longterm WHERE {cond} ORDER BY srcid")
    assert col(rows) == [r["srcid"] for r in d["longterm"] if expected(r)]


def test_aggregates_group_by_having_order(filled):
    db, d = filled
    t, rows = run(db, "SELECT src_class AS cls, COUNT(*) AS n, AVG(class_prob), MIN(n_xmatch), "
                      "MAX(class_prob), SUM(n_xmatch), COUNT(DISTINCT n_xmatch) "
                      "FROM extras.classification GROUP BY src_class HAVING COUNT(*) > 1 "
                      "ORDER BY n DESC, cls")
    assert [c.datatype for c in t.columns] == ["char", "long", "double", "short", "float",
                                               "long", "long"]
    groups = {}
    for r in d["classes"]:
        groups.setdefault(r["src_class"], []).append(r)
    want = []
    for k, rs in groups.items():
        if len(rs) <= 1:
            continue
        probs = [r["class_prob"] for r in rs if r["class_prob"] is not None]
        nx = [r["n_xmatch"] for r in rs if r["n_xmatch"] is not None]
        want.append((k, len(rs), np.mean(probs) if probs else None, min(nx) if nx else None,
                     max(probs) if probs else None, sum(nx) if nx else None, len(set(nx))))
    want.sort(key=lambda w: (-w[1], w[0]))
    assert [r[0] for r in rows] == [w[0] for w in want]
    for r, w in zip(rows, want):
        assert r[1] == w[1] and r[3] == w[3] and r[5] == w[5] and r[6] == w[6]
        assert r[2] == pytest.approx(w[2], rel=1e-6) and r[4] == pytest.approx(w[4], rel=1e-6)


def test_order_by_position_alias_and_offset_top_distinct(filled):
    db, d = filled
    ids = sorted((r["n_det"], -r["srcid"]) for r in d["longterm"])
    _, rows = run(db, "SELECT TOP 7 srcid AS s, n_det FROM extras.longterm "
                      "ORDER BY 2 ASC, s DESC OFFSET 5")
    assert [(r[1], -r[0]) for r in rows] == ids[5:12]
    _, rows = run(db, "SELECT DISTINCT n_det FROM extras.longterm ORDER BY n_det DESC")
    assert col(rows) == sorted({r["n_det"] for r in d["longterm"]}, reverse=True)


JOINS = [
    ("SELECT COUNT(*) FROM extras.longterm AS l JOIN extras.longterm_points AS p "
     "ON l.srcid = p.srcid", lambda d: len(d["points"])),
    ("SELECT COUNT(*) FROM extras.longterm AS l INNER JOIN extras.longterm_points AS p "
     "USING (srcid)", lambda d: len(d["points"])),
    ("SELECT COUNT(*) FROM extras.longterm NATURAL JOIN extras.longterm_points",
     lambda d: len(d["points"])),
    ("SELECT COUNT(*) FROM extras.longterm AS l LEFT OUTER JOIN extras.longterm_points AS p "
     "ON l.srcid = p.srcid", lambda d: len(d["points"]) + N // 2),
    ("SELECT COUNT(*) FROM extras.longterm_points AS p RIGHT JOIN extras.longterm AS l "
     "ON l.srcid = p.srcid", lambda d: len(d["points"]) + N // 2),
    ("SELECT COUNT(*) FROM extras.classification AS c FULL OUTER JOIN extras.longterm AS l "
     "ON l.srcid = c.srcid", lambda d: N + 5),
    ("SELECT COUNT(*) FROM extras.classification AS c CROSS JOIN extras.classification AS d",
     lambda d: len(d["classes"]) ** 2),
    ("SELECT COUNT(*) FROM extras.classification AS c, extras.longterm AS l, "
     "extras.longterm_points AS p WHERE c.srcid = l.srcid AND l.srcid = p.srcid",
     lambda d: sum(1 for p in d["points"] if (p["srcid"] - 1000) % 3 == 0)),
    ("SELECT COUNT(*) FROM (SELECT srcid FROM extras.longterm WHERE n_det > 5) AS s "
     "JOIN extras.classification AS c ON s.srcid = c.srcid",
     lambda d: sum(1 for r in d["longterm"] if r["n_det"] > 5 and (r["srcid"] - 1000) % 3 == 0)),
    ("WITH big AS (SELECT srcid, n_det FROM extras.longterm WHERE n_det > 5) "
     "SELECT COUNT(*) FROM big", lambda d: sum(1 for r in d["longterm"] if r["n_det"] > 5)),
    ("SELECT COUNT(*) FROM (SELECT srcid FROM extras.longterm UNION "
     "SELECT srcid FROM extras.classification) AS u", lambda d: N + 5),
    ("SELECT COUNT(*) FROM (SELECT srcid FROM extras.longterm UNION ALL "
     "SELECT srcid FROM extras.classification) AS u", lambda d: N + len(d["classes"])),
    ("SELECT COUNT(*) FROM (SELECT srcid FROM extras.longterm INTERSECT "
     "SELECT srcid FROM extras.classification) AS u", lambda d: len(d["classes"]) - 5),
    ("SELECT COUNT(*) FROM (SELECT srcid FROM extras.longterm EXCEPT "
     "SELECT srcid FROM extras.classification) AS u", lambda d: N - len(d["classes"]) + 5),
]


@pytest.mark.parametrize("adql, expected", JOINS, ids=[j[0][21:70] for j in JOINS])
def test_joins_subqueries_sets(filled, adql, expected):
    db, d = filled
    _, rows = run(db, adql)
    assert rows == [(expected(d),)]


def test_union_with_order_and_top_in_members(filled):
    db, d = filled
    _, rows = run(db, "(SELECT TOP 2 srcid FROM extras.longterm ORDER BY srcid) UNION "
                      "(SELECT TOP 1 srcid FROM extras.classification ORDER BY srcid DESC) "
                      "ORDER BY 1")
    assert col(rows) == [1000, 1001, 5004]


def test_select_star_and_columns_metadata(filled):
    db, d = filled
    t, rows = run(db, "SELECT * FROM extras.longterm AS l WHERE l.srcid = 1000")
    names = [c.name for c in t.columns]
    assert names == [c.name for c in CATALOG.find(("extras", False), ("longterm", False))[0].columns]
    assert not any(n.startswith("_") for n in names)
    assert rows[0][names.index("iauname")] == d["longterm"][0]["iauname"]
    ra = t.columns[names.index("ra")]
    assert (ra.unit, ra.ucd, ra.datatype) == ("deg", "pos.eq.ra;meta.main", "double")


def test_using_and_star_list_join_column_once(filled):
    db, _ = filled
    t, rows = run(db, "SELECT * FROM extras.longterm_points JOIN extras.longterm USING (srcid) "
                      "WHERE srcid = 1000")
    names = [c.name for c in t.columns]
    assert names.count("srcid") == 1 and names[0] == "srcid" and len(rows) == 1


def test_duplicate_output_names_made_unique(filled):
    db, _ = filled
    t, rows = run(db, "SELECT l.ra, c.ra, l.ra AS ra_2 FROM extras.longterm AS l "
                      "JOIN extras.classification AS c ON l.srcid = c.srcid")
    assert [c.name for c in t.columns] == ["ra", "ra_2", "ra_2_2"]


def test_cast_and_concat(filled):
    db, d = filled
    t, rows = run(db, "SELECT CAST(srcid AS CHAR(3)) || '-' || iauname, CAST(ra AS REAL), "
                      "CAST(n_det AS DOUBLE PRECISION) / 3, CAST(ra AS BIGINT) "
                      "FROM extras.longterm WHERE srcid = 1001")
    r = d["longterm"][1]
    assert rows[0][0] == "100-" + r["iauname"]
    assert rows[0][1] == pytest.approx(r["ra"], rel=1e-6)
    assert rows[0][2] == pytest.approx(r["n_det"] / 3)
    assert rows[0][3] == int(r["ra"])
    assert [c.datatype for c in t.columns] == ["char", "float", "double", "long"]


# -- geometry ----------------------------------------------------------------------------------

def _sep(ra1, dec1, ra2, dec2):
    from astropy.coordinates import SkyCoord
    return SkyCoord(ra1, dec1, unit="deg").separation(SkyCoord(ra2, dec2, unit="deg")).deg


def test_distance_matches_astropy(filled):
    db, d = filled
    _, rows = run(db, "SELECT srcid, DISTANCE(POINT('ICRS', ra, dec), POINT(0.1, -0.1)), "
                      "DISTANCE(ra, dec, 10.5, -4.5) FROM extras.longterm ORDER BY srcid")
    lt = d["longterm"]
    ra = np.array([r["ra"] for r in lt])
    dec = np.array([r["dec"] for r in lt])
    np.testing.assert_allclose(col(rows, 1), _sep(ra, dec, 0.1, -0.1), atol=1e-9)
    np.testing.assert_allclose(col(rows, 2), _sep(ra, dec, 10.5, -4.5), atol=1e-9)


def test_coord_functions_and_area(filled):
    db, _ = filled
    t, rows = run(db, "SELECT TOP 1 COORD1(POINT(ra, dec)), COORD2(POINT(ra, dec)), ra, dec, "
                      "AREA(CIRCLE(0, 0, 1)), COORDSYS(POINT(ra, dec)) "
                      "FROM extras.longterm ORDER BY srcid")
    r = rows[0]
    assert r[0] == r[2] and r[1] == r[3]
    assert r[4] == pytest.approx(2 * math.pi * (1 - math.cos(math.radians(1)))
                                 * (180 / math.pi) ** 2)
    assert r[5] == "ICRS"


def test_crossmatch_join_on_contains(filled):
    """A column-valued CIRCLE (a self cross-match) matches brute force."""
    db, d = filled
    lt = d["longterm"]
    ra = np.array([r["ra"] for r in lt])
    dec = np.array([r["dec"] for r in lt])
    radius = 0.05
    _, rows = run(db, "SELECT a.srcid, b.srcid, DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) "
                      "FROM extras.longterm AS a JOIN extras.classification AS b "
                      f"ON 1 = CONTAINS(POINT(a.ra, a.dec), CIRCLE(b.ra, b.dec, {radius})) "
                      "ORDER BY 1, 2")
    cl = d["classes"]
    want = sorted((lt[i]["srcid"], c["srcid"]) for i in range(N) for c in cl
                  if _sep(ra[i], dec[i], c["ra"], c["dec"]) <= radius)
    assert [(r[0], r[1]) for r in rows] == want
    assert all(r[2] <= radius for r in rows)


def test_distance_join_condition_matches_contains(filled):
    db, _ = filled
    _, a = run(db, "SELECT COUNT(*) FROM extras.longterm AS a, extras.longterm AS b "
                   "WHERE DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) < 0.03")
    _, b = run(db, "SELECT COUNT(*) FROM extras.longterm AS a, extras.longterm AS b "
                   "WHERE CONTAINS(POINT(a.ra, a.dec), CIRCLE(b.ra, b.dec, 0.03)) = 1")
    assert a == b and a[0][0] >= N


CONE_SHAPES = [
    ("CIRCLE('ICRS', 10.5, -4.5, 0.2)", lambda ra, dec: _sep(ra, dec, 10.5, -4.5) <= 0.2),
    ("CIRCLE(0, 0, 0.25)", lambda ra, dec: _sep(ra, dec, 0.0, 0.0) <= 0.25),
    ("BOX(10.5, -4.5, 0.4, 0.6)", lambda ra, dec: (abs(ra - 10.5) <= 0.2)
     & (abs(dec + 4.5) <= 0.3)),
    ("BOX(0, 0, 0.5, 0.4)", lambda ra, dec: ((ra <= 0.25) | (ra >= 359.75))
     & (abs(dec) <= 0.2)),
    ("POLYGON(10.2, -4.8, 10.8, -4.8, 10.5, -4.2)", None),
]


@pytest.mark.parametrize("shape, expected", CONE_SHAPES, ids=[c[0] for c in CONE_SHAPES])
def test_contains_constant_shape(filled, shape, expected):
    db, d = filled
    lt = d["longterm"]
    ra = np.array([r["ra"] for r in lt])
    dec = np.array([r["dec"] for r in lt])
    if expected is None:
        from matplotlib.path import Path   # small field: a planar test is exact enough here
        tri = Path([(10.2, -4.8), (10.8, -4.8), (10.5, -4.2)])
        expected = lambda r, d_: tri.contains_points(np.c_[r, d_])   # noqa: E731
    mask = expected(ra, dec)
    want = [lt[i]["srcid"] for i in np.flatnonzero(mask)]
    for form in ("1 = CONTAINS(POINT('ICRS', ra, dec), {s})",
                 "CONTAINS(POINT(ra, dec), {s}) = 1", "INTERSECTS({s}, POINT(ra, dec)) = 1"):
        cond = form.format(s=shape)
        _, rows = run(db, f"SELECT srcid FROM extras.longterm WHERE {cond} ORDER BY srcid")
        assert col(rows) == want, cond
    _, rows = run(db, f"SELECT srcid FROM extras.longterm WHERE CONTAINS(POINT(ra, dec), {shape})"
                      " = 0 ORDER BY srcid")
    assert col(rows) == [r["srcid"] for r in lt if r["srcid"] not in set(want)]


def test_contains_selected_as_integer(filled):
    db, d = filled
    t, rows = run(db, "SELECT srcid, CONTAINS(POINT(ra, dec), CIRCLE(10.5, -4.5, 0.2)) AS inside "
                      "FROM extras.longterm ORDER BY srcid")
    assert t.columns[1].datatype == "int"
    lt = d["longterm"]
    want = _sep(np.array([r["ra"] for r in lt]), np.array([r["dec"] for r in lt]), 10.5, -4.5) <= 0.2
    assert col(rows, 1) == [int(w) for w in want]


def test_distance_constant_radius_uses_cone(filled):
    db, d = filled
    lt = d["longterm"]
    _, rows = run(db, "SELECT srcid FROM extras.longterm "
                      "WHERE DISTANCE(POINT(ra, dec), POINT(0, 0)) < 0.2 ORDER BY srcid")
    ra = np.array([r["ra"] for r in lt])
    dec = np.array([r["dec"] for r in lt])
    assert col(rows) == [lt[i]["srcid"] for i in np.flatnonzero(_sep(ra, dec, 0, 0) < 0.2)]


def _plan(db, t):
    """The query plan of a translation (constants inlined), as one string."""
    sql = t.sql(db.dialect)
    with db.readonly.connect() as conn:
        if db.dialect == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
            return " ".join(str(r[-1]) for r in rows)
        conn.exec_driver_sql("SET enable_seqscan = off")    # tiny table: force the choice
        return " ".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql).all())


@pytest.mark.parametrize("shape", ["CIRCLE(10.5, -4.5, 0.1)", "BOX(10.5, -4.5, 0.1, 0.1)",
                                   "POLYGON(10.4, -4.6, 10.6, -4.6, 10.5, -4.4)"])
def test_constant_shape_uses_spatial_index(filled, shape):
    db, _ = filled
    t = translate(f"SELECT srcid FROM extras.longterm WHERE 1 = CONTAINS(POINT(ra, dec), {shape})",
                  CATALOG, db.dialect)
    assert "_hpx" in t.sql(db.dialect)
    plan = _plan(db, t)
    assert "ix_longterm__hpx" in plan, plan


# -- abuse -------------------------------------------------------------------------------------

def test_huge_cross_join_times_out(filled):
    db, _ = filled
    with pytest.raises(QueryTimeout):
        run(db, "SELECT COUNT(*) FROM extras.longterm AS a, extras.longterm AS b, "
                "extras.longterm AS c, extras.longterm AS d", timeout=1.0)


def test_results_are_read_only_even_through_functions(filled):
    """Non-ADQL functions never reach the database: translation refuses them."""
    db, _ = filled
    for q in ("SELECT load_extension('x') FROM extras.longterm",
              "SELECT sqlite_version() FROM extras.longterm",
              "SELECT pg_sleep(10) FROM extras.longterm",
              "SELECT randomblob(10) FROM extras.longterm"):
        with pytest.raises(UsageFault, match="unknown function"):
            run(db, q)


# -- the demo archive --------------------------------------------------------------------------

def _demo_db(demo_archive):
    return Database(demo_archive["DATABASE_URL"])


def test_demo_cone_matches_brute_force(demo_archive):
    db = _demo_db(demo_archive)
    try:
        with db.engine.connect() as conn:
            t = catalogue_tables["aperiodic"]
            pos = conn.execute(sa.select(t.c.extras_id, t.c.ra, t.c.dec)).all()
        ra = np.array([p[1] for p in pos])
        dec = np.array([p[2] for p in pos])
        c_ra, c_dec = float(ra[0]), float(dec[0])
        radius = 0.2
        _, rows = run(db, "SELECT extras_id FROM extras.aperiodic WHERE 1 = CONTAINS("
                          f"POINT('ICRS', ra, dec), CIRCLE('ICRS', {c_ra!r}, {c_dec!r}, {radius}))")
        want = {pos[i][0] for i in np.flatnonzero(_sep(ra, dec, c_ra, c_dec) <= radius)}
        assert {r[0] for r in rows} == want and want
    finally:
        db.dispose()


def test_demo_group_by_counts_match(demo_archive):
    db = _demo_db(demo_archive)
    try:
        with db.engine.connect() as conn:
            t = catalogue_tables["aperiodic"]
            cams = [r[0] for r in conn.execute(sa.select(t.c.camera))]
        _, rows = run(db, "SELECT camera, COUNT(*) AS n FROM extras.aperiodic GROUP BY camera "
                          "ORDER BY camera")
        assert rows == sorted((c, cams.count(c)) for c in set(cams))
    finally:
        db.dispose()

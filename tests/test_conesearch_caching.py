"""What the cone search caches, on SQLite and PostgreSQL: statements prepared once per
(service, VERB, range slots) and run with new values, and VOTable headers cached by
column content. Every cached path is compared with the uncached one.
"""
from __future__ import annotations

import io
from dataclasses import replace
import warnings
import xml.etree.ElementTree as ET

import astropy.units as u
import numpy as np
import pytest
import sqlalchemy as sa
from astropy.coordinates import SkyCoord
from astropy.io import votable

from archive import sky, spatial
from archive.conesearch.search import (ALL, catalogue_names, cone_search, cone_statement,
                                       prepared_cone, result_columns)
from archive.db import Database, catalogue_tables, get_db
from archive.errors import FatalFault, QueryTimeout, UsageFault
from archive.prepared import PreparedStatement
from archive.query import execute
from archive.result import QueryResult, ResultColumn
from helpers import VOT, field_attributes, longterm_rows, query_result, render, result_rows

@pytest.fixture(scope="module")
def aperiodic(app):
    """(extras_id, ra, dec) of every aperiodic row of the demo archive."""
    t = catalogue_tables["aperiodic"]
    with get_db(app).engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.extras_id, t.c.ra, t.c.dec)
                            .order_by(t.c.extras_id)).all()
    return [(r[0], float(r[1]), float(r[2])) for r in rows]


def _brute_force(rows, ra, dec, sr):
    ids = np.array([r[0] for r in rows], dtype=object)
    pos = SkyCoord([r[1] for r in rows] * u.deg, [r[2] for r in rows] * u.deg)
    sep = pos.separation(SkyCoord(ra * u.deg, dec * u.deg)).deg
    return set(ids[sep <= sr])


# -- spatial: bound parameters -----------------------------------------------------------

@pytest.mark.parametrize("count, bucket", [(1, 2), (2, 2), (3, 4), (4, 4), (5, 8), (8, 8),
                                           (9, 16), (22, 32), (33, 64)])
def test_range_bucket(count, bucket):
    assert spatial.range_bucket(count) == bucket


def test_cone_parameters_pad_with_empty_ranges():
    ranges = sky.cone_ranges(150.0, 2.0, 1 / 60)
    slots, values = spatial.cone_parameters(150.0, 2.0, 1 / 60)
    assert slots == spatial.range_bucket(len(ranges)) and slots >= len(ranges)
    got = [(values[f"cone_lo{i}"], values[f"cone_hi{i}"]) for i in range(slots)]
    assert got[:len(ranges)] == ranges
    assert all(lo == hi == 0 for lo, hi in got[len(ranges):])
    assert values["cone_chord2"] == sky.chord2_for_radius(1 / 60)
    x, y, z = sky.unit_vectors(150.0, 2.0)
    assert (values["cone_x"], values["cone_y"], values["cone_z"]) == (x, y, z)
    assert spatial.cone_parameters(150.0, 2.0, 1.0, ranges=[]) == (0, {})


# -- the prepared cone statements --------------------------------------------------------

def test_statements_are_built_once_per_service_verb_and_slots():
    assert prepared_cone("aperiodic", 2, 4) is prepared_cone("aperiodic", 2, 4)
    assert prepared_cone("aperiodic", 2, 4) is not prepared_cone("aperiodic", 2, 8)
    assert prepared_cone("aperiodic", 2, 4) is not prepared_cone("aperiodic", 3, 4)
    assert prepared_cone("aperiodic", 2, 4) is not prepared_cone("periodic", 2, 4)


def test_prepared_sql_has_only_placeholders(app):
    """Values never reach the SQL text: it is the same for every cone of a bucket."""
    dialect = get_db(app).readonly.dialect
    prepared = prepared_cone("aperiodic", 2, 4)
    a = spatial.cone_parameters(10.0, 20.0, 0.01, [(1, 2), (5, 9), (11, 12), (20, 30)])[1]
    b = spatial.cone_parameters(200.0, -60.0, 0.02, [(100, 200), (300, 400), (7, 8)])[1]
    sql_a, params_a = prepared.parameters(dialect, True, {**a, "_maxrec_limit": 11})
    sql_b, params_b = prepared.parameters(dialect, True, {**b, "_maxrec_limit": 11})
    assert sql_a == sql_b and params_a != params_b
    assert "20.0" not in sql_a and "0.01" not in sql_a and "300" not in sql_a


def _separation(a, b):
    va, vb = np.array(sky.unit_vectors(*a)), np.array(sky.unit_vectors(*b))
    return spatial.chord_to_degrees(float(((va - vb) ** 2).sum()))


def _same_bucket_cones(rows, sr):
    """Two source positions whose cones do not overlap but take the same number of
    range slots."""
    by_slots = {}
    for _, ra, dec in rows[::7]:
        slots = spatial.range_bucket(len(sky.cone_ranges(ra, dec, sr)))
        for other in by_slots.get(slots, []):
            if _separation(other, (ra, dec)) > 2.5 * sr:
                return slots, other, (ra, dec)
        by_slots.setdefault(slots, []).append((ra, dec))
    raise AssertionError("no two cones with the same range bucket")


@pytest.mark.parametrize("sr", [2 / 60, 0.25])
def test_two_centres_in_one_bucket_get_their_own_rows(app, aperiodic, sr):
    slots, first, second = _same_bucket_cones(aperiodic, sr)
    engine = get_db(app).readonly
    at = [c.name for c in result_columns("aperiodic", 1)].index("extras_id")
    got = []
    for ra, dec in (first, second, first):
        result = cone_search(engine, "aperiodic", ra, dec, sr, verb=1, maxrec=None,
                             timeout=30)
        ids = [row[at] for row in result_rows(result)]
        assert set(ids) == _brute_force(aperiodic, ra, dec, sr)
        assert ids, "the test needs cones with rows"
        got.append(ids)
    assert set(got[0]).isdisjoint(got[1])
    assert got[0] == got[2]
    assert prepared_cone("aperiodic", 1, slots)._compiled, "the cached statement was used"


@pytest.mark.parametrize("name", catalogue_names())
@pytest.mark.parametrize("verb", [1, 3])
def test_prepared_rows_equal_the_literal_statement(app, aperiodic, name, verb):
    """The cached statement returns exactly what the freshly built one returns:
    same rows, same order, same values (including the distance)."""
    engine = get_db(app).readonly
    columns = result_columns(name, verb)
    rng = np.random.default_rng(7)
    for k in rng.choice(len(aperiodic), 4, replace=False):
        _, ra, dec = aperiodic[k]
        for sr in (0.5 / 60, 4 / 60, 0.4):
            literal = result_rows(execute(engine, cone_statement(name, ra, dec, sr, verb), columns,
                                    maxrec=None, timeout=30))
            cached = result_rows(cone_search(engine, name, ra, dec, sr, verb=verb, maxrec=None,
                                       timeout=30))
            # (SQLAlchemy gives SQLite's booleans as True/False, the driver as 1/0:
            # equal in Python, and the writers convert by the declared datatype)
            assert cached == literal


def test_a_cone_at_the_pole_and_across_ra_zero(app):
    engine = get_db(app).readonly
    for ra, dec, sr in ((0.0, 90.0, 3.0), (359.99, -10.0, 2.0), (0.001, 45.0, 1.5)):
        slots, _ = spatial.cone_parameters(ra, dec, sr)
        columns = result_columns(ALL, 1)
        literal = result_rows(execute(engine, cone_statement(ALL, ra, dec, sr, 1), columns,
                                maxrec=None, timeout=30))
        cached = result_rows(cone_search(engine, ALL, ra, dec, sr, verb=1, maxrec=None, timeout=30))
        assert cached == [tuple(r) for r in literal] and slots >= 2


@pytest.mark.parametrize("maxrec", [0, 1, 3, None])
def test_prepared_maxrec_and_overflow(app, aperiodic, maxrec):
    _, ra, dec = aperiodic[len(aperiodic) // 3]
    engine = get_db(app).readonly
    everything = result_rows(cone_search(engine, "aperiodic", ra, dec, 0.3, verb=1, maxrec=None,
                                   timeout=30))
    assert len(everything) > 3
    result = cone_search(engine, "aperiodic", ra, dec, 0.3, verb=1, maxrec=maxrec, timeout=30)
    rows = result_rows(result)
    if maxrec is None:
        assert rows == everything and result.overflow is False
    else:
        assert rows == everything[:maxrec] and result.overflow is True
        assert result.row_count == maxrec


# -- the executor's PreparedStatement ---------------------------------------------------

LONGTERM = catalogue_tables["longterm"]


@pytest.fixture
def small_db(empty_config):
    db = Database(empty_config["DATABASE_URL"])
    with db.engine.begin() as conn:
        conn.execute(LONGTERM.insert(), longterm_rows(50))
    yield db
    db.dispose()


def _between():
    return PreparedStatement(
        sa.select(LONGTERM.c.srcid, LONGTERM.c.n_obs)
        .where(LONGTERM.c.srcid >= sa.bindparam("lo", type_=sa.BigInteger))
        .where(LONGTERM.c.srcid < sa.bindparam("hi", type_=sa.BigInteger))
        .order_by(LONGTERM.c.srcid))


COLS = [ResultColumn("srcid", "long"), ResultColumn("n_obs", "int")]


def test_prepared_statement_runs_with_new_values(small_db):
    prepared = _between()
    for lo, hi, maxrec, expected, overflow in ((1, 11, 100, list(range(1, 11)), False),
                                               (20, 30, 5, list(range(20, 25)), True),
                                               (40, 60, None, list(range(40, 51)), False)):
        result = execute(small_db.readonly, prepared, COLS, maxrec=maxrec, timeout=10,
                         params={"lo": lo, "hi": hi}, chunk_rows=3)
        assert [r[0] for r in result_rows(result)] == expected and result.overflow is overflow
    assert len(prepared._compiled) == 2           # limited and unlimited, compiled once each


def test_prepared_statement_errors(small_db):
    with pytest.raises(FatalFault, match="without a value for hi"):
        execute(small_db.readonly, _between(), COLS, maxrec=5, timeout=10, params={"lo": 1})
    with pytest.raises(ValueError, match="must not have one"):
        PreparedStatement(sa.select(LONGTERM.c.srcid).limit(3))
    with pytest.raises(TypeError, match="PreparedStatement"):
        execute(small_db.readonly, sa.select(LONGTERM.c.srcid), COLS[:1], maxrec=5,
                timeout=10, params={"lo": 1})


def test_prepared_statement_value_errors_and_timeouts(small_db):
    divide = PreparedStatement(
        sa.select(LONGTERM.c.n_obs / sa.bindparam("d", type_=sa.Integer)))
    if small_db.dialect == "sqlite":
        assert result_rows(execute(small_db.readonly, divide, COLS[:1], maxrec=1, timeout=10,
                             params={"d": 0})) == [(None,)]
    else:
        with pytest.raises(UsageFault, match="division by zero"):
            execute(small_db.readonly, divide, COLS[:1], maxrec=1, timeout=10, params={"d": 0})
    t = [LONGTERM.alias(f"t{i}") for i in range(6)]
    heavy = PreparedStatement(sa.select(sa.func.count()).select_from(*t).where(
        t[0].c.ra + t[1].c.ra + t[2].c.ra + t[3].c.ra + t[4].c.ra + t[5].c.ra
        > sa.bindparam("v", type_=sa.Double)))
    with pytest.raises(QueryTimeout, match="limit of 0.3 s"):
        result_rows(execute(small_db.readonly, heavy, COLS[:1], maxrec=1, timeout=0.3,
                      params={"v": 0.0}))
    # the connection went back to the pool in a usable state
    again = execute(small_db.readonly, _between(), COLS, maxrec=5, timeout=10,
                    params={"lo": 1, "hi": 3})
    assert [r[0] for r in result_rows(again)] == [1, 2]


# -- VOTable headers cached by content --------------------------------------------------

def _serialization(body: bytes) -> str:
    root = ET.fromstring(body)
    return "BINARY2" if root.find(f".//{VOT}BINARY2") is not None else "TABLEDATA"


def test_verb_and_format_variants_keep_their_own_headers(client, aperiodic):
    _, ra, dec = aperiodic[0]
    fmts = {None: "BINARY2", "votable/td": "TABLEDATA", "votable": "BINARY2"}
    for _ in range(2):                             # second round: everything is cached
        for verb in (3, 1, 2):
            for fmt, serialization in fmts.items():
                query = f"/scs/aperiodic?RA={ra!r}&DEC={dec!r}&SR=0.1&VERB={verb}"
                if fmt:
                    query += f"&RESPONSEFORMAT={fmt}"
                body = client.get(query).data
                names = [f["name"] for f in field_attributes(body)]
                assert names == [c.name for c in result_columns("aperiodic", verb)]
                assert _serialization(body) == serialization
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    table = votable.parse_single_table(io.BytesIO(body))
                assert len(table.array) >= 1


def test_datalink_hook_changes_the_cached_header(app, aperiodic):
    _, ra, dec = aperiodic[0]
    client = app.test_client()
    url = f"/scs/aperiodic?RA={ra!r}&DEC={dec!r}&SR=0.05"
    installed = app.extensions.pop("scs_descriptors")      # the DataLink blueprint's
    try:
        plain = client.get(url).data
        app.extensions["scs_descriptors"] = lambda name, columns, base: [
            f'<RESOURCE type="meta" utype="adhoc:service"><PARAM name="ID" datatype="char" '
            f'arraysize="*" value="" ref="extras_id"/><!-- {name} --></RESOURCE>']
        linked = client.get(url).data
        del app.extensions["scs_descriptors"]
        again = client.get(url).data
    finally:
        app.extensions["scs_descriptors"] = installed
    assert [f.get("ID") for f in field_attributes(plain)] == [None] * len(field_attributes(plain))
    # the FIELD ID is the column's name, so astropy keeps the column name
    assert [f.get("ID") for f in field_attributes(linked)].count("extras_id") == 1
    assert b"<!-- aperiodic -->" in linked and b"adhoc:service" not in again
    assert again == plain
    real = client.get(url).data
    assert b"ivo://ivoa.net/std/DataLink#links-1.1" in real and b"<!-- aperiodic -->" not in real


def _render(columns, rows, fmt="votable", infos=()):
    return render(fmt, query_result(columns, rows, chunk=len(rows), infos=infos))


def test_votable_header_cache_is_keyed_by_every_attribute():
    base = [ResultColumn("a", "double", unit="deg", ucd="pos.eq.ra", description="one"),
            ResultColumn("b", "char", arraysize="*", description="two")]
    first = _render(base, [(1.0, "x")])
    changed = [ResultColumn("a", "double", unit="arcsec", ucd="pos.eq.ra", description="one"),
               ResultColumn("b", "char", arraysize="*", description="two & more")]
    second = _render(changed, [(1.0, "x")])
    assert b'unit="deg"' in first and b'unit="arcsec"' in second
    assert b"two &amp; more" in second and b"two &amp; more" not in first
    # columns equal but for one attribute render anew
    base = [replace(base[0], unit="mas"), replace(base[1], field_id="main_id")]
    third = _render(base, [(1.0, "x")])
    assert b'unit="mas"' in third and b'ID="main_id"' in third
    # INFOs are part of the key, serializations too
    with_info = _render(base, [(1.0, "x")], infos=[("QUERY", "SELECT 1", None)])
    assert b'<INFO name="QUERY" value="SELECT 1"/>' in with_info
    assert b'name="QUERY"' not in third
    assert b"<TABLEDATA>" in _render(base, [(1.0, "x")], "votable/td")


def test_votable_cached_footer_follows_status_and_resources():
    cols = [ResultColumn("a", "int")]
    result = QueryResult(cols, maxrec=1, chunks=iter([[(1,), (2,)]]))
    body = render("votable", result)
    assert b'<INFO name="QUERY_STATUS" value="OVERFLOW"/>' in body
    plain = _render(cols, [(1,)])
    assert b"OVERFLOW" not in plain
    extra = QueryResult(cols, maxrec=None, chunks=iter([[(1,)]]))
    extra.resources.append('<RESOURCE type="meta"><!-- x --></RESOURCE>')
    assert b"<!-- x -->" in render("votable", extra)
    assert b"<!-- x -->" not in _render(cols, [(1,)])

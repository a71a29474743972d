"""Cross-matches with an uploaded table whose positions have neither position UCDs nor
usual names: the columns the ADQL names become its position, and the join uses the
HEALPix index (the translation joins on the neighbour ranges, the plan on the index),
with the rows of brute force; on both backends."""
from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.table import Table

from archive.config import DEFAULTS
from archive.db import PUBLISHED, get_db
from archive.tap.adql import Catalog, translate
from archive.tap.run import UploadSpec
from archive.tap.uploads import build_upload, load_uploads
from helpers import first_table, query_error, tap_sync
from test_uploads import brute_force, probe_table, votable_bytes

RADIUS = 30 / 3600.0


def _anonymous(probes: Table) -> Table:
    """The probe positions in columns called x and y, without UCDs."""
    return Table({"src": probes["src"], "x": probes["ra"], "y": probes["dec"]})


CONDITIONS = {
    "contains": "1 = CONTAINS(POINT(u.x, u.y), CIRCLE(a.ra, a.dec, {r}))",
    "contains, circle around the upload": "1 = CONTAINS(POINT(a.ra, a.dec), CIRCLE(u.x, u.y, {r}))",
    "distance": "DISTANCE(POINT(u.x, u.y), POINT(a.ra, a.dec)) < {r}",
    "distance, four numbers": "DISTANCE(a.ra, a.dec, u.x, u.y) <= {r}",
}


def test_no_position_is_guessed_from_x_and_y():
    table = build_upload("p", votable_bytes(_anonymous(probe_table_stub())),
                         dict(DEFAULTS, UPLOAD_MAX_ROWS=10))
    assert (table.ra, table.dec) == (None, None)


def probe_table_stub() -> Table:
    return Table({"src": np.arange(3, dtype=np.int32), "ra": [1.0, 2.0, 3.0],
                  "dec": [0.0, 1.0, 2.0]})


@pytest.mark.parametrize("form", CONDITIONS)
def test_named_positions_use_the_index_and_match_brute_force(client, app, form):
    probes = probe_table(app, RADIUS)
    query = (f"SELECT u.src, a.extras_id FROM TAP_UPLOAD.probes AS u JOIN extras.aperiodic "
             f"AS a ON {CONDITIONS[form].format(r=RADIUS)}")
    db = get_db(app)
    uploads = load_uploads([UploadSpec("probes", "param:p")],
                           {"p": io.BytesIO(votable_bytes(_anonymous(probes)))}, app.config)
    sql = translate(query, Catalog.of(PUBLISHED, uploads=uploads), db.dialect).sql(db.dialect)
    assert "_lo0" in sql and "_hpx" in sql            # the index-using join
    assert (uploads[0].ra, uploads[0].dec) == ("x", "y")
    r = tap_sync(client, query, {"p": votable_bytes(_anonymous(probes))},
                 UPLOAD="probes,param:p", MAXREC="100000")
    assert r.status_code == 200, r.data[:500]
    res = first_table(r.data).array
    got = {(int(s), str(e)) for s, e in zip(res["src"], res["extras_id"])}
    want = brute_force(app, probes, RADIUS)
    assert want and got == want


def test_the_plan_uses_the_catalogue_index(app):
    db = get_db(app)
    probes = probe_table(app, 5 / 3600)
    uploads = load_uploads([UploadSpec("probes", "param:p")],
                           {"p": io.BytesIO(votable_bytes(_anonymous(probes)))}, app.config)
    query = ("SELECT u.src, a.extras_id FROM TAP_UPLOAD.probes AS u JOIN extras.aperiodic AS a "
             "ON DISTANCE(POINT(u.x, u.y), POINT(a.ra, a.dec)) < 5.0 / 3600")
    translation = translate(query, Catalog.of(PUBLISHED, uploads=uploads), db.dialect)
    sql = str(translation.statement.compile(dialect=db.engine.dialect,
                                            compile_kwargs={"literal_binds": True}))
    explain = ("EXPLAIN QUERY PLAN " if db.dialect == "sqlite" else "EXPLAIN ") + sql
    with db.engine.connect() as conn:
        uploads[0].load(conn)
        if db.dialect == "postgresql":
            conn.exec_driver_sql("ANALYZE tap_upload_probes")
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")   # 3000 rows: see
            # test_uploads.test_crossmatch_plan_uses_the_spatial_index
        plan = "\n".join(str(row[-1]) for row in conn.exec_driver_sql(explain))
        conn.rollback()
    assert "ix_aperiodic__hpx" in plan, plan
    if db.dialect == "sqlite":
        assert "SCAN a" not in plan, plan


def test_a_second_position_is_matched_without_the_index(client, app):
    """A table with a position (ra/dec) matched on two other columns: correct rows,
    every pair tested (documented)."""
    probes = probe_table(app, RADIUS)
    table = Table({"src": probes["src"], "ra": probes["ra"] + 50, "dec": probes["dec"] * 0,
                   "x": probes["ra"], "y": probes["dec"]})
    query = ("SELECT u.src, a.extras_id FROM TAP_UPLOAD.probes AS u JOIN extras.aperiodic "
             f"AS a ON 1 = CONTAINS(POINT(u.x, u.y), CIRCLE(a.ra, a.dec, {RADIUS}))")
    r = tap_sync(client, query, {"p": votable_bytes(table)}, UPLOAD="probes,param:p",
                 MAXREC="100000")
    assert r.status_code == 200, r.data[:500]
    res = first_table(r.data).array
    assert {(int(s), str(e)) for s, e in zip(res["src"], res["extras_id"])} == \
        brute_force(app, probes, RADIUS)


def test_named_positions_out_of_range_are_refused(client):
    table = Table({"src": [1, 2], "x": [10.0, 20.0], "y": [5.0, 95.0]})
    r = tap_sync(client, "SELECT u.src FROM TAP_UPLOAD.p AS u JOIN extras.aperiodic AS a ON "
                 "1 = CONTAINS(POINT(u.x, u.y), CIRCLE(a.ra, a.dec, 0.01))",
                 {"p": votable_bytes(table)}, UPLOAD="p,param:p")
    assert r.status_code == 400
    assert "row 2: y=95.0 is outside [-90, 90] degrees" in query_error(r)

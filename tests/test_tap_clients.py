"""Real clients against gunicorn: pyvo's TAPService and ``stilts tapquery sync=true``."""
from __future__ import annotations

import csv
import subprocess
import warnings

import pytest
import pyvo
import sqlalchemy as sa
from pyvo.dal.exceptions import DALOverflowWarning, DALQueryError

from archive.db import catalogue_tables

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def reference(demo_archive):
    """Rows straight from the database, to compare the clients' answers with."""
    engine = sa.create_engine(demo_archive["DATABASE_URL"])
    table = catalogue_tables["aperiodic"]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.extras_id, table.c.ra, table.c.dec)
                            .where(table.c.camera == "M2")
                            .order_by(table.c.extras_id).limit(25)).all()
        total = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
    engine.dispose()
    return {"rows": [tuple(r) for r in rows], "total": total}


QUERY = ("SELECT TOP 25 extras_id, ra, dec FROM extras.aperiodic WHERE camera = 'M2' "
         "ORDER BY extras_id")


def test_pyvo_search(live_server, reference):
    service = pyvo.dal.TAPService(live_server + "/tap")
    result = service.search(QUERY)
    got = [(str(r["extras_id"]), float(r["ra"]), float(r["dec"])) for r in result]
    assert got == reference["rows"]
    assert list(result.fieldnames) == ["extras_id", "ra", "dec"]


def test_pyvo_run_sync_count(live_server, reference):
    service = pyvo.dal.TAPService(live_server + "/tap")
    result = service.run_sync("SELECT COUNT(*) AS n FROM extras.aperiodic")
    assert int(result.to_table()["n"][0]) == reference["total"]


def test_pyvo_overflow(live_server):
    service = pyvo.dal.TAPService(live_server + "/tap")
    with warnings.catch_warnings():
        # pyvo warns only when fewer rows than its maxrec came back
        warnings.simplefilter("error", DALOverflowWarning)
        result = service.run_sync("SELECT ra FROM extras.aperiodic", maxrec=7)
    assert len(result) == 7
    assert result.query_status == "OVERFLOW"
    result = service.run_sync("SELECT TOP 4 ra FROM extras.aperiodic", maxrec=7)
    assert len(result) == 4 and result.query_status == "OK"


def test_pyvo_error_message(live_server):
    service = pyvo.dal.TAPService(live_server + "/tap")
    with pytest.raises(DALQueryError, match="unknown column 'nosuch'"):
        service.run_sync("SELECT nosuch FROM extras.aperiodic")


def test_pyvo_metadata(live_server, app):
    service = pyvo.dal.TAPService(live_server + "/tap")
    assert service.maxrec == app.config["TAP_DEFAULT_MAXREC"]
    assert service.hardlimit == app.config["TAP_HARD_MAXREC"]
    tables = service.tables
    names = {t.name for t in tables}
    assert {"extras.aperiodic", "TAP_SCHEMA.columns"} <= names
    columns = {c.name: c for c in tables["extras.aperiodic"].columns}
    assert columns["ra"].unit == "deg" and columns["ra"].ucd == "pos.eq.ra;meta.main"
    assert "POINT" in {f.form for f in service.get_tap_capability().get_adql()
                       .get_feature_list("ivo://ivoa.net/std/TAPRegExt#features-adqlgeo")}


def test_stilts_tapquery_sync(live_server, reference, stilts, tmp_path):
    out = tmp_path / "result.csv"
    proc = subprocess.run(
        [stilts, "tapquery", f"tapurl={live_server}/tap", f"adql={QUERY}", "sync=true",
         "ofmt=csv", f"out={out}"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["extras_id", "ra", "dec"]
    assert [(r[0], float(r[1]), float(r[2])) for r in rows[1:]] == reference["rows"]


def test_stilts_tapquery_error(live_server, stilts, tmp_path):
    proc = subprocess.run(
        [stilts, "tapquery", f"tapurl={live_server}/tap",
         "adql=SELECT * FROM extras.nothing", "sync=true", "ofmt=csv",
         f"out={tmp_path / 'x.csv'}"], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "unknown table 'extras.nothing'" in proc.stderr + proc.stdout

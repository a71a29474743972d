"""Real cone-search clients (pyvo, STILTS) against gunicorn on 127.0.0.1, and votlint.

Rows are compared with the brute-force astropy answer over the demo catalogue.
"""
from __future__ import annotations

import subprocess
import warnings

import astropy.units as u
import numpy as np
import pytest
import pyvo
import requests
import sqlalchemy as sa
from astropy.coordinates import SkyCoord
from astropy.io import votable
from astropy.io.votable.exceptions import VOWarning

import datamodel
from archive.db import catalogue_tables

pytestmark = pytest.mark.e2e



@pytest.fixture(scope="module")
def aperiodic(demo_archive):
    engine = sa.create_engine(demo_archive["DATABASE_URL"])
    t = catalogue_tables["aperiodic"]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.extras_id, t.c.ra, t.c.dec)
                            .order_by(t.c.extras_id)).all()
    engine.dispose()
    ids = np.array([r[0] for r in rows], dtype=object)
    return ids, np.array([r[1] for r in rows]), np.array([r[2] for r in rows])


def _expected(aperiodic, ra, dec, sr):
    ids, pra, pdec = aperiodic
    sep = SkyCoord(pra * u.deg, pdec * u.deg).separation(SkyCoord(ra * u.deg, dec * u.deg)).deg
    return sorted(ids[sep <= sr])


def test_pyvo_search_and_columns(live_server, aperiodic):
    _, pra, pdec = aperiodic
    ra, dec, sr = float(pra[100]), float(pdec[100]), 0.25
    service = pyvo.dal.SCSService(f"{live_server}/scs/aperiodic")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VOWarning)      # W06 on the UCD1 words SCS needs
        result = service.search(SkyCoord(ra * u.deg, dec * u.deg), radius=sr * u.deg)
        columns = service.columns
    assert sorted(str(v) for v in result["extras_id"]) == _expected(aperiodic, ra, dec, sr)
    # SCSRecord.pos and .id work through the UCD1 columns
    first = result[0]
    assert abs(first.pos.ra.deg - float(result["ra"][0])) < 1e-12
    assert str(first.id) == str(result["extras_id"][0])
    names = [c.name for c in columns]
    assert names[0] == "_r"
    assert names[1:] == [c.name for c in datamodel.TABLES["aperiodic"].columns_for_verbosity(2)]


def test_pyvo_raises_the_error_message(live_server):
    service = pyvo.dal.SCSService(f"{live_server}/scs/aperiodic")
    # pyvo refuses DEC=95 itself, so put it on the wire by hand
    query = service.create_query(pos=(10.0, 10.0), radius=0.1)
    query["DEC"] = 95
    with pytest.raises(pyvo.dal.DALQueryError, match=r"DEC=95 is outside the range"):
        query.execute()
    with pytest.raises(pyvo.dal.DALQueryError, match="maximum search radius of 10"):
        service.search(SkyCoord(10 * u.deg, 10 * u.deg), radius=20 * u.deg)


def test_stilts_cone(live_server, stilts, aperiodic, tmp_path):
    _, pra, pdec = aperiodic
    ra, dec, sr = float(pra[500]), float(pdec[500]), 0.2
    out = tmp_path / "cone.vot"
    proc = subprocess.run(
        [stilts, "cone", f"serviceurl={live_server}/scs/aperiodic", f"lon={ra!r}",
         f"lat={dec!r}", f"radius={sr}", "verb=3", f"out={out}", "ofmt=votable"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VOWarning)
        table = votable.parse_single_table(str(out)).to_table(use_names_over_ids=True)
    assert sorted(str(v) for v in table["extras_id"]) == _expected(aperiodic, ra, dec, sr)
    assert set(c.name for c in datamodel.TABLES["aperiodic"].columns) <= set(table.colnames)


def _votlint(stilts, path) -> str:
    proc = subprocess.run([stilts, "votlint", f"votable={path}"], capture_output=True,
                          text=True, timeout=300)
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("query", [
    "aperiodic?RA={ra}&DEC={dec}&SR=0.2&VERB=1",
    "aperiodic?RA={ra}&DEC={dec}&SR=0.2&VERB=2",
    "aperiodic?RA={ra}&DEC={dec}&SR=0.2&VERB=3",
    "aperiodic?RA={ra}&DEC={dec}&SR=1&MAXREC=3",                       # overflow
    "aperiodic?RA=0&DEC=0&SR=0",                                       # empty
    "all?RA={ra}&DEC={dec}&SR=0.5&VERB=3",
    "transients?RA={ra}&DEC={dec}&SR=5&RESPONSEFORMAT=votable/td",
    "aperiodic?RA={ra}&DEC=100&SR=1",                                  # error document
    "nosuchcatalogue?RA=1&DEC=1&SR=1",                                 # 404 error document
])
def test_votlint_reports_no_errors(live_server, stilts, aperiodic, tmp_path, query):
    _, pra, pdec = aperiodic
    url = f"{live_server}/scs/" + query.format(ra=repr(float(pra[0])), dec=repr(float(pdec[0])))
    resp = requests.get(url, timeout=60)
    path = tmp_path / "answer.vot"
    path.write_bytes(resp.content)
    report = _votlint(stilts, path)
    errors = [line for line in report.splitlines() if "ERROR" in line]
    assert not errors, report

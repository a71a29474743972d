"""Simple Cone Search 1.03 through the Flask test client, on SQLite and PostgreSQL."""
from __future__ import annotations

import io
import warnings
import xml.etree.ElementTree as ET

import astropy.units as u
import numpy as np
import pytest
import sqlalchemy as sa
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.io import votable
from astropy.table import Table

import datamodel
from archive.conesearch.search import catalogue_names
from archive.db import catalogue_tables, get_db

CATALOGUES = [t.name for t in datamodel.positional_tables()]


#: The only warnings astropy may raise: W06 on the UCD1 words SCS 1.03 requires
#: (astropy checks UCDs against UCD1+, which does not contain them).
SCS_UCD1 = ("ID_MAIN", "POS_EQ_RA_MAIN", "POS_EQ_DEC_MAIN")


def _votable(data: bytes):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vot = votable.parse(io.BytesIO(data), verify="warn")
    for w in caught:
        text = str(w.message)
        assert "W06" in text and any(f"'{u1}'" in text for u1 in SCS_UCD1), text
    return vot


def _table(data: bytes):
    return _votable(data).get_first_table()


def _infos(vot) -> dict[str, str]:
    out = {}
    for res in vot.resources:
        for info in res.infos:
            out.setdefault(info.name, info.value)
    for info in vot.infos:
        out.setdefault(info.name, info.value)
    return out


def _error_message(resp) -> str:
    vot = _votable(resp.data)
    errors = [i for r in vot.resources for i in r.infos if i.name == "Error"]
    errors += [i for i in vot.infos if i.name == "Error"]
    assert len(errors) == 1, resp.data
    return errors[0].value


@pytest.fixture(scope="module")
def positions(app):
    """All (table, id, ra, dec) of the demo archive, read directly from the database."""
    out = {}
    with get_db(app).engine.connect() as conn:
        for name in CATALOGUES:
            table = datamodel.TABLES[name]
            t = catalogue_tables[name]
            idc = table.role_column("id").name
            rows = conn.execute(sa.select(t.c[idc], t.c.ra, t.c.dec).order_by(t.c[idc])).all()
            out[name] = (np.array([r[0] for r in rows], dtype=object),
                         [float(r[1]) for r in rows], [float(r[2]) for r in rows])
    return out


def _expected(positions, name, ra, dec, sr):
    ids, pra, pdec = positions[name]
    pra, pdec = np.array(pra), np.array(pdec)
    sep = SkyCoord(pra * u.deg, pdec * u.deg).separation(SkyCoord(ra * u.deg, dec * u.deg)).deg
    keep = sep <= sr
    return dict(zip(ids[keep], sep[keep]))


@pytest.mark.parametrize("name", CATALOGUES)
def test_cone_matches_brute_force(client, positions, name):
    ids, pra, pdec = positions[name]
    assert len(ids) > 0
    ra, dec, sr = float(pra[len(ids) // 2]), float(pdec[len(ids) // 2]), 0.3
    resp = client.get(f"/scs/{name}?RA={ra!r}&DEC={dec!r}&SR={sr}")
    assert resp.status_code == 200
    assert resp.content_type.startswith("text/xml")
    table = _table(resp.data)
    expected = _expected(positions, name, ra, dec, sr)
    idc = datamodel.TABLES[name].role_column("id").name
    got = [str(v) for v in table.array[idc]]
    assert sorted(got) == sorted(expected) and len(got) >= 1
    dist = np.asarray(table.array["_r"], dtype=float)
    assert (np.diff(dist) >= 0).all(), "nearest first"
    assert np.abs(dist - np.array([expected[g] for g in got])).max() < 1e-9


def test_all_combines_every_catalogue(client, positions):
    ids, pra, pdec = positions["aperiodic"]
    ra, dec, sr = float(pra[0]), float(pdec[0]), 0.5
    resp = client.get(f"/scs/all?RA={ra!r}&DEC={dec!r}&SR={sr}&VERB=3")
    table = _table(resp.data)
    got = sorted(zip((str(c) for c in table.array["catalogue"]),
                     (str(i) for i in table.array["id"])))
    expected = sorted((name, str(i)) for name in CATALOGUES
                      for i in _expected(positions, name, ra, dec, sr))
    assert got == expected
    assert len({c for c, _ in got}) >= 2
    assert (np.diff(np.asarray(table.array["_r"], dtype=float)) >= 0).all()
    assert [f.name for f in table.fields] == ["_r", "catalogue", "id", "ra", "dec", "obs_id",
                                              "srcid"]


@pytest.mark.parametrize("name", catalogue_names())
@pytest.mark.parametrize("verb", [1, 2, 3])
def test_fields_ucds_units_and_verbosity(client, name, verb):
    resp = client.get(f"/scs/{name}?RA=0&DEC=0&SR=0&VERB={verb}")
    table = _table(resp.data)
    assert len(table.array) == 0
    ucds = [f.ucd for f in table.fields]
    for ucd, datatype in (("ID_MAIN", "char"), ("POS_EQ_RA_MAIN", "double"),
                          ("POS_EQ_DEC_MAIN", "double")):
        fields = [f for f in table.fields if f.ucd == ucd]
        assert len(fields) == 1, (ucd, ucds)
        assert fields[0].datatype == datatype
    assert table.fields[0].name == "_r" and str(table.fields[0].unit) == "deg"
    if name == "all":
        return
    model = datamodel.TABLES[name]
    expected = [c.name for c in model.columns_for_verbosity(verb)]
    assert [f.name for f in table.fields][1:] == expected
    for f in table.fields[1:]:
        col = model.column(f.name)
        assert (str(f.unit) if f.unit else None) == (str(u.Unit(col.unit)) if col.unit else None)
        assert f.description == col.description
        if col.role is None:
            assert f.ucd == col.ucd          # UCD1+ kept for everything else


def test_parameter_names_are_case_insensitive(client, positions):
    _, pra, pdec = positions["aperiodic"]
    ra, dec = float(pra[0]), float(pdec[0])
    a = client.get(f"/scs/aperiodic?RA={ra!r}&DEC={dec!r}&SR=0.1&VERB=1")
    b = client.get(f"/scs/aperiodic?ra={ra!r}&Dec={dec!r}&sR=0.1&verb=1")
    c = client.post("/scs/aperiodic", data={"Ra": repr(ra), "dEC": repr(dec), "SR": "0.1",
                                            "Verb": "1"})
    assert a.data == b.data == c.data
    assert len(_table(a.data).array) > 0


def test_ra_is_normalised(client, positions):
    _, pra, pdec = positions["aperiodic"]
    ra, dec = float(pra[0]), float(pdec[0])
    base = _table(client.get(f"/scs/aperiodic?RA={ra!r}&DEC={dec!r}&SR=0.2").data)
    for shifted in (ra - 360.0, ra + 360.0):
        other = _table(client.get(f"/scs/aperiodic?RA={shifted!r}&DEC={dec!r}&SR=0.2").data)
        assert list(other.array["extras_id"]) == list(base.array["extras_id"])


def test_maxrec_overflow(client, positions):
    _, pra, pdec = positions["aperiodic"]
    ra, dec = float(pra[0]), float(pdec[0])
    full = _table(client.get(f"/scs/aperiodic?RA={ra!r}&DEC={dec!r}&SR=1").data)
    n = len(full.array)
    assert n > 5
    resp = client.get(f"/scs/aperiodic?RA={ra!r}&DEC={dec!r}&SR=1&MAXREC=5")
    vot = _votable(resp.data)
    table = vot.get_first_table()
    assert len(table.array) == 5
    statuses = [i.value for r in vot.resources for i in r.infos if i.name == "QUERY_STATUS"]
    assert "OVERFLOW" in statuses
    assert list(table.array["extras_id"]) == list(full.array["extras_id"][:5])
    exact = _votable(client.get(f"/scs/aperiodic?RA={ra!r}&DEC={dec!r}&SR=1&MAXREC={n}").data)
    assert "OVERFLOW" not in [i.value for r in exact.resources for i in r.infos]
    zero = _votable(client.get(f"/scs/aperiodic?RA={ra!r}&DEC={dec!r}&SR=1&MAXREC=0").data)
    assert len(zero.get_first_table().array) == 0
    assert "OVERFLOW" in [i.value for r in zero.resources for i in r.infos]


def test_default_maxrec_comes_from_configuration(app, positions):
    from archive import create_app
    small = create_app({**app.config, "SCS_DEFAULT_MAXREC": 3, "TESTING": True})
    _, pra, pdec = positions["aperiodic"]
    resp = small.test_client().get(f"/scs/aperiodic?RA={pra[0]!r}&DEC={pdec[0]!r}&SR=1")
    assert len(_table(resp.data).array) == 3
    get_db(small).dispose()


def test_response_formats(client, positions):
    _, pra, pdec = positions["aperiodic"]
    q = f"RA={pra[0]!r}&DEC={pdec[0]!r}&SR=0.2"
    ref = _table(client.get(f"/scs/aperiodic?{q}").data)
    csv = client.get(f"/scs/aperiodic?{q}&RESPONSEFORMAT=csv")
    assert csv.content_type.startswith("text/csv")
    t = Table.read(csv.data.decode(), format="ascii.csv")
    assert list(t["extras_id"]) == [str(v) for v in ref.array["extras_id"]]
    assert np.allclose(t["_r"], ref.array["_r"], rtol=0, atol=1e-12)
    fresp = client.get(f"/scs/aperiodic?{q}&RESPONSEFORMAT=application/fits")
    assert fresp.content_type.startswith("application/fits")
    with fits.open(io.BytesIO(fresp.data)) as hdul:
        assert [s.strip() for s in hdul[1].data["extras_id"]] == \
            [str(v) for v in ref.array["extras_id"]]
    vot = client.get(f"/scs/aperiodic?{q}&RESPONSEFORMAT=application/x-votable%2Bxml")
    assert vot.content_type.startswith("application/x-votable+xml")
    assert len(_table(vot.data).array) == len(ref.array)


@pytest.mark.parametrize("query,message", [
    ("DEC=10&SR=1", "needs the parameter RA"),
    ("RA=10&SR=1", "needs the parameter DEC"),
    ("RA=10&DEC=10", "needs the parameter SR"),
    ("RA=&DEC=10&SR=1", "needs the parameter RA"),
    ("RA=ten&DEC=10&SR=1", "RA must be a number"),
    ("RA=10&DEC=north&SR=1", "DEC must be a number"),
    ("RA=10&DEC=10&SR=1deg", "SR must be a number"),
    ("RA=nan&DEC=10&SR=1", "RA must be a finite number"),
    ("RA=10&DEC=inf&SR=1", "DEC must be a finite number"),
    ("RA=10&DEC=90.5&SR=1", "DEC=90.5 is outside the range [-90, 90]"),
    ("RA=10&DEC=-91&SR=1", "DEC=-91 is outside the range [-90, 90]"),
    ("RA=10&DEC=10&SR=-0.5", "SR=-0.5 is negative"),
    ("RA=10&DEC=10&SR=11", "larger than this service's maximum search radius of 10"),
    ("RA=10&DEC=10&SR=1&VERB=4", "VERB must be 1, 2 or 3"),
    ("RA=10&DEC=10&SR=1&VERB=full", "VERB must be 1, 2 or 3"),
    ("RA=10&DEC=10&SR=1&MAXREC=-1", "MAXREC must be at least 0"),
    ("RA=10&DEC=10&SR=1&MAXREC=many", "MAXREC must be an integer"),
    ("RA=10&DEC=10&SR=1&RESPONSEFORMAT=excel", "unsupported output format 'excel'"),
    ("RA=10&RA=11&DEC=10&SR=1", "parameter RA was given 2 times"),
])
def test_errors(client, query, message):
    resp = client.get(f"/scs/aperiodic?{query}")
    assert resp.status_code == 200          # SCS 1.03: the error is in the VOTable
    assert resp.content_type.startswith("text/xml")
    assert message in _error_message(resp)
    vot = _votable(resp.data)
    assert _infos(vot)["QUERY_STATUS"] == "ERROR"


def test_unknown_catalogue_is_404_with_votable(client):
    resp = client.get("/scs/nosuchcat?RA=1&DEC=1&SR=1")
    assert resp.status_code == 404
    message = _error_message(resp)
    assert "no cone search service 'nosuchcat'" in message and "aperiodic" in message
    assert client.get("/scs/nosuchcat/capabilities").status_code == 404


def test_unknown_parameters_are_ignored(client, positions):
    _, pra, pdec = positions["transients"]
    a = client.get(f"/scs/transients?RA={pra[0]!r}&DEC={pdec[0]!r}&SR=0.1")
    b = client.get(f"/scs/transients?RA={pra[0]!r}&DEC={pdec[0]!r}&SR=0.1&CAT=x&FOO=bar")
    assert a.data == b.data and len(_table(a.data).array) >= 1


NS = {"vosi": "http://www.ivoa.net/xml/VOSICapabilities/v1.0",
      "xsi": "http://www.w3.org/2001/XMLSchema-instance",
      "av": "http://www.ivoa.net/xml/VOSIAvailability/v1.0"}
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


@pytest.mark.parametrize("name", catalogue_names())
def test_capabilities(client, name):
    resp = client.get(f"/scs/{name}/capabilities")
    assert resp.status_code == 200 and resp.content_type.startswith("text/xml")
    root = ET.fromstring(resp.data)
    assert root.tag == "{http://www.ivoa.net/xml/VOSICapabilities/v1.0}capabilities"
    caps = {c.get("standardID"): c for c in root.findall("capability")}
    assert set(caps) == {"ivo://ivoa.net/std/ConeSearch", "ivo://ivoa.net/std/VOSI#capabilities",
                         "ivo://ivoa.net/std/VOSI#availability"}
    cs = caps["ivo://ivoa.net/std/ConeSearch"]
    assert cs.get(XSI_TYPE) == "cs:ConeSearch"
    children = [c.tag for c in cs if c.tag not in ("description", "interface")]
    assert children == ["maxSR", "maxRecords", "verbosity", "testQuery"]
    assert float(cs.find("maxSR").text) == 10.0
    assert int(cs.find("maxRecords").text) > 0
    iface = cs.find("interface")
    assert iface.get("role") == "std" and iface.get(XSI_TYPE) == "vs:ParamHTTP"
    url = iface.find("accessURL").text
    assert url.endswith(f"/scs/{name}?")
    tq = cs.find("testQuery")
    # the test query runs and finds something
    path = url.split("://", 1)[1].split("/", 1)[1]
    resp = client.get(f"/{path}RA={tq.find('ra').text}&DEC={tq.find('dec').text}"
                      f"&SR={tq.find('sr').text}")
    assert len(_table(resp.data).array) >= 1
    for std in ("ivo://ivoa.net/std/VOSI#capabilities", "ivo://ivoa.net/std/VOSI#availability"):
        access = caps[std].find("interface/accessURL")
        assert access.get("use") == "full"
        assert access.text.endswith(std.rsplit("#", 1)[1])


def test_availability(client):
    resp = client.get("/scs/aperiodic/availability")
    assert resp.status_code == 200
    root = ET.fromstring(resp.data)
    assert root.tag == "{http://www.ivoa.net/xml/VOSIAvailability/v1.0}availability"
    assert root.find("av:available", NS).text == "true"
    assert [c.tag.split("}")[1] for c in root] == ["available", "upSince", "note"]

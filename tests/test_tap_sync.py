"""/tap/sync over HTTP (Flask test client) on both backends."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
import sqlalchemy as sa
from astropy.io import fits

from archive import create_app
from archive.db import catalogue_tables, get_db
from helpers import query_error, query_status, votable_of

APERIODIC_COLUMNS = None


def _error(response, status=400) -> str:
    assert response.status_code == status, response.data[:300]
    return query_error(response)


def _sync(client, method="get", **params):
    params.setdefault("LANG", "ADQL")
    if method == "get":
        return client.get("/tap/sync", query_string=params)
    return client.post("/tap/sync", data=params)


@pytest.fixture
def count(app):
    def count_rows(table="aperiodic", where=None):
        stmt = sa.select(sa.func.count()).select_from(catalogue_tables[table])
        if where is not None:
            stmt = stmt.where(where)
        with get_db(app).engine.connect() as conn:
            return conn.execute(stmt).scalar_one()
    return count_rows


@pytest.fixture
def app_with(demo_archive):
    """Build an app on the demo archive with some configuration changed."""
    made = []

    def build(**overrides):
        application = create_app({**demo_archive, "TESTING": True, **overrides})
        made.append(application)
        return application.test_client()
    yield build
    for application in made:
        get_db(application).dispose()


@pytest.mark.parametrize("method", ["get", "post"])
def test_simple_query(client, method, count):
    response = _sync(client, method, QUERY="SELECT TOP 7 extras_id, ra, dec, obs_id "
                                           "FROM extras.aperiodic ORDER BY extras_id")
    assert response.status_code == 200
    assert response.mimetype == "application/x-votable+xml"
    assert response.is_streamed
    vot = votable_of(response.data)
    assert query_status(vot) == ["OK"]
    table = vot.get_first_table()
    names = [f.name for f in table.fields]
    assert names == ["extras_id", "ra", "dec", "obs_id"]
    ra = table.get_field_by_id_or_name("ra")
    assert (ra.datatype, ra.unit.to_string(), ra.ucd) == ("double", "deg",
                                                           "pos.eq.ra;meta.main")
    ids = [str(x) for x in table.array["extras_id"]]
    assert len(ids) == 7 and ids == sorted(ids)
    infos = {i.name: i.value for i in vot.resources[0].infos}
    assert infos["QUERY"].startswith("SELECT TOP 7 extras_id")


def test_results_match_the_database(client, count):
    vot = votable_of(_sync(client, QUERY="SELECT COUNT(*) AS n FROM extras.aperiodic "
                                         "WHERE camera = 'PN'").data)
    table = catalogue_tables["aperiodic"]
    assert int(vot.get_first_table().array["n"][0]) == count(where=table.c.camera == "PN")
    vot = votable_of(_sync(client, QUERY="SELECT camera, COUNT(*) AS n FROM extras.aperiodic "
                                         "GROUP BY camera ORDER BY camera").data)
    arr = vot.get_first_table().array
    assert [str(c) for c in arr["camera"]] == ["M1", "M2", "PN"]
    assert sum(int(n) for n in arr["n"]) == count()


def test_parameter_names_are_case_insensitive(client):
    response = client.get("/tap/sync", query_string={
        "lang": "adql", "qUeRy": "SELECT TOP 3 ra FROM extras.aperiodic",
        "maxrec": "2", "responseFormat": "csv"})
    assert response.status_code == 200
    lines = response.data.decode().strip().splitlines()
    assert lines[0] == "ra" and len(lines) == 3


def test_request_doquery_and_unknown_parameters_are_ignored(client):
    response = _sync(client, REQUEST="doQuery", DUMMY="ignore-me", RUNID="run-17",
                     QUERY="SELECT TOP 1 ra FROM extras.aperiodic")
    vot = votable_of(response.data)
    assert len(vot.get_first_table().array) == 1
    infos = {i.name: i.value for i in vot.resources[0].infos}
    assert infos["RUNID"] == "run-17"


def test_multipart_post(client):
    response = client.post("/tap/sync", content_type="multipart/form-data", data={
        "LANG": "ADQL", "QUERY": "SELECT TOP 4 ra FROM extras.aperiodic", "MAXREC": "3",
        "extra": (io.BytesIO(b"ignored"), "extra.txt")})
    vot = votable_of(response.data)
    assert len(vot.get_first_table().array) == 3
    assert query_status(vot) == ["OK", "OVERFLOW"]


def test_maxrec_overflow(client):
    vot = votable_of(_sync(client, QUERY="SELECT ra FROM extras.aperiodic", MAXREC="5").data)
    assert len(vot.get_first_table().array) == 5
    assert query_status(vot) == ["OK", "OVERFLOW"]     # OVERFLOW after </TABLE>
    # exactly as many rows as exist: no overflow
    vot = votable_of(_sync(client, QUERY="SELECT TOP 5 ra FROM extras.aperiodic", MAXREC="5").data)
    assert query_status(vot) == ["OK"] and len(vot.get_first_table().array) == 5


def test_maxrec_zero_gives_metadata_only(client):
    vot = votable_of(_sync(client, QUERY="SELECT extras_id, ra FROM extras.aperiodic",
                           MAXREC="0").data)
    table = vot.get_first_table()
    assert [f.name for f in table.fields] == ["extras_id", "ra"]
    assert len(table.array) == 0
    assert query_status(vot) == ["OK", "OVERFLOW"]


def test_top_and_maxrec(client):
    # TOP below MAXREC: TOP rows, complete
    vot = votable_of(_sync(client, QUERY="SELECT TOP 3 ra FROM extras.aperiodic", MAXREC="10").data)
    assert len(vot.get_first_table().array) == 3 and query_status(vot) == ["OK"]
    # TOP above MAXREC: MAXREC rows, marked as truncated
    vot = votable_of(_sync(client, QUERY="SELECT TOP 10 ra FROM extras.aperiodic", MAXREC="3").data)
    assert len(vot.get_first_table().array) == 3 and query_status(vot) == ["OK", "OVERFLOW"]


def test_default_and_hard_limits(app_with):
    client = app_with(TAP_DEFAULT_MAXREC=40, TAP_HARD_MAXREC=60)
    vot = votable_of(_sync(client, QUERY="SELECT ra FROM extras.aperiodic").data)
    assert len(vot.get_first_table().array) == 40 and query_status(vot) == ["OK", "OVERFLOW"]
    # an explicit TOP is honoured beyond the default, up to the hard limit
    vot = votable_of(_sync(client, QUERY="SELECT TOP 50 ra FROM extras.aperiodic").data)
    assert len(vot.get_first_table().array) == 50 and query_status(vot) == ["OK"]
    vot = votable_of(_sync(client, QUERY="SELECT TOP 100 ra FROM extras.aperiodic").data)
    assert len(vot.get_first_table().array) == 60 and query_status(vot) == ["OK", "OVERFLOW"]
    vot = votable_of(_sync(client, QUERY="SELECT ra FROM extras.aperiodic", MAXREC="1000").data)
    assert len(vot.get_first_table().array) == 60 and query_status(vot) == ["OK", "OVERFLOW"]


QUERY5 = "SELECT TOP 5 extras_id, ra, dec, src_num FROM extras.aperiodic ORDER BY extras_id"


def _reference(client):
    return votable_of(_sync(client, QUERY=QUERY5).data).get_first_table().array


@pytest.mark.parametrize("requested,content_type", [
    ("votable", "application/x-votable+xml"),
    ("application/x-votable+xml", "application/x-votable+xml"),
    ("text/xml", "text/xml"),
    ("votable/td", "application/x-votable+xml;serialization=TABLEDATA"),
    ("application/x-votable+xml;serialization=TABLEDATA",
     "application/x-votable+xml;serialization=TABLEDATA"),
])
def test_votable_formats_echo_the_requested_type(client, requested, content_type):
    response = _sync(client, QUERY=QUERY5, RESPONSEFORMAT=requested)
    assert response.headers["Content-Type"] == content_type
    arr = votable_of(response.data).get_first_table().array
    ref = _reference(client)
    assert list(arr["extras_id"]) == list(ref["extras_id"])
    assert np.array_equal(arr["ra"], ref["ra"])


def test_csv_and_tsv(client):
    ref = _reference(client)
    for requested, mime, sep in (("csv", "text/csv", ","), ("text/csv", "text/csv", ","),
                                 ("tsv", "text/tab-separated-values", "\t")):
        response = _sync(client, QUERY=QUERY5, FORMAT=requested)
        assert response.mimetype == mime
        lines = response.data.decode().strip().splitlines()
        assert lines[0].split(sep) == ["extras_id", "ra", "dec", "src_num"]
        assert [line.split(sep)[0] for line in lines[1:]] == [str(x) for x in ref["extras_id"]]
        assert [float(line.split(sep)[1]) for line in lines[1:]] == list(ref["ra"])


def test_fits(client):
    ref = _reference(client)
    response = _sync(client, QUERY=QUERY5, RESPONSEFORMAT="application/fits")
    assert response.mimetype == "application/fits"
    assert 'filename="result.fits"' in response.headers["Content-Disposition"]
    with fits.open(io.BytesIO(response.data)) as hdul:
        data = hdul[1].data
        assert list(data["ra"]) == list(ref["ra"])
        assert [x.strip() for x in data["extras_id"]] == [str(x) for x in ref["extras_id"]]


def test_json_and_html(client):
    ref = _reference(client)
    response = _sync(client, QUERY=QUERY5, RESPONSEFORMAT="json")
    assert response.mimetype == "application/json"
    doc = json.loads(response.data)
    assert [c["name"] for c in doc["columns"]] == ["extras_id", "ra", "dec", "src_num"]
    assert [row[1] for row in doc["data"]] == list(ref["ra"])
    response = _sync(client, QUERY=QUERY5, RESPONSEFORMAT="text/html")
    assert response.mimetype == "text/html"
    assert str(ref["extras_id"][0]) in response.data.decode()


# -- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize("params,message", [
    ({"QUERY": "SELECT TOP 1 ra FROM extras.aperiodic", "LANG": ""},
     "parameter LANG is missing"),
    ({"QUERY": "SELECT TOP 1 ra FROM extras.aperiodic", "LANG": "OOBLECK"},
     "unknown query language LANG='OOBLECK'"),
    ({}, "parameter QUERY is missing or empty"),
    ({"QUERY": "SELECT TOP 1 ra FROM extras.aperiodic", "MAXREC": "many"},
     "MAXREC must be an integer, not 'many'"),
    ({"QUERY": "SELECT TOP 1 ra FROM extras.aperiodic", "MAXREC": "-1"},
     "MAXREC must be at least 0, not -1"),
    ({"QUERY": "SELECT TOP 1 ra FROM extras.aperiodic", "RESPONSEFORMAT": "excel"},
     "unsupported output format 'excel'"),
    ({"QUERY": "SELECT TOP 1 ra FROM extras.aperiodic", "FORMAT": "csv",
      "RESPONSEFORMAT": "csv"}, "RESPONSEFORMAT and FORMAT mean the same thing"),
])
@pytest.mark.parametrize("method", ["get", "post"])
def test_bad_parameters(client, method, params, message):
    assert message in _error(_sync(client, method, **params))


def test_repeated_single_valued_parameter(client):
    response = client.get("/tap/sync?LANG=ADQL&QUERY=SELECT%201&maxrec=1&MAXREC=2")
    assert "MAXREC was given 2 times" in _error(response)


def test_adql_syntax_error_names_the_position(client):
    text = _error(_sync(client, QUERY="SELECT ra\nFROM extras.aperiodic\nWHERE ra >"))
    assert "line 3, column" in text and "expected" in text


def test_unknown_table_and_column(client):
    text = _error(_sync(client, QUERY="SELECT * FROM extras.nothing"))
    assert "unknown table 'extras.nothing'" in text and "line 1, column 15" in text
    text = _error(_sync(client, QUERY="SELECT TOP 1 magnitude FROM extras.aperiodic"))
    assert "unknown column 'magnitude'" in text and "line 1, column 14" in text


def test_run_query_refuses_uploads_it_was_not_given(app):
    """A caller of run_query that does not load the UPLOAD tables gets a clear refusal."""
    from archive.db import get_db
    from archive.errors import UsageFault
    from archive.params import Params
    from archive.tap.run import run_query
    params = Params({"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t",
                     "UPLOAD": "t,param:t"})
    with pytest.raises(UsageFault, match=r"table uploads \(UPLOAD\) are not available"):
        run_query(params, get_db(app), app.config)


@pytest.mark.parametrize("query", [
    "DELETE FROM extras.aperiodic",
    "SELECT TOP 1 ra FROM extras.aperiodic; DROP TABLE extras.aperiodic",
    "UPDATE extras.aperiodic SET ra = 0",
    "SELECT TOP 1 ra FROM extras.aperiodic -- \n; DELETE FROM extras.aperiodic",
])
def test_write_attempts_fail_and_change_nothing(client, count, query):
    before = count()
    assert _error(_sync(client, QUERY=query))
    assert count() == before


def test_non_adql_database_functions_are_refused(client):
    text = _error(_sync(client, QUERY="SELECT TOP 1 sqlite_version() FROM extras.aperiodic"))
    assert "sqlite_version" in text.lower()
    text = _error(_sync(client, QUERY="SELECT TOP 1 pg_sleep(1) FROM extras.aperiodic"))
    assert "pg_sleep" in text.lower()


def test_query_timeout(app_with):
    client = app_with(QUERY_TIMEOUT=0.2)
    response = _sync(client, QUERY="SELECT COUNT(*) AS n FROM extras.aperiodic AS a "
                                   "JOIN extras.aperiodic AS b ON a.ra + b.dec > a.dec - b.ra")
    text = _error(response)
    assert "the query ran longer than the limit of 0.2 s" in text


def test_errors_are_never_html(client):
    for path in ("/tap/sync", "/tap/sync?LANG=ADQL"):
        response = client.get(path)
        assert response.status_code == 400
        assert response.mimetype == "application/x-votable+xml"

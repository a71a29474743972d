"""astroquery's TapPlus (pinned in pyproject) and the multipart bodies it sends.

TapPlus builds its multipart bodies by hand (``TapConn.encode_multipart``) with the
header ``multipart/form-data; boundary====<milliseconds>===``: the boundary is
unquoted and contains ``=``, which RFC 2045's ``token`` (that RFC 2046 §5.1.1 and
RFC 7578 use for the boundary parameter) does not allow; it should be quoted.
Werkzeug's header parser skips such a parameter and used to read the body as
having no parts: a sync query lost its QUERY, an async job was created PENDING
without parameters, PHASE=RUN lost, and TapPlus waited on it forever. The archive's
request class (``archive.http.ArchiveRequest``) takes the boundary from the raw
header; a body that still cannot be read is a 400 and no job is created.
"""
from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from astropy.table import Table
from astroquery.utils.tap.conn.tapconn import TapConn
from astroquery.utils.tap.core import TapPlus

from archive.db import get_db, uws_jobs
from helpers import first_table, query_error

QUERY = "SELECT TOP 3 extras_id, ra, dec FROM extras.aperiodic ORDER BY extras_id"
UPLOAD_QUERY = "SELECT name, ra FROM TAP_UPLOAD.mine ORDER BY name"


def mine() -> Table:
    return Table({"name": ["a", "b", "c"], "ra": [10.0, 20.0, 30.0],
                  "dec": [-1.0, 0.0, 1.0]})


def tapplus_body(fields: dict, table: Table) -> tuple[str, bytes]:
    """(Content-Type, body) exactly as TapPlus builds them for an upload of
    ``table`` (its ``__launchJobMultipart`` writes the table as a VOTable text)."""
    buf = io.BytesIO()
    table.write(buf, format="votable")
    files = [["mine", "pytable", buf.getvalue().decode()]]
    # encode_multipart does not use the connection: call it as TapPlus does
    return TapConn.encode_multipart(None, fields, files)


def job_count(app) -> int:
    with get_db(app).engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(uws_jobs)).scalar()


def job_dirs(app) -> set[str]:
    folder = Path(app.config["DATA_DIR"]) / "jobs"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def test_tapplus_boundary_is_unquoted_with_equals_signs():
    content_type, body = tapplus_body({"QUERY": "x"}, mine())
    boundary = content_type.split("boundary=", 1)[1]
    assert boundary.startswith("===") and '"' not in content_type
    assert body.startswith(b"--" + boundary.encode() + b"\r\n")


def test_tapplus_sync_upload_is_read(client):
    fields = {"REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "votable",
              "tapclient": "aqtappy-0.4.11", "QUERY": UPLOAD_QUERY,
              "UPLOAD": "mine,param:mine"}
    content_type, body = tapplus_body(fields, mine())
    r = client.post("/tap/sync", data=body, content_type=content_type)
    assert r.status_code == 200, r.data
    assert [str(x) for x in first_table(r.data).array["name"]] == ["a", "b", "c"]


def test_tapplus_async_upload_runs(client, app):
    # what TapPlus sends for launch_job_async(upload_resource=Table, ...): note the
    # second "format" (the upload's format) besides FORMAT, both "votable"
    fields = {"REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "votable",
              "tapclient": "aqtappy-0.4.11", "QUERY": UPLOAD_QUERY,
              "UPLOAD": "mine,param:mine", "PHASE": "RUN", "format": "votable"}
    content_type, body = tapplus_body(fields, mine())
    r = client.post("/tap/async", data=body, content_type=content_type)
    assert r.status_code == 303, r.data
    url = "/tap/async/" + r.headers["Location"].rsplit("/", 1)[1]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        phase = client.get(url + "/phase").get_data(as_text=True)
        if phase not in ("QUEUED", "EXECUTING"):
            break
        time.sleep(0.2)
    assert phase == "COMPLETED", client.get(url + "/error").data
    result = client.get(url + "/results/result")
    assert [str(x) for x in first_table(result.data).array["name"]] == ["a", "b", "c"]


@pytest.mark.parametrize("content_type, body, expected", [
    ("multipart/form-data", b"--x\r\nContent-Disposition: form-data; name=\"QUERY\"\r\n\r\n"
     b"SELECT 1\r\n--x--\r\n", "the Content-Type header gives no boundary"),
    ('multipart/form-data; boundary="abc"', b"--abc\r\nContent-Disposition: form-data; "
     b"name=\"LANG\"\r\n\r\nADQL\r\n--abc\r\nContent-Disposition: form-data; name=\"QUERY\""
     b"\r\n\r\nSELECT", "it must end with --abc--"),
], ids=["no boundary", "truncated"])
@pytest.mark.parametrize("endpoint", ["/tap/sync", "/tap/async"])
def test_unreadable_multipart_body_is_400_and_creates_no_job(client, app, endpoint,
                                                             content_type, body, expected):
    jobs, dirs = job_count(app), job_dirs(app)
    r = client.post(endpoint, data=body, content_type=content_type)
    assert r.status_code == 400, r.data
    message = query_error(r)
    assert "multipart/form-data request body cannot be read" in message
    assert expected in message
    assert job_count(app) == jobs and job_dirs(app) == dirs


@pytest.mark.e2e
def test_tapplus_itself_against_gunicorn(live_server):
    """TapPlus as a user runs it: sync and async, a Table uploaded, offline (it talks
    to our server only)."""
    tap = TapPlus(url=live_server + "/tap", verbose=False)
    job = tap.launch_job(QUERY)
    assert len(job.get_results()) == 3
    table = Table({"name": np.array(["p", "q"]), "ra": [1.5, 2.5], "dec": [0.5, -0.5]})
    job = tap.launch_job("SELECT name, dec FROM TAP_UPLOAD.mine ORDER BY name",
                         upload_resource=table, upload_table_name="mine")
    assert [str(x) for x in job.get_results()["name"]] == ["p", "q"]
    job = tap.launch_job_async("SELECT name, dec FROM TAP_UPLOAD.mine ORDER BY name",
                               upload_resource=table, upload_table_name="mine")
    assert job.get_phase() == "COMPLETED"
    assert [float(x) for x in job.get_results()["dec"]] == [0.5, -0.5]


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/mixed; boundary=x",
                                          "application/json"])
@pytest.mark.parametrize("endpoint", ["/tap/sync", "/tap/async"])
def test_body_in_another_form_is_400_and_creates_no_job(client, app, endpoint, content_type):
    jobs, dirs = job_count(app), job_dirs(app)
    r = client.post(endpoint, data=b"LANG=ADQL&QUERY=SELECT+1&PHASE=RUN",
                    content_type=content_type)
    assert r.status_code == 400, r.data
    message = query_error(r)
    assert f"the POST body ({content_type.split(';')[0]}) cannot be read" in message
    assert "multipart/form-data" in message
    assert job_count(app) == jobs and job_dirs(app) == dirs

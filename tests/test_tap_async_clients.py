"""Real clients against gunicorn on 127.0.0.1: pyvo run_async and uploads, STILTS
tapquery sync=false (TOPCAT's client code) with and without an upload, and TOPCAT's
chunked multipart upload replayed byte for byte."""
from __future__ import annotations

import http.client
import io
import subprocess
from urllib.parse import urlsplit

import numpy as np
import pytest
import pyvo
from astropy.io import votable
from astropy.io.votable.tree import VOTableFile
from astropy.table import Table

from helpers import first_table

pytestmark = pytest.mark.e2e

QUERY = "SELECT TOP 7 extras_id, ra, dec FROM extras.aperiodic ORDER BY extras_id"


def positions(live_server, n=20):
    tap = pyvo.dal.TAPService(live_server + "/tap")
    rows = tap.run_sync(f"SELECT TOP {n} extras_id, ra, dec FROM extras.aperiodic "
                        "ORDER BY extras_id").to_table()
    return Table({"name": np.array([str(x) for x in rows["extras_id"]]),
                  "ra": np.asarray(rows["ra"], float) + 1e-4,
                  "dec": np.asarray(rows["dec"], float)})


def test_pyvo_run_async(live_server):
    tap = pyvo.dal.TAPService(live_server + "/tap")
    result = tap.run_async(QUERY)
    assert len(result) == 7
    assert [str(x) for x in result["extras_id"]] == sorted(str(x) for x in result["extras_id"])


def test_pyvo_job_error_message(live_server):
    tap = pyvo.dal.TAPService(live_server + "/tap")
    with pytest.raises(pyvo.dal.DALQueryError) as info:
        tap.run_async("SELECT nosuchcolumn FROM extras.aperiodic")
    assert "nosuchcolumn" in str(info.value)


def test_pyvo_job_lifecycle(live_server):
    tap = pyvo.dal.TAPService(live_server + "/tap")
    job = tap.submit_job(QUERY, maxrec=3)
    assert job.phase == "PENDING"
    job.run()
    assert job.phase != "PENDING"
    job.wait()
    assert job.phase == "COMPLETED"
    assert len(job.fetch_result()) == 3
    url = job.url
    job.delete()
    import requests
    assert requests.get(url, timeout=10).status_code == 404


def test_pyvo_upload_crossmatch_sync_and_async(live_server):
    tap = pyvo.dal.TAPService(live_server + "/tap")
    mine = positions(live_server)
    query = ("SELECT u.name, a.extras_id FROM TAP_UPLOAD.mine AS u JOIN extras.aperiodic AS a "
             "ON 1 = CONTAINS(POINT(a.ra, a.dec), CIRCLE(u.ra, u.dec, 5.0 / 3600))")
    for run in (tap.run_sync, tap.run_async):
        result = run(query, uploads={"mine": mine}).to_table()
        pairs = {(str(n), str(e)) for n, e in zip(result["name"], result["extras_id"])}
        assert {(n, n) for n in mine["name"]} <= pairs


def stilts_query(stilts, tmp_path, base, adql, *extra):
    out = tmp_path / "out.vot"
    cmd = [stilts, "tapquery", f"tapurl={base}/tap", f"adql={adql}", "sync=false",
           "ofmt=votable", f"out={out}", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return votable.parse_single_table(str(out)).array


def test_stilts_tapquery_async(stilts, tmp_path, live_server):
    rows = stilts_query(stilts, tmp_path, live_server, QUERY)
    assert len(rows) == 7


def test_stilts_tapquery_async_with_upload(stilts, tmp_path, live_server):
    mine = positions(live_server, 10)
    path = tmp_path / "mine.vot"
    mine.write(str(path), format="votable")
    rows = stilts_query(stilts, tmp_path, live_server,
                        "SELECT u.name, a.extras_id FROM TAP_UPLOAD.t1 AS u "
                        "JOIN extras.aperiodic AS a "
                        "ON 1 = CONTAINS(POINT(a.ra, a.dec), CIRCLE(u.ra, u.dec, 0.001))",
                        "nupload=1", f"upload1={path}", "upname1=t1")
    assert {str(n) for n in mine["name"]} <= {str(e) for e in rows["extras_id"]}


def test_stilts_tapquery_async_error(stilts, tmp_path, live_server):
    out = tmp_path / "out.vot"
    proc = subprocess.run([stilts, "tapquery", f"tapurl={live_server}/tap",
                           "adql=SELECT nosuchcolumn FROM extras.aperiodic", "sync=false",
                           f"out={out}"], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "nosuchcolumn" in proc.stdout + proc.stderr


BOUNDARY = "<<<--------------MULTIPART-BOUNDARY------->>>"


def topcat_body(query: str, table: bytes) -> list[bytes]:
    """A multipart body exactly as TOPCAT writes it, in chunks."""
    def text_part(name, value):
        return (f"--{BOUNDARY}\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                f"Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").encode()
    parts = [text_part("LANG", "ADQL"), text_part("QUERY", query),
             text_part("UPLOAD", "t1,param:upload_t1"),
             (f"--{BOUNDARY}\r\nContent-Type: application/x-votable+xml\r\n"
              "Content-Disposition: form-data; name=\"upload_t1\"; filename=\"upload_t1\"\r\n"
              "\r\n").encode(), table, b"\r\n", f"--{BOUNDARY}--\r\n".encode()]
    # split into odd-sized chunks the way a streaming client sends them
    blob = b"".join(parts)
    return [blob[i:i + 1000] for i in range(0, len(blob), 1000)]


@pytest.mark.parametrize("endpoint", ["sync", "async"])
def test_topcat_chunked_upload_replay(live_server, endpoint):
    mine = positions(live_server, 5)
    doc = VOTableFile.from_table(mine)
    buf = io.BytesIO()
    doc.to_xml(buf)
    query = "SELECT name FROM TAP_UPLOAD.t1 ORDER BY name"
    host = urlsplit(live_server)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=120)
    conn.putrequest("POST", f"/tap/{endpoint}")
    conn.putheader("Content-Type", f'multipart/form-data; boundary="{BOUNDARY}"')
    conn.putheader("Transfer-Encoding", "chunked")
    conn.putheader("User-Agent", "TOPCAT/4.8-7 (IVOA-test)")
    conn.endheaders()
    for chunk in topcat_body(query, buf.getvalue()):
        conn.send(f"{len(chunk):X}\r\n".encode() + chunk + b"\r\n")
    conn.send(b"0\r\n\r\n")
    resp = conn.getresponse()
    body = resp.read()
    if endpoint == "sync":
        assert resp.status == 200, body
        rows = first_table(body).array
    else:
        assert resp.status == 303, body
        job = resp.getheader("Location")
        conn.close()
        tap_job = pyvo.dal.AsyncTAPJob(job)
        tap_job.run().wait()
        assert tap_job.phase == "COMPLETED", tap_job.job.errorsummary
        rows = tap_job.fetch_result().to_table()
        tap_job.delete()
    assert sorted(str(n) for n in rows["name"]) == sorted(str(n) for n in mine["name"])


def test_pyvo_reads_the_examples(live_server):
    from archive.tap.examples import EXAMPLES
    tap = pyvo.dal.TAPService(live_server + "/tap")
    examples = tap.examples
    assert [e["QUERY"] for e in examples] == [ex.query for ex in EXAMPLES]

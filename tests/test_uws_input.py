"""UWS input that used to answer 500: dates out of range for DESTRUCTION and AFTER,
multipart parts named ``.`` or ``..`` (stored under their own names now), part names
too long, and parts that fail to save. Nothing is written for a refused request:
no job row, no file."""
from __future__ import annotations

import io
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from archive.db import get_db, uws_jobs
from helpers import first_table, query_error

SMALL = "SELECT TOP 2 extras_id FROM extras.aperiodic ORDER BY extras_id"
OUT_OF_RANGE = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]


def jobs_and_files(app) -> tuple[int, set[str]]:
    with get_db(app).engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(uws_jobs)).scalar()
    folder = Path(app.config["DATA_DIR"]) / "jobs"
    files = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} \
        if folder.is_dir() else set()
    return n, files


def wait_final(client, url: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        phase = client.get(url + "/phase").get_data(as_text=True)
        if phase not in ("PENDING", "QUEUED", "EXECUTING"):
            return phase
        time.sleep(0.2)
    raise AssertionError(f"{url} did not finish")


@pytest.mark.parametrize("date", OUT_OF_RANGE)
def test_destruction_out_of_range_is_400_and_creates_nothing(client, app, date):
    before = jobs_and_files(app)
    r = client.post("/tap/async", data={"LANG": "ADQL", "QUERY": SMALL, "DESTRUCTION": date})
    assert r.status_code == 400
    message = query_error(r)
    assert f"DESTRUCTION='{date}'" in message and "years 1 to 9999" in message
    assert jobs_and_files(app) == before


@pytest.mark.parametrize("date", OUT_OF_RANGE)
def test_destruction_change_out_of_range_is_400_and_changes_nothing(client, date):
    r = client.post("/tap/async", data={"LANG": "ADQL", "QUERY": SMALL})
    url = urlsplit(r.headers["Location"]).path
    was = client.get(url + "/destruction").get_data(as_text=True)
    r = client.post(url + "/destruction", data={"DESTRUCTION": date})
    assert r.status_code == 400 and "years 1 to 9999" in query_error(r)
    r = client.post(url + "/parameters", data={"DESTRUCTION": date})
    assert r.status_code == 400 and "years 1 to 9999" in query_error(r)
    assert client.get(url + "/destruction").get_data(as_text=True) == was


@pytest.mark.parametrize("date", OUT_OF_RANGE)
def test_after_out_of_range_is_400(client, date):
    r = client.get("/tap/async", query_string={"AFTER": date})
    assert r.status_code == 400
    assert f"AFTER='{date}'" in query_error(r)


@pytest.mark.parametrize("part", [".", "..", "../../etc", "a/b", "résumé table"])
def test_any_part_name_is_stored_safely_and_used(client, app, part):
    r = client.post("/tap/async", data={
        "LANG": "ADQL", "QUERY": "SELECT a FROM TAP_UPLOAD.t ORDER BY a",
        "UPLOAD": f"t,param:{part}", "PHASE": "RUN",
        part: (io.BytesIO(b"a\n2\n1\n"), "t.csv")}, content_type="multipart/form-data")
    assert r.status_code == 303, r.data
    url = urlsplit(r.headers["Location"]).path
    job_id = url.rsplit("/", 1)[1]
    uploads = Path(app.config["DATA_DIR"]) / "jobs" / job_id / "uploads"
    assert [p.name for p in uploads.iterdir()] == ["part-" + part.encode().hex()]
    assert wait_final(client, url) == "COMPLETED", client.get(url + "/error").data
    result = client.get(url + "/results/result")
    assert first_table(result.data).array["a"].tolist() == [1, 2]


def test_part_name_too_long_is_400_and_creates_nothing(client, app):
    before = jobs_and_files(app)
    part = "p" * 101
    r = client.post("/tap/async", data={"LANG": "ADQL", "QUERY": SMALL,
                                        part: (io.BytesIO(b"a\n1\n"), "t.csv")},
                    content_type="multipart/form-data")
    assert r.status_code == 400
    assert "101 bytes long; at most 100" in query_error(r)
    assert jobs_and_files(app) == before


def test_failed_part_leaves_no_file(demo_archive):
    from archive import create_app
    app = create_app({**demo_archive, "TESTING": True, "UPLOAD_MAX_BYTES": 100})
    client = app.test_client()
    small, big = io.BytesIO(b"a\n1\n"), io.BytesIO(b"a\n" + b"1\n" * 100)
    before = jobs_and_files(app)
    r = client.post("/tap/async", data={"LANG": "ADQL", "QUERY": SMALL,
                                        "small": (small, "s.csv"), "big": (big, "b.csv")},
                    content_type="multipart/form-data")
    assert r.status_code == 400 and "UPLOAD_MAX_BYTES" in query_error(r)
    assert jobs_and_files(app) == before
    # adding parameters to a job: the parts saved before the failing one go again
    r = client.post("/tap/async", data={"LANG": "ADQL", "QUERY": SMALL})
    url = urlsplit(r.headers["Location"]).path
    before = jobs_and_files(app)
    r = client.post(url + "/parameters", data={
        "small": (io.BytesIO(b"a\n1\n"), "s.csv"),
        "big": (io.BytesIO(b"a\n" + b"1\n" * 100), "b.csv")}, content_type="multipart/form-data")
    assert r.status_code == 400 and "UPLOAD_MAX_BYTES" in query_error(r)
    assert jobs_and_files(app) == before
    get_db(app).dispose()

"""UWS 1.1 at /tap/async: job lifecycle, resources, filters, WAIT, errors (both backends)."""
from __future__ import annotations

import io
import threading
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from astropy.io import votable

from archive.db import get_db
from archive.errors import NotFoundFault
from archive.tap import claims, uws
from helpers import first_table

NS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0", "xlink": "http://www.w3.org/1999/xlink"}
SMALL = "SELECT TOP 5 extras_id, ra, dec FROM extras.aperiodic ORDER BY extras_id"
# slow on both backends: a cross join of the demo catalogue with itself
SLOW = ("SELECT COUNT(*) AS n FROM extras.aperiodic AS a, extras.aperiodic AS b, "
        "extras.aperiodic AS c WHERE a.ra + b.dec + c.dec > 100000")


def path_of(location: str) -> str:
    return urlsplit(location).path


def create(client, **params) -> str:
    data = {"LANG": "ADQL", "QUERY": SMALL, **params}
    r = client.post("/tap/async", data=data)
    assert r.status_code == 303, r.data
    return path_of(r.headers["Location"])


def doc(client, url, **query):
    r = client.get(url, query_string=query)
    assert r.status_code == 200, r.data
    assert r.mimetype == "text/xml"
    return ET.fromstring(r.data)


def phase(client, url) -> str:
    return doc(client, url).find("uws:phase", NS).text


def wait_final(client, url, timeout=60) -> ET.Element:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        root = doc(client, url, WAIT="5")
        if root.find("uws:phase", NS).text in ("COMPLETED", "ERROR", "ABORTED"):
            return root
    raise AssertionError(f"job {url} did not finish in {timeout} s")


def test_create_gives_pending_job_with_all_elements(client):
    url = create(client, RUNID="run-1")
    root = doc(client, url)
    assert root.tag == "{http://www.ivoa.net/xml/UWS/v1.0}job"
    assert root.get("version") == "1.1"
    order = [child.tag.split("}")[1] for child in root]
    assert order == ["jobId", "runId", "ownerId", "phase", "quote", "creationTime",
                     "startTime", "endTime", "executionDuration", "destruction",
                     "parameters", "results"]
    assert url.endswith("/" + root.find("uws:jobId", NS).text)
    assert root.find("uws:phase", NS).text == "PENDING"
    assert root.find("uws:runId", NS).text == "run-1"
    params = {p.get("id"): p.text for p in root.find("uws:parameters", NS)}
    assert params == {"lang": "ADQL", "query": SMALL, "runid": "run-1"}


def test_child_resources_are_plain_text_and_consistent(client):
    url = create(client)
    root = doc(client, url)
    for name, element in (("phase", "phase"), ("executionduration", "executionDuration"),
                          ("destruction", "destruction"), ("quote", "quote")):
        r = client.get(f"{url}/{name}")
        assert r.status_code == 200
        assert r.mimetype == "text/plain"
        assert r.data.decode() == (root.find(f"uws:{element}", NS).text or "")
    assert client.get(f"{url}/owner").data == b""
    assert int(client.get(f"{url}/executionduration").data) > 0
    destruction = client.get(f"{url}/destruction").data.decode()
    assert destruction.endswith("Z")
    params = ET.fromstring(client.get(f"{url}/parameters").data)
    assert {p.get("id") for p in params} == {"lang", "query"}


def test_run_leaves_pending_at_once_and_completes(client):
    url = create(client)
    r = client.post(f"{url}/phase", data={"PHASE": "RUN"})
    assert r.status_code == 303
    assert path_of(r.headers["Location"]) == url
    assert phase(client, url) in ("QUEUED", "EXECUTING", "COMPLETED")
    root = wait_final(client, url)
    assert root.find("uws:phase", NS).text == "COMPLETED"
    assert root.find("uws:startTime", NS).text and root.find("uws:endTime", NS).text
    result = root.find("uws:results/uws:result", NS)
    assert result.get("id") == "result"
    href = result.get("{http://www.w3.org/1999/xlink}href")
    assert href.endswith(url + "/results/result")
    r = client.get(url + "/results/result")
    assert r.status_code == 200
    table = first_table(r.data)
    assert len(table.array) == 5
    assert [f.name for f in table.fields] == ["extras_id", "ra", "dec"]
    results = ET.fromstring(client.get(url + "/results").data)
    assert results.find("uws:result", NS).get("id") == "result"


def test_phase_run_at_creation_queues_the_job(client):
    url = create(client, PHASE="RUN")
    assert phase(client, url) != "PENDING"
    assert wait_final(client, url).find("uws:phase", NS).text == "COMPLETED"


def test_empty_result_still_has_results_result(client):
    url = create(client, QUERY="SELECT extras_id FROM extras.aperiodic WHERE ra < -1",
                 PHASE="RUN")
    assert wait_final(client, url).find("uws:phase", NS).text == "COMPLETED"
    table = first_table(client.get(url + "/results/result").data)
    assert len(table.array) == 0


def test_responseformat_csv_is_kept(client):
    url = create(client, RESPONSEFORMAT="csv", PHASE="RUN")
    root = wait_final(client, url)
    assert root.find("uws:results/uws:result", NS).get("mime-type").startswith("text/csv")
    r = client.get(url + "/results/result")
    assert r.mimetype == "text/csv"
    assert r.data.decode().splitlines()[0] == "extras_id,ra,dec"


def test_errors_are_reported_at_run_time(client):
    url = create(client, QUERY="DUFF QUERY")          # accepted at creation (E_JREJ)
    assert phase(client, url) == "PENDING"
    client.post(f"{url}/phase", data={"PHASE": "RUN"})
    root = wait_final(client, url)
    assert root.find("uws:phase", NS).text == "ERROR"
    message = root.find("uws:errorSummary/uws:message", NS).text
    assert "DUFF" in message or "syntax" in message.lower()
    r = client.get(url + "/error")
    assert r.status_code == 200
    table_doc = votable.parse(io.BytesIO(r.data))
    infos = {i.name: i for i in table_doc.resources[0].infos}
    assert infos["QUERY_STATUS"].value == "ERROR"
    assert client.get(url + "/results/result").status_code == 404


def test_unknown_table_error_names_it(client):
    url = create(client, QUERY="SELECT * FROM extras.nosuchtable", PHASE="RUN")
    root = wait_final(client, url)
    assert "nosuchtable" in root.find("uws:errorSummary/uws:message", NS).text


def test_abort_pending_job(client):
    url = create(client)
    r = client.post(f"{url}/phase", data={"PHASE": "ABORT"})
    assert r.status_code == 303
    root = doc(client, url)
    assert root.find("uws:phase", NS).text == "ABORTED"
    assert root.find("uws:errorSummary/uws:message", NS).text
    # RUN after ABORT changes nothing
    client.post(f"{url}/phase", data={"PHASE": "RUN"})
    assert phase(client, url) == "ABORTED"


@pytest.mark.parametrize("how", ["DELETE", "ACTION"])
def test_delete_gives_303_to_list_then_404(client, app, how):
    url = create(client, PHASE="RUN")
    wait_final(client, url)
    folder = Path(app.config["DATA_DIR"]) / "jobs" / url.rsplit("/", 1)[1]
    assert folder.is_dir()
    if how == "DELETE":
        r = client.delete(url)
    else:
        r = client.post(url, data={"ACTION": "DELETE"})
    assert r.status_code == 303
    assert path_of(r.headers["Location"]) == "/tap/async"
    assert client.get(url).status_code == 404
    assert client.get(url + "/phase").status_code == 404
    assert not folder.exists()


def test_parameters_change_while_pending_only(client):
    url = create(client, RUNID="TAPLINT-001")
    r = client.post(f"{url}/parameters", data={"runId": "TAPLINT-002", "MAXREC": "2"})
    assert r.status_code == 303
    root = doc(client, url)
    params = {p.get("id"): p.text for p in root.find("uws:parameters", NS)}
    assert params["runid"] == "TAPLINT-002" and params["maxrec"] == "2"
    assert root.find("uws:runId", NS).text == "TAPLINT-002"
    client.post(f"{url}/phase", data={"PHASE": "RUN"})
    wait_final(client, url)
    table = first_table(client.get(url + "/results/result").data)
    assert len(table.array) == 2
    r = client.post(f"{url}/parameters", data={"MAXREC": "3"})
    assert r.status_code == 400
    assert b"PENDING" in r.data


def test_execution_duration_and_destruction_updates(client):
    url = create(client)
    r = client.post(f"{url}/executionduration", data={"EXECUTIONDURATION": "120"})
    assert r.status_code == 303
    assert client.get(f"{url}/executionduration").data == b"120"
    when = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = client.post(f"{url}/destruction", data={"DESTRUCTION": when})
    assert r.status_code == 303
    assert client.get(f"{url}/destruction").data.decode() == when
    # beyond the service's limits: capped, not refused
    client.post(f"{url}/executionduration", data={"EXECUTIONDURATION": "99999999"})
    assert int(client.get(f"{url}/executionduration").data) == 3600


@pytest.mark.parametrize("resource, data, words", [
    ("/phase", {"PHASE": "SUSPEND"}, "PHASE"),
    ("/executionduration", {"EXECUTIONDURATION": "soon"}, "EXECUTIONDURATION"),
    ("/executionduration", {"EXECUTIONDURATION": "-5"}, "negative"),
    ("/destruction", {"DESTRUCTION": "tomorrow"}, "ISO 8601"),
    ("/destruction", {}, "DESTRUCTION"),
    ("", {"ACTION": "RUN"}, "ACTION=DELETE"),
])
def test_bad_posts_are_refused_with_a_reason(client, resource, data, words):
    url = create(client)
    r = client.post(url + resource, data=data)
    assert r.status_code == 400
    assert words.encode() in r.data


@pytest.mark.parametrize("query, words", [
    ({"WAIT": "soon"}, "WAIT"),
    ({"WAIT": "1", "PHASE": "WAITING"}, "PHASE"),
])
def test_bad_wait_is_refused(client, query, words):
    url = create(client)
    r = client.get(url, query_string=query)
    assert r.status_code == 400
    assert words.encode() in r.data


def test_bad_creation_parameters(client):
    r = client.post("/tap/async", data={"LANG": "ADQL", "QUERY": SMALL, "RUNID": "x" * 65})
    assert r.status_code == 400 and b"RUNID" in r.data
    r = client.post("/tap/async", data={"LANG": "ADQL", "QUERY": SMALL, "PHASE": "ABORT"})
    assert r.status_code == 400 and b"PHASE" in r.data


@pytest.mark.parametrize("query, words", [
    ({"PHASE": "DONE"}, "PHASE"), ({"LAST": "0"}, "LAST"), ({"LAST": "many"}, "LAST"),
    ({"AFTER": "yesterday"}, "AFTER")])
def test_bad_list_filters(client, query, words):
    r = client.get("/tap/async", query_string=query)
    assert r.status_code == 400
    assert words.encode() in r.data


def test_unknown_jobs_are_404(client):
    for url in ("/tap/async/0123456789abcdef0123", "/tap/async/../../etc",
                "/tap/async/nosuchjob/phase", "/tap/async/nosuchjob/results/result"):
        assert client.get(url).status_code == 404, url
    assert client.delete("/tap/async/0123456789abcdef0123").status_code == 404


def test_job_list_filters(client):
    before = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    time.sleep(0.01)
    pending = create(client)
    done = create(client, PHASE="RUN")
    wait_final(client, done)
    jobs = ET.fromstring(client.get("/tap/async").data)
    assert jobs.tag == "{http://www.ivoa.net/xml/UWS/v1.0}jobs"
    ids = [j.get("id") for j in jobs]
    assert pending.rsplit("/", 1)[1] in ids and done.rsplit("/", 1)[1] in ids
    ref = jobs.find("uws:jobref", NS)
    assert ref.get("{http://www.w3.org/1999/xlink}href").endswith("/tap/async/" + ref.get("id"))
    completed = ET.fromstring(client.get("/tap/async?PHASE=COMPLETED").data)
    assert all(j.find("uws:phase", NS).text == "COMPLETED" for j in completed)
    assert done.rsplit("/", 1)[1] in [j.get("id") for j in completed]
    assert pending.rsplit("/", 1)[1] not in [j.get("id") for j in completed]
    both = ET.fromstring(client.get("/tap/async?PHASE=COMPLETED&PHASE=PENDING").data)
    assert {j.find("uws:phase", NS).text for j in both} <= {"COMPLETED", "PENDING"}
    after = ET.fromstring(client.get("/tap/async", query_string={"AFTER": before}).data)
    assert {j.get("id") for j in after} == {pending.rsplit("/", 1)[1], done.rsplit("/", 1)[1]}
    last = ET.fromstring(client.get("/tap/async?LAST=1").data)
    assert [j.get("id") for j in last] == [done.rsplit("/", 1)[1]]


def test_wait_returns_early_when_phase_differs(client):
    url = create(client)
    started = time.monotonic()
    root = doc(client, url, WAIT="20", PHASE="QUEUED")
    assert time.monotonic() - started < 2
    assert root.find("uws:phase", NS).text == "PENDING"


def test_wait_blocks_until_the_job_finishes(client):
    url = create(client)
    client.post(f"{url}/phase", data={"PHASE": "RUN"})
    root = doc(client, url, WAIT="-1")
    assert root.find("uws:phase", NS).text == "COMPLETED"


def test_wait_blocks_for_the_time_given(client):
    url = create(client)
    started = time.monotonic()
    root = doc(client, url, WAIT="1")
    assert 0.9 < time.monotonic() - started < 5
    assert root.find("uws:phase", NS).text == "PENDING"


def test_wait_is_capped(demo_archive):
    from archive import create_app
    application = create_app({**demo_archive, "TESTING": True, "ASYNC_WAIT_CAP": 1.0})
    client = application.test_client()
    url = create(client)
    started = time.monotonic()
    doc(client, url, WAIT="-1")
    doc(client, url, WAIT="600")
    assert time.monotonic() - started < 6
    get_db(application).dispose()


def test_execution_duration_is_enforced(client):
    url = create(client, QUERY=SLOW, EXECUTIONDURATION="2", PHASE="RUN")
    started = time.monotonic()
    root = wait_final(client, url, timeout=120)
    assert root.find("uws:phase", NS).text == "ERROR"
    assert "execution duration" in root.find("uws:errorSummary/uws:message", NS).text
    assert time.monotonic() - started < 60


def test_abort_executing_job(client):
    url = create(client, QUERY=SLOW, PHASE="RUN")
    doc(client, url, WAIT="10", PHASE="QUEUED")
    client.post(f"{url}/phase", data={"PHASE": "ABORT"})
    assert phase(client, url) == "ABORTED"
    time.sleep(0.5)
    assert phase(client, url) == "ABORTED"
    assert client.get(url + "/results/result").status_code == 404


def test_destruction_removes_job_and_files(client, app):
    url = create(client, PHASE="RUN")
    wait_final(client, url)
    job_id = url.rsplit("/", 1)[1]
    folder = Path(app.config["DATA_DIR"]) / "jobs" / job_id
    assert folder.is_dir()
    client.post(f"{url}/destruction", data={"DESTRUCTION": "2001-01-01T00:00:00Z"})
    # the in-process worker's sweep may destroy it first: either way it is gone
    # (test_destroy_expired_ends_only_expired_jobs checks the store without a worker)
    claims.destroy_expired(get_db(app), app.config)
    assert client.get(url).status_code == 404
    assert not folder.exists()


# -- the store, below HTTP (a fresh database: no in-process worker competes) ----------------

@pytest.fixture
def store(empty_config):
    from archive.db import Database
    db = Database(empty_config["DATABASE_URL"])
    yield db, empty_config
    db.dispose()


def test_destroy_expired_ends_only_expired_jobs(store):
    db, config = store
    old, young = (uws.create_job(db, config, [("LANG", "ADQL"), ("QUERY", SMALL)])
                  for _ in range(2))
    for job in (old, young):
        folder = uws.job_dir(config, job.job_id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "result.vot").write_bytes(b"<VOTABLE/>")
    uws.set_destruction(db, config, old.job_id, "2001-01-01T00:00:00Z")
    assert claims.destroy_expired(db, config) == [old.job_id]
    with pytest.raises(NotFoundFault):
        uws.get_job(db, old.job_id)
    assert not uws.job_dir(config, old.job_id).exists()
    assert uws.get_job(db, young.job_id).phase == uws.PENDING
    assert (uws.job_dir(config, young.job_id) / "result.vot").is_file()
    assert claims.destroy_expired(db, config) == []


def _queue(db, config, n):
    return [uws.create_job(db, config, [("LANG", "ADQL"), ("QUERY", SMALL), ("PHASE", "RUN")])
            for _ in range(n)]


def test_concurrent_claims_never_share_a_job(store):
    db, config = store
    jobs = {j.job_id for j in _queue(db, config, 12)}
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer(name):
        while True:
            job = claims.claim_job(db, f"test:{name}")
            if job is None:
                return
            with lock:
                claimed.append(job.job_id)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(jobs)          # every job claimed exactly once
    for job_id in jobs:
        job = uws.get_job(db, job_id)
        assert job.phase == "EXECUTING" and job.attempts == 1


def test_orphaned_jobs_are_requeued_then_failed(store):
    db, config = store
    config = dict(config, ASYNC_MAX_ATTEMPTS=2)
    job = _queue(db, config, 1)[0]
    dead = "somewhere-else:1:dead"             # another host, silent for long
    from archive.db import uws_jobs
    old = uws.utcnow() - timedelta(minutes=10)

    def take():
        with db.engine.begin() as conn:
            conn.execute(uws_jobs.update().where(uws_jobs.c.job_id == job.job_id)
                         .values(phase="EXECUTING", worker=dead, heartbeat=old,
                                 start_time=old, attempts=uws_jobs.c.attempts + 1))

    take()
    assert claims.recover_orphans(db, config) == [(job.job_id, "QUEUED")]
    assert uws.get_job(db, job.job_id).phase == "QUEUED"
    take()
    assert claims.recover_orphans(db, config) == [(job.job_id, "ERROR")]
    failed = uws.get_job(db, job.job_id)
    assert failed.phase == "ERROR" and "stopped unexpectedly" in failed.error
    # a worker that is alive and beating keeps its job
    live = _queue(db, config, 1)[0]
    assert claims.claim_job(db, claims.worker_identity()).job_id == live.job_id
    assert claims.recover_orphans(db, config) == []


def test_worker_of_a_finished_process_is_detected_at_once(store):
    import socket
    import subprocess
    db, config = store
    proc = subprocess.Popen(["true"])
    proc.wait()
    job = _queue(db, config, 1)[0]
    from archive.db import uws_jobs
    with db.engine.begin() as conn:
        conn.execute(uws_jobs.update().where(uws_jobs.c.job_id == job.job_id)
                     .values(phase="EXECUTING", worker=f"{socket.gethostname()}:{proc.pid}:x",
                             heartbeat=uws.utcnow(), start_time=uws.utcnow(), attempts=1))
    assert claims.recover_orphans(db, config) == [(job.job_id, "QUEUED")]


def test_overdue_job_ends_in_error_even_if_its_worker_lives(store):
    db, config = store
    job = _queue(db, config, 1)[0]
    me = claims.worker_identity()
    assert claims.claim_job(db, me).job_id == job.job_id
    from archive.db import uws_jobs
    with db.engine.begin() as conn:
        conn.execute(uws_jobs.update().where(uws_jobs.c.job_id == job.job_id)
                     .values(start_time=uws.utcnow() - timedelta(hours=3)))
    assert claims.recover_orphans(db, config) == [(job.job_id, "ERROR")]
    assert "execution duration" in uws.get_job(db, job.job_id).error
    # the worker's late attempt to finish is refused
    assert not claims.complete_job(db, job.job_id, me, result_file="r", result_type="x",
                                rows=0, overflow=False, size=0)
    assert claims.heartbeat(db, job.job_id, me) == "ERROR"

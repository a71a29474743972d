"""Operations through the Flask test client (both backends): /health, /metrics, the
access log, TRUSTED_PROXIES (X-Forwarded-*), the async queue limits, the database
going away and coming back (PostgreSQL)."""
from __future__ import annotations

import json
import logging
import time

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from archive import create_app
from archive.db import get_db, uws_jobs
from archive.tap import uws
from cluster_helpers import terminate_database
from helpers import query_error

SMALL = "SELECT TOP 3 extras_id FROM extras.aperiodic ORDER BY extras_id"


@pytest.fixture
def fresh_app(empty_config):
    """An app on an empty archive of its own whose jobs nobody runs."""
    def make(**settings):
        application = create_app({**empty_config, "TESTING": True,
                                  "ASYNC_WORKER_IN_PROCESS": False, **settings})
        made.append(application)
        return application
    made = []
    yield make
    for application in made:
        get_db(application).dispose()


def call(client, method: str, url: str, **kwargs):
    """One request whose answer is read and closed: the instrumentation records a
    request when the server closes its answer (after the last byte of a stream)."""
    with getattr(client, method)(url, **kwargs) as response:
        response.get_data()
    return response


def samples(text: str) -> dict[tuple, float]:
    """{(name, sorted label items): value} of a Prometheus text exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_health_answers_json_when_the_database_answers(client):
    r = client.get("/health")
    assert r.status_code == 200
    assert r.mimetype == "application/json"
    assert r.headers["Cache-Control"] == "no-store"
    doc = r.get_json()
    assert doc["status"] == "ok" and doc["database"]["ok"] is True
    assert doc["database"]["ms"] >= 0


def test_metrics_count_requests_by_route_and_status(client, app):
    before = samples(client.get("/metrics").get_data(as_text=True))
    r = call(client, "post", "/tap/async", data={"LANG": "ADQL", "QUERY": SMALL})
    assert r.status_code == 303
    job_url = r.headers["Location"]
    job_id = job_url.rsplit("/", 1)[1]
    assert call(client, "get", f"/tap/async/{job_id}").status_code == 200
    assert call(client, "get", "/tap/async/ffffffffffffffffffff").status_code == 404
    assert call(client, "get", "/no/such/page").status_code == 404
    text = client.get("/metrics").get_data(as_text=True)
    after = samples(text)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    route = "/tap/async/<job_id>"
    assert delta("archive_http_requests_total", route=route, method="GET", status="200") == 1
    assert delta("archive_http_requests_total", route=route, method="GET", status="404") == 1
    assert delta("archive_http_requests_total", route="/tap/async", method="POST",
                 status="303") == 1
    assert delta("archive_http_requests_total", route="unmatched", method="GET",
                 status="404") == 1
    # no raw path becomes a label
    assert job_id not in text and "/no/such/page" not in text
    assert delta("archive_http_request_duration_seconds_count", route=route) == 2
    assert after[("archive_http_request_duration_seconds_bucket",
                  (("le", "+Inf"), ("route", route)))] >= 2
    # jobs by phase: what the database holds
    with get_db(app).engine.connect() as conn:
        counts = dict(conn.execute(sa.select(uws_jobs.c.phase, sa.func.count())
                                   .group_by(uws_jobs.c.phase)).all())
    assert after[("archive_uws_jobs", (("phase", "PENDING"),))] == counts["PENDING"]
    for phase in ("QUEUED", "EXECUTING", "COMPLETED", "ERROR", "ABORTED"):
        assert ("archive_uws_jobs", (("phase", phase),)) in after
    # the pools: sizes known, nothing checked out between requests
    for engine in ("readwrite", "readonly"):
        assert after[("archive_db_pool_size", (("engine", engine),))] >= 1
        assert after[("archive_db_connections_in_use", (("engine", engine),))] >= 0
    client.delete(f"/tap/async/{job_id}")


def test_access_log_one_json_line_per_request(client, caplog):
    caplog.set_level(logging.INFO, logger="archive.access")
    with client.get("/tap/sync", query_string={"LANG": "ADQL", "QUERY": SMALL,
                                              "RESPONSEFORMAT": "csv"}) as r:
        assert r.status_code == 200
        body = r.get_data()
    call(client, "get", "/health")
    call(client, "get", "/tap/async/0123456789abcdef0123",
         environ_base={"REMOTE_ADDR": "192.0.2.7"})
    lines = [json.loads(rec.getMessage()) for rec in caplog.records
             if rec.name == "archive.access"]
    assert [line["route"] for line in lines] == ["/tap/sync", "/tap/async/<job_id>"], \
        "one line per request, none for a healthy /health"
    sync, missing = lines
    assert sync["method"] == "GET" and sync["path"] == "/tap/sync"
    assert sync["status"] == 200 and sync["bytes"] == len(body) > 0
    assert sync["duration_ms"] > 0 and sync["client"] == "127.0.0.1"
    assert missing["status"] == 404 and missing["client"] == "192.0.2.7"
    assert missing["path"] == "/tap/async/0123456789abcdef0123"


def test_forwarded_headers_are_trusted_only_with_trusted_proxies(fresh_app):
    forwarded = {"X-Forwarded-For": "198.51.100.4", "X-Forwarded-Proto": "https",
                 "X-Forwarded-Host": "archive.example.org", "X-Forwarded-Port": "443"}
    direct = fresh_app().test_client()
    r = direct.post("/tap/async", data={"QUERY": SMALL}, headers=forwarded)
    assert r.headers["Location"].startswith("http://localhost/tap/async/")
    behind = fresh_app(TRUSTED_PROXIES=1)
    r = behind.test_client().post("/tap/async", data={"QUERY": SMALL}, headers=forwarded)
    assert r.status_code == 303
    assert r.headers["Location"].startswith("https://archive.example.org/tap/async/")
    job = uws.get_job(get_db(behind), r.headers["Location"].rsplit("/", 1)[1])
    assert job.client == "198.51.100.4"
    caps = behind.test_client().get("/tap/capabilities", headers=forwarded)
    assert b"https://archive.example.org/tap/examples" in caps.data
    assert b"localhost" not in caps.data


def test_queue_limits_per_client_and_for_the_service(fresh_app):
    app = fresh_app(ASYNC_QUEUE_MAX=3, ASYNC_QUEUE_MAX_PER_CLIENT=2)
    c = app.test_client()

    def create(addr, **extra):
        return c.post("/tap/async", data={"QUERY": SMALL, "PHASE": "RUN", **extra},
                      environ_base={"REMOTE_ADDR": addr})

    assert create("192.0.2.1").status_code == 303
    assert create("192.0.2.1").status_code == 303
    third = create("192.0.2.1")
    assert third.status_code == 429
    message = query_error(third)
    assert "ASYNC_QUEUE_MAX_PER_CLIENT=2" in message and "192.0.2.1" in message
    assert create("192.0.2.2").status_code == 303          # another client still may
    full = create("192.0.2.3")
    assert full.status_code == 503
    assert "ASYNC_QUEUE_MAX=3" in query_error(full)
    # a PENDING job may be created, but not run while the queue is full
    pending = c.post("/tap/async", data={"QUERY": SMALL}, environ_base={"REMOTE_ADDR": "192.0.2.3"})
    assert pending.status_code == 303
    job_url = pending.headers["Location"]
    refused = c.post(job_url + "/phase", data={"PHASE": "RUN"})
    assert refused.status_code == 503
    assert uws.get_job(get_db(app), job_url.rsplit("/", 1)[1]).phase == "PENDING"
    # no job was half-made: 3 queued, 1 pending
    with get_db(app).engine.connect() as conn:
        phases = sorted(conn.execute(sa.select(uws_jobs.c.phase)).scalars())
    assert phases == ["PENDING", "QUEUED", "QUEUED", "QUEUED"]
    # a finished job frees its place
    with get_db(app).engine.begin() as conn:
        first = conn.execute(sa.select(uws_jobs.c.job_id).where(
            uws_jobs.c.client == "192.0.2.1").limit(1)).scalar_one()
        conn.execute(uws_jobs.update().where(uws_jobs.c.job_id == first)
                     .values(phase="COMPLETED"))
    assert c.post(job_url + "/phase", data={"PHASE": "RUN"}).status_code == 303
    assert create("192.0.2.1").status_code == 503          # the service is full again


@pytest.mark.parametrize("backend", ["postgresql"])
def test_database_outage_gives_503_then_the_app_reconnects(fresh_app, empty_config):
    """The database refusing connections and dropping the open ones (as a restart
    does, done here to this test's database only: the server is shared):
    /health and requests answer 503, and the app recovers by itself."""
    app = fresh_app()
    c = app.test_client()
    assert c.get("/health").status_code == 200
    assert c.post("/tap/async", data={"QUERY": SMALL}).status_code == 303
    url = sa.engine.make_url(empty_config["DATABASE_URL"])
    admin = url.set(database="postgres").render_as_string(hide_password=False)
    terminate_database(admin, url.database, allow=False)
    try:
        down = c.get("/health")
        assert down.status_code == 503
        assert down.get_json()["database"]["ok"] is False
        r = c.post("/tap/async", data={"QUERY": SMALL})
        assert r.status_code == 503
        assert "database is unavailable" in query_error(r)
    finally:
        terminate_database(admin, url.database, allow=True)
    deadline = time.monotonic() + 10
    while c.get("/health").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert c.get("/health").status_code == 200
    assert c.post("/tap/async", data={"QUERY": SMALL}).status_code == 303


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_query_cut_off_by_the_database_is_a_503(fresh_app, empty_config):
    """A sync query whose database session is ended (a restart, a failover) answers
    503 with a DALI error saying so, not a 500: the client may simply try again."""
    import threading
    from ingest.demo import build_demo
    build_demo(empty_config, rows=200, seed=2, workers=1, products=False, previews=False)
    app = fresh_app()
    slow = ("SELECT COUNT(*) AS n FROM extras.aperiodic AS a, extras.aperiodic AS b, "
            "extras.aperiodic AS c, extras.aperiodic AS d WHERE a.ra * b.dec + c.ra > d.dec")
    answer = {}
    asking = threading.Thread(target=lambda: answer.update(r=app.test_client().get(
        "/tap/sync", query_string={"LANG": "ADQL", "QUERY": slow})))
    asking.start()
    url = sa.engine.make_url(empty_config["DATABASE_URL"])
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        deadline = time.monotonic() + 30
        ended = 0
        while not ended and time.monotonic() < deadline and asking.is_alive():
            with admin.connect() as conn:
                ended = conn.execute(sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :d AND state = 'active' AND query LIKE '%count(*)%'"),
                    {"d": url.database}).scalar()
            time.sleep(0.05)
    finally:
        admin.dispose()
    asking.join(60)
    assert ended == 1
    r = answer["r"]
    assert r.status_code == 503
    assert "connection to the archive database was lost" in query_error(r)

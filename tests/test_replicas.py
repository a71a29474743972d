"""Read replicas (archive/replicas.py) with real PostgreSQL streaming replication.

The module starts its own primary and two replicas made with ``pg_basebackup -R``
(tests/pg_cluster.py), builds a small archive on the primary, and counts with
``pg_stat_statements`` which server ran the statements that read the catalogues and
the products.
"""
from __future__ import annotations

import io
import os
import threading
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import numpy as np
import pytest
import sqlalchemy as sa
from astropy.table import Table

from archive.config import ConfigError, load_config
from archive.db import catalogue_tables, get_db
from archive.replicas import masked
from helpers import first_table, tap_sync
from ingest_helpers import file_table, run_cli, synthetic, write
from pg_cluster import Cluster

pytestmark = pytest.mark.postgres

DATABASE = "archive_replicas"
NS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0",
      "vosi": "http://www.ivoa.net/xml/VOSIAvailability/v1.0"}
COUNT = "SELECT COUNT(*) AS n FROM extras.aperiodic"
# statements that read what users ask for: catalogue tables and products
READS = ("SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s "
         "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = :db "
         "AND (s.query LIKE '%aperiodic%' OR s.query LIKE '%products%') "
         "AND s.query NOT LIKE '%search_cache%'")


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(replicas=2)
    yield c
    stop_in_process_worker(c.primary.url(DATABASE))
    c.close()


def stop_in_process_worker(database_url: str) -> None:
    """End the apps' job worker thread before its database goes away."""
    from archive.tap import worker
    running = worker._in_process.pop((os.getpid(), database_url), None)
    if running is not None:
        running[1].set()
        worker.notify()
        running[0].join(30)


@pytest.fixture(scope="module")
def archive_config(cluster, tmp_path_factory):
    from ingest.demo import build_demo
    cluster.create_database(DATABASE)
    data_dir = tmp_path_factory.mktemp("replicas")
    config = load_config({
        "DATA_DIR": str(data_dir), "DATABASE_URL": cluster.primary.url(DATABASE),
        # the replicas' URLs carry a password (trust ignores it): it must never show
        "READ_REPLICA_URLS": [r.url(DATABASE, password="s3cret") for r in cluster.replicas],
        "REPLICA_MAX_LAG": 3600.0, "REPLICA_CHECK_INTERVAL": 0.2,
        "SIMBAD_URL": "http://127.0.0.1:9/simbad/sim-tap"}, environ={})
    build_demo(config, rows=200, seed=42, workers=1, previews=False)
    for replica in cluster.replicas:
        cluster.wait_replayed(replica)
    return config


def make_app(config, **settings):
    from archive import create_app
    return create_app({**config, "TESTING": True, **settings})


@pytest.fixture(scope="module")
def app(archive_config):
    application = make_app(archive_config)
    yield application
    get_db(application).dispose()


@pytest.fixture(scope="module")
def strict_app(archive_config):
    """The archive with a replica lag bound of one second."""
    application = make_app(archive_config, REPLICA_MAX_LAG=1.0)
    yield application
    get_db(application).dispose()


def reads(server) -> int:
    return int(server.query(READS, db=DATABASE))


def counts(cluster) -> list[int]:
    """Reads so far on [primary, replica0, replica1]."""
    return [reads(s) for s in (cluster.primary, *cluster.replicas)]


def delta(before, after) -> list[int]:
    return [b - a for a, b in zip(before, after)]


def scalar(server, stmt):
    """``stmt``'s value, read directly on ``server`` (primary or replica)."""
    engine = sa.create_engine(server.url(DATABASE), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(stmt).scalar_one()
    finally:
        engine.dispose()


def scalar_rows(server, stmt) -> list:
    engine = sa.create_engine(server.url(DATABASE), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return list(conn.execute(stmt).scalars())
    finally:
        engine.dispose()


def aperiodic_rows(server) -> int:
    return scalar(server, sa.select(sa.func.count()).select_from(catalogue_tables["aperiodic"]))


def primary_count(cluster) -> int:
    return aperiodic_rows(cluster.primary)


def tap_count(client) -> int:
    response = tap_sync(client, COUNT)
    assert response.status_code == 200, response.data[:500]
    return int(first_table(response.data).array["n"][0])


def wait_state(db, index: int, state: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = db.replica_status()[index]
        if status["state"] == state:
            return status
        time.sleep(0.1)
    raise AssertionError(f"replica {index} is not {state}: {db.replica_status()}")


def availability_notes(client) -> list[str]:
    root = ET.fromstring(client.get("/tap/availability").data)
    assert root.find("vosi:available", NS).text == "true"
    return [n.text for n in root.findall("vosi:note", NS)]


def create_job(client, query=COUNT, **params) -> str:
    r = client.post("/tap/async", data={"LANG": "ADQL", "QUERY": query, **params})
    assert r.status_code == 303, r.data
    return urlsplit(r.headers["Location"]).path


def job_phase(client, url, **query) -> str:
    r = client.get(url, query_string=query)
    assert r.status_code == 200, (url, r.status_code, r.data[:300])
    return ET.fromstring(r.data).find("uws:phase", NS).text


def wait_job(client, url) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        phase = job_phase(client, url, WAIT="5")
        if phase in ("COMPLETED", "ERROR", "ABORTED"):
            return phase
    raise AssertionError(f"job {url} did not finish")


# -- settings ---------------------------------------------------------------------

@pytest.mark.parametrize("settings, message", [
    ({"READ_REPLICA_URLS": ["postgresql+psycopg://h/db"]}, "needs a PostgreSQL DATABASE_URL"),
    ({"DATABASE_URL": "postgresql+psycopg://h/db", "READ_REPLICA_URLS": ["sqlite:///x"]},
     "is not a PostgreSQL URL"),
    ({"DATABASE_URL": "postgresql+psycopg://h/db", "REPLICA_MAX_LAG": 0},
     "REPLICA_MAX_LAG=0 must be a positive"),
    ({"DATABASE_URL": "postgresql+psycopg://h/db", "DATABASE_POOLER": "pgpool"},
     "DATABASE_POOLER='pgpool' is not one of"),
    ({"DATABASE_POOLER": "pgbouncer-transaction"}, "DATABASE_POOLER is for a PostgreSQL"),
])
def test_database_settings_that_cannot_work_are_refused(tmp_path, settings, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"DATA_DIR": str(tmp_path), **settings}, environ={})


def test_replica_urls_come_from_the_environment_as_a_list(tmp_path):
    config = load_config({"DATA_DIR": str(tmp_path)}, environ={
        "EXTRAS_ARCHIVE_DATABASE_URL": "postgresql+psycopg://p/db",
        "EXTRAS_ARCHIVE_READ_REPLICA_URLS": "postgresql+psycopg://r1/db, "
                                            "postgresql+psycopg://r2/db"})
    assert config["READ_REPLICA_URLS"] == ["postgresql+psycopg://r1/db",
                                           "postgresql+psycopg://r2/db"]


def test_masked_hides_the_password():
    shown = masked("postgresql+psycopg://user:pa55word@db.example:5433/archive")
    assert "pa55word" not in shown and shown.startswith("postgresql+psycopg://user:***@")


# -- with the replicas ------------------------------------------------------------

def test_replica_status_reports_each_replica(app, cluster):
    status = get_db(app).replica_status()
    assert [s["state"] for s in status] == ["ok", "ok"]
    for s, replica in zip(status, cluster.replicas):
        assert f":{replica.port}/" in s["url"] and "s3cret" not in s["url"]
        assert 0 <= s["lag_seconds"] < 3600
    notes = availability_notes(app.test_client())
    assert "2 of 2 read replicas answer queries" in notes
    assert not any("skipped" in n for n in notes)


def test_user_queries_are_answered_by_the_replicas(app, cluster, archive_config):
    client = app.test_client()
    db = get_db(app)
    with db.engine.connect() as conn:
        ap = catalogue_tables["aperiodic"]
        ra, dec, extras_id = conn.execute(sa.select(ap.c.ra, ap.c.dec, ap.c.extras_id)
                                          .order_by(ap.c.extras_id).limit(1)).one()
        product = conn.execute(sa.text("SELECT path FROM products ORDER BY path LIMIT 1")
                               ).scalar_one()
    before = counts(cluster)
    for _ in range(4):
        assert tap_count(client) == 200
    for _ in range(2):
        r = client.get(f"/scs/aperiodic?RA={ra!r}&DEC={dec!r}&SR=0.01&RESPONSEFORMAT=csv")
        assert r.status_code == 200 and extras_id in r.data.decode()
    r = client.get("/search/aperiodic", query_string={"format": "csv", "maxrec": "1000"})
    assert r.status_code == 200 and r.data.decode().count("\n") == 201
    r = client.get("/datalink/links", query_string={"ID": extras_id})
    assert r.status_code == 200
    assert client.get("/products/" + product).status_code == 200
    url = create_job(client, PHASE="RUN")
    assert wait_job(client, url) == "COMPLETED"
    assert first_table(client.get(url + "/results/result").data).array["n"][0] == 200
    primary, *replicas = delta(before, counts(cluster))
    assert primary == 0, "the primary ran user queries although the replicas were usable"
    assert all(n > 0 for n in replicas), f"queries were not spread: {replicas}"
    assert sum(replicas) >= 10


def test_queries_with_uploads_run_on_the_primary(app, cluster):
    """A hot standby cannot create the temporary tables of an upload."""
    client = app.test_client()
    ap = catalogue_tables["aperiodic"]
    ids = list(scalar_rows(cluster.primary, sa.select(ap.c.extras_id)
                           .order_by(ap.c.extras_id).limit(3)))
    buf = io.BytesIO()
    Table({"n": [1, 2, 3], "eid": np.array(ids, dtype="S")}).write(buf, format="votable")
    before = counts(cluster)
    r = tap_sync(client, "SELECT u.n, a.extras_id FROM TAP_UPLOAD.mine AS u "
                         "JOIN extras.aperiodic AS a ON a.extras_id = u.eid ORDER BY u.n",
                 {"part": buf.getvalue()}, UPLOAD="mine,param:part")
    assert r.status_code == 200, r.data[:500]
    assert list(first_table(r.data).array["extras_id"]) == ids
    primary, *replicas = delta(before, counts(cluster))
    assert primary == 1 and replicas == [0, 0]


def test_a_row_ingested_on_the_primary_is_seen_after_replay(app, cluster, archive_config,
                                                            tmp_path):
    client = app.test_client()
    assert tap_count(client) == 200
    synth = synthetic(150, seed=11)
    path = write(file_table("aperiodic", synth.aperiodic), tmp_path / "more.fits", "fits")
    assert run_cli(archive_config, "ingest", "catalogue", str(path), "--catalogue",
                   "aperiodic").exit_code == 0
    total = primary_count(cluster)
    assert total > 200
    for replica in cluster.replicas:
        cluster.wait_replayed(replica)
        assert aperiodic_rows(replica) == total
    before = counts(cluster)
    assert [tap_count(client) for _ in range(4)] == [total] * 4
    primary, *replicas = delta(before, counts(cluster))
    assert primary == 0 and all(n > 0 for n in replicas)


def test_a_lagging_replica_is_skipped(strict_app, cluster):
    client = strict_app.test_client()
    db = get_db(strict_app)
    assert [s["state"] for s in db.replica_status()] == ["ok", "ok"]
    lagging = cluster.replicas[0]
    lagging.query("SELECT pg_wal_replay_pause()")
    try:
        cluster.primary.query("CREATE TABLE IF NOT EXISTS lag_probe (t timestamptz)")
        deadline = time.monotonic() + 20
        while db.replica_status()[0]["state"] != "lagging":
            # writes the paused replica cannot replay; its last replayed one ages
            cluster.primary.query("INSERT INTO lag_probe VALUES (now())")
            time.sleep(0.2)
            assert time.monotonic() < deadline, db.replica_status()
        status = db.replica_status()
        assert status[0]["lag_seconds"] > 1 and status[1]["state"] == "ok"
        notes = availability_notes(client)
        assert "1 of 2 read replicas answer queries" in notes
        skipped = [n for n in notes if "skipped (lagging)" in n]
        assert len(skipped) == 1 and f":{lagging.port}/" in skipped[0]
        assert "REPLICA_MAX_LAG = 1 s" in skipped[0] and "s3cret" not in skipped[0]
        total = primary_count(cluster)
        before = counts(cluster)
        assert [tap_count(client) for _ in range(4)] == [total] * 4
        primary, paused, other = delta(before, counts(cluster))
        assert (primary, paused, other) == (0, 0, 4)
    finally:
        lagging.query("SELECT pg_wal_replay_resume()")
    wait_state(db, 0, "ok")


def test_a_clients_job_never_goes_missing(app, cluster):
    """Job state is read where it was written: with both replicas not replaying (but
    within the bound, so still used for queries) the job is found at once."""
    client = app.test_client()
    db = get_db(app)
    for replica in cluster.replicas:
        replica.query("SELECT pg_wal_replay_pause()")
    try:
        before = counts(cluster)
        for _ in range(3):
            url = create_job(client)
            job_id = url.rsplit("/", 1)[1]
            assert job_phase(client, url) == "PENDING"
            listing = client.get("/tap/async")
            assert listing.status_code == 200 and job_id.encode() in listing.data
            r = client.post(url + "/phase", data={"PHASE": "RUN"})
            assert r.status_code == 303
            assert wait_job(client, url) == "COMPLETED"
            assert client.get(url + "/results/result").status_code == 200
            assert client.delete(url).status_code in (200, 303)
            assert client.get(url).status_code == 404
        # the jobs' queries ran on the (paused) replicas, which never saw the jobs
        primary, *replicas = delta(before, counts(cluster))
        assert primary == 0 and sum(replicas) >= 3
        assert [s["state"] for s in db.replica_status()] == ["ok", "ok"]
        assert scalar(cluster.replicas[0], sa.text(
            f"SELECT count(*) FROM uws_jobs WHERE job_id = '{job_id}'")) == 0
    finally:
        for replica in cluster.replicas:
            replica.query("SELECT pg_wal_replay_resume()")


def test_the_app_reconnects_after_the_primary_restarts(app, cluster):
    client = app.test_client()
    total = primary_count(cluster)
    assert tap_count(client) == total
    cluster.primary.stop("fast")
    try:
        # the replicas still answer queries while the primary is away
        assert tap_count(client) == total
        root = ET.fromstring(client.get("/tap/availability").data)
        assert root.find("vosi:available", NS).text == "false"
    finally:
        cluster.primary.start()
    url = create_job(client, PHASE="RUN")
    assert wait_job(client, url) == "COMPLETED"
    assert availability_notes(client)[0].startswith("the archive database answered")
    for replica in cluster.replicas:
        cluster.wait_replayed(replica)


def test_stopped_replicas_fail_no_request(app, cluster):
    """Both replicas stopped (immediate shutdown) one after the other while clients
    query: every request succeeds, the primary takes over, availability says so."""
    client = app.test_client()
    db = get_db(app)
    total = primary_count(cluster)
    with db.engine.connect() as conn:
        ap = catalogue_tables["aperiodic"]
        ra, dec = conn.execute(sa.select(ap.c.ra, ap.c.dec).order_by(ap.c.extras_id)
                               .limit(1)).one()
    failures, done = [], []
    stop = threading.Event()

    def load():
        own = app.test_client()
        while not stop.is_set():
            r = tap_sync(own, COUNT)
            if r.status_code != 200 or int(first_table(r.data).array["n"][0]) != total:
                failures.append((r.status_code, r.data[:300]))
            r = own.get(f"/scs/aperiodic?RA={ra!r}&DEC={dec!r}&SR=0.01")
            if r.status_code != 200:
                failures.append((r.status_code, r.data[:300]))
            r = tap_sync(own, "SELECT TOP 50 * FROM extras.aperiodic")   # a plain scan
            if r.status_code != 200 or len(first_table(r.data).array) != 50:
                failures.append((r.status_code, r.data[:300]))
            done.append(1)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        cluster.replicas[0].stop("immediate")
        time.sleep(1.5)
        cluster.replicas[1].stop("immediate")
        before_primary = reads(cluster.primary)
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    try:
        assert not failures, failures[:3]
        assert len(done) >= 6
        assert reads(cluster.primary) > before_primary
        assert [s["state"] for s in db.replica_status()] == ["down", "down"]
        notes = availability_notes(client)
        assert "0 of 2 read replicas answer queries; the primary answers them" in notes
        assert sum("skipped (down)" in n for n in notes) == 2
        assert tap_count(client) == total
    finally:
        for replica in cluster.replicas:
            replica.start()
    for index in (0, 1):
        wait_state(db, index, "ok")
    before = counts(cluster)
    assert [tap_count(client) for _ in range(4)] == [total] * 4
    primary, *replicas = delta(before, counts(cluster))
    assert primary == 0 and all(n > 0 for n in replicas)

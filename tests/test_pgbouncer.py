"""The archive through a real pgbouncer (Debian's) in transaction mode
(``DATABASE_POOLER = "pgbouncer-transaction"``).

The module starts its own PostgreSQL primary and a pgbouncer with two server
connections in front of it (tests/pg_cluster.py), builds a small archive through
pgbouncer (ingest) and serves it through pgbouncer: every transaction may get either
server connection, so session state or server-side prepared statements that leaked
would show as failures here.
"""
from __future__ import annotations

import io
import threading
import time
from urllib.parse import urlsplit

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa
from astropy.table import Table

from archive.config import load_config
from archive.db import Database, catalogue_tables, get_db
from archive.errors import QueryTimeout
from archive.query import execute
from archive.result import ResultColumn
from helpers import first_table, tap_sync
from ingest_helpers import file_table, run_cli, synthetic, write
from pg_cluster import Cluster

pytestmark = pytest.mark.postgres

DATABASE = "archive_pgbouncer"
POOL_SIZE = 2
COUNT = "SELECT COUNT(*) AS n FROM extras.aperiodic"
SCAN = "SELECT TOP 50 * FROM extras.aperiodic"       # a plain scan (columnar candidate)


@pytest.fixture(scope="module")
def bouncer():
    cluster = Cluster()
    cluster.create_database(DATABASE)
    pgbouncer = cluster.start_pgbouncer(pool_size=POOL_SIZE)
    yield cluster, pgbouncer
    from archive.tap import worker
    import os
    running = worker._in_process.pop((os.getpid(), pgbouncer.url(DATABASE)), None)
    if running is not None:
        running[1].set()
        worker.notify()
        running[0].join(30)
    cluster.close()


@pytest.fixture(scope="module")
def config(bouncer, tmp_path_factory):
    from ingest.demo import build_demo
    _cluster, pgbouncer = bouncer
    data_dir = tmp_path_factory.mktemp("pgbouncer")
    config = load_config({
        "DATA_DIR": str(data_dir), "DATABASE_URL": pgbouncer.url(DATABASE),
        "DATABASE_POOLER": "pgbouncer-transaction",
        "SIMBAD_URL": "http://127.0.0.1:9/simbad/sim-tap"}, environ={})
    # the demo's ingest (ADBC, COPY) and products go through pgbouncer too
    build_demo(config, rows=200, seed=42, workers=1, previews=False)
    return config


@pytest.fixture(scope="module")
def app(config):
    from archive import create_app
    application = create_app({**config, "TESTING": True})
    yield application
    get_db(application).dispose()


def assert_count_answers(client) -> None:
    """A query answers (read to the end: an unread streamed result would hold its
    transaction, and so one of pgbouncer's server connections)."""
    r = tap_sync(client, COUNT)
    assert r.status_code == 200 and first_table(r.data).array["n"][0] > 0, r.data[:500]


def server_sessions(pgbouncer) -> list[tuple[str, str]]:
    """(statement_timeout, transaction_read_only) of every server connection of the
    pool: as many clients as server connections, each holding one in a transaction."""
    conns = [psycopg.connect(host="127.0.0.1", port=pgbouncer.port, user="postgres",
                             dbname=DATABASE, prepare_threshold=None)
             for _ in range(POOL_SIZE)]
    try:
        found = []
        for conn in conns:            # each BEGINs and keeps its server connection
            conn.execute("SELECT 1")
            found.append((conn.execute("SHOW statement_timeout").fetchone()[0],
                          conn.execute("SHOW transaction_read_only").fetchone()[0]))
        pids = {conn.execute("SELECT pg_backend_pid()").fetchone()[0] for conn in conns}
        assert len(pids) == POOL_SIZE       # every server connection was looked at
        return found
    finally:
        for conn in conns:
            conn.close()


def test_connections_prepare_nothing_on_the_server(app):
    db = get_db(app)
    for engine in (db.engine, db.readonly):
        with engine.connect() as conn:
            assert conn.connection.dbapi_connection.prepare_threshold is None


def test_tap_scs_and_jobs_work_through_pgbouncer(app, bouncer):
    _cluster, pgbouncer = bouncer
    ap = catalogue_tables["aperiodic"]
    with get_db(app).engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(ap)).scalar_one()
        ra, dec, extras_id = conn.execute(sa.select(ap.c.ra, ap.c.dec, ap.c.extras_id)
                                          .order_by(ap.c.extras_id).limit(1)).one()
    failures, jobs = [], []

    def client_loop():
        client = app.test_client()
        for _ in range(8):        # the same statements again and again (psycopg would
            r = tap_sync(client, COUNT)                     # prepare them after 5)
            if r.status_code != 200 or first_table(r.data).array["n"][0] != total:
                failures.append(("count", r.status_code, r.data[:300]))
            r = tap_sync(client, SCAN)
            if r.status_code != 200 or len(first_table(r.data).array) != 50:
                failures.append(("scan", r.status_code, r.data[:300]))
            r = client.get(f"/scs/aperiodic?RA={ra!r}&DEC={dec!r}&SR=0.01"
                           "&RESPONSEFORMAT=csv")
            if r.status_code != 200 or extras_id not in r.data.decode():
                failures.append(("scs", r.status_code, r.data[:300]))
            r = client.post("/tap/async", data={"LANG": "ADQL", "QUERY": COUNT,
                                                "PHASE": "RUN"})
            if r.status_code != 303:
                failures.append(("async", r.status_code, r.data[:300]))
            else:
                jobs.append(urlsplit(r.headers["Location"]).path)

    threads = [threading.Thread(target=client_loop) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not failures, failures[:3]
    client = app.test_client()
    assert len(jobs) == 24
    for url in jobs:
        deadline = time.monotonic() + 60
        while True:
            r = client.get(url + "/phase")
            assert r.status_code == 200
            if r.data.decode() in ("COMPLETED", "ERROR", "ABORTED"):
                break
            assert time.monotonic() < deadline, f"{url} still {r.data}"
            time.sleep(0.1)
        assert r.data == b"COMPLETED", client.get(url + "/error").data
        assert first_table(client.get(url + "/results/result").data).array["n"][0] == total
    # nothing stayed on the server connections pgbouncer shares
    assert server_sessions(pgbouncer) == [("0", "off")] * POOL_SIZE


def test_uploads_work_through_pgbouncer(app):
    client = app.test_client()
    ap = catalogue_tables["aperiodic"]
    with get_db(app).engine.connect() as conn:
        ids = list(conn.execute(sa.select(ap.c.extras_id).order_by(ap.c.extras_id)
                                .limit(3)).scalars())
    table = Table({"n": [1, 2, 3], "eid": np.array(ids, dtype="S")})     # char, as extras_id
    buf = io.BytesIO()
    table.write(buf, format="votable")
    for _ in range(3):
        r = tap_sync(client, "SELECT u.n, a.extras_id FROM TAP_UPLOAD.mine AS u "
                             "JOIN extras.aperiodic AS a ON a.extras_id = u.eid ORDER BY u.n",
                     {"part": buf.getvalue()}, UPLOAD="mine,param:part")
        assert r.status_code == 200, r.data[:500]
        rows = first_table(r.data).array
        assert list(rows["n"]) == [1, 2, 3] and list(rows["extras_id"]) == ids


def test_the_query_time_limit_applies_through_pgbouncer(app, bouncer):
    _cluster, pgbouncer = bouncer
    db = get_db(app)
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match="limit of 1 s"):
        result = execute(db.readonly, sa.select(sa.func.pg_sleep(10).label("x")),
                         [ResultColumn("x", "char")], maxrec=None, timeout=1.0)
        list(result.chunks)
    assert time.monotonic() - started < 8
    # the limit was LOCAL to the query's transaction: no server connection keeps it
    assert server_sessions(pgbouncer) == [("0", "off")] * POOL_SIZE
    client = app.test_client()
    assert_count_answers(client)


def test_a_running_query_is_cancelled_through_pgbouncer(app, bouncer):
    """UWS ABORT and the execution duration stop a query with a cancel request, which
    pgbouncer forwards to the server connection the query runs on."""
    from archive.query import interrupt
    db = get_db(app)
    outcome = {}

    def run():
        started = time.monotonic()
        try:
            result = execute(db.readonly, sa.select(sa.func.pg_sleep(20).label("x")),
                             [ResultColumn("x", "char")], maxrec=None, timeout=60.0)
            list(result.chunks)
            outcome["error"] = None
        except Exception as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run)
    thread.start()
    cluster, _pgbouncer = bouncer
    deadline = time.monotonic() + 10
    while not cluster.primary.query(           # the sleep runs on the server
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'"):
        assert time.monotonic() < deadline, "the query never started"
        time.sleep(0.05)
    assert interrupt(thread.ident)
    thread.join(30)
    assert isinstance(outcome["error"], QueryTimeout) and outcome["seconds"] < 10
    assert_count_answers(app.test_client())


def test_ingest_through_pgbouncer(app, config, tmp_path):
    client = app.test_client()
    r = tap_sync(client, COUNT)
    assert r.status_code == 200, r.data[:600]
    before = first_table(r.data).array["n"][0]
    synth = synthetic(150, seed=11)
    path = write(file_table("aperiodic", synth.aperiodic), tmp_path / "more.fits", "fits")
    result = run_cli(config, "ingest", "catalogue", str(path), "--catalogue", "aperiodic")
    assert result.exit_code == 0, result.output
    db = Database(config["DATABASE_URL"], pooler="pgbouncer-transaction")
    try:
        with db.engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(
                catalogue_tables["aperiodic"])).scalar_one()
    finally:
        db.dispose()
    assert total > before
    assert first_table(tap_sync(client, COUNT).data).array["n"][0] == total

"""Several app servers behind HAProxy, job workers on their own, one PostgreSQL
database and one shared data directory: real processes on 127.0.0.1.

The database is a PostgreSQL server of this module's own (``pg_cluster.Cluster``),
so that a test can restart it.
Three gunicorn servers (``-c python:archive.gunicorn_conf``, TRUSTED_PROXIES=1) serve one archive
behind HAProxy, which rewrites the Host header as nginx does by default, so only
the X-Forwarded-* headers give the servers the balancer's URL. The tests run in
this order; the last one kills a server.
"""
from __future__ import annotations

import re
import signal
import threading
import time
from collections import Counter

import pytest
import requests
import sqlalchemy as sa

from archive.config import load_config
from archive.db import Database, products, uws_jobs
from archive.tap import uws
from cluster_helpers import AppServer, Balancer, start_workers, via
from pg_cluster import Cluster

LANG = {"LANG": "ADQL"}
SMALL = "SELECT TOP 5 extras_id, ra, dec FROM extras.aperiodic ORDER BY extras_id"
#: about 3-4 s on PostgreSQL for the 300-row archive (27 million combinations)
SLOW = ("SELECT COUNT(*) AS n FROM extras.aperiodic AS a, extras.aperiodic AS b, "
        "extras.aperiodic AS c WHERE a.ra * b.dec + c.ra > 100000")
#: a long streamed answer (3 million rows, ~190 MB of CSV)
HUGE = ("SELECT TOP 3000000 a.extras_id, b.extras_id AS b_id, c.ra FROM extras.aperiodic AS a, "
        "extras.aperiodic AS b, extras.aperiodic AS c")
#: short heartbeats and sweeps, so that lost jobs come back within seconds
FAST = {"ASYNC_POLL_INTERVAL": 0.1, "ASYNC_HEARTBEAT_INTERVAL": 0.5,
        "ASYNC_HEARTBEAT_TIMEOUT": 4, "ASYNC_SWEEP_INTERVAL": 1}
NAMES = ("app1", "app2", "app3")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from ingest.demo import build_demo
    root = tmp_path_factory.mktemp("cluster")
    shared = root / "shared"              # the shared storage every host mounts
    shared.mkdir()
    postgres = Cluster()
    servers, balancer = [], None
    try:
        postgres.create_database("archive")
        config = load_config({"DATA_DIR": str(shared),
                              "DATABASE_URL": postgres.primary.url("archive")}, environ={})
        build_demo(config, rows=300, seed=5, workers=1, previews=False)
        servers = [AppServer(name, config, root, TRUSTED_PROXIES=1, **FAST)
                   for name in NAMES]
        for s in servers:
            s.wait_ready()
        balancer = Balancer(servers, root).wait_ready()
        db = Database(config["DATABASE_URL"])
        yield {"config": config, "servers": dict(zip(NAMES, servers)), "lb": balancer,
               "db": db, "logs": root, "postgres": postgres}
        db.dispose()
    finally:
        for p in [balancer, *servers]:
            if p is not None:
                p.stop()
        postgres.close()


def final(db, job_id, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = uws.get_job(db, job_id)
        if job.phase in ("COMPLETED", "ERROR", "ABORTED"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} is still {uws.get_job(db, job_id).phase}")


def test_pyvo_async_job_through_the_balancer(cluster):
    import pyvo
    lb = cluster["lb"].url
    service = pyvo.dal.TAPService(lb + "/tap")
    job = service.submit_job(SMALL)
    assert job.url.startswith(lb + "/tap/async/"), job.url
    job.run()
    job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=60)
    job.raise_if_error()
    assert [r["extras_id"] for r in job.fetch_result()] == \
        [r["extras_id"] for r in service.run_sync(SMALL)]
    assert job.result_uri.startswith(lb + "/tap/async/")
    job_id = job.job_id
    job.delete()
    for s in cluster["servers"].values():
        assert requests.get(f"{s.url}/tap/async/{job_id}", timeout=10).status_code == 404


def test_a_job_lives_on_every_server(cluster):
    """Created through app1, listed by app2, run through app3, waited for and fetched
    through each, deleted through app2: one job, three servers, all via the balancer."""
    lb, config = cluster["lb"].url, cluster["config"]
    r = requests.post(lb + "/tap/async", data={**LANG, "QUERY": SMALL,
                                               "RESPONSEFORMAT": "csv"},
                      headers=via("app1"), allow_redirects=False, timeout=30)
    assert r.status_code == 303
    job_url = r.headers["Location"]
    assert job_url.startswith(lb + "/tap/async/")
    job_id = job_url.rsplit("/", 1)[1]
    listed = requests.get(lb + "/tap/async", headers=via("app2"), timeout=30)
    assert f'href="{job_url}"' in listed.text
    r = requests.post(job_url + "/phase", data={"PHASE": "RUN"}, headers=via("app3"),
                      allow_redirects=False, timeout=30)
    assert r.status_code == 303 and r.headers["Location"] == job_url
    waited = requests.get(job_url, params={"WAIT": 30}, headers=via("app1"), timeout=60)
    assert "<uws:phase>COMPLETED</uws:phase>" in waited.text, waited.text
    bodies = {requests.get(job_url + "/results/result", headers=via(n), timeout=30).content
              for n in NAMES}
    assert len(bodies) == 1
    body = bodies.pop()
    assert body.startswith(b"extras_id,ra,dec") and body.count(b"\n") == 6
    # the result lives in the shared directory, where every server found it
    assert (uws.job_dir(config, job_id) / "result.csv").read_bytes() == body
    # a product file, from each server
    row = cluster["db"].engine.connect().execute(sa.select(products.c.path).limit(1)).scalar()
    got = {requests.get(f"{lb}/products/{row}", headers=via(n), timeout=30).content
           for n in NAMES}
    assert len(got) == 1 and len(got.pop()) > 0
    r = requests.delete(job_url, headers=via("app2"), allow_redirects=False, timeout=30)
    assert r.status_code == 303 and r.headers["Location"] == lb + "/tap/async"
    for n in NAMES:
        assert requests.get(job_url, headers=via(n), timeout=30).status_code == 404
    assert not uws.job_dir(config, job_id).exists()


def _claims(cluster, workers) -> Counter:
    """How many times each job was claimed, from every process's log lines."""
    text = "".join(p.output() for p in [*cluster["servers"].values(), *workers])
    return Counter(re.findall(r"job ([0-9a-f]{20}) claimed by", text))


def test_workers_and_servers_run_each_job_exactly_once(cluster):
    """60 jobs queued through the balancer; three `extras-archive worker` processes
    (database URL and shared directory only) and the servers' in-process workers
    claim them; every job runs once: one claim in the logs, attempts == 1."""
    config, db, lb = cluster["config"], cluster["db"], cluster["lb"].url
    workers = start_workers(config, 3, cluster["logs"], **FAST)
    try:
        ids = []
        for i in range(60):
            r = requests.post(lb + "/tap/async", allow_redirects=False, timeout=30,
                              data={**LANG, "PHASE": "RUN", "RESPONSEFORMAT": "csv",
                                    "QUERY": f"SELECT TOP {i % 7 + 1} extras_id FROM "
                                             "extras.aperiodic ORDER BY extras_id"})
            assert r.status_code == 303, r.text
            ids.append(r.headers["Location"].rsplit("/", 1)[1])
        done = [final(db, job_id, 120) for job_id in ids]
        time.sleep(1)                                  # the last log lines
    finally:
        for w in workers:
            w.stop()
    assert [j.phase for j in done] == ["COMPLETED"] * 60, [j.error for j in done]
    assert all(j.attempts == 1 for j in done)
    claims = _claims(cluster, workers)
    assert {job_id: claims[job_id] for job_id in ids} == {job_id: 1 for job_id in ids}
    for i, job in enumerate(done):
        rows = (uws.job_dir(config, job.job_id) / job.result_file).read_bytes().count(b"\n")
        assert rows == i % 7 + 2                       # header + TOP n
    runners = Counter(j.worker.rsplit(":", 1)[0] for j in done)
    assert len(runners) >= 2, runners                  # the work was shared


def test_primary_restart_loses_no_job(cluster):
    """PostgreSQL is restarted (fast shutdown: every session ended, 2 s down) while
    jobs run on the servers and two workers: servers answer 503 meanwhile, reconnect
    by themselves (pool_pre_ping), and every accepted job ends in a final phase:
    here COMPLETED, the jobs cut off by the restart having run again."""
    config, db, lb = cluster["config"], cluster["db"], cluster["lb"].url
    workers = start_workers(config, 2, cluster["logs"], **FAST)
    outage = {}

    def during():
        time.sleep(0.7)
        outage["health"] = [requests.get(s.url + "/health", timeout=10).status_code
                            for s in cluster["servers"].values()]
        outage["create"] = requests.post(lb + "/tap/async", data={**LANG, "QUERY": SMALL},
                                         allow_redirects=False, timeout=30)

    try:
        ids = []
        for _ in range(8):
            r = requests.post(lb + "/tap/async", data={**LANG, "PHASE": "RUN", "QUERY": SLOW},
                              allow_redirects=False, timeout=30)
            assert r.status_code == 303
            ids.append(r.headers["Location"].rsplit("/", 1)[1])
        time.sleep(1.5)                                # some are executing now
        assert any(uws.get_job(db, i).phase == "EXECUTING" for i in ids)
        asking = threading.Thread(target=during)
        asking.start()
        cluster["postgres"].primary.restart(down=2.0)
        asking.join()
        done = [final(db, job_id, 150) for job_id in ids]
        for s in cluster["servers"].values():
            assert requests.get(s.url + "/health", timeout=10).status_code == 200
        r = requests.post(lb + "/tap/async", data={**LANG, "PHASE": "RUN", "QUERY": SMALL},
                          allow_redirects=False, timeout=30)
        assert r.status_code == 303
        assert final(db, r.headers["Location"].rsplit("/", 1)[1]).phase == "COMPLETED"
    finally:
        for w in workers:
            w.stop()
    assert outage["health"] == [503, 503, 503]
    # not accepted while the database was away, and the client is told so
    assert outage["create"].status_code == 503, outage["create"].text
    # the jobs cut off by the restart ran again (a lost connection is a passing
    # failure: re-queued, or back through the heartbeat timeout), none failed
    assert [j.phase for j in done] == ["COMPLETED"] * len(ids), [j.error for j in done]
    assert all(j.attempts <= 2 for j in done)


LISTED = (("method", "GET"), ("route", "/tap/async"), ("status", "200"))


def _listed(text: str) -> float:
    """The count of GET /tap/async answered 200 in a Prometheus exposition."""
    from prometheus_client.parser import text_string_to_metric_families
    counts = {tuple(sorted(s.labels.items())): s.value
              for f in text_string_to_metric_families(text) for s in f.samples
              if s.name == "archive_http_requests_total"}
    return counts.get(LISTED, 0)


def listed_by_process(files, scratch) -> dict[str, float]:
    """GET /tap/async answers counted by each worker process, read from its own file
    (``counter_<pid>.db``) with prometheus-client's collector on a copy alone."""
    import shutil

    from prometheus_client import CollectorRegistry, generate_latest, multiprocess
    shares = {}
    for path in files.glob("counter_*.db"):
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        shutil.copy(path, scratch / path.name)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(scratch))
        shares[path.stem] = _listed(generate_latest(registry).decode())
    return shares


def test_metrics_add_up_every_worker_and_each_request_is_logged(cluster, tmp_path):
    """A server with two worker processes: whichever answers the scrape reports the
    requests of both (prometheus-client's multiprocess mode, set up by
    archive/gunicorn_conf.py), and each request left one JSON access-log line."""
    import json
    from concurrent.futures import ThreadPoolExecutor
    files = tmp_path / "prometheus"
    files.mkdir()
    (files / "counter_1.db").write_bytes(b"stale")   # an earlier run's: emptied at start
    server = AppServer("metrics", cluster["config"], tmp_path, workers=2,
                       environ={"PROMETHEUS_MULTIPROC_DIR": str(files)}, **FAST)
    try:
        server.wait_ready()
        # batches of concurrent requests until both worker processes answered some
        # (which one accepts a connection is the kernel's choice)
        sent, deadline = 0, time.monotonic() + 60
        with ThreadPoolExecutor(8) as pool:
            while True:
                codes = list(pool.map(lambda _: requests.get(
                    server.url + "/tap/async", params={"LAST": 1}, timeout=30).status_code,
                    range(20)))
                assert codes == [200] * 20
                sent += 20
                shares = listed_by_process(files, tmp_path / "one")
                if len([n for n in shares.values() if n]) >= 2 or \
                        time.monotonic() > deadline:
                    break
        assert len([n for n in shares.values() if n]) >= 2, \
            f"one worker process answered all {sent} requests: {shares}"
        time.sleep(0.5)            # a request is counted once its answer is closed
        assert sum(listed_by_process(files, tmp_path / "one").values()) == sent
        for _ in range(4):       # whichever process answers, it reports both
            assert _listed(requests.get(server.url + "/metrics", timeout=30).text) == sent
        lines = [json.loads(line) for line in server.output().splitlines()
                 if line.startswith("{")]
        listed = [x for x in lines if x["route"] == "/tap/async"]
        assert len(listed) == sent
        assert {x["client"] for x in listed} == {"127.0.0.1"}
        assert all(x["status"] == 200 and x["bytes"] > 0 for x in listed)
        assert not [x for x in lines if x["route"] == "/health"]     # polled, not logged
        assert not (files / "counter_1.db").exists()
    finally:
        server.stop()


def test_sigterm_lets_a_running_sync_query_finish(cluster, tmp_path):
    """gunicorn's graceful shutdown (graceful_timeout from archive/gunicorn_conf.py): a slow
    sync query in flight when the server gets SIGTERM is answered in full."""
    server = AppServer("graceful", cluster["config"], tmp_path, **FAST).wait_ready()
    answer = {}

    def ask():
        answer["r"] = requests.get(server.url + "/tap/sync", timeout=120, params={
            **LANG, "QUERY": SLOW, "RESPONSEFORMAT": "csv"})

    try:
        asking = threading.Thread(target=ask)
        asking.start()
        name = sa.engine.make_url(cluster["config"]["DATABASE_URL"]).database
        admin = sa.create_engine(cluster["postgres"].primary.url())
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:      # until the query runs in PostgreSQL
                with admin.connect() as conn:
                    running = conn.execute(sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = :d AND "
                        "state = 'active' AND query LIKE '%count(*)%'"), {"d": name}).scalar()
                if running:
                    break
                time.sleep(0.05)
        finally:
            admin.dispose()
        assert running, "the slow query never started"
        sent = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        asking.join(60)
        assert server.proc.wait(timeout=60) == 0
        r = answer["r"]
        assert r.status_code == 200
        assert r.text.splitlines()[0] == "n" and r.text.splitlines()[1].isdigit()
        assert time.monotonic() - sent < 50
        with pytest.raises(requests.ConnectionError):     # it accepts nothing new
            requests.get(server.url + "/health", timeout=5)
    finally:
        server.stop()


def test_server_killed_during_a_streamed_result(cluster):
    """app3 is killed (SIGKILL, master and workers) while it streams a large result
    through the balancer: the client sees an incomplete chunked answer at once, not
    a hang and not a complete-looking document; the balancer goes on with the others."""
    lb, victim = cluster["lb"].url, cluster["servers"]["app3"]
    started = time.monotonic()
    r = requests.get(lb + "/tap/sync", headers=via("app3"), stream=True, timeout=20,
                     params={**LANG, "QUERY": HUGE, "MAXREC": 3000000,
                             "RESPONSEFORMAT": "csv"})
    assert r.status_code == 200
    assert r.headers.get("Transfer-Encoding") == "chunked"
    received = 0
    chunks = r.iter_content(65536)
    while received < 2_000_000:
        received += len(next(chunks))
    victim.signal_group(signal.SIGKILL)
    killed = time.monotonic()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for block in chunks:
            received += len(block)
    assert time.monotonic() - killed < 15            # noticed, not waited out
    assert received < 150_000_000                     # far from the whole answer
    victim.proc.wait(timeout=10)
    # the balancer sends everything to the two servers left
    for _ in range(10):
        assert requests.get(lb + "/tap/async", params={"LAST": 1}, timeout=30).status_code \
            == 200
    assert time.monotonic() - started < 120

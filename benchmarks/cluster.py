"""Capacity of app servers behind HAProxy, on loopback: one server, then more.

Usage::

    python benchmarks/cluster.py --database-url postgresql+psycopg://root:root@localhost/postgres

It builds a demo archive of ``--rows`` rows in a new PostgreSQL database on that
server (dropped at the end), starts gunicorn servers (``archive/gunicorn_conf.py``,
``--workers W --threads 4`` each) and HAProxy in front of them with the test
suite's helpers (``tests/cluster_helpers.py``), and measures requests per second
with ``--clients`` client processes (each a ``requests.Session``, kept-alive
connections) for ``--seconds`` seconds per set-up:

* one server, directly and through HAProxy (the balancer's own cost);
* 1, 2 and 3 servers through HAProxy, each with ``--workers`` processes;

and, for each, the CPU time the servers (and HAProxy) spent per request, read from
/proc: a figure that other load on the machine disturbs far less than the rate, and
from which the capacity of N hosts follows on paper (cores / CPU per request).

The request is a 1-arcmin cone search (``/scs/aperiodic``, VOTable, about 1 row),
the archive's commonest and cheapest VO request, so the figures are the servers'
request-handling capacity. On one machine every server competes for the same
cores: more servers cannot add capacity beyond them here; the script shows that a
server added behind the balancer takes its share of the load without loss.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from archive.config import load_config  # noqa: E402
from archive.db import catalogue_tables  # noqa: E402
from cluster_helpers import AppServer, Balancer  # noqa: E402  (the tests' process helpers)


def _client(base: str, pos, first: int, step: int, start_at: float, stop_at: float, out):
    done, failed, k = 0, 0, first
    with requests.Session() as session:
        session.get(base + "/health", timeout=30)           # connect before the clock
        while time.time() < start_at:
            time.sleep(0.001)
        while time.time() < stop_at:
            ra, dec = pos[k % len(pos)]
            r = session.get(base + "/scs/aperiodic", timeout=60,
                            params={"RA": ra, "DEC": dec, "SR": 1 / 60})
            if r.status_code == 200 and b"<TABLE" in r.content:
                done += 1
            else:
                failed += 1
            k += step
    out.put((done, failed))


def cpu_of(pgids=(), pids=()) -> dict[int, float]:
    """CPU seconds (user + system) used so far by each process of these process groups
    (a gunicorn server: its master and workers; HAProxy) or with these ids (PostgreSQL
    backends), from /proc."""
    found, tick = {}, os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        if int(fields[2]) in pgids or pid in pids:       # pgrp
            found[pid] = (int(fields[11]) + int(fields[12])) / tick     # utime + stime
    return found


def backends(url: str) -> set[int]:
    """Process ids of the PostgreSQL backends connected to the database of ``url``."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()")).scalars())
    finally:
        engine.dispose()


def measure(base: str, pos, clients: int, seconds: float, pgids,
            url: str) -> tuple[float, float, float]:
    """(requests/s, app-side CPU ms per request, PostgreSQL CPU ms per request)."""
    app_before = cpu_of(pgids=pgids)
    db_before = cpu_of(pids=backends(url))
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    start_at = time.time() + 2 + 0.2 * clients
    procs = [ctx.Process(target=_client, args=(base, pos, i, clients, start_at,
                                               start_at + seconds, queue))
             for i in range(clients)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    failed = sum(f for _, f in results)
    if failed:
        raise SystemExit(f"{failed} requests failed against {base}")
    done = sum(d for d, _ in results)
    app_after = cpu_of(pgids=pgids)
    db_after = cpu_of(pids=backends(url))

    def spent(before, after):
        # processes started during the run count from 0; ended ones are lost (few)
        return sum(t - before.get(pid, 0.0) for pid, t in after.items())
    # the clients' warm-up requests (one each) count in the CPU, negligibly
    return (done / seconds, 1000 * spent(app_before, app_after) / max(done, 1),
            1000 * spent(db_before, db_after) / max(done, 1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True,
                        help="a PostgreSQL server where the user may create databases")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=1, help="gunicorn processes per server")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args(argv)
    from ingest.demo import build_demo
    admin = sa.engine.make_url(args.database_url)
    name = f"bench_cluster_{os.getpid()}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    servers, balancer = [], None
    try:
        config = load_config({"DATA_DIR": str(work), "DATABASE_URL": admin.set(
            database=name).render_as_string(hide_password=False)}, environ={})
        build_demo(config, rows=args.rows, seed=1, products=False, previews=False)
        table = catalogue_tables["aperiodic"]
        e = sa.create_engine(config["DATABASE_URL"])
        with e.connect() as conn:
            pos = np.array(conn.execute(sa.select(table.c.ra, table.c.dec)
                                        .limit(2000)).all())
        e.dispose()
        print(f"load average before: {os.getloadavg()}")
        print(f"{args.clients} client processes, {args.seconds:.0f} s each, 1' cone search, "
              f"servers of {args.workers} gunicorn process(es) x 4 threads")
        servers = [AppServer(f"app{i}", config, work, workers=args.workers,
                             TRUSTED_PROXIES=1, ACCESS_LOG="false") for i in (1, 2, 3)]
        for s in servers:
            s.wait_ready()
        url = config["DATABASE_URL"]
        rate, cpu, db_cpu = measure(servers[0].url, pos, args.clients, args.seconds,
                                    {servers[0].pid}, url)
        print(f"one server, direct:          {rate:7.1f} requests/s; CPU per request: "
              f"server {cpu:.2f} ms, PostgreSQL {db_cpu:.2f} ms")
        for n in (1, 2, 3):
            balancer = Balancer(servers[:n], work).wait_ready()
            rate, cpu, db_cpu = measure(balancer.url, pos, args.clients, args.seconds,
                                        {s.pid for s in servers[:n]} | {balancer.pid}, url)
            print(f"{n} server(s) behind HAProxy: {rate:7.1f} requests/s; CPU per request: "
                  f"servers + HAProxy {cpu:.2f} ms, PostgreSQL {db_cpu:.2f} ms")
            balancer.stop()
            balancer = None
        print(f"load average after: {os.getloadavg()}")
    finally:
        for p in [balancer, *servers]:
            if p is not None:
                p.stop()
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())

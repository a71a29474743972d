"""What read replicas and pgbouncer cost or give per query, on loopback.

Starts a throw-away PostgreSQL primary, ``--replicas`` streaming replicas
(``pg_basebackup -R``) and a pgbouncer in transaction mode in front of the primary
(the tests' ``tests/pg_cluster.py``), builds a demo archive of ``--rows`` rows, then
times the same requests through the Flask test client (in process, no HTTP) with
``--clients`` threads against three set-ups of the same data:

* ``primary``: DATABASE_URL only (the single-server set-up);
* ``replicas``: READ_REPLICA_URLS = the replicas (user queries spread over them);
* ``pgbouncer``: DATABASE_URL through pgbouncer, DATABASE_POOLER=pgbouncer-transaction;
* ``no-prepare``: DATABASE_URL direct with DATABASE_POOLER=pgbouncer-transaction (what
  the setting alone changes: no server-side prepared statements).

Requests: a TAP sync query with a WHERE clause (index range, ~1 % of the rows), and a
0.5-degree cone search. Prints requests per second and latency percentiles per
set-up, and the time one replica state look takes. On a machine whose cores are
shared by all servers, replicas cannot add capacity (they compete for the same
cores); the figures show the per-query overhead of the routing and the pooler.

    python benchmarks/replicas.py [--rows 20000] [--requests 300] [--clients 4]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import sqlalchemy as sa  # noqa: E402

from archive import create_app  # noqa: E402
from archive.config import load_config  # noqa: E402
from archive.db import catalogue_tables, get_db  # noqa: E402
from ingest.demo import build_demo  # noqa: E402
from pg_cluster import Cluster  # noqa: E402

DATABASE = "bench_replicas"


def requests_of(app) -> list[tuple[str, dict]]:
    ap = catalogue_tables["aperiodic"]
    with get_db(app).engine.connect() as conn:
        ids = list(conn.execute(sa.select(ap.c.extras_id).order_by(ap.c.extras_id)).scalars())
        ra, dec = conn.execute(sa.select(ap.c.ra, ap.c.dec).order_by(ap.c.extras_id)
                               .limit(1)).one()
    low, high = ids[len(ids) // 2], ids[len(ids) // 2 + len(ids) // 100]
    tap = {"LANG": "ADQL", "QUERY": "SELECT extras_id, ra, dec FROM extras.aperiodic "
           f"WHERE extras_id BETWEEN '{low}' AND '{high}'", "RESPONSEFORMAT": "csv"}
    scs = {"RA": repr(ra), "DEC": repr(dec), "SR": "0.5", "RESPONSEFORMAT": "csv"}
    return [("/tap/sync", tap), ("/scs/aperiodic", scs)]


def run(app, total: int, clients: int) -> dict:
    reqs = requests_of(app)
    times: list[float] = []
    failures = []
    lock = threading.Lock()

    def client_loop(n: int):
        client = app.test_client()
        for i in range(n):
            path, params = reqs[i % len(reqs)]
            started = time.perf_counter()
            r = client.get(path, query_string=params)
            body = r.data
            took = time.perf_counter() - started
            with lock:
                times.append(took)
                if r.status_code != 200:
                    failures.append(body[:200])

    for _ in range(2):                      # warm the pools and caches
        client_loop(len(reqs))
    times.clear()
    started = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(total // clients,))
               for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    times.sort()
    return {"requests": len(times), "failed": len(failures), "per_s": len(times) / wall,
            "median_ms": 1000 * statistics.median(times),
            "p90_ms": 1000 * times[int(0.9 * (len(times) - 1))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args()
    cluster = Cluster(replicas=args.replicas)
    try:
        cluster.create_database(DATABASE)
        bouncer = cluster.start_pgbouncer(pool_size=max(4, args.clients + 2))
        data_dir = tempfile.mkdtemp(prefix="bench-replicas-")
        base = {"DATA_DIR": data_dir, "DATABASE_URL": cluster.primary.url(DATABASE),
                "ASYNC_WORKER_IN_PROCESS": False, "SIMBAD_URL": "http://127.0.0.1:9/x"}
        started = time.perf_counter()
        build_demo(load_config(base, environ={}), rows=args.rows, seed=42, workers=2,
                   products=False)
        print(f"demo archive of {args.rows} rows built in {time.perf_counter() - started:.1f} s")
        for replica in cluster.replicas:
            cluster.wait_replayed(replica)
        setups = {
            "primary": base,
            "replicas": {**base, "READ_REPLICA_URLS": [r.url(DATABASE)
                                                      for r in cluster.replicas]},
            "pgbouncer": {**base, "DATABASE_URL": bouncer.url(DATABASE),
                          "DATABASE_POOLER": "pgbouncer-transaction"},
            # the pooler setting on direct connections: its own cost or gain
            "no-prepare": {**base, "DATABASE_POOLER": "pgbouncer-transaction"},
        }
        print(f"{args.requests} requests (TAP sync WHERE range, cone search 0.5 deg; csv), "
              f"{args.clients} client threads, in process")
        print(f"{'set-up':<10} {'req/s':>7} {'median ms':>10} {'p90 ms':>8} failed")
        for name, settings in setups.items():
            app = create_app(load_config(settings, environ={}))
            figures = run(app, args.requests, args.clients)
            print(f"{name:<10} {figures['per_s']:7.1f} {figures['median_ms']:10.2f} "
                  f"{figures['p90_ms']:8.2f} {figures['failed']}")
            db = get_db(app)
            if db.replicas:
                replica = db.replicas.replicas[0]
                looks = []
                for _ in range(20):
                    t0 = time.perf_counter()
                    replica.check()
                    looks.append(time.perf_counter() - t0)
                print(f"           one replica state look: median "
                      f"{1000 * statistics.median(looks):.2f} ms")
            db.dispose()
    finally:
        cluster.close()


if __name__ == "__main__":
    main()

"""Name-resolution benchmark: GET /resolve from the name_cache table, as a client sees it.

Usage::

    python benchmarks/resolver.py --data-dir DIR [--copy-from /tmp/bench1m] [--workers 2]

``--copy-from`` copies the SQLite archive of another directory into DIR first (SQLite's
backup API, so a shared benchmark archive is never written to). The script stores one
Simbad answer in ``name_cache`` (as the resolver would after asking Simbad), starts
``gunicorn wsgi:app`` on a free loopback port with ``SIMBAD_URL`` pointing at a closed
local port (so any request that would ask Simbad fails with 503 instead of going to
the internet), and measures the median and 95th percentile of:

* ``/resolve`` of the cached name over HTTP (``requests.Session``), and in process
  (``app.test_client()``), and the service call alone (``archive.resolver.resolve``);
* for scale, ``/resolve`` of an archive name (a 3XMM IAU name of the longterm table)
  and of coordinates (``10:00:24 +02:12:00``) over HTTP.

Goal (issue 11): name resolution from the cache under 5 ms.
"""
from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archive.config import load_config  # noqa: E402
from archive.db import catalogue_tables, name_cache  # noqa: E402

CACHED = "M 31"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stats(fn, n: int) -> tuple[float, float]:
    for _ in range(10):
        fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (n - 1))]


def _copy(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source / 'archive.sqlite'}?mode=ro", uri=True)
    dst = sqlite3.connect(target / "archive.sqlite")
    src.backup(dst)
    src.close()
    dst.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--copy-from", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("-n", type=int, default=500)
    args = parser.parse_args()
    if args.copy_from:
        _copy(args.copy_from, args.data_dir)
    closed = f"http://127.0.0.1:{_free_port()}/simbad/sim-tap"
    config = load_config({"DATA_DIR": str(args.data_dir), "SIMBAD_URL": closed}, environ={})
    from archive import create_app
    from archive.db import get_db
    from archive.resolver import resolve
    app = create_app({**config, "TESTING": True})
    db = get_db(app)
    with db.engine.begin() as conn:
        conn.execute(sa.delete(name_cache).where(name_cache.c.name == CACHED.casefold()))
        conn.execute(sa.insert(name_cache).values(
            name=CACHED.casefold(), ra=10.684708333, dec=41.26875, source="simbad",
            resolved_name="M  31", created=datetime.now(timezone.utc)))
        t = catalogue_tables["longterm"]
        iauname = conn.execute(sa.select(t.c.iauname).limit(1)).scalar()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    figures = {}
    figures["service call, cached"] = _stats(
        lambda: resolve(db.engine, db.readonly, CACHED, app.config), args.n)
    client = app.test_client()

    def in_process():
        response = client.get("/resolve", query_string={"name": CACHED})
        assert response.status_code == 200 and response.json["cached"], response.json
    figures["in process, cached"] = _stats(in_process, args.n)

    port = _free_port()
    env = dict(os.environ, EXTRAS_ARCHIVE_DATA_DIR=str(config["DATA_DIR"]),
               EXTRAS_ARCHIVE_SIMBAD_URL=closed)
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(args.workers), "-b", f"127.0.0.1:{port}",
         "wsgi:app"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        session = requests.Session()
        base = f"http://127.0.0.1:{port}/resolve"
        for _ in range(300):
            try:
                session.get(base, params={"name": "150.0 2.0"}, timeout=30)
                break
            except requests.ConnectionError:
                time.sleep(0.1)

        def over_http(name, resolver):
            def one():
                response = session.get(base, params={"name": name}, timeout=5)
                assert response.status_code == 200, response.text
                assert response.json()["resolver"] == resolver, response.text
            return one
        figures["HTTP, cached Simbad name"] = _stats(over_http(CACHED, "simbad"), args.n)
        figures["HTTP, archive IAU name"] = _stats(over_http(iauname, "archive"), args.n)
        figures["HTTP, coordinates"] = _stats(over_http("10:00:24 +02:12:00", "coordinates"),
                                              args.n)
    finally:
        server.terminate()
        server.wait(timeout=10)
        db.dispose()
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    for name, (median, p95) in figures.items():
        print(f"{name:32s} median {median:6.2f} ms   p95 {p95:6.2f} ms")
    goal = figures["HTTP, cached Simbad name"][0]
    print(f"goal: cached resolution < 5 ms over HTTP: {'met' if goal < 5 else 'NOT met'}")


if __name__ == "__main__":
    main()

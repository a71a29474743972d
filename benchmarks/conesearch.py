"""Cone search benchmark: /scs/aperiodic on a 1,000,000-row catalogue, as a client sees it.

Usage::

    extras-archive demo --rows 1000000 --no-products --data-dir /tmp/bench1m
    python benchmarks/conesearch.py --data-dir /tmp/bench1m [--workers 2 --threads 1]

(or ``--build`` to run the demo command first). It starts ``gunicorn wsgi:app`` on a
free loopback port and measures, each request over HTTP with a ``requests.Session``
and the VOTable parsed with astropy:

* median and 95th percentile latency of 200 cones of 1 arcmin at source positions;
* the same for 50 cones of 15 arcmin;
* requests per second with 8 concurrent clients (threads) at 1 arcmin.

Goals (issue 3, this 2-core machine): median < 4 ms (1'), < 6 ms (15'), >= 350 req/s.
"""
from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import requests
import sqlalchemy as sa
from astropy.io.votable import parse_single_table
from astropy.io.votable.exceptions import VOWarning

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archive.config import load_config  # noqa: E402
from archive.db import catalogue_tables  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(config: dict, workers: int, threads: int):
    port = _free_port()
    env = dict(os.environ, EXTRAS_ARCHIVE_DATA_DIR=config["DATA_DIR"],
               EXTRAS_ARCHIVE_DATABASE_URL=config["DATABASE_URL"],
               EXTRAS_ARCHIVE_ASYNC_WORKER_IN_PROCESS="false")
    cmd = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--threads",
           str(threads), "--bind", f"127.0.0.1:{port}", "--backlog", "256",
           "--timeout", "120", "wsgi:app"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited: " + proc.stderr.read().decode()[-3000:])
        try:
            if requests.get(base + "/scs/aperiodic/availability", timeout=2).ok:
                return proc, base
        except requests.RequestException:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("gunicorn did not answer within 120 s")


def positions(config: dict, n: int, seed: int) -> np.ndarray:
    engine = sa.create_engine(config["DATABASE_URL"])
    t = catalogue_tables["aperiodic"]
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
        if total < 1000:
            raise SystemExit(f"the aperiodic catalogue has only {total} rows; build a "
                             "benchmark archive with --rows 1000000")
        rng = np.random.default_rng(seed)
        picks = sorted(set(rng.integers(0, total, n * 2).tolist()))[:n]
        rows = []
        for k in picks:
            rows.append(conn.execute(sa.select(t.c.ra, t.c.dec).order_by(t.c._hpx)
                                     .offset(k).limit(1)).one())
    engine.dispose()
    print(f"catalogue: {total} aperiodic rows")
    return np.array(rows, dtype=float)


def one(session: requests.Session, base: str, ra: float, dec: float, sr: float) -> int:
    resp = session.get(f"{base}/scs/aperiodic", params={"RA": repr(float(ra)), "DEC": repr(float(dec)),
                                                        "SR": repr(float(sr))}, timeout=60)
    resp.raise_for_status()
    table = parse_single_table(io.BytesIO(resp.content), verify="ignore")
    return len(table.array)


def latencies(base: str, pos: np.ndarray, sr: float) -> tuple[list[float], list[int]]:
    times, counts = [], []
    with requests.Session() as session:
        for ra, dec in pos[:20]:                     # warm up connections and caches
            one(session, base, ra, dec, sr)
        for ra, dec in pos:
            started = time.perf_counter()
            counts.append(one(session, base, ra, dec, sr))
            times.append(time.perf_counter() - started)
    return times, counts


def throughput(base: str, pos: np.ndarray, sr: float, clients: int,
               seconds: float) -> tuple[float, int]:
    done = [0] * clients
    stop = threading.Event()
    errors: list[BaseException] = []

    def client(i: int):
        with requests.Session() as session:
            k = i
            try:
                while not stop.is_set():
                    ra, dec = pos[k % len(pos)]
                    one(session, base, ra, dec, sr)
                    done[i] += 1
                    k += clients
            except BaseException as exc:         # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for th in threads:
        th.start()
    time.sleep(seconds)
    stop.set()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"a client failed: {errors[0]!r}")
    return sum(done) / elapsed, sum(done)


def _ms(values: list[float], q: float) -> float:
    return 1000 * float(np.percentile(values, q))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--database-url", default="")
    ap.add_argument("--build", action="store_true",
                    help="build the demo archive first (as extras-archive demo --no-products)")
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    overrides = {"DATA_DIR": args.data_dir}
    if args.database_url:
        overrides["DATABASE_URL"] = args.database_url
    config = load_config(overrides, environ={})
    if args.build:
        from ingest.demo import build_demo       # what `extras-archive demo` runs
        summary = build_demo(config, rows=args.rows, products=False)
        print(f"built the demo archive in {summary['seconds']:.0f} s: {summary['rows']}")
    warnings.simplefilter("ignore", VOWarning)
    pos = positions(config, 200, args.seed)
    proc, base = start_server(config, args.workers, args.threads)
    try:
        print(f"server: gunicorn {args.workers} workers x {args.threads} threads, "
              f"{config['DATABASE_URL'].split(':')[0]}, {os.cpu_count()} cores")
        t1, n1 = latencies(base, pos, 1 / 60)
        print(f"1 arcmin, 200 cones: median {_ms(t1, 50):.2f} ms, p95 {_ms(t1, 95):.2f} ms, "
              f"mean {statistics.fmean(n1):.1f} rows")
        t15, n15 = latencies(base, pos[:50], 15 / 60)
        print(f"15 arcmin, 50 cones: median {_ms(t15, 50):.2f} ms, p95 {_ms(t15, 95):.2f} ms, "
              f"mean {statistics.fmean(n15):.1f} rows")
        rate, total = throughput(base, pos, 1 / 60, args.clients, args.seconds)
        print(f"throughput, {args.clients} clients, 1 arcmin: {rate:.0f} requests/s "
              f"({total} requests in {args.seconds:g} s)")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cone search benchmark: /scs/aperiodic on a 1,000,000-row catalogue, as a client sees it.

Usage::

    python benchmarks/conesearch.py --data-dir /tmp/bench1m --build
    python benchmarks/conesearch.py --data-dir /tmp/bench1m [--workers 4 --threads 4]

``--build`` builds the demo archive (``ingest.demo.build_demo``, as ``extras-archive
demo --rows 1000000 --no-products``) unless DIR already holds one whose aperiodic
catalogue has ``--rows`` rows, which is then reused. The script starts ``gunicorn
wsgi:app`` on a free loopback port and measures, each request made over HTTP with
a ``requests.Session`` and the answer parsed with astropy
(``parse_single_table(BytesIO(body), verify="ignore")``, what pyvo does), with the
service's defaults (VERB and RESPONSEFORMAT not sent) unless ``--verb`` or
``--format`` say otherwise:

* median and 95th percentile latency of 200 cones of 1 arcmin at source positions,
  and how much of it the astropy parse takes;
* the same for 50 cones of 15 arcmin;
* requests per second with 8 concurrent clients at 1 arcmin (``--client-mode
  process``: 8 client processes, like 8 users; ``thread``: 8 threads of one
  process, which then competes for one GIL with its own parsing);
* the server's own time per request in-process (``app.test_client()``, no HTTP):
  CPU and wall time, a figure that stays meaningful when other jobs load the machine;
* a machine reference (ns of CPU per value of ``np.array(list of floats)``, about 20
  on an idle modern core) and the load average, before and after.

Goals (issue 3, this 2-core machine): median < 4 ms (1'), < 6 ms (15'), >= 350 req/s.
"""
from __future__ import annotations

import argparse
import io
import multiprocessing as mp
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

GOALS = {"1": 4.0, "15": 6.0, "rate": 350.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def calibrate() -> float:
    """ns of CPU per value for np.array(list of floats): how busy the machine is
    (the same reference as benchmarks/formats.py)."""
    values = np.random.default_rng(0).normal(size=100_000).tolist()
    c0 = time.process_time()
    for _ in range(20):
        np.array(values, dtype=np.float64)
    return (time.process_time() - c0) / 20 / len(values) * 1e9


def machine_state() -> str:
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"load average {load}; reference {calibrate():.0f} ns/value (idle ~20)"


def start_server(config: dict, workers: int, threads: int, worker_class: str | None):
    port = _free_port()
    env = dict(os.environ, EXTRAS_ARCHIVE_DATA_DIR=config["DATA_DIR"],
               EXTRAS_ARCHIVE_DATABASE_URL=config["DATABASE_URL"],
               EXTRAS_ARCHIVE_ASYNC_WORKER_IN_PROCESS="false",
               # no access log: its lines would fill the stderr pipe read only on failure
               EXTRAS_ARCHIVE_ACCESS_LOG="false")
    cmd = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--threads",
           str(threads), "--bind", f"127.0.0.1:{port}", "--backlog", "256",
           "--timeout", "120"]
    if worker_class:
        cmd += ["--worker-class", worker_class]
    cmd.append("wsgi:app")
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


def catalogue_rows(config: dict) -> int:
    engine = sa.create_engine(config["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            t = catalogue_tables["aperiodic"]
            return conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
    except sa.exc.DBAPIError:
        return 0
    finally:
        engine.dispose()


def positions(config: dict, n: int, seed: int) -> np.ndarray:
    """``n`` source positions drawn at random (fixed seed) from the catalogue."""
    engine = sa.create_engine(config["DATABASE_URL"])
    t = catalogue_tables["aperiodic"]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.ra, t.c.dec).order_by(t.c._hpx)).all()
    engine.dispose()
    if len(rows) < 1000:
        raise SystemExit(f"the aperiodic catalogue has only {len(rows)} rows; build a "
                         "benchmark archive with --build --rows 1000000")
    picks = np.random.default_rng(seed).choice(len(rows), n, replace=False)
    print(f"catalogue: {len(rows)} aperiodic rows")
    return np.array([rows[k] for k in picks], dtype=float)


def cone_params(ra: float, dec: float, sr: float, extra: dict) -> dict:
    return {"RA": repr(float(ra)), "DEC": repr(float(dec)), "SR": repr(float(sr)), **extra}


def one(session: requests.Session, base: str, ra: float, dec: float, sr: float,
        extra: dict) -> tuple[int, float]:
    """One cone over HTTP, parsed with astropy: (rows, seconds spent parsing)."""
    resp = session.get(f"{base}/scs/aperiodic", params=cone_params(ra, dec, sr, extra),
                       timeout=60)
    resp.raise_for_status()
    started = time.perf_counter()
    table = parse_single_table(io.BytesIO(resp.content), verify="ignore")
    rows = len(table.array)
    return rows, time.perf_counter() - started


def latencies(base: str, pos: np.ndarray, sr: float, extra: dict):
    times, parse, counts = [], [], []
    with requests.Session() as session:
        for ra, dec in pos[:20]:                     # warm up connections and caches
            one(session, base, ra, dec, sr, extra)
        for ra, dec in pos:
            started = time.perf_counter()
            rows, parsing = one(session, base, ra, dec, sr, extra)
            times.append(time.perf_counter() - started)
            parse.append(parsing)
            counts.append(rows)
    return times, parse, counts


def _client_loop(base, pos, sr, extra, first, step, start_at, stop_at, out):
    """One client: requests from ``start_at`` until ``stop_at`` (time.time())."""
    warnings.simplefilter("ignore", VOWarning)
    done, k = 0, first
    with requests.Session() as session:
        ra, dec = pos[k % len(pos)]
        one(session, base, ra, dec, sr, extra)       # connect before the clock starts
        while time.time() < start_at:
            time.sleep(0.001)
        while True:
            ra, dec = pos[k % len(pos)]
            one(session, base, ra, dec, sr, extra)
            if time.time() > stop_at:
                break
            done += 1
            k += step
    if hasattr(out, "put"):
        out.put(done)
    else:
        out.append(done)


def throughput(base: str, pos: np.ndarray, sr: float, extra: dict, clients: int,
               seconds: float, mode: str) -> tuple[float, int]:
    start_at = time.time() + 2.0 + 0.2 * clients
    stop_at = start_at + seconds
    if mode == "process":
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        workers = [ctx.Process(target=_client_loop, args=(base, pos, sr, extra, i, clients,
                                                          start_at, stop_at, queue))
                   for i in range(clients)]
        for w in workers:
            w.start()
        counts = [queue.get(timeout=seconds + 120) for _ in workers]
        for w in workers:
            w.join()
        if any(w.exitcode for w in workers):
            raise SystemExit("a client process failed")
    else:
        counts: list[int] = []
        errors: list[BaseException] = []

        def run(i):
            try:
                _client_loop(base, pos, sr, extra, i, clients, start_at, stop_at, counts)
            except BaseException as exc:         # noqa: BLE001 - reported below
                errors.append(exc)
        threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if errors:
            raise SystemExit(f"a client failed: {errors[0]!r}")
    return sum(counts) / seconds, sum(counts)


def in_process(config: dict, pos: np.ndarray, sr: float, extra: dict,
               n: int) -> tuple[float, float]:
    """The server's own time per request without HTTP: (CPU ms, median wall ms) of
    ``app.test_client().get`` (Flask, query and VOTable writing)."""
    from urllib.parse import urlencode

    from archive import create_app
    app = create_app({"DATA_DIR": config["DATA_DIR"], "DATABASE_URL": config["DATABASE_URL"],
                      "ASYNC_WORKER_IN_PROCESS": False})
    client = app.test_client()
    urls = [f"/scs/aperiodic?{urlencode(cone_params(ra, dec, sr, extra))}" for ra, dec in pos]
    for url in urls[:20]:
        assert client.get(url).status_code == 200
    walls = []
    c0 = time.process_time()
    for i in range(n):
        started = time.perf_counter()
        resp = client.get(urls[i % len(urls)])
        resp.get_data()
        walls.append(time.perf_counter() - started)
    cpu = (time.process_time() - c0) / n
    app.extensions["archive_db"].dispose()
    return 1000 * cpu, 1000 * statistics.median(walls)


def _ms(values: list[float], q: float) -> float:
    return 1000 * float(np.percentile(values, q))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default="/tmp/bench1m")
    ap.add_argument("--database-url", default="")
    ap.add_argument("--build", action="store_true",
                    help="build the demo archive first (as extras-archive demo "
                         "--no-products) unless DIR already holds one with --rows rows")
    ap.add_argument("--rows", type=int, default=1000000)
    # the defaults of `extras-archive serve` (docs/deploy.md)
    ap.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1))
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--worker-class", default=None, help="gunicorn --worker-class")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--client-mode", choices=("process", "thread"), default="process")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--verb", default=None, help="send VERB (default: not sent)")
    ap.add_argument("--format", default=None, help="send RESPONSEFORMAT (default: not sent)")
    ap.add_argument("--in-process", type=int, default=1000, metavar="N",
                    help="requests for the in-process server time (0: skip)")
    args = ap.parse_args(argv)
    overrides = {"DATA_DIR": args.data_dir}
    if args.database_url:
        overrides["DATABASE_URL"] = args.database_url
    config = load_config(overrides, environ={})
    if args.build:
        have = catalogue_rows(config)
        if have == args.rows:
            print(f"reusing the archive in {args.data_dir} ({have} aperiodic rows)")
        else:
            from ingest.demo import build_demo   # what `extras-archive demo` runs
            summary = build_demo(config, rows=args.rows, products=False)
            print(f"built the demo archive in {summary['seconds']:.0f} s: {summary['rows']}")
    warnings.simplefilter("ignore", VOWarning)
    extra = {}
    if args.verb:
        extra["VERB"] = args.verb
    if args.format:
        extra["RESPONSEFORMAT"] = args.format
    print(f"before: {machine_state()}")
    pos = positions(config, 200, args.seed)
    results = {}
    proc, base = start_server(config, args.workers, args.threads, args.worker_class)
    try:
        kind = args.worker_class or ("gthread" if args.threads > 1 else "sync")
        print(f"server: gunicorn {args.workers} workers x {args.threads} threads ({kind}), "
              f"{config['DATABASE_URL'].split(':')[0]}, {os.cpu_count()} cores; "
              f"parameters {extra or 'service defaults'}")
        for label, sr, cones in (("1", 1 / 60, pos), ("15", 15 / 60, pos[:50])):
            t, p, n = latencies(base, cones, sr, extra)
            results[label] = _ms(t, 50)
            print(f"{label} arcmin, {len(cones)} cones: median {_ms(t, 50):.2f} ms, "
                  f"p95 {_ms(t, 95):.2f} ms (of which astropy parse: median "
                  f"{_ms(p, 50):.2f} ms), mean {statistics.fmean(n):.1f} rows")
        rate, total = throughput(base, pos, 1 / 60, extra, args.clients, args.seconds,
                                 args.client_mode)
        results["rate"] = rate
        print(f"throughput, {args.clients} clients ({args.client_mode}es), 1 arcmin: "
              f"{rate:.0f} requests/s ({total} requests in {args.seconds:g} s)")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    if args.in_process:
        for label, sr in (("1", 1 / 60), ("15", 15 / 60)):
            cpu, wall = in_process(config, pos, sr, extra, args.in_process)
            print(f"in-process server time, {label} arcmin ({args.in_process} requests, "
                  f"app.test_client): CPU {cpu:.2f} ms/request, median wall {wall:.2f} ms")
    print(f"after: {machine_state()}")
    met = [("1' median < 4 ms", results["1"] < GOALS["1"]),
           ("15' median < 6 ms", results["15"] < GOALS["15"]),
           (">= 350 requests/s", results["rate"] >= GOALS["rate"])]
    print("goals: " + "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in met))
    return 0


if __name__ == "__main__":
    sys.exit(main())

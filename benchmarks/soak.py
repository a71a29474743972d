"""Soak test: clients mixing cone search, TAP sync, async jobs and uploads against gunicorn.

Usage::

    python benchmarks/soak.py --data-dir /tmp/soak --build 20000        # first time
    python benchmarks/soak.py --data-dir /tmp/soak [--minutes 5] [--clients 8]
    python benchmarks/soak.py --data-dir /tmp/soak-pg --database-url postgresql+psycopg://...

It starts ``gunicorn wsgi:app`` (2 workers, 4 threads, ``--timeout 120``, as in
docs/tap.md and the tests' ``live_server``) on a free loopback port, and runs
``--clients`` client processes (8, the issue's figure) for ``--minutes`` (5). Each
client loops over four kinds of request, in a random order, each checked:

* ``cone``: ``/scs/aperiodic`` at a catalogue position, 0.05 deg (status 200, a
  VOTable without an error INFO);
* ``sync``: ``/tap/sync``, a TOP 100 query with a WHERE on a random RA range
  (status 200, QUERY_STATUS OK);
* ``async``: a job created with PHASE=RUN (a TOP 20 query, CSV), followed with
  ``WAIT`` until it ends, its result read, the job deleted (COMPLETED, 20 rows);
* ``upload``: ``/tap/sync`` with a 50-position VOTable uploaded and cross-matched
  with ``aperiodic`` within 5 arcsec (status 200, one row per position at least:
  the positions are catalogue positions).

A request that fails any check counts as an error of its kind (``http 500``,
``bad body``, the exception's name), printed with the first message of each. The
gunicorn workers' resident memory (VmRSS from /proc, workers found as the
master's children) is sampled every second: printed at the start (after a warm-up),
at the end, its maximum, and the workers' total every 30 s; a worker that restarted counts as an error. The load
average is printed at the start and the end: figures from a loaded machine are
noisy.

Exit status 0 when there were no errors and no worker restarted.
"""
from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import random
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import start_gunicorn  # noqa: E402  (the same launcher the tests use)

KINDS = ("cone", "sync", "async", "upload")


# -- the server's workers -------------------------------------------------------------

def workers_of(master: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{master}/task").iterdir():
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return sorted(out)


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class Sampler(threading.Thread):
    """Samples the workers' RSS every second; notices a changed set of workers."""

    def __init__(self, master: int):
        super().__init__(daemon=True)
        self.master = master
        self.workers = workers_of(master)
        self.start_rss = {w: rss_mib(w) for w in self.workers}
        self.peak = dict(self.start_rss)
        self.restarts: list[str] = []
        self.timeline: list[tuple[float, float]] = []     # (seconds, total RSS), every 30 s
        self.stop = threading.Event()

    def run(self):
        began = time.monotonic()
        while not self.stop.wait(1.0):
            now = workers_of(self.master)
            if now != self.workers:
                self.restarts.append(f"workers {self.workers} became {now}")
                self.workers = now
            rss = {w: rss_mib(w) for w in now}
            for w, value in rss.items():
                self.peak[w] = max(self.peak.get(w, 0.0), value)
            elapsed = time.monotonic() - began
            if not self.timeline or elapsed - self.timeline[-1][0] >= 30:
                self.timeline.append((elapsed, sum(rss.values())))


# -- the clients --------------------------------------------------------------------------

def _votable_status(body: bytes) -> str | None:
    """The value of the first QUERY_STATUS INFO (None if there is none)."""
    head = body[:4000].decode("utf-8", "replace")
    at = head.find('name="QUERY_STATUS"')
    if at == -1:
        return None
    value = head.find('value="', at)
    return head[value + 7:head.find('"', value + 7)]


def _check(r: requests.Response, kind: str) -> None:
    if r.status_code != 200:
        raise RuntimeError(f"http {r.status_code}: {r.text[:300]}")
    status = _votable_status(r.content)
    if kind != "cone" and status not in ("OK", "OVERFLOW"):
        raise RuntimeError(f"bad body: QUERY_STATUS={status}: {r.text[:300]}")
    if kind == "cone" and b'value="ERROR"' in r.content[:4000]:
        raise RuntimeError(f"bad body: {r.text[:300]}")


def _upload_table(positions) -> bytes:
    rows = "".join(f"<TR><TD>p{i}</TD><TD>{ra!r}</TD><TD>{dec!r}</TD></TR>"
                   for i, (ra, dec) in enumerate(positions))
    return ('<?xml version="1.0"?><VOTABLE version="1.3" '
            'xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE>'
            '<FIELD name="name" datatype="char" arraysize="*"/>'
            '<FIELD name="ra" datatype="double" ucd="pos.eq.ra;meta.main"/>'
            '<FIELD name="dec" datatype="double" ucd="pos.eq.dec;meta.main"/>'
            f'<DATA><TABLEDATA>{rows}</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>'
            ).encode()


def _one(kind: str, base: str, session: requests.Session, rng: random.Random, positions):
    if kind == "cone":
        ra, dec = rng.choice(positions)
        r = session.get(f"{base}/scs/aperiodic", params={"RA": ra, "DEC": dec, "SR": 0.05},
                        timeout=120)
        _check(r, kind)
    elif kind == "sync":
        lo = rng.uniform(0, 350)
        r = session.post(f"{base}/tap/sync", timeout=120, data={
            "LANG": "ADQL", "QUERY": "SELECT TOP 100 extras_id, ra, dec FROM extras.aperiodic "
                                     f"WHERE ra BETWEEN {lo:.4f} AND {lo + 10:.4f} ORDER BY ra"})
        _check(r, kind)
    elif kind == "async":
        r = session.post(f"{base}/tap/async", allow_redirects=False, timeout=120, data={
            "LANG": "ADQL", "PHASE": "RUN", "RESPONSEFORMAT": "csv",
            "QUERY": "SELECT TOP 20 extras_id, ra FROM extras.aperiodic ORDER BY extras_id"})
        if r.status_code != 303:
            raise RuntimeError(f"http {r.status_code}: {r.text[:300]}")
        job = r.headers["Location"]
        deadline = time.monotonic() + 120
        phase = ""
        while time.monotonic() < deadline:
            phase = session.get(job + "/phase", timeout=120).text.strip()
            if phase not in ("PENDING", "QUEUED", "EXECUTING"):
                break
            session.get(job, params={"WAIT": 5}, timeout=120)
        if phase != "COMPLETED":
            raise RuntimeError(f"bad body: async job ended {phase or 'never'}: "
                               + session.get(job + "/error", timeout=60).text[:300])
        result = session.get(job + "/results/result", timeout=120)
        if result.status_code != 200:
            raise RuntimeError(f"http {result.status_code}: {result.text[:300]}")
        if len(result.text.splitlines()) != 21:
            raise RuntimeError("bad body: the async result does not have 20 rows")
        gone = session.delete(job, allow_redirects=False, timeout=120)
        if gone.status_code != 303:
            raise RuntimeError(f"http {gone.status_code} on DELETE: {gone.text[:300]}")
    else:
        mine = rng.sample(positions, min(50, len(positions)))
        r = session.post(f"{base}/tap/sync", timeout=120, data={
            "LANG": "ADQL", "UPLOAD": "mine,param:mine", "RESPONSEFORMAT": "csv",
            "QUERY": "SELECT u.name, a.extras_id FROM TAP_UPLOAD.mine AS u JOIN "
                     "extras.aperiodic AS a ON 1 = CONTAINS(POINT(a.ra, a.dec), "
                     "CIRCLE(u.ra, u.dec, 5.0/3600))"},
            files={"mine": ("mine.vot", _upload_table(mine))})
        if r.status_code != 200:
            raise RuntimeError(f"http {r.status_code}: {r.text[:300]}")
        matched = {line.split(",", 1)[0] for line in r.text.splitlines()[1:] if line}
        if len(matched) != len(mine):
            raise RuntimeError(f"bad body: {len(matched)} of {len(mine)} positions matched")


def client(index: int, base: str, seconds: float, positions, queue) -> None:
    rng = random.Random(index)
    session = requests.Session()
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: Counter = Counter()
    first: dict[str, str] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        kind = rng.choice(KINDS)
        started = time.perf_counter()
        try:
            _one(kind, base, session, rng, positions)
            latencies[kind].append(time.perf_counter() - started)
        except Exception as exc:       # every failure is counted by kind, never fatal
            message = str(exc)
            label = message.split(":", 1)[0] if message.startswith(("http ", "bad body")) \
                else type(exc).__name__
            errors[(kind, label)] += 1
            first.setdefault(f"{kind} / {label}", message[:300])
            latencies[f"{kind} (failed)"].append(time.perf_counter() - started)
    queue.put((dict(latencies), dict(errors), first))


# -- main -------------------------------------------------------------------------------

def _positions(base: str, n: int = 500) -> list[tuple[float, float]]:
    r = requests.post(f"{base}/tap/sync", timeout=120, data={
        "LANG": "ADQL", "RESPONSEFORMAT": "csv",
        "QUERY": f"SELECT TOP {n} ra, dec FROM extras.aperiodic ORDER BY extras_id"})
    r.raise_for_status()
    return [tuple(map(float, line.split(","))) for line in r.text.splitlines()[1:] if line]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="the archive's DATA_DIR")
    ap.add_argument("--database-url", default="", help="default: DATA_DIR/archive.sqlite")
    ap.add_argument("--build", type=int, default=0, metavar="ROWS",
                    help="first build a demo archive of ROWS aperiodic rows there")
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2, help="gunicorn --workers")
    args = ap.parse_args(argv)

    from archive.config import load_config
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    url = args.database_url or f"sqlite:///{data_dir / 'archive.sqlite'}"
    config = load_config({"DATA_DIR": str(data_dir), "DATABASE_URL": url}, environ={})
    if args.build:
        from ingest.demo import build_demo
        print(f"building a demo archive of {args.build} rows in {data_dir} ...", flush=True)
        build_demo(config, rows=args.build, products=False, previews=False)

    proc, base = start_gunicorn(config, workers=args.workers)
    try:
        positions = _positions(base)
        warm = requests.Session()
        for kind in KINDS * 3:                      # warm every worker's code paths
            _one(kind, base, warm, random.Random(0), positions)
        sampler = Sampler(proc.pid)
        load_start = os.getloadavg()
        print(f"gunicorn {base} master {proc.pid} workers {sampler.workers}; "
              f"{args.clients} clients for {args.minutes} min; load average "
              f"{load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}", flush=True)
        sampler.start()
        queue = mp.Queue()
        ctx = [mp.Process(target=client, args=(i, base, args.minutes * 60, positions, queue))
               for i in range(args.clients)]
        began = time.monotonic()
        for p in ctx:
            p.start()
        results = [queue.get() for _ in ctx]
        for p in ctx:
            p.join()
        elapsed = time.monotonic() - began
        sampler.stop.set()
        sampler.join()
        end_rss = {w: rss_mib(w) for w in sampler.workers}
        load_end = os.getloadavg()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except Exception:
            proc.kill()

    latencies: dict[str, list[float]] = defaultdict(list)
    errors: Counter = Counter()
    first: dict[str, str] = {}
    for lat, err, msg in results:
        for k, v in lat.items():
            latencies[k] += v
        errors.update(err)
        for k, v in msg.items():
            first.setdefault(k, v)
    total = sum(len(v) for v in latencies.values())
    print(f"\n{total} requests in {elapsed:.0f} s ({total / elapsed:.1f}/s)")
    print(f"{'kind':<18}{'requests':>10}{'median ms':>12}{'p95 ms':>10}")
    for kind in sorted(latencies):
        v = sorted(latencies[kind])
        p95 = v[min(len(v) - 1, int(0.95 * len(v)))]
        print(f"{kind:<18}{len(v):>10}{1000 * statistics.median(v):>12.1f}{1000 * p95:>10.1f}")
    n_errors = sum(errors.values()) + len(sampler.restarts)
    print(f"\nerrors: {n_errors}")
    for (kind, label), n in sorted(errors.items()):
        print(f"  {kind} / {label}: {n}  (first: {first.get(f'{kind} / {label}', '')})")
    for restart in sampler.restarts:
        print(f"  worker restart: {restart}")
    print("\nworker RSS (MiB): start -> end (max)")
    for w in sorted(set(sampler.start_rss) | set(end_rss)):
        print(f"  pid {w}: {sampler.start_rss.get(w, float('nan')):.1f} -> "
              f"{end_rss.get(w, float('nan')):.1f} ({sampler.peak.get(w, float('nan')):.1f})")
    print("all workers' RSS (MiB) every 30 s: " + ", ".join(
        f"{t:.0f}s {v:.0f}" for t, v in sampler.timeline))
    print(f"load average at the end: {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    return 0 if n_errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""TAP benchmark: sync queries against gunicorn, measured as a client sees them.

Usage::

    extras-archive demo --rows 1000000 --no-products --data-dir /tmp/bench1m
    python benchmarks/tap.py --data-dir /tmp/bench1m [--database-url URL] [--repeat 20]

It starts ``gunicorn wsgi:app`` (2 workers, 4 threads, as in docs/tap.md) on a free
loopback port and measures:

* ``SELECT TOP 200000 * FROM extras.aperiodic`` in every output format: rows per
  second as the client receives the whole body, and the growth of the serving
  worker's resident memory (sampled from /proc every 10 ms while the body streams);
* the same with ``MAXREC=1000000`` as BINARY2 (a 1,000,000-row result: memory growth);
* a 15-arcmin CONTAINS cone at a source position (median over ``--repeat`` cones),
  each sent on a new connection and again on a kept-alive ``requests.Session``
  (what pyvo and TOPCAT do);
* ``SELECT COUNT(*)`` over the whole table, and a GROUP BY (medians).

Latencies include HTTP over loopback and parsing the VOTable with astropy.
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import requests
import sqlalchemy as sa
from astropy.io.votable import parse_single_table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import start_gunicorn  # noqa: E402  (the same launcher the tests use)

from archive.config import load_config  # noqa: E402


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class RssSampler:
    """Peak RSS growth of the gunicorn workers while a request runs."""

    def __init__(self, master_pid: int):
        self.workers = _children(master_pid)
        self.base = {w: _rss_mb(w) for w in self.workers}
        self.peak = dict(self.base)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for w in self.workers:
                self.peak[w] = max(self.peak[w], _rss_mb(w))
            time.sleep(0.01)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> float:
        return max(self.peak[w] - self.base[w] for w in self.workers)


def sync(base: str, query: str, fmt: str = "votable", maxrec: int | None = None,
         stream: bool = False, session: requests.Session | None = None):
    """POST a sync query: on a new connection, or on ``session``'s kept-alive one."""
    params = {"LANG": "ADQL", "QUERY": query, "RESPONSEFORMAT": fmt}
    if maxrec is not None:
        params["MAXREC"] = str(maxrec)
    post = session.post if session is not None else requests.post
    return post(base + "/tap/sync", data=params, stream=stream, timeout=600)


def bulk(base: str, master: int, fmt: str, top: int, maxrec: int | None = None) -> dict:
    query = f"SELECT TOP {top} * FROM extras.aperiodic"
    with RssSampler(master) as rss:
        t0 = time.perf_counter()
        response = sync(base, query, fmt, maxrec=maxrec, stream=True)
        response.raise_for_status()
        size = sum(len(piece) for piece in response.iter_content(1 << 20))
        seconds = time.perf_counter() - t0
    return {"format": fmt, "rows": top, "seconds": seconds, "rows_per_s": top / seconds,
            "mb": size / 1e6, "rss_growth_mb": rss.growth}


def timed_votable(base: str, query: str,
                  session: requests.Session | None = None) -> tuple[float, int]:
    t0 = time.perf_counter()
    response = sync(base, query, session=session)
    response.raise_for_status()
    table = parse_single_table(io.BytesIO(response.content))
    return (time.perf_counter() - t0) * 1000, len(table.array)


def positions(config: dict, n: int) -> list[tuple[float, float]]:
    from archive.db import catalogue_tables
    engine = sa.create_engine(config["DATABASE_URL"])
    t = catalogue_tables["aperiodic"]
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
        step = max(total // n, 1)
        rows = conn.execute(sa.select(t.c.ra, t.c.dec).order_by(t.c.extras_id)
                            .offset(0).limit(n * step)).all()[::step][:n]
    engine.dispose()
    return [(float(r[0]), float(r[1])) for r in rows]


# -- async TAP and uploads (issue 5) ---------------------------------------------------------

def upload_votable(config: dict, n: int) -> bytes:
    """A VOTable (BINARY2) of ``n`` positions near catalogue sources, 1 arcsec off."""
    import numpy as np
    from astropy.io.votable.tree import VOTableFile
    from astropy.table import Table
    pos = positions(config, n)
    table = Table({"src": np.arange(len(pos), dtype=np.int32),
                   "ra": np.array([p[0] for p in pos]) + 1 / 3600,
                   "dec": np.array([p[1] for p in pos])})
    doc = VOTableFile.from_table(table)
    doc.version = "1.4"
    out = io.BytesIO()
    doc.to_xml(out, tabledata_format="binary2")
    return out.getvalue()


XMATCH = ("SELECT u.src, a.extras_id, a.ra, a.dec FROM TAP_UPLOAD.mine AS u "
          "JOIN extras.aperiodic AS a ON 1 = CONTAINS(POINT('ICRS', a.ra, a.dec), "
          "CIRCLE('ICRS', u.ra, u.dec, 5.0 / 3600))")


def xmatch_sync(base: str, table: bytes) -> tuple[float, float, int]:
    """(ms until the whole body is received, ms including astropy's parse, rows)."""
    t0 = time.perf_counter()
    response = requests.post(base + "/tap/sync", timeout=600, data={
        "LANG": "ADQL", "QUERY": XMATCH, "UPLOAD": "mine,param:mine", "MAXREC": "10000000"},
        files={"mine": ("mine.vot", table, "application/x-votable+xml")})
    response.raise_for_status()
    received = (time.perf_counter() - t0) * 1000
    rows = len(parse_single_table(io.BytesIO(response.content)).array)
    return received, (time.perf_counter() - t0) * 1000, rows


def xmatch_async(base: str, table: bytes) -> dict:
    """pyvo's run_async with the upload, step by step: submit (upload included), run,
    wait, download the result, parse it with astropy (as run_async does), delete."""
    import pyvo
    service = pyvo.dal.TAPService(base + "/tap")
    marks = [time.perf_counter()]
    job = service.submit_job(XMATCH, uploads={"mine": io.BytesIO(table)}, maxrec=10000000)
    marks.append(time.perf_counter())
    job.run()
    job.wait()
    job.raise_if_error()
    marks.append(time.perf_counter())
    response = requests.get(job.result_uri, timeout=600)
    response.raise_for_status()
    marks.append(time.perf_counter())
    rows = len(parse_single_table(io.BytesIO(response.content)).array)
    marks.append(time.perf_counter())
    job.delete()
    steps = ("submit", "run", "download", "parse")
    out = {k: marks[i + 1] - marks[i] for i, k in enumerate(steps)}
    out.update(rows=rows, mb=len(response.content) / 1e6,
               total=marks[-1] - marks[0], service=marks[3] - marks[0])
    return out


def async_overhead(base: str, repeat: int) -> tuple[float, float]:
    """Median wall time of a small query through pyvo run_async and run_sync."""
    import pyvo
    service = pyvo.dal.TAPService(base + "/tap")
    query = "SELECT TOP 1 * FROM extras.aperiodic"
    for _ in range(2):                               # warm both gunicorn workers
        service.run_async(query)
        service.run_sync(query)
    a, s = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        service.run_async(query)
        a.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        service.run_sync(query)
        s.append((time.perf_counter() - t0) * 1000)
    return statistics.median(a), statistics.median(s)


def async_section(base: str, config: dict, repeat: int) -> None:
    print(f"\nCross-match with an uploaded table at 5 arcsec (aperiodic catalogue); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    small = upload_votable(config, 1000)
    for _ in range(2):                               # warm-up: both gunicorn workers
        xmatch_sync(base, small)
    times = [xmatch_sync(base, small) for _ in range(max(5, repeat // 2))]
    print(f"1,000 positions, sync ({times[0][2]} matches): median "
          f"{statistics.median(t[0] for t in times):.1f} ms until the body is received, "
          f"{statistics.median(t[1] for t in times):.1f} ms with astropy's parse")
    big = upload_votable(config, 100000)
    r = xmatch_async(base, big)
    print(f"100,000 positions, pyvo run_async ({r['rows']} matches, upload "
          f"{len(big) / 1e6:.1f} MB, result {r['mb']:.1f} MB): {r['total']:.2f} s = submit "
          f"{r['submit']:.2f} + run/wait {r['run']:.2f} + download {r['download']:.2f} "
          f"+ astropy parse {r['parse']:.2f}; service part {r['service']:.2f} s")
    received, total, rows = xmatch_sync(base, big)
    print(f"100,000 positions, sync: {received / 1000:.2f} s until the body is received, "
          f"{total / 1000:.2f} s with astropy's parse ({rows} matches)")
    a, s = async_overhead(base, max(5, repeat // 2))
    print(f"SELECT TOP 1 *: pyvo run_async median {a:.1f} ms, run_sync median {s:.1f} ms, "
          f"async overhead {a - s:.1f} ms")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--formats", default="votable,votable/td,fits,csv,tsv,json,html")
    parser.add_argument("--only", choices=("sync", "async"), default=None,
                        help="run only the sync part or only the async/upload part")
    args = parser.parse_args(argv)
    overrides = {"DATA_DIR": args.data_dir}
    if args.database_url:
        overrides["DATABASE_URL"] = args.database_url
    config = load_config(overrides, environ={})
    proc, base = start_gunicorn(config, workers=2)
    try:
        if args.only == "async":
            async_section(base, config, args.repeat)
            return
        # warm up: page cache, worker imports, SQLite mmap
        for _ in range(2):
            sync(base, "SELECT COUNT(*) FROM extras.aperiodic").raise_for_status()
            bulk(base, proc.pid, "votable", 20000)
        print(f"TAP benchmark against {base} ({config['DATABASE_URL'].split(':')[0]}), "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print("\nSELECT TOP 200000 * FROM extras.aperiodic")
        print(f"{'format':<12}{'rows/s':>12}{'seconds':>10}{'MB':>9}{'RSS growth MB':>16}")
        for fmt in args.formats.split(","):
            r = bulk(base, proc.pid, fmt, 200000)
            print(f"{fmt:<12}{r['rows_per_s']:>12,.0f}{r['seconds']:>10.2f}{r['mb']:>9.1f}"
                  f"{r['rss_growth_mb']:>16.1f}")
        r = bulk(base, proc.pid, "votable", 1000000, maxrec=1000000)
        print(f"\n1,000,000-row result as BINARY2: {r['rows_per_s']:,.0f} rows/s, "
              f"{r['seconds']:.2f} s, {r['mb']:.0f} MB, "
              f"server RSS growth {r['rss_growth_mb']:.1f} MB")

        cones = positions(config, args.repeat)
        times, counts, kept = [], [], []
        with requests.Session() as session:
            for ra, dec in cones:
                query = ("SELECT extras_id, ra, dec FROM extras.aperiodic WHERE 1 = CONTAINS("
                         f"POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra!r}, {dec!r}, 0.25))")
                ms, n = timed_votable(base, query)
                times.append(ms)
                counts.append(n)
                # the same query on a kept-alive connection, as pyvo and TOPCAT send it
                kept.append(timed_votable(base, query, session)[0])
        print(f"\n15-arcmin CONTAINS: median {statistics.median(times):.1f} ms, "
              f"p95 {sorted(times)[int(0.95 * (len(times) - 1))]:.1f} ms "
              f"(median {statistics.median(counts):.0f} rows, {len(times)} cones); "
              f"on a kept-alive connection (requests.Session, as pyvo): median "
              f"{statistics.median(kept):.1f} ms")
        for label, query in (
                ("COUNT(*) full scan", "SELECT COUNT(*) AS n FROM extras.aperiodic"),
                ("GROUP BY camera", "SELECT camera, COUNT(*) AS n, AVG(ub_lc500_co_pval) "
                                    "AS p FROM extras.aperiodic GROUP BY camera")):
            times = [timed_votable(base, query)[0] for _ in range(args.repeat)]
            print(f"{label}: median {statistics.median(times):.1f} ms, "
                  f"min {min(times):.1f} ms")
        if args.only is None:
            async_section(base, config, args.repeat)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()

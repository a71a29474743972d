"""How cost grows with the catalogue: ingest, cone search and COUNT(*) at 10^6 and 10^7 rows.

    python benchmarks/scale.py --workdir /tmp/bench-scale [--rows 1000000,10000000]
        [--chunk 1000000] [--backends sqlite,postgresql] [--pg-url URL]

The aperiodic catalogue is generated in files of ``--chunk`` rows (``ingest.synthetic``
with one seed per file; each file's observation ids and 3XMM source ids are moved to
their own range so that no two files share a key) and loaded one file after the other
into a fresh archive per backend, as an operator loads a large catalogue delivered in
parts: each file goes through the whole ingest (reading, checking every row, HEALPix
index, loading, index maintenance), in a child process so that its peak memory is its
own. At each size of ``--rows`` the script measures, on the same archive:

* the ingest of the last file: wall time, rows/s, CPU time, peak RSS (the cost of
  adding a part to a table of that size);
* cone search, in process through the Flask test client (``/scs/aperiodic``, the
  default VOTable; no HTTP, so that the figure is the server's own work): median and
  95th percentile of 200 cones of 1 arcmin and 50 of 15 arcmin at catalogue positions;
* ``SELECT COUNT(*) FROM extras.aperiodic`` through ``/tap/sync``: median of 5;
* the database size on disk (SQLite file; ``pg_database_size`` on PostgreSQL).

The load average is printed before and after each measurement. Files are generated
once and kept in the work directory (about 200 MB per million rows).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from astropy.io.votable import parse_single_table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def chunk_file(work: Path, index: int, rows: int) -> Path:
    """The ``index``-th part of the catalogue (generated once, then reused)."""
    path = work / f"aperiodic_part{index:02d}_{rows}.fits"
    if path.exists():
        return path
    import datamodel
    from ingest.demo import _file_table
    from ingest.synthetic import generate
    started = time.perf_counter()
    columns = dict(generate(rows, 1000 + index).aperiodic)
    # generated observation ids are "01" + 8 digits for a part of up to a few million
    # rows; the part's number replaces the "01", so parts never share an extras_id
    obs = columns["obs_id"]
    if not all(o.startswith("01") for o in obs[:: max(1, len(obs) // 1000)]):
        raise SystemExit(f"--chunk {rows} is too large for distinct observation ids")
    columns["obs_id"] = np.array([f"{index + 1:02d}{o[2:]}" for o in obs])
    columns["srcid"] = columns["srcid"] + index * 10_000_000
    table = _file_table(datamodel.TABLES["aperiodic"], columns)
    tmp = path.with_suffix(".part")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table.write(tmp, format="fits", overwrite=True)
    tmp.rename(path)
    print(f"  generated {path.name} ({path.stat().st_size / 1e6:.0f} MB) in "
          f"{time.perf_counter() - started:.0f} s (not measured)", flush=True)
    return path


def ingest(path: Path, url: str) -> dict:
    """Ingest one file in a fresh process (benchmarks/ingest.py's child: wall and CPU
    time, peak RSS of the ingesting processes), its figures."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ingest.py"), "--child",
                          str(path), url], capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise SystemExit(f"ingest of {path} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def measure(data_dir: Path, url: str, cones: int = 200) -> dict:
    """Cone search and COUNT(*) on the archive, in process (Flask test client)."""
    from urllib.parse import urlencode

    from archive import create_app
    data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app({"DATA_DIR": str(data_dir), "DATABASE_URL": url,
                      "ASYNC_WORKER_IN_PROCESS": False})
    client = app.test_client()
    engine = app.extensions["archive_db"].engine
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT COUNT(*) FROM aperiodic")).scalar_one()
        # catalogue positions spread over the table: every n/cones-th row by rowid order
        step = max(1, n // cones)
        if engine.dialect.name == "sqlite":
            pos = conn.execute(sa.text("SELECT ra, dec FROM aperiodic WHERE rowid % :s = 0 "
                                       "LIMIT :c"), {"s": step, "c": cones}).all()
        else:
            pos = conn.execute(sa.text("SELECT ra, dec FROM aperiodic ORDER BY random() "
                                       "LIMIT :c"), {"c": cones}).all()
        if engine.dialect.name == "sqlite":
            size = Path(url.removeprefix("sqlite:///")).stat().st_size
        else:
            size = conn.execute(sa.text("SELECT pg_database_size(current_database())")
                                ).scalar_one()
    figures = {"rows": n, "db_mb": size / 1e6}
    for label, radius, count in (("cone1", 1 / 60, cones), ("cone15", 0.25, cones // 4)):
        urls = [f"/scs/aperiodic?{urlencode({'RA': ra, 'DEC': dec, 'SR': radius})}"
                for ra, dec in pos[:count]]
        for u in urls[:10]:                                   # warm the caches
            assert client.get(u).status_code == 200
        times, found = [], 0
        for u in urls:
            t0 = time.perf_counter()
            body = client.get(u).get_data()
            times.append(time.perf_counter() - t0)
            found += len(parse_single_table(io.BytesIO(body), verify="ignore").array)
        figures[label] = (1000 * statistics.median(times),
                          1000 * float(np.percentile(times, 95)), found / len(urls))
    q = {"REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "csv",
         "QUERY": "SELECT COUNT(*) AS n FROM extras.aperiodic"}
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        resp = client.post("/tap/sync", data=q)
        body = resp.get_data(as_text=True)
        times.append(time.perf_counter() - t0)
        assert resp.status_code == 200 and int(body.split()[-1]) == n, body
    figures["count(*)"] = 1000 * statistics.median(times)
    app.extensions["archive_db"].dispose()
    return figures


def report(m: dict) -> None:
    c1, c15 = m["cone1"], m["cone15"]
    print(f"  at {m['rows']:,} rows: cone 1' median/p95 {c1[0]:.2f}/{c1[1]:.2f} ms "
          f"({c1[2]:.1f} rows), cone 15' {c15[0]:.2f}/{c15[1]:.2f} ms ({c15[2]:.0f} rows), "
          f"COUNT(*) {m['count(*)']:.1f} ms, database {m['db_mb']:,.0f} MB, {load()}",
          flush=True)


def fresh_database(backend: str, work: Path, pg_url: str) -> str:
    if backend == "sqlite":
        db = work / "scale.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        return f"sqlite:///{db}"
    base = sa.make_url(pg_url)
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS extras_scale"))
        conn.execute(sa.text("CREATE DATABASE extras_scale"))
    admin.dispose()
    return base.set(database="extras_scale").render_as_string(hide_password=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="/tmp/bench-scale")
    ap.add_argument("--rows", default="1000000,10000000",
                    help="sizes at which to measure, comma-separated")
    ap.add_argument("--chunk", type=int, default=1_000_000, help="rows per file")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--pg-url", default=os.environ.get(
        "EXTRAS_ARCHIVE_TEST_PG_URL", "postgresql+psycopg://root:root@localhost/postgres"))
    ap.add_argument("--measure", action="append", metavar="URL", default=[],
                    help="only measure the cone search and COUNT(*) of an archive already "
                         "built (repeat for several; e.g. again on a quiet machine)")
    args = ap.parse_args(argv)
    if args.measure:
        for url in args.measure:
            print(f"{sa.make_url(url).render_as_string()}: {load()}", flush=True)
            report(measure(Path(args.workdir) / "data-measure", url))
        return 0
    sizes = sorted(int(s) for s in args.rows.split(","))
    if any(s % args.chunk for s in sizes):
        ap.error("every size of --rows must be a multiple of --chunk")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    print(f"scale benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores, {load()}", flush=True)
    parts = sizes[-1] // args.chunk
    files = [chunk_file(work, i, args.chunk) for i in range(parts)]
    results = {}
    for backend in args.backends.split(","):
        url = fresh_database(backend, work, args.pg_url)
        data_dir = work / f"data-{backend}"
        data_dir.mkdir(exist_ok=True)
        total = 0
        for i, path in enumerate(files):
            fig = ingest(path, url)
            total += fig["rows"]
            line = (f"{backend}: part {i + 1}/{parts} → {total:,} rows: ingest "
                    f"{fig['seconds']:.1f} s = {fig['rows'] / fig['seconds']:,.0f} rows/s, "
                    f"CPU {fig['cpu_s']:.1f} s, peak RSS {fig['peak_rss_mb']:.0f} MB "
                    f"({fig['replaced']} replaced), {load()}")
            print(line, flush=True)
            if total in sizes:
                m = measure(data_dir, url)
                assert m["rows"] == total, (m["rows"], total)
                results[(backend, total)] = dict(m, ingest_s=fig["seconds"],
                                                 ingest_cpu_s=fig["cpu_s"],
                                                 ingest_rss_mb=fig["peak_rss_mb"])
                report(m)
    print("\nsummary (backend, rows: last part's ingest s, cone 1' ms, cone 15' ms, "
          "COUNT(*) ms, database MB)")
    for (backend, n), m in sorted(results.items()):
        print(f"{backend:10} {n:>11,}  {m['ingest_s']:7.1f}  {m['cone1'][0]:7.2f}"
              f"  {m['cone15'][0]:7.2f}  {m['count(*)']:8.1f}  {m['db_mb']:9,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

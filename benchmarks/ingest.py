"""Benchmark: ingest a generated 1,000,000-row aperiodic catalogue (FITS) into SQLite or PostgreSQL.

    python benchmarks/ingest.py [--rows N] [--workdir DIR] [--database-url URL]

Generates the catalogue with the demo generator (not timed), then runs the ingest
in a fresh child process (``extras-archive ingest catalogue`` through
:func:`ingest.catalogue.ingest_catalogue`) and prints, for that child:

- wall time and rows/s of the whole ingest: reading the FITS file, validating
  every row, HEALPix index and unit vectors, loading, building every index;
- CPU time (user + system) of the ingest, its forked loading process included:
  on a shared machine the wall time depends on the other jobs, the CPU time
  much less;
- peak memory: ``ru_maxrss`` of the ingesting process and of its loading child
  (resident-set high-water marks, interpreter and libraries included);
- then the same ingest again into the now full table (the idempotent re-ingest:
  1,000,000 rows replaced).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def generate(path: Path, rows: int) -> None:
    import warnings
    from ingest.demo import _file_table
    from ingest.synthetic import generate as synth
    started = time.perf_counter()
    table = _file_table(__import__("datamodel").TABLES["aperiodic"], synth(rows, 42).aperiodic)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table.write(path, format="fits", overwrite=True)
    print(f"generated {rows} rows, {path.stat().st_size / 1e6:.0f} MB, "
          f"in {time.perf_counter() - started:.1f} s (not part of the measurement)")


def child(path: str, url: str) -> None:
    """Ingest once (fresh process) and print JSON figures."""
    import resource
    from archive.db import Database
    from ingest.catalogue import ingest_catalogue
    db = Database(url)

    def cpu():
        return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
                   for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))

    cpu0 = cpu()
    started = time.perf_counter()
    report = ingest_catalogue(db.engine, path, "aperiodic")
    seconds = time.perf_counter() - started
    cpu_s = cpu() - cpu0
    db.dispose()
    # the SQLite load runs in a forked child (ingest.load): count its peak too
    maxrss_mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                    resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    print(json.dumps({"rows": report.rows, "replaced": report.replaced, "seconds": seconds,
                      "cpu_s": cpu_s, "rows_per_s": report.rows / seconds,
                      "peak_rss_mb": maxrss_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", default=None, help="keep files here (default: temp)")
    parser.add_argument("--database-url", default=None,
                        help="default: a new SQLite file in the work directory")
    parser.add_argument("--child", nargs=2, metavar=("FILE", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"aperiodic_{args.rows}.fits"
    if not path.exists():
        generate(path, args.rows)
    db_file = work / "bench.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db_file) + suffix).unlink(missing_ok=True)
    url = args.database_url or f"sqlite:///{db_file}"
    for label in ("fresh table", "re-ingest (replace all)"):
        out = subprocess.run([sys.executable, __file__, "--child", str(path), url],
                             capture_output=True, text=True, cwd=ROOT, check=True)
        fig = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{label}: {fig['rows']} rows in {fig['seconds']:.2f} s = "
              f"{fig['rows_per_s']:,.0f} rows/s (index included; {fig['replaced']} replaced); "
              f"CPU {fig['cpu_s']:.2f} s = {fig['rows'] / fig['cpu_s']:,.0f} rows per CPU-s; "
              f"peak RSS of the ingesting processes {fig['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()

"""Benchmark: what the empty-column check and a dry run cost on a replacing ingest.

    python benchmarks/ingest_guard.py [--rows N] [--database-url URL] [--repeat K]

Generates an aperiodic FITS catalogue of N rows (demo generator, not timed), with
some empty cells, loads it once, then times (best of K) in this process:

- the re-ingest of the whole file (every row replaced) with the check that replaced
  rows keep their values (the default);
- the same re-ingest with ``allow_empty=True`` (the check skipped);
- a 1,000-row update (with the check);
- a dry run of the whole file (``ingest validate``: read, validate, stage, compare).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    import numpy as np
    import datamodel
    from archive.db import Database
    from ingest.catalogue import ingest_catalogue
    from ingest.demo import _file_table
    from ingest.synthetic import generate

    work = Path(tempfile.mkdtemp(prefix="ingest-guard-"))
    url = args.database_url or f"sqlite:///{work / 'archive.sqlite'}"
    table = _file_table(datamodel.TABLES["aperiodic"], generate(args.rows, 42).aperiodic)
    table["FVAR"][::7] = np.nan                      # empty cells: the check has work
    full, small = work / "full.fits", work / "small.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table.write(full, format="fits")
        table[:1000].write(small, format="fits")
    db = Database(url)
    try:
        ingest_catalogue(db.engine, full, "aperiodic", allow_empty=True)

        def best(path: Path, **kwargs) -> float:
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                ingest_catalogue(db.engine, path, "aperiodic", **kwargs)
                times.append(time.perf_counter() - started)
            return min(times)

        print(f"{args.rows} rows, {db.engine.dialect.name}, best of {args.repeat}")
        print(f"re-ingest, check skipped (allow_empty): {best(full, allow_empty=True):.2f} s")
        print(f"re-ingest, with the check (default):    {best(full):.2f} s")
        print(f"1,000-row update, with the check:       {best(small):.2f} s")
        print(f"dry run of the whole file:              {best(full, dry_run=True):.2f} s")
    finally:
        db.dispose()


if __name__ == "__main__":
    main()

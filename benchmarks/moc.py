"""Catalogue MOC benchmark: how long the coverage of each positional catalogue takes.

Usage::

    python benchmarks/moc.py DATABASE_URL [--out DIR]

For each positional catalogue, on the read-only engine: the fingerprint query (paid
on every catalogue page and MOC request), the ``SELECT DISTINCT _hpx >> 38`` of the
order-10 cells, the mocpy MOC, the PNG, a full build into an empty cache directory
(``archive.catalogues.coverage.coverage``) and a second, cached call. ``DIR``
(default: a temporary directory) receives the cache files; the database is only read.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

import datamodel  # noqa: E402
from archive.catalogues.coverage import (build_moc, coverage, draw_moc,  # noqa: E402
                                         fingerprint, moc_cells)
from archive.db import catalogue_tables, create_readonly_engine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="moc-bench-"))
    engine = create_readonly_engine(args.url)
    for name, table in datamodel.TABLES.items():
        if not table.positional:
            continue
        with engine.connect() as conn:
            rows = conn.execute(sa.select(sa.func.count()).select_from(
                catalogue_tables[name])).scalar_one()
        t0 = time.perf_counter()
        fingerprint(engine, table, timeout=600)
        t1 = time.perf_counter()
        cells = moc_cells(engine, table, timeout=600)
        t2 = time.perf_counter()
        build_moc(cells)
        t3 = time.perf_counter()
        draw_moc(cells)
        t4 = time.perf_counter()
        shutil.rmtree(out, ignore_errors=True)
        t5 = time.perf_counter()
        found = coverage(engine, table, out, timeout=600)
        t6 = time.perf_counter()
        coverage(engine, table, out, timeout=600)
        t7 = time.perf_counter()
        print(f"{name:15s} rows {rows:>8,d} cells {len(cells):>7,d} | fingerprint "
              f"{1e3 * (t1 - t0):7.1f} ms | distinct cells {1e3 * (t2 - t1):7.1f} ms | "
              f"mocpy {1e3 * (t3 - t2):5.1f} ms | png {1e3 * (t4 - t3):6.1f} ms | "
              f"full build {1e3 * (t6 - t5):7.1f} ms | cached {1e3 * (t7 - t6):6.1f} ms | "
              f"fits {found.fits.stat().st_size:,} B, json {found.json.stat().st_size:,} B")
    engine.dispose()


if __name__ == "__main__":
    main()

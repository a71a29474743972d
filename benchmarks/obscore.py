"""Cost of keeping ivoa.obscore in step with the products (ingest.obscore.sync_obscore).

Builds a demo archive (no quick-looks), then multiplies its described products: each
copy is a products row whose file is a symlink to the original (same detection, so it
has a position) under ``<obs_id>/copy<k>/``. Then times, in one transaction each:

* the one-time fill of an existing archive (every row written, FITS headers read);
* a re-run with nothing changed (the steady state of ``ingest products``);
* a re-run after 1 % of the products changed.

    python benchmarks/obscore.py --copies 100 [--database-url URL] [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

from archive.config import load_config  # noqa: E402
from archive.db import Database, ivoa_tables, products  # noqa: E402
from datamodel.obscore import OBSERVABLES  # noqa: E402
from ingest.demo import build_demo  # noqa: E402
from ingest.obscore import sync_obscore  # noqa: E402
from ingest.products import _run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=100)
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--database-url", default="")
    ap.add_argument("--workdir", default="")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-obscore-"))
    overrides = {"DATA_DIR": str(work)}
    if args.database_url:
        overrides["DATABASE_URL"] = args.database_url
    config = load_config(overrides, environ={})
    build_demo(config, rows=args.rows, workers=args.workers, previews=False)
    db = Database(config["DATABASE_URL"])
    base = Path(config["PRODUCTS_DIR"])
    with db.engine.begin() as conn:
        originals = [dict(r._mapping) for r in conn.execute(
            sa.select(products).where(products.c.product_type.in_(sorted(OBSERVABLES))))]
        copies = []
        for k in range(args.copies):
            for r in originals:
                obs, name = r["path"].split("/", 1)
                path = f"{obs}/copy{k}/{name}"
                target = base / path
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    os.symlink(base / r["path"], target)
                copies.append({**{c: v for c, v in r.items() if c != "id"}, "path": path})
        for i in range(0, len(copies), 5000):
            conn.execute(products.insert(), copies[i:i + 5000])
        conn.execute(ivoa_tables["obscore"].delete())
    total = len(originals) * (args.copies + 1)
    print(f"{config['DATABASE_URL'].split(':')[0]}: {total} described products")

    def timed(label, changed=frozenset()):
        started = time.perf_counter()
        with db.engine.begin() as conn:
            report = sync_obscore(conn, config, set(changed), run=_run, workers=args.workers)
        took = time.perf_counter() - started
        print(f"{label}: {took:.2f} s ({report.summary()})")
        return took

    fill = timed("one-time fill")
    print(f"  = {total / fill:,.0f} rows/s")
    timed("re-run, nothing changed")
    changed = {c["path"] for c in copies[::100]}
    timed(f"re-run, {len(changed)} changed", changed)
    db.dispose()


if __name__ == "__main__":
    main()

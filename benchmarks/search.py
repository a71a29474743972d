"""Server time of the web search form (GET /search/<catalogue>), in process.

Runs the Flask application on an existing archive (default ``/tmp/search-bench``, a
copy of the 1,000,000-row demo archive) through its test client and prints medians
and 90th percentiles of:

- a 1-arcmin cone search (HTML page) around random catalogue positions;
- pages of a result of about 100,000 rows (an RA range), sorted by several columns
  both ways: the first request (count, whole result into the cache) and then random
  pages served from the cache; the same pages with the cache off (the database pages
  with ORDER BY ... OFFSET ... LIMIT).

Usage: ``python benchmarks/search.py [--data-dir DIR] [--requests N]``.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import time

import sqlalchemy as sa

from archive import create_app
from archive.config import load_config
from archive.db import get_db, search_cache


def _ms(values, q):
    values = sorted(values)
    return 1000 * values[min(len(values) - 1, int(q * len(values)))]


def _time(client, params) -> float:
    started = time.perf_counter()
    response = client.get("/search/aperiodic", query_string=params)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return elapsed


def _report(label, values):
    print(f"{label:58s} median {1000 * statistics.median(values):7.1f} ms  "
          f"p90 {_ms(values, 0.9):7.1f} ms  (n={len(values)})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default="/tmp/search-bench")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    config = load_config({"DATA_DIR": args.data_dir}, environ={})
    app = create_app(config)
    client = app.test_client()
    rng = random.Random(args.seed)
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores, "
          f"{config['DATABASE_URL'].split(':')[0]}")
    with app.app_context():
        engine = get_db().engine
        with engine.begin() as conn:
            conn.execute(search_cache.delete())
            n = conn.execute(sa.text("SELECT count(*) FROM aperiodic")).scalar_one()
            ras = sorted(r[0] for r in conn.execute(sa.text("SELECT ra FROM aperiodic")))
            picks = conn.execute(sa.text(
                "SELECT ra, dec FROM aperiodic ORDER BY random() LIMIT :n"),
                {"n": args.requests}).all()
    print(f"{n:,} aperiodic rows")
    _time(client, {"pos": f"{picks[0].ra} {picks[0].dec}", "radius": "1"})   # warm up
    cone = [_time(client, {"pos": f"{p.ra:.6f} {p.dec:+.6f}", "radius": "1",
                           "unit": "arcmin"}) for p in picks]
    _report("1-arcmin cone, HTML page", cone)

    # an RA range holding about 100,000 rows
    lo = ras[len(ras) // 3]
    hi = ras[min(len(ras) - 1, len(ras) // 3 + 100000)]
    area = {"shape": "range", "ra_min": f"{lo:.6f}", "ra_max": f"{hi:.6f}",
            "dec_min": "-90", "dec_max": "90"}
    sorts = ["ra", "ub_lc500_ave", "fvar", "obs_id", "srcid"]
    first = _time(client, {**area, "sort": "ra"})
    print(f"{'100,000-row range: first page (count + fill the cache)':58s} "
          f"{1000 * first:7.1f} ms")
    pages = 100000 // 50
    for cache in (True, False):
        if not cache:
            app.config["SEARCH_CACHE_MAX_BYTES"] = 0
        times = []
        for i in range(args.requests):
            params = {**area, "sort": sorts[i % len(sorts)],
                      "order": rng.choice(["asc", "desc"]),
                      "page": str(rng.randint(1, pages))}
            times.append(_time(client, params))
        _report(f"100,000-row range, random page and sort, cache {'on' if cache else 'off'}",
                times)
    with app.app_context(), get_db().engine.connect() as conn:
        size = conn.execute(sa.select(search_cache.c.size)).scalar_one()
    print(f"cached result: {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Floors: the parts of each benchmark figure that no change to the server can remove.

Usage::

    python benchmarks/floors.py --data-dir /tmp/bench1m

The issue goals are figures "as a client sees it", on the same 2-core machine as
the server. This script measures, on the benchmark archive, what the client side
and the database engine cost by themselves, so that a goal below the sum of its
floors is recognised as out of reach on this machine instead of chased:

* the HTTP client: a ``requests.Session`` GET and POST of a trivial endpoint
  (``/tap/availability``) over loopback, and the same with ``http.client``
  (the difference is the cost of the ``requests`` library alone);
* astropy's VOTable parser (``parse_single_table``, what pyvo uses) on the
  service's own answers: a 1-arcmin cone at VERB=1, 2 (the default) and 3, and
  a 15-arcmin ADQL CONTAINS result; and its cost per row on a 4-column result
  (the cross-match shape) in BINARY2 and TABLEDATA;
* reading 200,000 rows of the 43-column table out of SQLite into Arrow arrays in
  C (the ADBC driver the columnar path uses), with nothing else done: the ceiling
  on rows per second of ``SELECT TOP 200000 *`` for one core of an SQLite-backed
  server, before any encoding or HTTP.

Each figure is the median of several runs (CPU-bound; the load average is printed).
"""
from __future__ import annotations

import argparse
import http.client
import io
import os
import sqlite3
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import requests
from astropy.io.votable import parse_single_table
from astropy.table import Table
from astropy.io.votable.tree import VOTableFile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import start_gunicorn  # noqa: E402

from archive.config import load_config  # noqa: E402


def median_ms(func, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def parse_ms(body: bytes, repeat: int = 30) -> float:
    return median_ms(lambda: parse_single_table(io.BytesIO(body), verify="ignore"), repeat)


def http_floors(base: str) -> None:
    host = base.split("//", 1)[1]
    with requests.Session() as session:
        session.get(base + "/tap/availability").raise_for_status()
        get = median_ms(lambda: session.get(base + "/tap/availability").content, 200)
        post = median_ms(lambda: session.post(base + "/tap/availability").content, 200)
    conn = http.client.HTTPConnection(host)

    def raw():
        nonlocal conn
        conn.request("GET", "/tap/availability")
        response = conn.getresponse()
        response.read()
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection(host)
    raw()
    plain = median_ms(raw, 200)
    conn.close()
    print(f"trivial request (GET /tap/availability, keep-alive): requests.Session "
          f"{get:.2f} ms (POST {post:.2f} ms); http.client {plain:.2f} ms; the requests "
          f"library alone costs about {get - plain:.2f} ms per request")


def answer_floors(base: str, config: dict) -> None:
    db = sqlite3.connect(f"file:{sa_path(config)}?mode=ro", uri=True)
    ra, dec = db.execute("SELECT ra, dec FROM aperiodic LIMIT 1 OFFSET 5000").fetchone()
    db.close()
    with requests.Session() as session:
        for verb in ("1", "2", "3"):
            body = session.get(base + "/scs/aperiodic", params={
                "RA": ra, "DEC": dec, "SR": 1 / 60, "VERB": verb}).content
            table = parse_single_table(io.BytesIO(body), verify="ignore")
            print(f"astropy parse of a 1' cone answer, VERB={verb}: {parse_ms(body):.2f} ms "
                  f"({len(table.fields)} FIELDs, {len(table.array)} rows)")
        query = ("SELECT extras_id, ra, dec FROM extras.aperiodic WHERE 1 = CONTAINS("
                 f"POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra!r}, {dec!r}, 0.25))")
        body = session.post(base + "/tap/sync", data={"LANG": "ADQL", "QUERY": query}).content
        rows = len(parse_single_table(io.BytesIO(body), verify="ignore").array)
        print(f"astropy parse of a 15' CONTAINS answer: {parse_ms(body):.2f} ms "
              f"(3 FIELDs, {rows} rows)")


def per_row_floor(n: int = 100_000) -> None:
    """astropy's parse cost per row of a 4-column result (the cross-match shape)."""
    table = Table({"src": np.arange(n, dtype=np.int32),
                   "extras_id": np.array([f"0100010101_S003_PN_{i:06d}" for i in range(n)]),
                   "ra": np.random.default_rng(1).uniform(0, 360, n),
                   "dec": np.random.default_rng(2).uniform(-90, 90, n)})
    for serialization in ("binary2", "tabledata"):
        doc = VOTableFile.from_table(table)
        doc.version = "1.4"
        out = io.BytesIO()
        doc.to_xml(out, tabledata_format=serialization)
        seconds = parse_ms(out.getvalue(), repeat=1) / 1000
        print(f"astropy parse, 4 columns, {serialization}: {seconds / n * 1e6:.1f} us per "
              f"row ({n / seconds:,.0f} rows/s)")


def sqlite_floor(config: dict, rows: int = 200_000) -> None:
    """Reading the rows out of SQLite into Arrow arrays, in C (the ADBC driver the
    columnar path uses), with nothing else done: no encoding, no HTTP."""
    import adbc_driver_sqlite.dbapi as adbc
    conn = adbc.connect(f"file:{sa_path(config)}?mode=ro", autocommit=True)
    ncols = 0

    def read():
        nonlocal ncols
        cur = conn.cursor()
        cur.execute(f"SELECT * FROM aperiodic LIMIT {rows}")
        ncols = cur.fetch_arrow_table().num_columns
        cur.close()
    read()                                           # pages into the cache
    seconds = median_ms(read, 3) / 1000
    conn.close()
    print(f"SQLite: reading {rows:,} rows x {ncols} columns into Arrow (ADBC, in C), "
          f"nothing else: {seconds:.2f} s = at most {rows / seconds:,.0f} rows/s per core")


def sa_path(config: dict) -> str:
    from sqlalchemy.engine import make_url
    return make_url(config["DATABASE_URL"]).database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args()
    config = load_config({"DATA_DIR": args.data_dir})
    if not config["DATABASE_URL"].startswith("sqlite"):
        raise SystemExit("floors.py measures the SQLite benchmark archive")
    warnings.simplefilter("ignore")
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"load average {load} on {os.cpu_count()} cores")
    proc, base = start_gunicorn(config)
    try:
        http_floors(base)
        answer_floors(base, config)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    per_row_floor()
    sqlite_floor(config)


if __name__ == "__main__":
    main()

"""DataLink {links} benchmark: /datalink/links on a 1,000,000-row archive with
>= 100,000 product rows.

Usage::

    cp -r /tmp/bench1m /tmp/bench1m-dl          # extras-archive demo --rows 1000000 --no-products
    python benchmarks/datalink.py --data-dir /tmp/bench1m-dl --prepare
    python benchmarks/datalink.py --data-dir /tmp/bench1m-dl

``--prepare`` inserts product rows straight into the products table (no FITS files
are computed): for ``--detections`` aperiodic rows drawn at random (seed 1), the
seventeen products a demo detection has (bblc, five uniform light curves, background,
hardness ratio, power spectrum, quick-look image and seven PNG previews), each with a
plausible size; an empty file of that size is created at each path (sparse), so that
the service's check that a product file exists succeeds as it would on a real
archive. It does nothing if the products table already has rows.

Measured (wall-clock medians):

* in process (``app.test_client()``, the server's own time, no HTTP): one detection
  ID (GET), 1,000 detection IDs in one POST;
* over HTTP with gunicorn (2 workers) on a free loopback port, a ``requests.Session``:
  the same two cases.

Goals (issue 12): one ID < 10 ms median; 1,000 IDs < 1 s.
"""
from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archive.config import load_config  # noqa: E402
from archive.db import Database, catalogue_tables, create_engine, products  # noqa: E402
from datamodel.products import PRODUCT_TYPES, preview_name  # noqa: E402

GOALS = {"one": 10.0, "thousand": 1000.0}
#: (product type, size in bytes) of a detection's products, as in the demo archive.
KINDS = [("bblc", 11520), ("ublc_500s", 11520), ("ublc_opt", 14400),
         ("ublc_500s_b1", 11520), ("ublc_500s_b2", 11520), ("ublc_500s_b3", 11520),
         ("bglc_500s", 11520), ("hrlc_500s", 8640), ("pds", 17280), ("qlimg", 24000)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(config: dict, detections: int) -> int:
    """Insert the product rows (and sparse files); returns the number of rows."""
    db = Database(config["DATABASE_URL"])      # brings an older archive's tables up to date
    engine = db.engine
    products_dir = Path(config["PRODUCTS_DIR"])
    ap = catalogue_tables["aperiodic"]
    try:
        with engine.connect() as conn:
            if conn.execute(sa.select(sa.func.count()).select_from(products)).scalar_one():
                return conn.execute(sa.select(sa.func.count())
                                    .select_from(products)).scalar_one()
            total = conn.execute(sa.select(sa.func.count()).select_from(ap)).scalar_one()
        picks = sorted(random.Random(1).sample(range(total), detections))
        with engine.connect() as conn:
            ids = conn.execute(sa.select(ap.c.extras_id, ap.c.obs_id, ap.c.exp_id, ap.c.camera,
                                         ap.c.src_num).order_by(ap.c.extras_id)).all()
        rows = []
        for i in picks:
            d = ids[i]
            for key, size in KINDS:
                ptype = PRODUCT_TYPES[key]
                name = ptype.filename(d.obs_id, d.camera, d.exp_id, d.src_num)
                path = f"{d.obs_id}/{name}"
                rows.append(_product(d, path, key, ptype.category, ptype.mime, size,
                                     ptype.band, ptype.binning))
                if ptype.previewable:
                    rows.append(_product(d, f"{d.obs_id}/{preview_name(name)}", "preview",
                                         "preview", "image/png", 9500, None, None,
                                         preview_of=path))
        for row in rows:
            target = products_dir / row["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as out:
                out.truncate(row["size"])
        with engine.begin() as conn:
            for start in range(0, len(rows), 20000):
                conn.execute(products.insert(), rows[start:start + 20000])
        return len(rows)
    finally:
        db.dispose()


def _product(d, path, key, category, mime, size, band, binning, preview_of=None) -> dict:
    return {"path": path, "product_type": key, "category": category, "mime": mime,
            "size": size, "mtime_ns": 0, "checksum": "sha256:" + "0" * 64,
            "obs_id": d.obs_id, "exp_id": d.exp_id, "camera": d.camera,
            "src_num": d.src_num, "extras_id": d.extras_id, "preview_of": preview_of,
            "band": band, "binning": binning, "t_min": None, "t_max": None}


def _ids(config: dict) -> list[str]:
    engine = create_engine(config["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(products.c.extras_id).distinct()
                                     .order_by(products.c.extras_id)).scalars())
    finally:
        engine.dispose()


def _median_ms(fn, n: int, clock=time.perf_counter) -> float:
    times = []
    for _ in range(n):
        started = clock()
        fn()
        times.append(1000 * (clock() - started))
    return statistics.median(times)


def measure(config: dict, ids: list[str], rounds: int) -> dict:
    from archive import create_app
    rng = random.Random(2)
    app = create_app({**config, "TESTING": True})
    client = app.test_client()
    thousand = rng.sample(ids, 1000)
    stats = {}

    def one_in_process():
        r = client.get("/datalink/links", query_string={"ID": rng.choice(ids)})
        assert r.status_code == 200 and b"#this" in r.data

    def many_in_process():
        r = client.post("/datalink/links", data={"ID": thousand})
        assert r.status_code == 200 and r.data.count(b"<TR>") > 15000
        stats["rows"] = r.data.count(b"<TR>")
        stats["bytes"] = len(r.data)

    for _ in range(20):
        one_in_process()                         # warm the caches
    # wall clock, and this process's CPU time (a figure the machine's load hardly moves)
    results = {"in-process, 1 ID": _median_ms(one_in_process, rounds),
               "in-process, 1 ID (CPU)": _median_ms(one_in_process, rounds, time.process_time),
               "in-process, 1,000 IDs": _median_ms(many_in_process, 7),
               "in-process, 1,000 IDs (CPU)": _median_ms(many_in_process, 7,
                                                         time.process_time)}
    port = _free_port()
    env = dict(os.environ, EXTRAS_ARCHIVE_DATA_DIR=config["DATA_DIR"],
               EXTRAS_ARCHIVE_DATABASE_URL=config["DATABASE_URL"])
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--workers", "2", "--bind",
                             f"127.0.0.1:{port}", "--timeout", "120", "wsgi:app"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/datalink/links"
    try:
        session = requests.Session()
        deadline = time.monotonic() + 60
        while True:
            try:
                session.get(base, timeout=2)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

        def one_http():
            r = session.get(base, params={"ID": rng.choice(ids)})
            assert r.status_code == 200 and b"#this" in r.content

        def many_http():
            r = session.post(base, data={"ID": thousand})
            assert r.status_code == 200 and r.content.count(b"<TR>") > 15000

        for _ in range(20):
            one_http()
        results["HTTP (gunicorn), 1 ID"] = _median_ms(one_http, rounds)
        results["HTTP (gunicorn), 1,000 IDs"] = _median_ms(many_http, 7)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    results.update(stats)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--prepare", action="store_true")
    parser.add_argument("--detections", type=int, default=8000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    config = load_config({"DATA_DIR": str(args.data_dir)}, environ={})
    if args.prepare:
        started = time.perf_counter()
        n = prepare(config, args.detections)
        print(f"products table: {n} rows ({time.perf_counter() - started:.1f} s)")
    ids = _ids(config)
    print(f"archive: {config['DATABASE_URL']}; detections with products: {len(ids)}; "
          f"load average before: {os.getloadavg()}")
    results = measure(config, ids, args.rounds)
    for name, value in results.items():
        if isinstance(value, float):
            goal = GOALS["one"] if "1 ID" in name else GOALS["thousand"]
            print(f"{name:32s} median {value:8.2f} ms   (goal < {goal:.0f} ms: "
                  f"{'met' if value < goal else 'NOT met'})")
    print(f"1,000 IDs: {results['rows']} links rows, {results['bytes']} bytes")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

"""Benchmark: JSON of a 10,000-point light curve (GET /lightcurves/data/<path>).

Builds a small demo archive (SQLite) in --workdir, replaces one pn 500 s light curve
by a 10,000-bin file of the same layout (astropy, the header of the original), re-runs
the product ingest to register it, then measures the median server time:

* in process (Flask test client), with the parts: database look-up, FITS read
  (astropy memmap), JSON encoding (orjson, whole numpy arrays);
* over HTTP from gunicorn on 127.0.0.1 (2 workers): a full answer and a 304 (ETag).

    python benchmarks/lightcurves.py [--workdir /tmp/blc] [--points 10000] [--repeat 50]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archive import create_app  # noqa: E402
from archive.config import load_config  # noqa: E402
from archive.db import Database, get_db  # noqa: E402
from archive.lightcurves import encode, lookup  # noqa: E402
from archive.lightcurves.read import read_product  # noqa: E402


def build(workdir: Path, points: int) -> tuple[dict, str]:
    """A demo archive with one registered light curve of ``points`` bins; its path."""
    from astropy.io import fits
    import sqlalchemy as sa
    from archive.db import products
    from ingest.demo import build_demo
    from ingest.products import ingest_products
    config = load_config({"DATA_DIR": str(workdir)}, environ={})
    build_demo(config, rows=300, seed=3, workers=1, previews=False)
    db = Database(config["DATABASE_URL"])
    with db.engine.connect() as conn:
        path = conn.execute(sa.select(products.c.path).where(
            products.c.product_type == "ublc_500s", products.c.camera == "PN")
            .order_by(products.c.path).limit(1)).scalar_one()
    target = Path(config["PRODUCTS_DIR"]) / path
    with fits.open(target) as hdul:
        header = hdul["RATE"].header.copy()
    rng = np.random.default_rng(1)
    timedel = 10.0
    tstart = float(header["TSTART"])
    time_ = tstart + (np.arange(points) + 0.5) * timedel
    counts = rng.poisson(5.0, points)
    frac = np.clip(rng.normal(0.97, 0.03, points), 0.85, 1.0)
    cols = [fits.Column("TIME", "D", "s", array=time_),
            fits.Column("RATE", "E", "count/s", array=counts / (timedel * frac)),
            fits.Column("ERROR", "E", "count/s",
                        array=np.sqrt(np.maximum(counts, 1)) / (timedel * frac)),
            fits.Column("FRACEXP", "E", array=frac)]
    hdu = fits.BinTableHDU.from_columns(cols)
    for key in header:
        if key not in hdu.header and not key.startswith(("TTYPE", "TFORM", "TUNIT", "NAXIS",
                                                          "TFIELDS", "PCOUNT", "GCOUNT")):
            hdu.header[key] = header[key]
    hdu.header["TSTOP"] = tstart + points * timedel
    hdu.header["TIMEDEL"] = timedel
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(target, overwrite=True)
    ingest_products(db.engine, config, Path(config["PRODUCTS_DIR"]), previews=False,
                    workers=1)
    db.dispose()
    return config, path


def median_ms(func, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def in_process(config: dict, path: str, repeat: int) -> None:
    app = create_app(config)
    client = app.test_client()
    url = f"/lightcurves/data/{path}"
    assert client.get(url).status_code == 200
    body = client.get(url)
    print(f"JSON of {body.get_json()['length']} points, {len(body.data) / 1024:.0f} KiB: {path}")
    print(f"in process, full request:      {median_ms(lambda: client.get(url).data, repeat):7.2f} ms")
    with app.app_context():
        engine = get_db().readonly
        product = lookup.find_product(engine, path)
        file = str(Path(config["PRODUCTS_DIR"]) / path)
        series = read_product(file, product.product_type)
        doc = encode.series_document(product, series, {})
        print(f"  database look-up:            {median_ms(lambda: lookup.find_product(engine, path), repeat):7.2f} ms")
        print(f"  FITS read (memmap, columns): {median_ms(lambda: read_product(file, product.product_type), repeat):7.2f} ms")
        print(f"  JSON encoding (orjson):      {median_ms(lambda: encode.dumps(doc), repeat):7.2f} ms")
    tag = client.get(url).headers["ETag"]
    print(f"in process, 304 (If-None-Match): "
          f"{median_ms(lambda: client.get(url, headers={'If-None-Match': tag}), repeat):5.2f} ms")
    get_db(app).dispose()


def over_http(config: dict, path: str, repeat: int) -> None:
    import requests
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import start_gunicorn
    proc, base = start_gunicorn(config, workers=2)
    try:
        url = f"{base}/lightcurves/data/{path}"
        session = requests.Session()
        for _ in range(5):
            session.get(url).content
        print(f"HTTP (gunicorn, keep-alive), full answer: "
              f"{median_ms(lambda: session.get(url).content, repeat):7.2f} ms")
        tag = session.get(url).headers["ETag"]
        print(f"HTTP, 304 (If-None-Match):                "
              f"{median_ms(lambda: session.get(url, headers={'If-None-Match': tag}), repeat):7.2f} ms")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/bench-lightcurves")
    parser.add_argument("--points", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    os.environ.setdefault("MPLBACKEND", "Agg")
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    config, path = build(Path(args.workdir), args.points)
    in_process(config, path, args.repeat)
    over_http(config, path, args.repeat)


if __name__ == "__main__":
    main()

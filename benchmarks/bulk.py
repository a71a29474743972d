"""Bulk download benchmark: a zip of 10,000 product files from gunicorn, as curl sees it.

Usage::

    python benchmarks/bulk.py --data-dir /tmp/bench-bulk [--files 10000] [--runs 3]

The first run builds the archive in DIR: a demo catalogue (``ingest.demo.build_demo``
without products) and the real FITS light curves, power spectra and quick-look images
of the first detections (``ingest.lightcurves.write_products``, the demo's writer),
registered with the real ``extras-archive ingest products --no-previews`` command,
until at least ``--files`` products exist. Later runs reuse it.

Then it starts ``gunicorn wsgi:app`` with one worker (tests/conftest.py
``start_gunicorn``) and measures:

* a bulk zip of ``--files`` products (POSTed as that many ``path`` values), fetched
  by curl to a file: MB/s and time to the first byte, once to warm the page cache,
  then ``--runs`` times; the same for whole observations (``obs_id``) holding as many
  files, and for ``--large`` files of ``--large-mb`` MB (1 GB in all: far more bytes
  than the worker's memory); the worker's resident memory (VmRSS from /proc) before,
  when the first byte came, at its highest while the archive streamed (sampled every
  20 ms) and after; the zip is checked (entries, CRCs) after the clock stops;
* the same archive written in process (``archive.products.bulk.stream_archive``, no
  HTTP): the server's own rate;
* median and 95th percentile latency of 300 single-product GETs (a
  ``requests.Session``, products drawn at random).

Goal (issue 12): >= 100 MB/s from the page cache, flat worker memory.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from urllib.parse import urlencode

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from archive.config import load_config  # noqa: E402
from archive.db import Database, catalogue_tables, products  # noqa: E402
from conftest import start_gunicorn  # noqa: E402

GOAL_MBPS = 100.0
ROWS = 6000          # aperiodic rows of the catalogue (enough detections for the files)


def _count(config) -> int:
    db = Database(config["DATABASE_URL"])
    try:
        with db.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(products)).scalar_one()
    finally:
        db.dispose()


def build(config: dict, files: int) -> None:
    """The catalogue and at least ``files`` registered products (reused when present)."""
    from ingest.demo import _write_product_files, build_demo
    from ingest.synthetic import generate
    db = Database(config["DATABASE_URL"])
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(sa.select(sa.func.count()).select_from(
                catalogue_tables["aperiodic"])).scalar_one()
    finally:
        db.dispose()
    if rows != ROWS:
        t0 = time.perf_counter()
        build_demo(config, rows=ROWS, seed=7, products=False)
        print(f"catalogue built: {ROWS} aperiodic rows in {time.perf_counter() - t0:.0f} s")
    have = _count(config)
    if have >= files:
        print(f"reusing {have} registered products in {config['PRODUCTS_DIR']}")
        return
    import numpy as np
    synth = generate(ROWS, 7)
    # PN detections get 13 files, MOS ones 3: ~7 a detection on average
    indices = np.arange(min(ROWS, files // 5 + 50))
    t0 = time.perf_counter()
    written = _write_product_files(synth, indices, Path(config["PRODUCTS_DIR"]), 7,
                                   os.cpu_count() or 2)
    print(f"{written} product files written in {time.perf_counter() - t0:.0f} s")
    _ingest(config)
    if _count(config) < files:
        raise SystemExit(f"only {_count(config)} products; raise ROWS in {__file__}")


def _ingest(config: dict) -> None:
    t0 = time.perf_counter()
    env = dict(os.environ, EXTRAS_ARCHIVE_DATA_DIR=config["DATA_DIR"])
    subprocess.run([sys.executable, "-c", "from archive.cli import main; main()", "ingest",
                    "products", config["PRODUCTS_DIR"], "--no-previews"],
                   cwd=ROOT, env=env, check=True)
    print(f"registered by `extras-archive ingest products` in {time.perf_counter() - t0:.0f} s")


def large_paths(config: dict, count: int, megabytes: int) -> list[str]:
    """``count`` optimal-bin light curves of ``megabytes`` MB each (far longer than real
    ones, to stream bytes far beyond the worker's memory), for detections without
    products; written and registered once."""
    import numpy as np
    from astropy.io import fits
    from datamodel import PRODUCT_TYPES
    ptype = PRODUCT_TYPES["ublc_opt"]
    db = Database(config["DATABASE_URL"])
    try:
        with db.engine.connect() as conn:
            have = list(conn.execute(sa.select(products.c.path).where(
                products.c.size > megabytes * 900_000).order_by(products.c.path)).scalars())
            if len(have) >= count:
                return have[:count]
            ap = catalogue_tables["aperiodic"]
            rows = conn.execute(sa.select(ap.c.obs_id, ap.c.camera, ap.c.exp_id, ap.c.src_num)
                                .where(ap.c.extras_id.not_in(sa.select(products.c.extras_id)))
                                .order_by(ap.c.extras_id).limit(count)).all()
    finally:
        db.dispose()
    n = megabytes * 1_000_000 // 16
    rng = np.random.default_rng(3)
    for obs_id, camera, exp_id, src_num in rows:
        directory = Path(config["PRODUCTS_DIR"]) / obs_id
        directory.mkdir(parents=True, exist_ok=True)
        cols = [fits.Column("TIME", "D", "s", array=np.arange(n) * 0.1),
                fits.Column("RATE", "E", "count/s", array=rng.poisson(5, n).astype("f4")),
                fits.Column("ERROR", "E", "count/s", array=np.full(n, 2.2, "f4")),
                fits.Column("FRACEXP", "E", array=np.ones(n, "f4"))]
        hdu = fits.BinTableHDU.from_columns(cols, name="RATE")
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(
            directory / ptype.filename(obs_id, camera, exp_id, int(src_num)), overwrite=True)
    print(f"{len(rows)} light curves of {megabytes} MB written")
    _ingest(config)
    return large_paths(config, count, megabytes)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    if len(children) != 1:
        raise RuntimeError(f"gunicorn master {master} has workers {children}, expected one")
    return int(children[0])


class _Sampler(threading.Thread):
    """VmRSS of a process every 20 ms while running: [(seconds, KiB)]."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()
        self.t0 = time.perf_counter()

    def run(self):
        while not self.stop.is_set():
            self.samples.append((time.perf_counter() - self.t0, _rss_kib(self.pid)))
            time.sleep(0.02)


def download(base: str, target: Path, worker: int, data: dict) -> dict:
    """Stream a bulk download to ``target`` with curl (POST, form-encoded ``data``); bytes,
    seconds, first byte, and the worker's RSS before, when the first byte came (the
    selection is made), at its highest while the archive streamed, and after."""
    body = target.with_suffix(".form")
    body.write_text(urlencode(data, doseq=True))
    before = _rss_kib(worker)
    cpu = _cpu_seconds(worker)
    sampler = _Sampler(worker)
    sampler.start()
    t0 = time.perf_counter()
    curl = subprocess.Popen(
        ["curl", "-sSf", "--data-binary", f"@{body}", "-H", "Expect:",
         "-H", "Content-Type: application/x-www-form-urlencoded", base + "/products/bulk"],
        stdout=subprocess.PIPE)
    first, size = None, 0
    with open(target, "wb") as out:
        while block := os.read(curl.stdout.fileno(), 1 << 20):
            if first is None:
                first = time.perf_counter() - sampler.t0
            out.write(block)
            size += len(block)
    if curl.wait(timeout=600) != 0:
        raise RuntimeError(f"curl failed ({curl.returncode})")
    seconds = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    at_first = [k for t, k in sampler.samples if t <= first] or [before]
    streaming = [k for t, k in sampler.samples if t > first] or at_first[-1:]
    return {"bytes": size, "seconds": seconds, "first_byte": first,
            "cpu": _cpu_seconds(worker) - cpu, "rss_before": before,
            "rss_first": at_first[-1], "rss_peak": max(streaming), "rss_after": _rss_kib(worker)}


def _report(label: str, result: dict, files: int) -> None:
    mib = 1024
    print(f"{label}: {result['bytes'] / 1e6:.1f} MB, {files} files, {result['seconds']:.2f} s "
          f"= {result['bytes'] / 1e6 / result['seconds']:.0f} MB/s; first byte "
          f"{1000 * result['first_byte']:.0f} ms; worker CPU {result['cpu']:.2f} s "
          f"({result['bytes'] / 1e6 / max(result['cpu'], 0.01):.0f} MB per CPU second); "
          f"worker RSS before {result['rss_before'] / mib:.1f}"
          f", at first byte {result['rss_first'] / mib:.1f}, highest while streaming "
          f"{result['rss_peak'] / mib:.1f} (+{(result['rss_peak'] - result['rss_first']) / mib:.1f})"
          f", after {result['rss_after'] / mib:.1f} MiB")


def in_process(config: dict, paths: list[str]) -> float:
    """MB/s of writing the same zip without HTTP (the server's own work)."""
    from archive.products.bulk import stream_archive
    from archive.products.selection import Selection, select_products
    db = Database(config["DATABASE_URL"])
    try:
        chosen = select_products(db.readonly, Selection(paths=tuple(paths)), 10 ** 9, 10 ** 15)
    finally:
        db.dispose()
    t0 = time.perf_counter()
    size = sum(len(piece) for piece in stream_archive(chosen, config["PRODUCTS_DIR"], "b"))
    return size / 1e6 / (time.perf_counter() - t0)


def single_gets(base: str, paths: list[str], n: int = 300) -> tuple[float, float]:
    rng = random.Random(1)
    times = []
    with requests.Session() as s:
        for path in rng.sample(paths, min(n, len(paths))):
            t0 = time.perf_counter()
            r = s.get(f"{base}/products/{path}", timeout=60)
            r.content
            times.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, r.text
    times.sort()
    return statistics.median(times), times[int(0.95 * len(times)) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--large", type=int, default=20, metavar="N",
                    help="also stream N large files (default 20) of --large-mb MB each")
    ap.add_argument("--large-mb", type=int, default=50)
    args = ap.parse_args()
    config = load_config({"DATA_DIR": args.data_dir}, environ={})
    build(config, args.files)
    large = large_paths(config, args.large, args.large_mb) if args.large else []
    db = Database(config["DATABASE_URL"])
    with db.engine.connect() as conn:
        paths = list(conn.execute(sa.select(products.c.path).order_by(products.c.path)
                                  .limit(args.files)).scalars())
        per_obs = conn.execute(sa.select(products.c.obs_id, sa.func.count())
                               .group_by(products.c.obs_id).order_by(products.c.obs_id)).all()
    db.dispose()
    obs_ids, n_obs_files = [], 0
    for obs_id, n in per_obs:
        if n_obs_files >= args.files:
            break
        obs_ids.append(obs_id)
        n_obs_files += n
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    proc, base = start_gunicorn(config, workers=1)
    try:
        worker = _worker_pid(proc.pid)
        target = Path(args.data_dir) / "bulk-download.zip"
        posted = {"data": {"path": paths}}
        warm = download(base, target, worker, **posted)
        _report("warm-up", warm, len(paths))
        runs = []
        for i in range(args.runs):
            runs.append(download(base, target, worker, **posted))
            _report(f"run {i + 1}", runs[-1], len(paths))
        with zipfile.ZipFile(target) as zf:
            names = zf.namelist()
            bad = zf.testzip()
        assert bad is None and len(names) == len(paths) + 2, (bad, len(names))
        by_obs = download(base, target, worker, {"obs_id": obs_ids})
        _report(f"{len(obs_ids)} whole observations (obs_id=...)", by_obs, n_obs_files)
        checked = [*runs, by_obs]
        if large:
            for i in range(2):              # the first reads the files into the page cache
                big = download(base, target, worker, {"path": large})
                _report(f"{len(large)} large files, {'cold' if i == 0 else 'warm'}", big,
                        len(large))
            checked.append(big)
        rates = [r["bytes"] / 1e6 / r["seconds"] for r in runs]
        streaming = max(r["rss_peak"] - r["rss_first"] for r in checked)
        print(f"bulk zip over HTTP: median {statistics.median(rates):.0f} MB/s (best "
              f"{max(rates):.0f}; goal >= {GOAL_MBPS:.0f}); worker RSS growth while streaming "
              f"at most {streaming / 1024:.1f} MiB (archives of {runs[0]['bytes'] / 2 ** 20:.0f} "
              f"to {max(r['bytes'] for r in checked) / 2 ** 20:.0f} MiB); "
              f"RSS after the warm-up {warm['rss_after'] / 1024:.1f}, after the last run "
              f"{checked[-1]['rss_after'] / 1024:.1f} MiB")
        median, p95 = single_gets(base, paths)
        print(f"single product GET: median {median:.2f} ms, p95 {p95:.2f} ms")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"in process (no HTTP): {in_process(config, paths):.0f} MB/s")
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()

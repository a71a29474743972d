"""The demo archive: synthetic catalogues and products, ingested by the real ingest.

:func:`build_demo` generates the five catalogues (:mod:`ingest.synthetic`), writes
them as files the way a data centre would receive them (FITS for the large tables,
with the original upper-case EXTraS column names and without ``extras_id``;
VOTable for the classification; CSV for the transients), ingests each with
:func:`ingest.catalogue.ingest_catalogue`, writes FITS light-curve products for a
subset of detections (every injected flare and eclipse first; see
:func:`product_rows`) and registers them with :func:`ingest.products.ingest_products`,
which also draws their quick-looks. Same seed, same archive.
"""
from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from astropy.table import Table

import datamodel
from archive.db import Database, catalogue_tables, ivoa_tables, products as products_table
from archive.progress import Progress

from .catalogue import ingest_catalogue
from .lightcurves import write_products
from .previews import default_workers
from .products import ingest_products
from .synthetic import Synthetic, generate

__all__ = ["build_demo", "product_rows", "CATALOGUE_FILES", "MAX_PRODUCT_SOURCES"]

#: How each table is delivered to the ingest (file name, astropy format).
CATALOGUE_FILES = {
    "aperiodic": ("extras_aperiodic.fits", "fits"),
    "periodic": ("extras_periodic.fits", "fits"),
    "longterm": ("extras_longterm.fits", "fits"),
    "longterm_points": ("extras_longterm_points.fits", "fits"),
    "classification": ("extras_classification.vot", "votable"),
    "transients": ("extras_transients.csv", "csv"),
}
#: Cap on the (source, observation) pairs that get products, whatever the size.
MAX_PRODUCT_SOURCES = 500


def _file_table(table: datamodel.Table, columns: dict) -> Table:
    """An astropy Table with the input-file names (EXTraS originals, upper case)."""
    out = Table()
    for col in table.columns:
        if col.name not in columns:
            continue                       # e.g. extras_id: built by ingest from the keys
        name = col.source_names[0] if col.source_names else col.name.upper()
        out[name] = columns[col.name]
        if col.unit:
            out[name].unit = col.unit
        out[name].description = col.description
    return out


def _write_catalogues(synth: Synthetic, directory: Path,
                      progress: Progress | None = None) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    import warnings
    for name, (filename, fmt) in CATALOGUE_FILES.items():
        table = _file_table(datamodel.TABLES[name], getattr(synth, name))
        path = directory / filename
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")         # unit strings astropy does not know
            if fmt == "votable":
                table.write(path, format="votable", overwrite=True,
                            tabledata_format="binary2")
            elif fmt == "csv":
                table.write(path, format="ascii.csv", overwrite=True)
            else:
                table.write(path, format="fits", overwrite=True)
        paths[name] = path
        Progress.of(progress).advance()
    return paths


def product_rows(synth: Synthetic, rows: int) -> np.ndarray:
    """Aperiodic row indices that get products: every camera of chosen (source, obs)
    pairs, the pairs with injected events first, then others, deterministic."""
    ev = synth.events
    pairs = ev["pair"]
    n_pairs = min(len(np.unique(pairs)), 10 + rows // 2000, MAX_PRODUCT_SOURCES)
    event_pairs = np.unique(pairs[(ev["kind"] == 1) | (ev["kind"] == 2)])   # injected
    other_pairs = np.setdiff1d(np.unique(pairs), event_pairs)
    rng = np.random.default_rng(len(pairs))
    n_ev = min(len(event_pairs), max(1, n_pairs * 2 // 3))
    chosen = np.concatenate([
        rng.choice(event_pairs, n_ev, replace=False) if n_ev else np.array([], dtype=int),
        rng.choice(other_pairs, min(len(other_pairs), n_pairs - n_ev), replace=False)])
    return np.flatnonzero(np.isin(pairs, chosen))


def _product_job(args):
    directory, items, seed = args
    written = 0
    for row, event, tstart, tstop, index in items:
        out = Path(directory) / row["obs_id"]
        out.mkdir(parents=True, exist_ok=True)
        written += len(write_products(out, row, event, tstart, tstop, seed=[seed, index]))
    return written


def _write_product_files(synth: Synthetic, indices: np.ndarray, directory: Path, seed: int,
                         workers: int) -> int:
    ap, ev, obs = synth.aperiodic, synth.events, synth.observations
    items = []
    for i in indices.tolist():
        row = {k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in ap.items()}
        event = {k: v[i] for k, v in ev.items()}
        o = int(ev["obs"][i])
        items.append((row, event, float(obs["tstart"][o]), float(obs["tstop"][o]), i))
    if workers <= 1 or len(items) < 16:
        return _product_job((str(directory), items, seed))
    chunks = [(str(directory), items[k::workers * 2], seed) for k in range(workers * 2)]
    import multiprocessing
    ctx = multiprocessing.get_context("fork" if "fork" in
                                      multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        return sum(pool.map(_product_job, chunks))


def _clear(db: Database, products_dir: Path) -> None:
    """Empty the catalogue and product tables and remove recognised product files."""
    with db.engine.begin() as conn:
        conn.execute(ivoa_tables["obscore"].delete())
        conn.execute(products_table.delete())
        for t in reversed(list(catalogue_tables.values())):
            conn.execute(t.delete())
    if products_dir.is_dir():
        for path in sorted(products_dir.rglob("*")):
            if path.is_file() and datamodel.match_product(path.name):
                path.unlink()


def build_demo(config: dict, rows: int = 20000, seed: int = 42, workers: int | None = None,
               products: bool = True, previews: bool = True, replace: bool = True,
               progress=None) -> dict:
    """Build the demo archive into ``config``'s DATA_DIR/DATABASE_URL/PRODUCTS_DIR.

    Any catalogue rows, product rows and recognised product files already there are
    removed first (``replace=True``). Returns a summary: rows per table, product
    files, quick-looks, injected events, seconds. ``progress``
    (:mod:`archive.progress`) gets every step, with the ingest's own.
    """
    if rows < 100:
        raise ValueError("the demo needs at least 100 aperiodic rows")
    started = time.perf_counter()
    workers = workers or default_workers()
    data_dir = Path(config["DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)
    products_dir = Path(config["PRODUCTS_DIR"])
    progress = Progress.of(progress)
    with progress.step("opening the database"):
        db = Database.from_config(config)
    try:
        if replace:
            with progress.step("removing the previous catalogue and product rows"):
                _clear(db, products_dir)
        with progress.step(f"generating {rows} synthetic detections (seed {seed})"):
            synth = generate(rows, seed)
        with progress.step("writing the catalogue files", len(CATALOGUE_FILES), "files"):
            files = _write_catalogues(synth, data_dir / "demo-catalogues", progress)
        counts = {}
        for name, path in files.items():
            counts[name] = ingest_catalogue(db.engine, path, name, progress=progress).rows
        summary = {"rows": counts, "seed": seed,
                   "flares": int(np.unique(synth.events["pair"][synth.events["kind"] == 1]).size),
                   "eclipses": int(np.unique(synth.events["pair"][synth.events["kind"] == 2]).size),
                   "product_files": 0, "previews": 0, "catalogue_files": {
                       k: str(v) for k, v in files.items()}}
        if products:
            products_dir.mkdir(parents=True, exist_ok=True)
            indices = product_rows(synth, rows)
            with progress.step("writing the product files", unit="files") as step:
                step.advance(_write_product_files(synth, indices, products_dir, seed,
                                                  workers))
            report = ingest_products(db.engine, config, products_dir, previews=previews,
                                     workers=workers, progress=progress)
            with db.engine.connect() as conn:
                summary["product_files"] = conn.execute(
                    sa.select(sa.func.count()).select_from(products_table)).scalar_one()
            summary["previews"] = report.previews
            summary["product_detections"] = int(len(indices))
        summary["seconds"] = round(time.perf_counter() - started, 2)
        return summary
    finally:
        db.dispose()

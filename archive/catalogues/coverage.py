"""The sky coverage of a catalogue as a MOC (IVOA Multi-Order Coverage map, mocpy).

Every positional table stores ``_hpx``, the HEALPix NESTED index of its position at
order 29. A cell of order ``k`` contains the order-29 cell ``i`` exactly when its index
is ``i >> 2*(29 - k)``, so the cells of the coverage at order ``MOC_ORDER`` are one
``SELECT DISTINCT _hpx >> 38`` on the indexed column, run through the one executor
(read-only, time limit); no position is read into Python.

``MOC_ORDER`` is 10 (cells of 3.4 arcmin): fine enough to show the XMM-Newton
fields (30 arcmin across) and their gaps, coarse enough that a 1,000,000-row
catalogue has a MOC of a few hundred kilobytes.

The MOC is built on demand and cached as files in ``DATA_DIR/moc``:
``<name>-o<order>-<fingerprint>.fits`` (MOC 2.0 FITS), ``.json`` (the MOC JSON
serialisation) and ``.png`` (a small all-sky picture). The fingerprint is a digest of
the catalogue's HEALPix index: row count, smallest and largest ``_hpx`` and the sum of
``_hpx`` modulo a prime, computed by one aggregate query on each request. A
catalogue ingested again with rows added, removed or moved has another fingerprint,
so its MOC is built again and the old files are removed; changes that move no
position leave the coverage, and so the cached files, as they are. Files are written
under a temporary name and renamed, so gunicorn workers share the cache safely.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlalchemy as sa

import datamodel
from ..db import catalogue_tables
from ..query import execute
from ..result import ResultColumn

__all__ = ["MOC_ORDER", "HPX_ORDER", "PICTURE_ORDER", "Coverage", "coverage", "fingerprint",
           "moc_cells", "build_moc", "draw_moc"]

#: order of the spatial index column ``_hpx`` (archive.db)
HPX_ORDER = 29
#: order of the catalogue MOCs
MOC_ORDER = 10
#: order at which the all-sky picture marks covered cells (0.9 deg: visible at 600 px)
PICTURE_ORDER = 6
#: the prime of the fingerprint's checksum (sums of 10^6 rows stay far below 2^63)
_PRIME = 999983


@dataclass(frozen=True)
class Coverage:
    """The cached MOC files of one catalogue."""

    name: str
    order: int
    fingerprint: str
    fits: Path
    json: Path
    png: Path


def _run(engine, stmt, names, timeout: float) -> list[tuple]:
    result = execute(engine, stmt, [ResultColumn(n, "long") for n in names], maxrec=None,
                     timeout=timeout)
    return [row for chunk in result.chunks() for row in chunk]


def fingerprint(engine, table: datamodel.Table, *, timeout: float) -> str:
    """A digest of the catalogue's positions (its HEALPix index column)."""
    hpx = catalogue_tables[table.name].c._hpx
    stmt = sa.select(sa.func.count(hpx), sa.func.min(hpx), sa.func.max(hpx),
                     sa.func.sum(hpx % _PRIME))
    (row,) = _run(engine, stmt, ("n", "lo", "hi", "sum"), timeout)
    text = ":".join(str(int(v)) if v is not None else "-" for v in row)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def moc_cells(engine, table: datamodel.Table, order: int = MOC_ORDER, *,
              timeout: float) -> np.ndarray:
    """The distinct HEALPix NESTED cells of order ``order`` holding a row, sorted."""
    hpx = catalogue_tables[table.name].c._hpx
    shift = 2 * (HPX_ORDER - order)
    # PostgreSQL has bigint >> integer (not >> bigint): the shift is cast to integer
    stmt = sa.select(hpx.bitwise_rshift(sa.cast(sa.literal(shift), sa.Integer))).distinct()
    rows = _run(engine, stmt, ("cell",), timeout)
    return np.unique(np.fromiter((r[0] for r in rows), dtype=np.uint64, count=len(rows)))


def build_moc(cells: np.ndarray, order: int = MOC_ORDER):
    """The mocpy MOC of the cells ``cells`` of order ``order``."""
    from mocpy import MOC
    cells = np.asarray(cells, dtype=np.uint64)
    return MOC.from_healpix_cells(cells, np.full(len(cells), order, dtype=np.uint8),
                                  max_depth=order)


def draw_moc(cells: np.ndarray, order: int = MOC_ORDER, *, title: str = "") -> bytes:
    """A small Mollweide all-sky picture (PNG, equatorial, RA 0 at the centre and
    growing to the left) of the cells, marked at order ``PICTURE_ORDER``."""
    import healpy as hp
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    level = min(order, PICTURE_ORDER)
    nside = 1 << level
    sky = np.zeros(hp.nside2npix(nside))
    sky[np.asarray(cells, dtype=np.int64) >> (2 * (order - level))] = 1.0
    projection = hp.projector.MollweideProj(xsize=600, flipconv="astro")
    image = projection.projmap(sky, lambda x, y, z: hp.vec2pix(nside, x, y, z, nest=True))
    image = np.ma.masked_where(~np.isfinite(image) | (image < 0), image)
    figure = Figure(figsize=(6, 3.3), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.01, 0.01, 0.98, 0.9 if title else 0.98))
    colours = ListedColormap(["#e6e9ef", "#1f4e9c"]).with_extremes(bad="white")
    axes.imshow(image, origin="lower", cmap=colours, vmin=0, vmax=1,
                interpolation="nearest")
    axes.set_axis_off()
    if title:
        axes.set_title(title, fontsize=10)
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, then rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def coverage(engine, table: datamodel.Table, data_dir: str | Path, *,
             timeout: float) -> Coverage | None:
    """The cached MOC files of ``table``, built first if missing or out of date;
    None for a table without positions."""
    if not table.positional:
        return None
    directory = Path(data_dir) / "moc"
    directory.mkdir(parents=True, exist_ok=True)
    digest = fingerprint(engine, table, timeout=timeout)
    stem = f"{table.name}-o{MOC_ORDER}-{digest}"
    found = Coverage(table.name, MOC_ORDER, digest, directory / f"{stem}.fits",
                     directory / f"{stem}.json", directory / f"{stem}.png")
    if found.fits.exists() and found.json.exists() and found.png.exists():
        return found
    cells = moc_cells(engine, table, MOC_ORDER, timeout=timeout)
    moc = build_moc(cells, MOC_ORDER)
    fits = io.BytesIO()
    moc.serialize(format="fits").writeto(fits)
    _write(found.json, _json_text(moc).encode())
    _write(found.png, draw_moc(cells, MOC_ORDER))
    _write(found.fits, fits.getvalue())            # last: its presence means complete
    for old in directory.glob(f"{table.name}-o*-*.*"):
        if not old.name.startswith(stem):
            old.unlink(missing_ok=True)
    return found


def _json_text(moc) -> str:
    """The MOC JSON serialisation (``{"<order>": [cells]}``) as compact text."""
    return json.dumps(moc.serialize(format="json"), separators=(",", ":"))

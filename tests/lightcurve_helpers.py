"""Helpers shared by the light-curve tests: pick products of the demo archive, read
their FITS files independently of the code under test, build a small private archive
whose files the tests may delete or break."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import sqlalchemy as sa
from astropy.io import fits

from archive.db import products


def product_paths(config: dict, **where) -> list[str]:
    """Paths of the products (ordered) whose columns equal ``where``."""
    engine = sa.create_engine(config["DATABASE_URL"])
    try:
        stmt = sa.select(products.c.path).order_by(products.c.path)
        for name, value in where.items():
            stmt = stmt.where(products.c[name] == value)
        with engine.connect() as conn:
            return list(conn.execute(stmt).scalars())
    finally:
        engine.dispose()


def fits_table(config: dict, path: str, extension: str = "RATE"):
    """(columns as float64 arrays, header) of a product, read with astropy directly."""
    with fits.open(Path(config["PRODUCTS_DIR"]) / path, memmap=False) as hdul:
        hdu = hdul[extension]
        cols = {n: np.array(hdu.data[n], dtype=np.float64) for n in hdu.columns.names}
        return cols, dict(hdu.header)


def flare_curve(config: dict) -> str:
    """A 500 s, full-band pn light curve with a clear peak (the largest max/median)."""
    best, path = -1.0, None
    for candidate in product_paths(config, product_type="ublc_500s", camera="PN"):
        rate = fits_table(config, candidate)[0]["RATE"]
        contrast = float(np.nanmax(rate) / max(np.nanmedian(rate), 1e-9))
        if contrast > best:
            best, path = contrast, candidate
    return path

"""Find light-curve products and long-term points: the products table, the files on
disk, the ``longterm``/``longterm_points`` catalogue tables. No Flask.

Every file opened here is named by a row of the products table (never by the URL
alone) and checked by ``archive.products.store.locate``, as every product file is
served.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from ..db import catalogue_tables, products
from ..errors import ArchiveFault, NotFoundFault, UsageFault
from ..products import store
from .read import NotALightCurve, Series, UnreadableProduct, kind_of, read_product

__all__ = ["ProductUnreadable", "Product", "find_product", "product_file",
           "load_series", "detection_products", "longterm_points", "CAMERAS"]

CAMERAS = {"PN": "EPIC-pn", "M1": "EPIC-MOS1", "M2": "EPIC-MOS2"}
#: columns of a products row passed on to the pages and the JSON
ROW_KEYS = ("id", "path", "product_type", "category", "mime", "camera", "band", "binning",
            "obs_id", "exp_id", "src_num", "extras_id", "checksum", "size", "mtime_ns",
            "t_min", "t_max")


class ProductUnreadable(ArchiveFault):
    """The product file is on disk but cannot be read (truncated, corrupt): 422."""

    label, status = "FatalFault", 422


@dataclass(frozen=True)
class Product:
    """One row of the products table (the keys in ROW_KEYS)."""

    row: dict

    def __getattr__(self, name):
        try:
            return self.row[name]
        except KeyError:
            raise AttributeError(name) from None


def find_product(engine, path: str) -> Product:
    """The products row whose ``path`` is ``path``; NotFoundFault if none."""
    stmt = sa.select(*(products.c[k] for k in ROW_KEYS)).where(products.c.path == path)
    with engine.connect() as conn:
        row = conn.execute(stmt).mappings().first()
    if row is None:
        raise NotFoundFault(f"no product {path!r} is registered in this archive")
    return Product(dict(row))


def product_file(products_dir: str, product: Product) -> Path:
    """The file of ``product``, checked as every product file is served
    (``archive.products.store.locate``: never outside PRODUCTS_DIR, 410 if it is gone).
    A file changed since ingest is read anyway: the reader says if it cannot be read
    (a truncated file), which tells the student more than "changed"."""
    row = {name: product.row[name] for name in store.PRODUCT_COLUMNS}
    return Path(store.locate(products_dir, store.Product(**row), unchanged=False).real_path)


def check_lightcurve(product: Product) -> None:
    """UsageFault unless ``product`` is a time series (light curve, hardness ratio,
    power spectrum)."""
    try:
        kind_of(product.product_type)
    except NotALightCurve as exc:
        raise UsageFault(f"{product.path}: {exc}; light-curve pages draw FITS light "
                         "curves only") from None


def load_series(engine, products_dir: str, path: str) -> tuple[Product, Series]:
    """Look ``path`` up, check it is a light curve on disk, read it."""
    product = find_product(engine, path)
    check_lightcurve(product)
    target = product_file(products_dir, product)
    try:
        return product, read_product(str(target), product.product_type)
    except UnreadableProduct as exc:
        raise ProductUnreadable(f"the product file {product.path!r} cannot be read: "
                                f"{exc}") from None


def detection_products(engine, obs_id: str, src_num: int) -> list[Product]:
    """The time-series products of source ``src_num`` in observation ``obs_id``, by
    camera, exposure, type; NotFoundFault if there are none."""
    stmt = (sa.select(*(products.c[k] for k in ROW_KEYS))
            .where(products.c.obs_id == obs_id, products.c.src_num == src_num,
                   products.c.category.in_(("lightcurve", "power-spectrum")))
            .order_by(products.c.camera, products.c.exp_id, products.c.product_type))
    with engine.connect() as conn:
        rows = [Product(dict(r)) for r in conn.execute(stmt).mappings()]
    if not rows:
        raise NotFoundFault(f"no light curves of source {src_num} in observation "
                            f"{obs_id} are in this archive")
    return rows


def longterm_points(engine, srcid: int) -> dict:
    """The long-term light curve of 3XMM source ``srcid``: its ``longterm`` row (name,
    position) and its flux points ordered by time, as columns (numpy arrays);
    NotFoundFault if the source has no long-term light curve."""
    lt, pts = catalogue_tables["longterm"], catalogue_tables["longterm_points"]
    with engine.connect() as conn:
        source = conn.execute(sa.select(lt.c.iauname, lt.c.srcid, lt.c.ra, lt.c.dec,
                                        lt.c.n_obs, lt.c.var_prob, lt.c.var_flag)
                              .where(lt.c.srcid == srcid)).mappings().first()
        rows = conn.execute(sa.select(pts.c.obs_id, pts.c.mjd_start, pts.c.mjd_stop,
                                      pts.c.flux, pts.c.flux_err, pts.c.ul_flag)
                            .where(pts.c.srcid == srcid)
                            .order_by(pts.c.mjd_start, pts.c.obs_id)).all()
    if source is None and not rows:
        raise NotFoundFault(f"source {srcid} has no long-term light curve in this archive")
    cols = list(zip(*rows)) if rows else [()] * 6

    def floats(values):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return {
        "source": {str(k): v for k, v in source.items()} if source is not None
        else {"srcid": srcid},
        "obs_id": list(cols[0]),
        "mjd_start": floats(cols[1]), "mjd_stop": floats(cols[2]),
        "flux": floats(cols[3]), "flux_err": floats(cols[4]),
        "ul_flag": [bool(v) for v in cols[5]],
    }

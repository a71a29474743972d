"""ivoa.obscore rows of the products, kept in step with the products table.

``sync_obscore(conn, config)`` runs inside the transaction of a product ingest, after
the products rows are written. It compares the ObsCore rows with the products that
should have one (:func:`datamodel.obscore.described`: light curves, background and
hardness-ratio curves) and writes only the difference:

* rows of products that are gone, or whose file changed (``changed``), are deleted;
* rows whose ``obs_publisher_did`` or ``access_url`` no longer match the settings
  (``IVOID_AUTHORITY``, ``BASE_URL``) are deleted and written again;
* products without a row get one: the first ingest after an upgrade fills the table
  of an existing archive.

Values come from the products table (keys, type, size, MIME type, time range), the
detection's catalogue row (position and name: aperiodic, else periodic, by
``extras_id``), the product type's band, and the FITS header of the file (TIMEDEL,
the number of rows), read in worker processes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

import datamodel
from archive import db as archive_db
from archive import sky
from datamodel import obscore as oc

from .errors import IngestError

__all__ = ["ObscoreSync", "sync_obscore", "publisher_did", "access_url",
           "wavelength_range", "read_axes", "check_authority"]

_CHUNK = 500
#: h c in keV m: wavelength (m) = HC_KEV_M / energy (keV) (CODATA 2018, exact SI)
HC_KEV_M = 6.62607015e-34 * 299792458.0 / 1.602176634e-16


@dataclass
class ObscoreSync:
    """What one synchronisation of ivoa.obscore did."""

    added: int = 0
    removed: int = 0
    unplaced: int = 0     # described products whose detection row has no position

    def summary(self) -> str:
        text = f"ivoa.obscore: {self.added} rows written, {self.removed} removed"
        if self.unplaced:
            text += (f"; {self.unplaced} products left out: their detection is in neither "
                     "the aperiodic nor the periodic catalogue")
        return text


def check_authority(authority: str) -> str:
    """``IVOID_AUTHORITY`` without a trailing slash, or IngestError."""
    value = (authority or "").rstrip("/")
    rest = value[len("ivo://"):] if value.lower().startswith("ivo://") else ""
    if not rest or "/" in rest or "?" in rest or "#" in rest or " " in rest:
        raise IngestError(f"IVOID_AUTHORITY={authority!r} is not an IVOA authority "
                          "identifier such as ivo://extras.archive (ivo://, then a name "
                          "without /, ? or #)")
    return value


def publisher_did(authority: str, path: str) -> str:
    """The ObsCore ``obs_publisher_did`` of a product: ``<authority>/extras?<path>``."""
    return f"{authority}/extras?{path}"


def access_url(base_url: str, path: str) -> str:
    """URL of the product file: ``BASE_URL/products/<path>`` (root-relative without
    BASE_URL)."""
    return f"{(base_url or '').rstrip('/')}/products/{quote(path, safe='/')}"


def wavelength_range(band: str | None) -> tuple[float, float]:
    """(em_min, em_max) in metres of an energy band (``datamodel.BANDS``, keV)."""
    e_lo, e_hi = datamodel.BANDS[band or "full"]
    return HC_KEV_M / e_hi, HC_KEV_M / e_lo


def read_axes(args: tuple[str, str]) -> tuple[float | None, int | None]:
    """(TIMEDEL in s or None, number of rows) of a product's table extension."""
    path, product_type = args
    from astropy.io import fits
    ptype = datamodel.PRODUCT_TYPES[product_type]
    try:
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
            header = hdul[ptype.extension].header if ptype.extension else hdul[1].header
            timedel = header.get("TIMEDEL")
            return (float(timedel) if timedel is not None else None,
                    int(header.get("NAXIS2", 0)))
    except (OSError, KeyError, IndexError, ValueError, TypeError) as exc:
        raise IngestError(f"{path}: cannot read the header of its {ptype.extension or 'first'}"
                          f" table extension for ivoa.obscore: {exc}") from None


def _products_query():
    """Described products with the position and name of their detection."""
    p = archive_db.products
    ap = archive_db.catalogue_tables["aperiodic"]
    pe = archive_db.catalogue_tables["periodic"]
    return (sa.select(p.c.path, p.c.product_type, p.c.mime, p.c.size, p.c.obs_id, p.c.camera,
                      p.c.band, p.c.t_min, p.c.t_max,
                      sa.func.coalesce(ap.c.ra, pe.c.ra).label("ra"),
                      sa.func.coalesce(ap.c.dec, pe.c.dec).label("dec"),
                      ap.c.iauname, sa.func.coalesce(ap.c.srcid, pe.c.srcid).label("srcid"))
            .select_from(p.outerjoin(ap, ap.c.extras_id == p.c.extras_id)
                         .outerjoin(pe, pe.c.extras_id == p.c.extras_id))
            .where(p.c.product_type.in_(sorted(oc.OBSERVABLES))))


def _row(product, authority: str, base_url: str, axes: tuple) -> dict:
    ptype = datamodel.PRODUCT_TYPES[product.product_type]
    target = product.iauname or (str(product.srcid) if product.srcid is not None else None)
    em_min, em_max = wavelength_range(product.band)
    timedel, nrows = axes
    exptime = None
    if product.t_min is not None and product.t_max is not None:
        exptime = (product.t_max - product.t_min) * 86400.0
    instrument = oc.INSTRUMENTS[product.camera]
    return {
        "dataproduct_type": "timeseries", "dataproduct_subtype": product.product_type,
        "calib_level": oc.CALIB_LEVEL, "obs_collection": oc.COLLECTION,
        "obs_id": product.obs_id,
        "obs_title": f"{ptype.title}; {instrument}; {target}; observation {product.obs_id}",
        "obs_publisher_did": publisher_did(authority, product.path),
        "access_url": access_url(base_url, product.path), "access_format": product.mime,
        "access_estsize": (int(product.size) + 999) // 1000,
        "target_name": target, "s_ra": product.ra, "s_dec": product.dec,
        "s_fov": None, "s_region": None, "s_resolution": None, "s_xel1": None,
        "s_xel2": None, "t_min": product.t_min, "t_max": product.t_max,
        "t_exptime": exptime,
        # Bayesian blocks have no bin size; their header's TIMEDEL, if any, is not one
        "t_resolution": timedel if ptype.binning else None, "t_xel": nrows,
        "em_min": em_min, "em_max": em_max, "em_res_power": None, "em_xel": 1,
        "o_ucd": oc.OBSERVABLES[product.product_type], "pol_states": None,
        "pol_xel": None, "facility_name": oc.FACILITY, "instrument_name": instrument,
    }


def _spatial(rows: list[dict]) -> None:
    import numpy as np
    ra = np.array([r["s_ra"] for r in rows], dtype=np.float64)
    dec = np.array([r["s_dec"] for r in rows], dtype=np.float64)
    hpx = sky.healpix_index(ra, dec)
    x, y, z = sky.unit_vectors(ra, dec)
    for i, r in enumerate(rows):
        r.update(_hpx=int(hpx[i]), _x=float(x[i]), _y=float(y[i]), _z=float(z[i]))


def sync_obscore(conn, config: dict, changed: set[str] = frozenset(), run=None,
                 workers: int = 1, axes: dict | None = None) -> ObscoreSync:
    """Bring ivoa.obscore in step with the products table (see the module docstring).

    ``conn`` is the ingest's open transaction; ``changed`` the paths of products whose
    file was read again; ``run(func, items, workers)`` maps header reads (default: in
    this process); ``axes`` gives (TIMEDEL, rows) of files the ingest has just read,
    by path, so that only the others are opened again.
    """
    authority = check_authority(config.get("IVOID_AUTHORITY", ""))
    base_url = config.get("BASE_URL") or ""
    products_dir = Path(config["PRODUCTS_DIR"])
    table = archive_db.ivoa_tables["obscore"]
    report = ObscoreSync()

    wanted = {}
    for product in conn.execute(_products_query()):
        if product.ra is None or product.dec is None:
            report.unplaced += 1
            continue
        wanted[publisher_did(authority, product.path)] = product

    stale = []
    present = set()
    for did, url in conn.execute(sa.select(table.c.obs_publisher_did, table.c.access_url)):
        product = wanted.get(did)
        if (product is None or product.path in changed
                or url != access_url(base_url, product.path)):
            stale.append(did)
        else:
            present.add(did)
    for i in range(0, len(stale), _CHUNK):
        conn.execute(table.delete().where(table.c.obs_publisher_did.in_(stale[i:i + _CHUNK])))
    report.removed = len(stale)

    todo = [p for did, p in wanted.items() if did not in present]
    if not todo:
        return report
    known = dict(axes or {})
    unread = [p for p in todo if p.path not in known]
    items = [(str(products_dir / p.path), p.product_type) for p in unread]
    read = run(read_axes, items, workers) if run else [read_axes(i) for i in items]
    known.update(zip((p.path for p in unread), read))
    rows = [_row(p, authority, base_url, known[p.path]) for p in todo]
    _spatial(rows)
    for i in range(0, len(rows), 5000):
        conn.execute(table.insert(), rows[i:i + 5000])
    report.added = len(rows)
    return report

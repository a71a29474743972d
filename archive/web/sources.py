"""What the per-detection and per-source pages show, gathered from the database (no Flask).

A *detection* is one row of the aperiodic (or periodic) catalogue: one 3XMM source in
one exposure of one EPIC camera, named by its ``extras_id``; its products carry the
same keys. A *source* is a 3XMM source (``srcid``): its detections in every
observation and camera, its long-term variability and classification rows, and the
transients found near it (a cone on the spatial index, since transients are by
construction not 3XMM sources). Every query runs through the one executor
(``archive.query.execute``: read-only, time limit) and is a lookup on an indexed
column or a cone on the HEALPix index.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

import sqlalchemy as sa

import datamodel
from .. import spatial
from ..db import catalogue_tables, products
from ..query import execute
from ..result import ResultColumn, columns_of

__all__ = ["Detection", "Source", "find_detection", "find_source", "product_groups",
           "outside_links", "columns_for", "page_links", "PAGES", "TRANSIENT_RADIUS_DEG"]

#: Result columns that name a page of this site: column name -> URL path prefix.
PAGES = {"extras_id": "/detections/", "srcid": "/sources/"}


def page_links(columns, root: str) -> dict[int, str]:
    """{column index: URL prefix} for the result columns that lead to a detection or
    source page (``root``: the site's base URL)."""
    return {i: root.rstrip("/") + PAGES[c.name] for i, c in enumerate(columns)
            if c.name in PAGES}

#: Transients within this distance of a source are shown on its page (10 arcsec:
#: several times the typical EPIC position error).
TRANSIENT_RADIUS_DEG = 10.0 / 3600.0
#: At most this many rows of one catalogue on a page (a 3XMM source has tens of
#: detections at most; the limit only bounds a pathological case).
_PAGE_ROWS = 1000
_CAMERA_ORDER = {"PN": 0, "M1": 1, "M2": 2}
_BAND_ORDER = {band: i for i, band in enumerate(datamodel.BANDS)}   # full band first
_BINNING_ORDER = {"500s": 0, "opt": 1, None: 2}
#: the source's own curves first, then blocks, background and hardness (file prefixes)
_KIND_ORDER = {"ublc": 0, "bblc": 1, "bglc": 2, "hrlc": 3}
_PRODUCT_COLUMNS = ("path", "product_type", "category", "mime", "size", "checksum",
                    "obs_id", "exp_id", "camera", "src_num", "extras_id", "preview_of",
                    "band", "binning", "t_min", "t_max")


@dataclass
class Detection:
    """One detection: its catalogue rows, its products and its neighbours."""

    extras_id: str
    row: dict                       # the aperiodic row (or the periodic one)
    catalogue: str                  # "aperiodic" or "periodic"
    periodic: dict | None
    products: list[dict]
    siblings: list[dict]            # other detections of the same 3XMM source

    @property
    def ra(self) -> float:
        return self.row["ra"]

    @property
    def dec(self) -> float:
        return self.row["dec"]

    @property
    def srcid(self) -> int | None:
        return self.row.get("srcid")


@dataclass
class Source:
    """One 3XMM source: its rows in every catalogue."""

    srcid: int
    ra: float
    dec: float
    name: str | None
    detections: list[dict]
    periodic: list[dict]
    longterm: dict | None
    longterm_points: int
    classification: dict | None
    transients: list[dict] = field(default_factory=list)
    product_count: int = 0


def _rows(engine, stmt, names: list[str], timeout: float, limit: int = _PAGE_ROWS):
    columns = [ResultColumn(n, "char") for n in names]      # only names are used here
    result = execute(engine, stmt, columns, maxrec=limit, timeout=timeout)
    return [dict(zip(names, row)) for chunk in result.chunks() for row in chunk]


def _table_rows(engine, name: str, condition, timeout: float,
                order=lambda t: ()) -> list[dict]:
    t = catalogue_tables[name]
    names = [c.name for c in datamodel.TABLES[name].columns]
    stmt = sa.select(*(t.c[n] for n in names)).where(condition(t)).order_by(*order(t))
    return _rows(engine, stmt, names, timeout)


def _products_of(engine, condition, timeout: float) -> list[dict]:
    stmt = sa.select(*(products.c[n] for n in _PRODUCT_COLUMNS)).where(
        condition).order_by(products.c.path)
    return _rows(engine, stmt, list(_PRODUCT_COLUMNS), timeout, limit=100000)


def find_detection(engine, extras_id: str, *, timeout: float) -> Detection | None:
    """The detection ``extras_id`` (aperiodic, else periodic), or None."""
    rows = {}
    for name in ("aperiodic", "periodic"):
        found = _table_rows(engine, name, lambda t: t.c.extras_id == extras_id, timeout)
        rows[name] = found[0] if found else None
    row = rows["aperiodic"] or rows["periodic"]
    if row is None:
        return None
    siblings = []
    if row.get("srcid") is not None:
        siblings = [r for r in _table_rows(
            engine, "aperiodic", lambda t: t.c.srcid == row["srcid"], timeout,
            order=lambda t: (t.c.obs_id, t.c.exp_id, t.c.camera))
            if r["extras_id"] != extras_id]
    found = _products_of(engine, products.c.extras_id == extras_id, timeout)
    return Detection(extras_id, row, "aperiodic" if rows["aperiodic"] else "periodic",
                     rows["periodic"], found, siblings)


def find_source(engine, srcid: int, *, timeout: float) -> Source | None:
    """The 3XMM source ``srcid`` with its rows in every catalogue, or None."""
    def same(t):
        return t.c.srcid == srcid

    detections = _table_rows(engine, "aperiodic", same, timeout,
                             order=lambda t: (t.c.obs_id, t.c.exp_id, t.c.camera))
    periodic = _table_rows(engine, "periodic", same, timeout,
                           order=lambda t: (t.c.obs_id, t.c.exp_id, t.c.camera))
    longterm = _table_rows(engine, "longterm", same, timeout)
    classification = _table_rows(engine, "classification", same, timeout)
    if not (detections or periodic or longterm or classification):
        return None
    anchor = (longterm or classification or detections or periodic)[0]
    ra, dec = _mean_position(detections) or (anchor["ra"], anchor["dec"])
    name = next((r.get("iauname") for r in (*longterm, *classification, *detections)
                 if r.get("iauname")), None)
    points = _rows(engine, sa.select(sa.func.count()).select_from(
        catalogue_tables["longterm_points"]).where(
        catalogue_tables["longterm_points"].c.srcid == srcid), ["n"], timeout)[0]["n"]
    transients = _table_rows(
        engine, "transients",
        lambda t: spatial.cone_condition(t, ra, dec, TRANSIENT_RADIUS_DEG), timeout,
        order=lambda t: (t.c.name,))
    ids = [r["extras_id"] for r in detections]
    count = 0
    if ids:
        count = _rows(engine, sa.select(sa.func.count()).select_from(products).where(
            products.c.extras_id.in_(ids)), ["n"], timeout)[0]["n"]
    return Source(srcid, ra, dec, name, detections, periodic,
                  longterm[0] if longterm else None, int(points),
                  classification[0] if classification else None, transients, int(count))


def _mean_position(rows: list[dict]) -> tuple[float, float] | None:
    """Mean of the detections' positions (unit vectors, so RA 0/360 is no problem)."""
    if not rows:
        return None
    import numpy as np
    ra = np.radians([r["ra"] for r in rows])
    dec = np.radians([r["dec"] for r in rows])
    x, y, z = (np.mean(np.cos(dec) * np.cos(ra)), np.mean(np.cos(dec) * np.sin(ra)),
               np.mean(np.sin(dec)))
    return (float(np.degrees(np.arctan2(y, x)) % 360.0),
            float(np.degrees(np.arctan2(z, np.hypot(x, y)))))


def product_groups(items: list[dict], query: str = "") -> list[dict]:
    """Products grouped by category, then camera, band and binning, for the page.

    ``query`` keeps only products whose file name contains it (case-insensitive):
    the filter box ("bblc" finds the Bayesian-block light curve) without JavaScript.
    """
    types = datamodel.PRODUCT_TYPES
    wanted = query.strip().lower()
    groups: dict[str, list[dict]] = {}
    for item in items:
        name = item["path"].rsplit("/", 1)[-1]
        if wanted and wanted not in name.lower():
            continue
        ptype = types.get(item["product_type"])
        title = ptype.title if ptype else datamodel.PREVIEW.title
        groups.setdefault(item["category"], []).append(
            {**item, "name": name, "title": title,
             "previewable": bool(ptype and ptype.previewable)})
    order = ("lightcurve", "power-spectrum", "image", "preview")
    out = []
    for category in sorted(groups, key=lambda c: (order.index(c) if c in order else 9, c)):
        members = sorted(groups[category], key=lambda p: (
            _CAMERA_ORDER.get(p["camera"], 9), _KIND_ORDER.get(p["name"][:4], 9),
            _BAND_ORDER.get(p["band"], 9), _BINNING_ORDER.get(p["binning"], 9),
            p["name"]))
        out.append({"category": category, "products": members})
    return out


def outside_links(ra: float, dec: float, srcid: int | None) -> list[tuple[str, str]]:
    """(label, URL) of the pages elsewhere that astronomers look at next: Simbad's
    objects around the position (sorted by distance), ESASky at the position, and the
    XMM-Newton serendipitous source catalogue's entry of the source."""
    position = f"{ra:.6f} {dec:+.6f}"
    links = [
        ("Simbad: objects within 1 arcmin, by distance",
         "https://simbad.cds.unistra.fr/simbad/sim-coo?" + urlencode({
             "Coord": position, "CooFrame": "ICRS", "Radius": "1", "Radius.unit": "arcmin",
             "output.format": "HTML", "list.idsel": "on"})),
        ("ESASky at this position",
         "https://sky.esa.int/esasky/?" + urlencode({
             "target": position, "fov": "0.1", "cooframe": "J2000", "sci": "true"})),
    ]
    if srcid is not None:
        links.append(("XMM-Newton serendipitous source catalogue (XMM SSC) entry",
                      f"https://xmm-catalog.irap.omp.eu/source/{quote(str(srcid))}"))
    return links


def columns_for(name: str) -> list[ResultColumn]:
    """The published columns of catalogue ``name`` (units and descriptions for pages)."""
    return columns_of(datamodel.TABLES[name].columns)

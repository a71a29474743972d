"""What each catalogue row ID links to: the DataLink links table (no Flask).

``links_rows(engine, ids, base=..., products_dir=...)`` answers a batch of IDs with
a fixed number of indexed queries (at most ten per batch of ``BATCH`` IDs, whatever
the number of IDs: ``IN`` lists on ``aperiodic.extras_id``, ``periodic.extras_id``,
``products.extras_id``, ``transients.name``, ``longterm.iauname``,
``classification.iauname`` and the ``srcid`` columns) and returns the rows grouped
by ID, in the order the IDs were given, each ID's rows contiguous.

An EXTraS detection (``extras_id``) links to every product of it
(``/products/<path>``): the 500 s full-band uniform light curve as ``#this`` (the
detection's main product, what pyvo's ``getdataset()`` fetches), the other light
curves and the power spectrum with their product type's semantics (``#coderived``;
the background curve ``#auxiliary``), the PNG quick-looks as ``#preview-plot`` /
``#preview-image``, each light curve's interactive page
(``/lightcurves/view/<path>``, ``#preview-plot``, text/html), the three cameras'
curves on one time axis (``/lightcurves/detection/<obs>/<src>``), the same source's
other rows (``#counterpart``: DataLink links URLs of those rows) and the detection
and source pages (``#documentation``). A 3XMM source (``iauname``: long-term and
classification catalogues) links to its long-term light curve (page and flux points
through TAP, ``#coderived``), its detections (``#counterpart``) and its page; a
transient (``name``) to its catalogue entry through TAP (``#this``: a transient has
no product files). Unknown IDs, malformed IDs and product files registered but
missing from disk are error rows (``NotFoundFault: ...``, ``UsageFault: ...``).
"""
from __future__ import annotations

import os
import re
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urlencode

import sqlalchemy as sa

from datamodel.products import PREVIEW, PRODUCT_TYPES, match_product
from ..db import catalogue_tables, products as products_table
from ..errors import ArchiveFault, NotFoundFault, UsageFault
from ..result import QueryResult, ResultColumn
from .ids import DETECTION, SOURCE, TRANSIENT, kind_of

__all__ = ["STANDARD_ID", "LINKS_MIME", "VOTABLE_MIME", "MAIN_PRODUCT", "COLUMNS", "BATCH",
           "links_rows", "links_result", "links_url"]

STANDARD_ID = "ivo://ivoa.net/std/DataLink#links-1.1"
LINKS_MIME = "application/x-votable+xml;content=datalink"
VOTABLE_MIME = "application/x-votable+xml"
HTML_MIME = "text/html"
#: The product a detection's ``#this`` row gives: the 500 s full-band uniform light curve.
MAIN_PRODUCT = "ublc_500s"
#: IDs looked up together (one query per table per batch).
BATCH = 1000
CAMERAS = {"PN": "EPIC pn", "M1": "EPIC MOS1", "M2": "EPIC MOS2"}
_CATALOGUE_WORDS = {"aperiodic": "aperiodic", "periodic": "periodic",
                    "longterm": "long-term", "classification": "classification"}


def _col(name, description, ucd, datatype="char", **extra) -> ResultColumn:
    return ResultColumn(name, datatype, description, ucd=ucd,
                        arraysize="*" if datatype == "char" else None, **extra)


#: The columns of the links table (DataLink 1.1 §3.2), with the UCDs TOPCAT knows.
COLUMNS = (
    _col("ID", "Identifier of the catalogue row the link is for", "meta.id;meta.main"),
    _col("access_url", "URL of the linked resource", "meta.ref.url"),
    _col("service_def", "Reference to a service descriptor", "meta.ref"),
    _col("error_message", "Why no link could be given", "meta.code.error"),
    _col("description", "What the linked resource is", "meta.note"),
    _col("semantics", "Relation of the linked resource to the ID (DataLink vocabulary)",
         "meta.code"),
    _col("content_type", "MIME type of the linked resource", "meta.code.mime"),
    _col("content_length", "Size of the linked resource", "phys.size;meta.file",
         datatype="long", unit="byte"),
    _col("content_qualifier", "Kind of data the resource holds (product-type vocabulary)",
         "meta.code.class"),
    _col("local_semantics", "This archive's name for the kind of link", "meta.code"),
)


# -- rows ------------------------------------------------------------------------------

def _link(id_, url, semantics, description, content_type=None, length=None,
          qualifier=None, local=None) -> tuple:
    return (id_, url, None, None, description, semantics, content_type, length, qualifier,
            local)


def _error(id_, fault: ArchiveFault, semantics="#this", description=None, local=None):
    return (id_, None, None, fault.dali_text, description, semantics, None, None, None,
            local)


@lru_cache(maxsize=65536)
def links_url(base: str, id_: str) -> str:
    """The {links} URL of one ID."""
    return f"{base}/datalink/links?{urlencode({'ID': id_})}"


_URL_SAFE = re.compile(r"[A-Za-z0-9_./-]*\Z")


def _url_path(path: str) -> str:
    """``path`` quoted for a URL (product paths rarely need it)."""
    return path if _URL_SAFE.match(path) else quote(path)


def _tap_url(base: str, query: str) -> str:
    return f"{base}/tap/sync?" + urlencode({"LANG": "ADQL", "RESPONSEFORMAT": "votable",
                                            "QUERY": query})


def _adql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _catalogues(names) -> str:
    return _catalogue_words(frozenset(names))


@lru_cache(maxsize=None)
def _catalogue_words(names: frozenset) -> str:
    words = [_CATALOGUE_WORDS[n] for n in sorted(names, key=list(_CATALOGUE_WORDS).index)]
    return " and ".join(words) + (" catalogues" if len(words) > 1 else " catalogue")


# -- the lookups of one batch ------------------------------------------------------------

@lru_cache(maxsize=None)
def _statement(table: str, key: str, columns: tuple[str, ...]):
    t = products_table if table == "products" else catalogue_tables[table]
    return (sa.select(*(t.c[c] for c in columns))
            .where(t.c[key].in_(sa.bindparam("values", expanding=True))))


def _select(conn, table: str, key: str, columns: tuple[str, ...], values) -> list:
    values = sorted(values)
    if not values:
        return []
    return conn.execute(_statement(table, key, columns), {"values": values}).all()


_PRODUCT_COLUMNS = ("path", "product_type", "category", "mime", "size", "camera",
                    "extras_id", "preview_of")


class _Found:
    """What the catalogues and the products table hold for one batch of IDs."""

    def __init__(self, conn, by_kind: dict[str, list[str]]):
        detections = by_kind.get(DETECTION, [])
        #: extras_id -> srcid, and the catalogues each detection is in
        self.detections: dict[str, int] = {}
        self.sources: dict[str, int] = {}       # iauname -> srcid
        self.transients: set[str] = set()
        in_catalogues: dict[str, set[str]] = defaultdict(set)
        for table in ("aperiodic", "periodic"):
            for extras_id, srcid in _select(conn, table, "extras_id", ("extras_id", "srcid"),
                                            detections):
                self.detections[extras_id] = srcid
        for table in ("longterm", "classification"):
            for iauname, srcid in _select(conn, table, "iauname", ("iauname", "srcid"),
                                          by_kind.get(SOURCE, [])):
                self.sources[iauname] = srcid
        self.transients = {name for (name,) in _select(
            conn, "transients", "name", ("name",), by_kind.get(TRANSIENT, []))}
        srcids = set(self.detections.values()) | set(self.sources.values())
        #: srcid -> {extras_id or iauname: catalogues it is in}
        self.rows_of: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for table, key in (("aperiodic", "extras_id"), ("periodic", "extras_id"),
                           ("longterm", "iauname"), ("classification", "iauname")):
            for id_, srcid in _select(conn, table, "srcid", (key, "srcid"), srcids):
                self.rows_of[srcid][id_].add(table)
                in_catalogues[id_].add(table)
        self.catalogues = in_catalogues
        self.products: dict[str, list] = defaultdict(list)
        for row in _select(conn, "products", "extras_id", _PRODUCT_COLUMNS, self.detections):
            self.products[row.extras_id].append(row)


# -- the links of each kind of ID ---------------------------------------------------------

_ORDER = {key: n for n, key in enumerate(PRODUCT_TYPES)}


def _product_order(row) -> tuple:
    return (row.product_type != MAIN_PRODUCT, row.category == "preview",
            _ORDER.get(row.product_type, len(_ORDER)), row.path)


@lru_cache(maxsize=None)
def _title(product_type: str, camera: str, drawn: str | None) -> tuple[str, object]:
    """(description, product type) of a product of ``product_type`` from ``camera``;
    ``drawn`` is the product type a preview draws."""
    camera = CAMERAS.get(camera, camera)
    if product_type == PREVIEW.key:
        what = PRODUCT_TYPES[drawn].title if drawn in PRODUCT_TYPES else "light curve"
        return f"Quick-look plot (PNG): {what} ({camera})", PREVIEW
    ptype = PRODUCT_TYPES.get(product_type)
    if ptype is None:
        return f"Product {product_type} ({camera})", None
    return f"{ptype.title} ({camera})", ptype


def _drawn_type(row, types_by_path: dict[str, str]) -> str | None:
    """The product type of the light curve a preview draws."""
    if row.preview_of is None:
        return None
    known = types_by_path.get(row.preview_of)
    if known is not None:
        return known
    drawn = match_product(Path(row.preview_of).name)
    return drawn[0].key if drawn else None


def _product_links(id_, row, base: str, products_dir: str, drawn: str | None
                   ) -> list[tuple]:
    description, ptype = _title(row.product_type, row.camera, drawn)
    semantics = "#this" if row.product_type == MAIN_PRODUCT else \
        (ptype.semantics if ptype is not None else "#auxiliary")
    qualifier = ptype.content_qualifier if ptype is not None else None
    if not os.path.isfile(products_dir + row.path):
        fault = NotFoundFault(f"the product file {row.path} is registered but missing from "
                              "the archive's disk; please report it to the archive")
        return [_error(id_, fault, semantics, description, row.product_type)]
    path = _url_path(row.path)
    rows = [_link(id_, f"{base}/products/{path}", semantics, description, row.mime,
                  row.size, qualifier, row.product_type)]
    if ptype is not None and ptype.previewable and ptype.category == "lightcurve":
        rows.append(_link(id_, f"{base}/lightcurves/view/{path}", "#preview-plot",
                          f"Interactive plot (page): {description}",
                          HTML_MIME, None, qualifier, "lightcurve-page"))
    return rows


def _counterparts(id_, srcid: int, found: _Found, base: str) -> list[tuple]:
    rows = []
    for other, tables in sorted(found.rows_of.get(srcid, {}).items()):
        if other == id_:
            continue
        if "aperiodic" in tables or "periodic" in tables:
            what = f"detection {other} of the same 3XMM source (srcid {srcid})"
        else:
            what = f"the 3XMM source {other} (srcid {srcid})"
        rows.append(_link(id_, links_url(base, other), "#counterpart",
                          f"Links of {what} in the {_catalogues(tables)}", LINKS_MIME,
                          None, None, "counterpart"))
    return rows


def _source_page(id_, srcid: int, base: str) -> tuple:
    return _link(id_, f"{base}/sources/{srcid}", "#documentation",
                 f"Web page of the 3XMM source {srcid}: its detections, light curves and "
                 "classification", HTML_MIME, None, None, "source-page")


def _detection_links(id_, found: _Found, base: str, products_dir: str) -> list[tuple]:
    srcid = found.detections.get(id_)
    if srcid is None:
        return [_error(id_, NotFoundFault(f"there is no detection {id_} in the aperiodic or "
                                          "periodic catalogue"))]
    products = sorted(found.products.get(id_, ()), key=_product_order)
    types_by_path = {row.path: row.product_type for row in products}
    rows = []
    for row in products:
        rows.extend(_product_links(id_, row, base, products_dir,
                                   _drawn_type(row, types_by_path)))
    if products:
        obs_id, _exp_id, _camera, src_num = id_.split("_")
        rows.append(_link(id_, f"{base}/lightcurves/detection/{obs_id}/{int(src_num)}",
                          "#preview-plot", "Light curves of the source in this observation "
                          "from every EPIC camera on one time axis (page)", HTML_MIME, None,
                          "timeseries", "detection-lightcurves"))
    rows.extend(_counterparts(id_, srcid, found, base))
    rows.append(_link(id_, f"{base}/detections/{quote(id_)}", "#documentation",
                      f"Web page of detection {id_} in the "
                      f"{_catalogues(found.catalogues.get(id_, {'aperiodic'}))}",
                      HTML_MIME, None, None, "detection-page"))
    rows.append(_source_page(id_, srcid, base))
    return rows


def _source_links(id_, found: _Found, base: str) -> list[tuple]:
    srcid = found.sources.get(id_)
    if srcid is None:
        return [_error(id_, NotFoundFault(f"there is no 3XMM source {id_} in the long-term "
                                          "or classification catalogue"))]
    rows = []
    if "longterm" in found.catalogues.get(id_, ()):
        rows.append(_link(id_, f"{base}/lightcurves/longterm/{srcid}", "#coderived",
                          f"Long-term light curve of {id_} (page)", HTML_MIME, None,
                          "timeseries", "longterm-page"))
        query = f"SELECT * FROM extras.longterm_points WHERE srcid = {int(srcid)} " \
                "ORDER BY mjd_start"
        rows.append(_link(id_, _tap_url(base, query), "#coderived",
                          f"Long-term light curve of {id_}: its flux points (VOTable)",
                          VOTABLE_MIME, None, "timeseries", "longterm-points"))
    rows.extend(_counterparts(id_, srcid, found, base))
    rows.append(_source_page(id_, srcid, base))
    return rows


def _transient_links(id_, found: _Found, base: str) -> list[tuple]:
    if id_ not in found.transients:
        return [_error(id_, NotFoundFault(f"there is no transient {id_} in the transients "
                                          "catalogue"))]
    query = f"SELECT * FROM extras.transients WHERE name = {_adql_string(id_)}"
    return [_link(id_, _tap_url(base, query), "#this",
                  f"Catalogue entry of the transient {id_} (VOTable)", VOTABLE_MIME, None,
                  None, "catalogue-row")]


# -- the whole answer -----------------------------------------------------------------------

def _batch_rows(conn, ids: list[str], base: str, products_dir: str) -> list[tuple]:
    kinds: dict[str, str | UsageFault] = {}
    by_kind: dict[str, list[str]] = defaultdict(list)
    for id_ in ids:
        try:
            kinds[id_] = kind = kind_of(id_)
            by_kind[kind].append(id_)
        except UsageFault as fault:
            kinds[id_] = fault
    found = _Found(conn, by_kind)
    rows = []
    for id_ in ids:
        kind = kinds[id_]
        if isinstance(kind, UsageFault):
            rows.append(_error(id_, kind))
        elif kind == DETECTION:
            rows.extend(_detection_links(id_, found, base, products_dir))
        elif kind == SOURCE:
            rows.extend(_source_links(id_, found, base))
        else:
            rows.extend(_transient_links(id_, found, base))
    return rows


def links_rows(engine, ids: list[str], *, base: str, products_dir) -> list[tuple]:
    """The links table rows of ``ids`` (each ID's rows together, in the order of
    ``ids``); ``base`` is the archive's root URL (no trailing slash)."""
    rows: list[tuple] = []
    if not ids:
        return rows
    products_dir = os.path.join(str(products_dir), "")      # ends with the separator
    base = base.rstrip("/")
    with engine.connect() as conn:
        for start in range(0, len(ids), BATCH):
            rows.extend(_batch_rows(conn, ids[start:start + BATCH], base, products_dir))
    return rows


def links_result(rows: list[tuple], overflow: bool = False) -> QueryResult:
    """The links table as a QueryResult (with the DataLink 1.1 standardID INFO)."""
    return QueryResult(COLUMNS, maxrec=None, chunks=iter([rows] if rows else []),
                       overflow=overflow, infos=[("standardID", STANDARD_ID, None)])

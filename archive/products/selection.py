"""What a bulk download holds: the selection parameters, checked, and the products
they select.

Selectors (repeatable, or comma-separated; at least one is required), whose products
are united:

* ``path``: products by their registered path;
* ``id``: catalogue row ids: an aperiodic or periodic ``extras_id`` selects the
  products of that detection; a long-term or classification ``iauname`` selects the
  products of every detection of that 3XMM source;
* ``obs_id``: every product of an observation;
* ``srcid``: the products of every detection (aperiodic and periodic rows) of a 3XMM
  source.

Filters (repeatable) narrow the union: ``category``, ``camera``, ``band``, ``type``
(a product type key). Unknown values of a selector are a NotFoundFault naming them,
malformed values and unknown filter values a UsageFault; a selection that holds no
product, or more files or bytes than the limits allow, is refused before anything is
sent (:func:`select_products`).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from datamodel.products import BANDS, PREVIEW, PRODUCT_TYPES
from ..db import catalogue_tables, products as products_table
from ..errors import NotFoundFault, UsageFault
from ..params import Params
from .store import PRODUCT_COLUMNS, Product, is_product_path

__all__ = ["Selection", "TooLargeFault", "SELECTORS", "FILTERS", "parse_selection",
           "select_products"]

SELECTORS = ("path", "id", "obs_id", "srcid")
CATEGORIES = tuple(sorted({p.category for p in PRODUCT_TYPES.values()} | {PREVIEW.category}))
CAMERAS = ("PN", "M1", "M2")
TYPES = (*PRODUCT_TYPES, PREVIEW.key)
FILTERS = {"category": CATEGORIES, "camera": CAMERAS, "band": tuple(BANDS), "type": TYPES}
_OBS_ID = re.compile(r"^\d{10}$")
_CHUNK = 500          # values per IN (...) when looking identifiers up
#: Selector values one request may give at most (each becomes a bound parameter)
MAX_VALUES = 10000
_NARROW = ("narrow it with category=, camera=, band= or type=, or select fewer paths, "
           "ids, observations or sources, and download it in several parts")


class TooLargeFault(UsageFault):
    """A bulk selection beyond BULK_DOWNLOAD_MAX_FILES or BULK_DOWNLOAD_MAX_BYTES."""
    status = 413


@dataclass(frozen=True)
class Selection:
    paths: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    obs_ids: tuple[str, ...] = ()
    srcids: tuple[int, ...] = ()
    categories: tuple[str, ...] = ()
    cameras: tuple[str, ...] = ()
    bands: tuple[str, ...] = ()
    types: tuple[str, ...] = ()

    def stem(self) -> str:
        """The archive's name without extension: ``extras-products-<what>``, from the
        one observation, source, id or product selected, else a digest of the
        selection (the same selection gets the same name)."""
        picked = [(k, v) for k, v in (("path", self.paths), ("id", self.ids),
                                      ("obs_id", self.obs_ids), ("srcid", self.srcids)) if v]
        what = None
        if len(picked) == 1 and len(picked[0][1]) == 1:
            kind, (value,) = picked[0]
            what = {"path": lambda v: v.rsplit("/", 1)[-1].rsplit(".", 1)[0],
                    "srcid": lambda v: f"srcid-{v}"}.get(kind, str)(value)
            what = re.sub(r"[^A-Za-z0-9._+-]+", "_", what).strip("._") or None
        if what is None:
            digest = hashlib.sha256(repr(self).encode()).hexdigest()[:12]
            what = f"selection-{digest}"
        return f"extras-products-{what}"


def _values(params: Params, name: str) -> list[str]:
    """Every value of a repeatable parameter, commas also separating values."""
    out = []
    for value in params.getlist(name):
        out += [v.strip() for v in str(value).split(",") if v.strip()]
    return list(dict.fromkeys(out))


def _filter(params: Params, name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    by_lower = {a.lower(): a for a in allowed}
    values = _values(params, name)
    unknown = [v for v in values if v.lower() not in by_lower]
    if unknown:
        raise UsageFault(f"unknown {name} {', '.join(repr(v) for v in unknown)}; "
                         f"{name} is one of {', '.join(allowed)}")
    return tuple(by_lower[v.lower()] for v in values)


def parse_selection(params: Params) -> Selection:
    """The selection the request's parameters describe, checked for form."""
    obs_ids = _values(params, "obs_id")
    bad = [o for o in obs_ids if not _OBS_ID.match(o)]
    if bad:
        raise UsageFault(f"obs_id must be a 10-digit XMM-Newton observation id, not "
                         f"{', '.join(repr(o) for o in bad)}")
    srcids = []
    for value in _values(params, "srcid"):
        if not re.fullmatch(r"\+?\d{1,19}", value):
            raise UsageFault(f"srcid must be a 3XMM source number (a positive integer), "
                             f"not {value!r}")
        srcids.append(int(value))
    selection = Selection(
        paths=tuple(_values(params, "path")), ids=tuple(_values(params, "id")),
        obs_ids=tuple(obs_ids), srcids=tuple(srcids),
        **{f"{'categories' if n == 'category' else n + 's'}": _filter(params, n, allowed)
           for n, allowed in FILTERS.items()})
    given = len(selection.paths) + len(selection.ids) + len(selection.obs_ids) + len(srcids)
    if not given:
        raise UsageFault("empty selection: give at least one of path, id, obs_id or srcid "
                         "(repeatable), e.g. /products/bulk?obs_id=0123456789; "
                         "category, camera, band and type only narrow a selection")
    if given > MAX_VALUES:
        raise TooLargeFault(f"the request names {given:,} paths, ids, observations and "
                            f"sources; one bulk download takes at most {MAX_VALUES:,}: "
                            "select whole observations (obs_id) or sources (srcid), or "
                            "split the list into several downloads")
    return selection


def _found(conn, column, values) -> set:
    """The ``values`` present in ``column``."""
    found = set()
    for i in range(0, len(values), _CHUNK):
        found.update(conn.execute(sa.select(column).distinct().where(
            column.in_(values[i:i + _CHUNK]))).scalars())
    return found


def _detections(conn, srcids) -> dict[int, set[str]]:
    """extras_id of every aperiodic and periodic detection of each source."""
    out: dict[int, set[str]] = {}
    for name in ("aperiodic", "periodic"):
        t = catalogue_tables[name]
        for i in range(0, len(srcids), _CHUNK):
            for srcid, xid in conn.execute(sa.select(t.c.srcid, t.c.extras_id).where(
                    t.c.srcid.in_(srcids[i:i + _CHUNK]))):
                out.setdefault(int(srcid), set()).add(xid)
    return out


def _missing(kind: str, values, hint: str = "") -> NotFoundFault:
    shown = ", ".join(repr(v) for v in list(values)[:10])
    more = f" and {len(values) - 10} more" if len(values) > 10 else ""
    return NotFoundFault(f"unknown {kind}: {shown}{more}{hint}")


def _resolve_ids(conn, ids: list[str]) -> tuple[set[str], list[int]]:
    """(extras_ids, srcids) that the catalogue row ids stand for."""
    extras = set()
    for name in ("aperiodic", "periodic"):
        extras |= _found(conn, catalogue_tables[name].c.extras_id, ids)
    rest = [i for i in ids if i not in extras]
    srcids: set[int] = set()
    named = set()
    for name in ("longterm", "classification"):
        t = catalogue_tables[name]
        for i in range(0, len(rest), _CHUNK):
            for iau, srcid in conn.execute(sa.select(t.c.iauname, t.c.srcid).where(
                    t.c.iauname.in_(rest[i:i + _CHUNK]))):
                named.add(iau)
                srcids.add(int(srcid))
    rest = [i for i in rest if i not in named]
    if rest:
        t = catalogue_tables["transients"]
        transients = conn.execute(sa.select(t.c.name, t.c.obs_id).where(
            t.c.name.in_(rest[:_CHUNK]))).all()
        if transients:
            name, obs_id = transients[0]
            raise UsageFault(f"{name!r} is a transient: transients have no product files of "
                             f"their own; select its observation with obs_id={obs_id}")
        raise _missing("id", rest, " (ids are aperiodic/periodic extras_id, or the iauname "
                                   "of a long-term or classification row)")
    return extras, sorted(srcids)


def _condition(conn, selection: Selection):
    """The WHERE clause on the products table, every selector value checked."""
    p = products_table.c
    parts = []
    if selection.paths:
        paths = [x for x in selection.paths if is_product_path(x)]
        missing = set(selection.paths) - _found(conn, p.path, paths)
        if missing:
            raise _missing("product path", sorted(missing))
        parts.append(p.path.in_(selection.paths))
    if selection.obs_ids:
        missing = set(selection.obs_ids) - _found(conn, p.obs_id, list(selection.obs_ids))
        if missing:
            raise _missing("observation", sorted(missing), " (the archive holds no "
                                                            "products of it)")
        parts.append(p.obs_id.in_(selection.obs_ids))
    extras: set[str] = set()
    srcids = list(selection.srcids)
    if selection.ids:
        extras, more = _resolve_ids(conn, list(selection.ids))
        srcids += more
    if srcids:
        detections = _detections(conn, sorted(set(srcids)))
        missing = set(selection.srcids) - set(detections)
        if missing:
            raise _missing("srcid", sorted(missing), " (no aperiodic or periodic detection "
                                                     "of that 3XMM source)")
        for found in detections.values():
            extras |= found
    if extras:
        parts.append(p.extras_id.in_(sorted(extras)))
    condition = sa.or_(*parts)
    for column, values in ((p.category, selection.categories), (p.camera, selection.cameras),
                           (p.band, selection.bands), (p.product_type, selection.types)):
        if values:
            condition = sa.and_(condition, column.in_(values))
    return condition


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return ""


def select_products(engine: Engine, selection: Selection, max_files: int,
                    max_bytes: int) -> list[Product]:
    """The products of ``selection`` ordered by path, once the selection is known to be
    non-empty and within the limits (counted in the table, before any file is read).

    One query reads at most ``max_files + 1`` rows; only a selection over a limit is
    counted in full, for the message."""
    with engine.connect() as conn:
        condition = _condition(conn, selection)
        columns = [products_table.c[name] for name in PRODUCT_COLUMNS]
        chosen = [Product(*row) for row in conn.execute(
            sa.select(*columns).where(condition).order_by(products_table.c.path)
            .limit(max_files + 1))]
        if not chosen:
            raise UsageFault("the selection holds no products: the filters (category, "
                             "camera, band, type) leave none of the selected products")
        if len(chosen) > max_files or sum(p.size for p in chosen) > max_bytes:
            count, total = conn.execute(sa.select(
                sa.func.count(), sa.func.coalesce(sa.func.sum(products_table.c.size), 0))
                .where(condition)).one()
            raise TooLargeFault(
                f"the selection holds {count:,} files ({_size(total)}); a bulk download "
                f"takes at most {max_files:,} files and {_size(max_bytes)}: {_NARROW}")
        return chosen

"""Dropping a catalogue: ``extras-archive drop catalogue NAME``.

A catalogue's table is part of the data model (TAP_SCHEMA describes it whatever it
holds), so dropping a catalogue empties it and removes everything the archive
derived from its rows, in one transaction:

* its rows;
* for the catalogues products link to (aperiodic, periodic: see
  ``ingest.products``), the rows of the products whose detection is in neither of
  them any more (their files stay on disk: ``ingest products`` reports them as not
  linked until the catalogue is ingested again), and the ivoa.obscore rows of every
  product whose detection was in it: removed with the product, or written again
  from the catalogue that remains (``ingest.obscore.sync_obscore``, with the time
  axes of the old rows, so no file is opened);
* its cached web search results (``search_cache``).

A failure anywhere rolls all of it back. After the commit the cached MOC files of
the catalogue (``DATA_DIR/moc/<name>-o*``) are deleted; they are a cache keyed by
the rows' fingerprint, never served for other rows, so a failure there loses nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

import datamodel
from ingest.obscore import publisher_did, sync_obscore
from ..db import catalogue_tables, ivoa_tables, products, search_cache

__all__ = ["DropReport", "plan_drop", "drop_catalogue", "LINKED"]

#: Catalogues whose rows products link to (``ingest.products._link``).
LINKED = ("aperiodic", "periodic")


@dataclass
class DropReport:
    """What dropping a catalogue removes (``plan_drop``) or removed (``drop_catalogue``)."""

    catalogue: str
    rows: int
    products: int
    obscore_rows: int
    cached_searches: int
    moc_files: int

    def summary(self, done: bool = True) -> str:
        verb = "removed" if done else "would remove"
        return (f"catalogue {self.catalogue}: {verb} {self.rows} rows, {self.products} "
                f"product rows (files stay on disk), {self.obscore_rows} ivoa.obscore rows "
                f"(rows of products still linked are written again), "
                f"{self.cached_searches} cached searches, {self.moc_files} MOC files")


def _table(name: str) -> sa.Table:
    if name not in datamodel.TABLES:
        raise ValueError(f"unknown catalogue {name!r}; known: {', '.join(datamodel.TABLES)}")
    return catalogue_tables[name]


def _moc_files(config: dict, name: str) -> list[Path]:
    return sorted((Path(config["DATA_DIR"]) / "moc").glob(f"{name}-o*-*.*"))


def _linked(table: sa.Table):
    """Products whose detection is a row of ``table``."""
    return products.c.extras_id.in_(sa.select(table.c.extras_id))


def _unlinked_after(name: str):
    """Products whose detection is in no linked catalogue once ``name`` is empty."""
    cond = _linked(catalogue_tables[name])
    for other in LINKED:
        if other != name:
            cond = cond & ~_linked(catalogue_tables[other])
    return cond


def _count(conn, stmt) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(stmt.subquery()))
               .scalar_one())


def plan_drop(db, config: dict, name: str) -> DropReport:
    """What :func:`drop_catalogue` would remove (for the confirmation prompt)."""
    table = _table(name)
    with db.engine.connect() as conn:
        rows = _count(conn, sa.select(table))
        n_products = obscore = 0
        if name in LINKED:
            n_products = _count(conn, sa.select(products.c.id).where(_unlinked_after(name)))
            obscore = _count(conn, sa.select(products.c.id).where(_linked(table)).where(
                products.c.product_type.in_(_described())))
        cached = _count(conn, sa.select(search_cache.c.key).where(
            search_cache.c.catalogue == name))
    return DropReport(name, rows, n_products, obscore, cached, len(_moc_files(config, name)))


def _described() -> list[str]:
    from datamodel import obscore as oc
    return sorted(oc.OBSERVABLES)


def drop_catalogue(db, config: dict, name: str) -> DropReport:
    """Empty catalogue ``name`` and remove what derives from it (module docstring)."""
    table = _table(name)
    obscore = ivoa_tables["obscore"]
    authority = str(config.get("IVOID_AUTHORITY", "")).rstrip("/")
    n_products = n_obscore = 0
    with db.engine.begin() as conn:
        changed: set[str] = set()
        if name in LINKED:
            changed = {p for (p,) in conn.execute(
                sa.select(products.c.path).where(_linked(table)))}
            # the time axes of the rows to write again (TIMEDEL only matters for
            # binned types, which is what t_resolution holds), so no file is read
            dids = {publisher_did(authority, p): p for p in changed}
            axes = {dids[did]: (res, xel) for did, res, xel in conn.execute(
                sa.select(obscore.c.obs_publisher_did, obscore.c.t_resolution,
                          obscore.c.t_xel)) if did in dids}
            n_products = conn.execute(products.delete().where(_unlinked_after(name))).rowcount
        rows = conn.execute(table.delete()).rowcount
        if name in LINKED:
            n_obscore = sync_obscore(conn, config, changed, axes=axes).removed
        cached = conn.execute(search_cache.delete().where(
            search_cache.c.catalogue == name)).rowcount
    mocs = _moc_files(config, name)
    for path in mocs:
        path.unlink(missing_ok=True)
    return DropReport(name, rows, n_products, n_obscore, cached, len(mocs))

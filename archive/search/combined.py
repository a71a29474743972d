"""The combined search (no Flask): one position and radius, every positional catalogue.

``parse_combined(args, config, resolve)`` reads ``pos``, ``radius`` and ``unit`` with
the per-catalogue search's own parser (``params.parse``: the same resolver, units
and radius limit), and insists on a position. ``combined(engine, search, ...)``
gives, for each positional catalogue, the number of rows in the cone (one COUNT)
and its nearest rows (one TOP-N query, nearest first, distance in arcsec): both
are ``query.count``/``query.page`` of a cone ``Search``, so they use
``archive.spatial.cone_condition`` and the one executor. The source-centred view
groups the rows of the catalogues with a ``srcid`` column by 3XMM source (one
GROUP BY per catalogue): each source with its count per catalogue and its
smallest distance, nearest first.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import sqlalchemy as sa

import datamodel
from .. import spatial
from ..db import catalogue_tables
from ..query import execute
from ..result import ResultColumn
from .params import Search, parse
from .query import Page, count, page

__all__ = ["FIRST_ROWS", "CONE_PARAMS", "CatalogueHits", "Source", "Combined",
           "parse_combined", "combined"]

#: rows shown per catalogue
FIRST_ROWS = 5
#: the parameters of the combined search
CONE_PARAMS = ("pos", "radius", "unit")
#: counting bound: every row of a cone is counted
_NO_LIMIT = 10 ** 12


class _Args(dict):
    """A plain mapping with the ``getlist`` that ``params.parse`` asks for."""

    def getlist(self, name):
        return [self[name]] if name in self else []


@dataclass
class CatalogueHits:
    table: datamodel.Table
    page: Page

    @property
    def total(self) -> int:
        return self.page.total


@dataclass
class Source:
    srcid: int
    counts: dict = field(default_factory=dict)     # catalogue name -> rows
    distance: float = float("inf")                  # arcsec, nearest row


@dataclass
class Combined:
    search: Search
    catalogues: list[CatalogueHits]
    sources: list[Source]


def parse_combined(args, config, resolve, formats) -> Search:
    """A cone ``Search`` (on the first positional table) of ``pos``/``radius``/
    ``unit``; its ``errors`` name the bad fields. Unknown parameters are errors."""
    given = _Args({k: args.get(k) for k in CONE_PARAMS if args.get(k) is not None})
    given["shape"] = "cone"
    first = datamodel.positional_tables()[0]
    search = parse(first, given, config, resolve, formats)
    search.values = {k: given.get(k) for k in CONE_PARAMS}
    if not search.pos and "pos" not in search.errors:
        search.errors["pos"] = "give a position: a name or coordinates"
    for name in args:
        if name not in CONE_PARAMS:
            search.errors[name] = (f"unknown parameter {name!r}: the combined search "
                                   f"takes pos, radius and unit")
    return search


def _sources(engine, search: Search, *, timeout: float) -> list[Source]:
    found: dict[int, Source] = {}
    for table in datamodel.positional_tables():
        if "srcid" not in {c.name for c in table.columns}:
            continue
        t = catalogue_tables[table.name]
        dist = spatial.distance_expression(t, search.ra, search.dec) * sa.literal(
            3600.0, sa.Double)
        stmt = (sa.select(t.c.srcid, sa.func.count().label("n"),
                          sa.func.min(dist).label("r"))
                .where(spatial.cone_condition(t, search.ra, search.dec, search.radius_deg),
                       t.c.srcid.is_not(None))
                .group_by(t.c.srcid))
        columns = [ResultColumn("srcid", "long", "3XMM source"),
                   ResultColumn("n", "long", "rows"), ResultColumn("r", "double", "arcsec")]
        result = execute(engine, stmt, columns, maxrec=None, timeout=timeout)
        for chunk in result.chunks():
            for srcid, n, r in chunk:
                source = found.setdefault(int(srcid), Source(int(srcid)))
                source.counts[table.name] = int(n)
                source.distance = min(source.distance, float(r))
    return sorted(found.values(), key=lambda s: (s.distance, s.srcid))


def combined(engine, search: Search, *, timeout: float, first: int = FIRST_ROWS) -> Combined:
    """Counts, nearest rows and sources of the cone of ``search`` in every catalogue."""
    hits = []
    for table in datamodel.positional_tables():
        one = replace(search, table=table, errors={}, constraints=[], columns=[],
                      verb=datamodel.VERB_MINIMAL, sort=None, order="asc",
                      maxrec=_NO_LIMIT, page=1, per_page=first)
        total = count(engine, one, timeout=timeout)
        hits.append(CatalogueHits(table, page(engine, one, timeout=timeout, total=total)))
    return Combined(search, hits, _sources(engine, search, timeout=timeout))

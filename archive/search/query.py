"""The statements of a catalogue search, built with SQLAlchemy from the data model,
and run through the one executor (``archive.query.execute``). No Flask.

The area is ``archive.spatial``'s cone or box condition (HEALPix ranges on the
``_hpx`` index AND the exact test); constraints are bound values on the data
model's columns; the distance ``_r`` is ``spatial.distance_expression`` in arcsec.
Rows are ordered by the sort column (NULLs last, both ways) and then by the
table's key, so that pages never overlap. Text is ordered byte-wise (by code point)
on every database, as the result cache (``cache.py``) sorts its pages, so a page is
the same whichever of the two produced it. SQLite's default (BINARY) is byte-wise; so
is PostgreSQL's ``C``/``C.UTF-8``/``POSIX`` collation, the one the archive's
deployment uses. Only when the database or a catalogue text column has another
collation (``en_US``, ICU: ``"b" < "B" < "_c"``) are text terms ordered
``COLLATE "C"``: that order cannot use the column's index (a plain ``ORDER BY key
LIMIT 50 OFFSET 5000`` on 10 million rows: 0.1 s with the index, 7 s without), so it
is paid only where it is needed. ``bytewise_text(engine)`` finds out, once per
database.
"""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

import datamodel
from .. import spatial
from ..db import catalogue_tables
from ..query import execute
from ..result import QueryResult, ResultColumn
from .params import DISTANCE, Search

__all__ = ["result_columns", "statement", "run", "count", "page", "Page", "bytewise_text"]

_DISTANCE_COLUMN = ResultColumn(DISTANCE, "double", unit="arcsec", ucd="pos.angDistance",
                                description="Angular distance from the search position")


def _model_columns(search: Search) -> list[datamodel.Column]:
    table = search.table
    if search.columns:
        return [table.column(n) for n in search.columns]
    cols = list(table.columns_for_verbosity(search.verb))
    principal = [table.role_column(r) for r in ("id", "ra", "dec")]
    return [c for c in principal if c is not None and c not in cols] + cols


def result_columns(search: Search) -> list[ResultColumn]:
    """The columns of the result: ``_r`` first for positional searches."""
    cols = [ResultColumn.of(c) for c in _model_columns(search)]
    return [_DISTANCE_COLUMN, *cols] if search.positional else cols


class _Bytewise(ColumnElement):
    """A text column ordered byte-wise, whatever the database's collation."""

    inherit_cache = True
    _traverse_internals = [("element", InternalTraversal.dp_clauseelement)]

    def __init__(self, element):
        self.element = element
        self.type = element.type


@compiles(_Bytewise)
def _bytewise(element, compiler, **kw):
    return compiler.process(element.element, **kw)


@compiles(_Bytewise, "postgresql")
def _bytewise_postgresql(element, compiler, **kw):
    return compiler.process(element.element, **kw) + ' COLLATE "C"'


_BYTEWISE: dict[str, bool] = {}
_BYTE_ORDER_COLLATIONS = ("C", "POSIX", "C.UTF-8", "C.utf8", "ucs_basic")


def bytewise_text(engine) -> bool:
    """Whether a plain ORDER BY on the catalogue text columns of ``engine``'s database
    is byte-wise already (always on SQLite; on PostgreSQL when the database's default
    collation and every explicit collation of a catalogue column is C-like)."""
    key = engine.url.render_as_string(hide_password=True)
    if key not in _BYTEWISE:
        if engine.dialect.name != "postgresql":
            _BYTEWISE[key] = True
        else:
            with engine.connect() as conn:
                default = conn.execute(sa.text(
                    "SELECT datcollate, datlocprovider FROM pg_database "
                    "WHERE datname = current_database()")).one()
                explicit = conn.execute(sa.text(
                    "SELECT DISTINCT collation_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND collation_name IS NOT NULL "
                    "AND table_name IN :names").bindparams(
                        sa.bindparam("names", expanding=True)),
                    {"names": list(datamodel.TABLES)}).scalars().all()
            _BYTEWISE[key] = (default.datlocprovider == "c"
                              and default.datcollate in _BYTE_ORDER_COLLATIONS
                              and all(c in _BYTE_ORDER_COLLATIONS for c in explicit))
    return _BYTEWISE[key]


def _ordered(col, bytewise: bool):
    """``col`` as an ORDER BY term: text byte-wise (see the module's docstring)."""
    return _Bytewise(col) if isinstance(col.type, sa.String) and not bytewise else col


def _condition(search: Search, t):
    terms = []
    if search.ra is not None and search.shape == "cone" and search.radius_deg is not None:
        terms.append(spatial.cone_condition(t, search.ra, search.dec, search.radius_deg))
    elif search.box is not None:
        terms.append(spatial.box_condition(t, *search.box))
    for c in search.constraints:
        col = t.c[c.column]
        if c.op in ("min", "max"):
            # a bound in the column's own precision: 0.1234567 typed for a single
            # precision (REAL) column is the float32 value the column holds, so rows
            # print as they compare (PostgreSQL would widen the column instead)
            bound = sa.cast(sa.literal(c.value, col.type), col.type)
            terms.append(col >= bound if c.op == "min" else col <= bound)
        elif c.op == "eq":
            terms.append(col == sa.literal(c.value, col.type))
        else:   # text contains, case-insensitive; % and _ in the text are literal
            terms.append(sa.func.lower(col).contains(c.value.lower(), autoescape=True))
    return sa.and_(sa.true(), *terms)


def _base(search: Search):
    """(table, distance expression or None, WHERE condition)."""
    t = catalogue_tables[search.table.name]
    dist = None
    if search.positional:
        dist = spatial.distance_expression(t, search.ra, search.dec) * sa.literal(
            3600.0, sa.Double)
    return t, dist, _condition(search, t)


def statement(search: Search, bytewise: bool = True):
    """The SELECT of the whole (sorted) result, without a row limit; ``bytewise``:
    whether the database orders text byte-wise by itself (``bytewise_text``)."""
    t, dist, condition = _base(search)
    cols = [t.c[c.name] for c in _model_columns(search)]
    if dist is not None:
        cols.insert(0, dist.label(DISTANCE))
    order = []
    sort = search.sort or (DISTANCE if dist is not None else None)
    if sort == DISTANCE:
        order.append(dist.desc() if search.order == "desc" else dist.asc())
    elif sort:
        col = _ordered(t.c[sort], bytewise)
        order.append(sa.nulls_last(col.desc() if search.order == "desc" else col.asc()))
    order += [_ordered(t.c[k], bytewise) for k in search.table.key]
    return sa.select(*cols).where(condition).order_by(*order)


def run(engine, search: Search, *, timeout: float) -> QueryResult:
    """The whole result (at most ``search.maxrec`` rows, overflow flagged), streamed."""
    return execute(engine, statement(search, bytewise_text(engine)), result_columns(search),
                   maxrec=search.maxrec, timeout=timeout)


def count(engine, search: Search, *, timeout: float) -> int:
    """Matching rows, counted up to ``search.maxrec + 1`` (more means truncated)."""
    t, _dist, condition = _base(search)
    inner = sa.select(t.c[search.table.key[0]]).where(condition).limit(
        search.maxrec + 1).subquery()
    stmt = sa.select(sa.func.count().label("n")).select_from(inner)
    result = execute(engine, stmt, [ResultColumn("n", "long", "matching rows")],
                     maxrec=None, timeout=timeout)
    return int(_all_rows(result)[0][0])


@dataclass
class Page:
    """One page of a result: its rows, and where it lies in the whole."""

    columns: list[ResultColumn]
    rows: list[tuple]
    number: int
    per_page: int
    total: int                # matching rows, at most maxrec + 1
    maxrec: int

    @property
    def truncated(self) -> bool:
        return self.total > self.maxrec

    @property
    def shown(self) -> int:
        """Rows of the result that can be paged through."""
        return min(self.total, self.maxrec)

    @property
    def pages(self) -> int:
        return max(1, -(-self.shown // self.per_page))

    @property
    def first(self) -> int:
        return (self.number - 1) * self.per_page + 1


def page(engine, search: Search, *, timeout: float, total: int | None = None) -> Page:
    """Page ``search.page`` of the sorted result (at most ``per_page`` rows);
    ``total``: the matching rows if already counted."""
    if total is None:
        total = count(engine, search, timeout=timeout)
    offset = (search.page - 1) * search.per_page
    size = max(0, min(search.per_page, search.maxrec - offset))
    columns = result_columns(search)
    rows: list[tuple] = []
    if size and offset < total:
        stmt = statement(search, bytewise_text(engine)).offset(offset).limit(size)
        result = execute(engine, stmt, columns,
                         maxrec=None, timeout=timeout)
        rows = _all_rows(result)
    return Page(columns, rows, search.page, search.per_page, total, search.maxrec)


def _all_rows(result: QueryResult) -> list[tuple]:
    return [tuple(r) for chunk in result.chunks() for r in chunk]

"""Cone searches over one catalogue, or over all of them combined (no Flask).

The statement is one short query: the HEALPix ranges of the cone on the ``_hpx``
index AND the exact chord test (``archive.spatial``), ordered by distance. It is
built once per (service, VERB, number of range slots) with bound placeholders
(``prepared_cone``) and runs through the one executor (``archive.query.execute``,
as a ``PreparedStatement`` compiled once per dialect) on the read-only engine;
a request only computes the ranges and binds the values. The result columns come
from the data model at the requested verbosity, with the principal id/RA/Dec
columns carrying the UCD1 forms SCS 1.03 requires (``ID_MAIN``,
``POS_EQ_RA_MAIN``, ``POS_EQ_DEC_MAIN``); every other column keeps its UCD1+ form. A distance column ``_r`` (degrees, nearest first) leads.

``/scs/all`` combines every positional table with a UNION ALL over the columns
they share: ``_r``, ``catalogue`` (the table name), ``id`` (the table's principal
identifier as text), ``ra`` and ``dec``; from VERB=2 also ``obs_id`` and
``srcid`` (null where a table has no such column). Their FIELDs come from the
data model's declarations of those columns (``SHARED_COLUMNS``).

DataLink: ``with_id_field(columns)`` gives the ID_MAIN column a VOTable ``ID``
equal to its name (``ID="extras_id"``) so that a service descriptor
(``<PARAM ... ref="extras_id"/>``) added to ``QueryResult.resources`` can point
at it. astropy names table columns by their ID when there is one, so an ID other
than the name would rename the id column for everyone reading the VOTable with
astropy (pyvo's ``to_table()`` prefers names, astropy's does not).
"""
from __future__ import annotations

from functools import lru_cache

import sqlalchemy as sa

import datamodel
from .. import spatial
from ..db import catalogue_tables
from ..errors import NotFoundFault
from ..prepared import PreparedStatement
from ..query import execute
from ..result import QueryResult, ResultColumn

__all__ = ["ALL", "SCS_UCDS", "SHARED_COLUMNS", "catalogue_names",
           "find_catalogue", "result_columns", "cone_statement", "prepared_cone",
           "cone_search", "with_id_field"]

#: The name of the combined service.
ALL = "all"
#: UCD1 of the principal columns on SCS output, by data-model role.
SCS_UCDS = {"id": "ID_MAIN", "ra": "POS_EQ_RA_MAIN", "dec": "POS_EQ_DEC_MAIN"}

DISTANCE = ResultColumn("_r", "double", unit="deg", ucd="pos.angDistance",
                        description="Angular distance from the centre of the cone")


def with_id_field(columns: list[ResultColumn]) -> list[ResultColumn]:
    """``columns`` with a VOTable ID (its name) on the ID_MAIN column."""
    return [ResultColumn.of(c, field_id=c.name) if c.ucd == "ID_MAIN" else c
            for c in columns]


@lru_cache(maxsize=1)
def _service_names() -> tuple[str, ...]:
    return (*(t.name for t in datamodel.positional_tables()), ALL)


def catalogue_names() -> list[str]:
    """Every cone search service: the positional tables, then ``all``."""
    return list(_service_names())


def find_catalogue(name: str) -> str:
    """The service name for ``name`` (case-insensitive), or NotFoundFault."""
    key = name.lower()
    if key in _service_names():
        return key
    raise NotFoundFault(f"there is no cone search service {name!r}; the services are "
                        f"{', '.join(catalogue_names())}")


def _model_columns(table: datamodel.Table, verb: int) -> list[datamodel.Column]:
    cols = list(table.columns_for_verbosity(verb))
    principal = [table.role_column(r) for r in ("id", "ra", "dec")]
    missing = [c for c in principal if c is not None and c not in cols]
    return missing + cols


def _scs_column(col: datamodel.Field, **changes) -> ResultColumn:
    return ResultColumn.of(col, ucd=SCS_UCDS.get(getattr(col, "role", None), col.ucd),
                           **changes)


def _declared(name: str) -> datamodel.Column:
    """The first declaration of column ``name`` in a positional table."""
    return next(t.column(name) for t in datamodel.positional_tables()
                if name in {c.name for c in t.columns})


def _shared_columns() -> tuple[tuple[int, ResultColumn], ...]:
    """(VERB from which it appears, FIELD) of the columns of ``/scs/all``."""
    first = datamodel.positional_tables()[0]
    return (
        (1, ResultColumn("catalogue", "char", "The catalogue (table) the row comes from",
                         ucd="meta.id;meta.dataset", arraysize="*")),
        (1, _scs_column(first.role_column("id"), name="id", datatype="char", arraysize="*",
                        description="Principal identifier of the row in its catalogue")),
        (1, _scs_column(first.role_column("ra"))),
        (1, _scs_column(first.role_column("dec"))),
        *((2, _scs_column(_declared(name), description=f"{_declared(name).description} "
                                                         "(null if the catalogue has none)"))
          for name in ("obs_id", "srcid")),
    )


#: The columns of the combined service, ``/scs/all``.
SHARED_COLUMNS = _shared_columns()


@lru_cache(maxsize=None)
def _columns(name: str, verb: int) -> tuple[ResultColumn, ...]:
    if name == ALL:
        return (DISTANCE, *(c for v, c in SHARED_COLUMNS if v <= verb))
    table = datamodel.TABLES[name]
    return (DISTANCE, *(_scs_column(c) for c in _model_columns(table, verb)))


def result_columns(name: str, verb: int) -> list[ResultColumn]:
    """The FIELDs of a cone search on service ``name`` at verbosity ``verb``."""
    return list(_columns(name, verb))


def _table_select(table: datamodel.Table, verb: int, distance, condition):
    t = catalogue_tables[table.name]
    dist = distance(t).label("_r")
    cols = [t.c[c.name] for c in _model_columns(table, verb)]
    key = [t.c[k] for k in table.key]
    return sa.select(dist, *cols).where(condition(t)).order_by(dist, *key)


def _all_select(verb: int, distance, condition):
    parts = []
    for table in datamodel.positional_tables():
        t = catalogue_tables[table.name]
        cols = [distance(t).label("_r"),
                sa.literal(table.name, sa.String).label("catalogue"),
                sa.cast(t.c[table.role_column("id").name], sa.String).label("id"),
                t.c[table.role_column("ra").name].label("ra"),
                t.c[table.role_column("dec").name].label("dec")]
        if verb >= 2:
            names = {c.name for c in table.columns}
            cols.append(t.c.obs_id.label("obs_id") if "obs_id" in names
                        else sa.cast(sa.null(), sa.String).label("obs_id"))
            cols.append(t.c.srcid.label("srcid") if "srcid" in names
                        else sa.cast(sa.null(), sa.BigInteger).label("srcid"))
        parts.append(sa.select(*cols).where(condition(t)))
    union = sa.union_all(*parts).subquery("cone")
    return sa.select(*union.c).order_by(union.c._r, union.c.catalogue, union.c.id)


def _select(name: str, verb: int, distance, condition):
    if name == ALL:
        return _all_select(verb, distance, condition)
    return _table_select(datamodel.TABLES[name], verb, distance, condition)


def cone_statement(name: str, ra: float, dec: float, sr: float, verb: int):
    """The SELECT of a cone search on service ``name`` (a table name or ``all``),
    with the values bound in (for showing or running one cone; the service runs
    ``prepared_cone``)."""
    return _select(name, verb, lambda t: spatial.distance_expression(t, ra, dec),
                   lambda t: spatial.cone_condition(t, ra, dec, sr))


@lru_cache(maxsize=None)
def prepared_cone(name: str, verb: int, slots: int) -> PreparedStatement:
    """The cone search SELECT of service ``name`` with placeholders for ``slots``
    HEALPix ranges, the centre and the radius (``spatial.bound_cone_condition``),
    built once per (service, VERB, slots) and compiled once per database dialect.
    Values come from ``spatial.cone_parameters``."""
    return PreparedStatement(_select(name, verb, spatial.bound_distance_expression,
                                     lambda t: spatial.bound_cone_condition(t, slots)))


def cone_search(engine, name: str, ra: float, dec: float, sr: float, *, verb: int = 2,
                maxrec: int | None, timeout: float,
                columns: list[ResultColumn] | None = None) -> QueryResult:
    """Run a cone search and return the streaming QueryResult.

    ``sr == 0`` answers an empty table with every FIELD without touching the
    database: SCS clients (pyvo's ``SCSService.columns``) send RA=0&DEC=0&SR=0 to
    learn the columns. ``columns`` defaults to ``result_columns(name, verb)``.
    """
    if columns is None:
        columns = result_columns(name, verb)
    slots, values = (0, None) if sr == 0 else spatial.cone_parameters(ra, dec, sr)
    if not slots:
        return QueryResult.empty(columns, maxrec=maxrec)
    return execute(engine, prepared_cone(name, verb, slots), columns,
                   maxrec=maxrec, timeout=timeout, params=values)

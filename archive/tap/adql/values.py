"""Typed values of the translator: an SQL expression plus what ADQL knows about it."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from archive.result import ResultColumn

__all__ = ["Value", "NOCONST", "INTEGERS", "FLOATS", "NUMERIC", "sa_type", "as_double",
           "as_number", "numeric_result", "literal"]

NOCONST = object()

INTEGERS = frozenset(("short", "int", "long"))
FLOATS = frozenset(("float", "double"))
NUMERIC = INTEGERS | FLOATS | {"boolean", "null"}

_SA_TYPES = {"short": sa.SmallInteger, "int": sa.Integer, "long": sa.BigInteger,
             "float": sa.Double, "double": sa.Double, "char": sa.String,
             "boolean": sa.Boolean}


def sa_type(datatype: str):
    return _SA_TYPES.get(datatype, sa.Double)()


@dataclass
class Value:
    """One translated expression.

    ``datatype`` is a VOTable datatype, ``"condition"`` for a search condition,
    ``"geometry"`` for a POINT/CIRCLE/BOX/POLYGON (``geom``), or ``"null"``.
    ``meta`` is the full column description for plain column references (and what
    flows through subqueries); ``const`` the Python value of constant expressions;
    ``predicate`` the boolean condition behind CONTAINS/INTERSECTS (whose ``sql``
    is the 1/0 integer); ``distance`` the two points of a DISTANCE.
    """

    sql: Any = None
    datatype: str = "double"
    arraysize: str | None = None
    meta: ResultColumn | None = None
    name: str = "expr"
    const: Any = NOCONST
    aggregate: bool = False
    geom: Any = None
    predicate: Any = None
    distance: Any = None
    source: Any = None          # (Source, column name) for plain column references
    node: Any = None            # the syntax tree node (positions in errors)

    @property
    def is_const(self) -> bool:
        return self.const is not NOCONST

    def with_(self, **kw) -> "Value":
        return replace(self, **kw)

    def result_column(self, name: str) -> ResultColumn:
        if self.meta is not None:
            return replace(self.meta, name=name, field_id=None)
        datatype = self.datatype if self.datatype in _SA_TYPES else "double"
        arraysize = self.arraysize if datatype == "char" else None
        if datatype == "char" and not arraysize:
            arraysize = "*"
        return ResultColumn(name, datatype, arraysize=arraysize)


def as_double(v: Value):
    """The SQL of a numeric value, cast to double precision unless already floating."""
    if v.datatype in FLOATS:
        return v.sql
    return sa.cast(v.sql, sa.Double)


def as_number(v: Value):
    """The SQL of a numeric value; booleans become 0/1 integers (PostgreSQL needs the cast)."""
    if v.datatype == "boolean":
        return sa.cast(v.sql, sa.Integer)
    return v.sql


def numeric_result(*values: Value) -> str:
    """The datatype of arithmetic on ``values``: long for integers, double otherwise."""
    if all(v.datatype in INTEGERS or v.datatype == "boolean" for v in values):
        return "long"
    return "double"


def literal(value, datatype: str, node=None) -> Value:
    sql = sa.null() if value is None else sa.literal(value, sa_type(datatype))
    return Value(sql, datatype, const=value, node=node,
                 arraysize="*" if datatype == "char" else None)

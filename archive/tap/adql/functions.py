"""The ADQL 2.1 function table: every function a query may call, and its SQL.

``FUNCTIONS`` is the one table that validation and translation use: each entry knows
its arity, its kind (math, trig, string, conditional, geometry, aggregate) and how to
build it for SQLite and PostgreSQL. The math, string and conditional functions and
the aggregates are written here, the geometry functions in ``geometry.py``. Anything
not in the table is not ADQL and is refused (``sqlite_version()``, ``pg_sleep()``,
``load_extension()`` ...).

Dialect notes: ADQL ``LOG`` is the natural logarithm (``ln`` in both databases);
PostgreSQL's ``round``/``trunc`` with digits and ``mod`` on non-integers need
``numeric``, cast back to double; SQLite has no ``cot`` (1/tan). SQLite's math
functions are built in from 3.35 when compiled in; otherwise ``sqlite_functions``
registers Python ones on every connection.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import sqlalchemy as sa

from archive.result import ResultColumn

from . import geometry as geo
from .errors import (ADQLValidationError, ArgumentCountError, UnknownFunctionError,
                     UnsupportedError, at)
from .values import (FLOATS, INTEGERS, NOCONST, NUMERIC, Value, as_double, as_number,
                     sa_type)

__all__ = ["Function", "FUNCTIONS", "KINDS", "UNSUPPORTED", "lookup"]

#: The kinds of function: geometry functions take geometries as arguments, aggregates
#: are built with their DISTINCT quantifier; the others take values.
KINDS = ("math", "trig", "string", "conditional", "geometry", "aggregate")


@dataclass(frozen=True)
class Function:
    """One ADQL function.

    ``build(ctx, args, node) -> Value`` gets the translator (``ctx.dialect``), the
    translated arguments and the call's syntax node; aggregate builders also take
    ``distinct``.
    """

    name: str
    min_args: int
    max_args: int
    build: Callable
    kind: str = "math"

    def check_arity(self, n: int, node=None) -> None:
        """Raise ArgumentCountError unless the function takes ``n`` arguments."""
        lo, hi = self.min_args, self.max_args
        if not lo <= n <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}" if hi < 999 else f"at least {lo}"
            raise ArgumentCountError(f"{self.name} takes {want} argument"
                                     f"{'s' if want != '1' else ''}, not {n}", **at(node))


def _need_numeric(ctx, name, args, node):
    for i, a in enumerate(args):
        if a.datatype not in NUMERIC:
            raise ADQLValidationError(
                f"argument {i + 1} of {name} must be numeric, not {a.datatype}",
                **at(a.node or node))


def _fold(py, args):
    if all(a.is_const for a in args):
        if any(a.const is None for a in args):
            return None
        try:
            return float(py(*[a.const for a in args]))
        except (ValueError, ZeroDivisionError, OverflowError, TypeError):
            return NOCONST
    return NOCONST


def _agg(args):
    return any(a.aggregate for a in args)


def _unary(sql_name: str, py, pg_name: str | None = None):
    def build(ctx, args, node):
        name = pg_name if (pg_name and ctx.dialect == "postgresql") else sql_name
        _need_numeric(ctx, node_name(node), args, node)
        return Value(getattr(sa.func, name)(as_double(args[0])), "double",
                     const=_fold(py, args), aggregate=_agg(args), node=node)
    return build


def node_name(node) -> str:
    try:
        return str(node.children[0].children[0]).upper()
    except (AttributeError, IndexError):
        return "function"


def _abs(ctx, args, node):
    _need_numeric(ctx, "ABS", args, node)
    a = args[0]
    dt = "long" if a.datatype in INTEGERS | {"boolean"} else "double"
    return Value(sa.func.abs(as_number(a)), dt, const=_fold(abs, args), aggregate=_agg(args),
                 node=node)


def _atan2(ctx, args, node):
    _need_numeric(ctx, "ATAN2", args, node)
    return Value(sa.func.atan2(as_double(args[0]), as_double(args[1])), "double",
                 const=_fold(math.atan2, args), aggregate=_agg(args), node=node)


def _cot(ctx, args, node):
    _need_numeric(ctx, "COT", args, node)
    x = as_double(args[0])
    sql = sa.func.cot(x) if ctx.dialect == "postgresql" else 1.0 / sa.func.tan(x)
    return Value(sql, "double", const=_fold(lambda v: 1 / math.tan(v), args),
                 aggregate=_agg(args), node=node)


def _log10(ctx, args, node):
    _need_numeric(ctx, "LOG10", args, node)
    x = as_double(args[0])
    sql = sa.func.log(x) if ctx.dialect == "postgresql" else sa.func.log10(x)
    return Value(sql, "double", const=_fold(math.log10, args), aggregate=_agg(args), node=node)


def _mod(ctx, args, node):
    _need_numeric(ctx, "MOD", args, node)
    a, b = args
    if all(v.datatype in INTEGERS | {"boolean"} for v in args):
        sql = (sa.func.mod(as_number(a), as_number(b)) if ctx.dialect == "postgresql"
               else as_number(a).op("%")(as_number(b)))
        return Value(sql, "long", const=_fold(math.fmod, args), aggregate=_agg(args),
                     node=node)
    if ctx.dialect == "postgresql":
        sql = sa.cast(sa.func.mod(sa.cast(a.sql, sa.Numeric), sa.cast(b.sql, sa.Numeric)),
                      sa.Double)
    else:
        sql = sa.func.mod(as_double(a), as_double(b))
    return Value(sql, "double", const=_fold(math.fmod, args), aggregate=_agg(args), node=node)


def _pi(ctx, args, node):
    return Value(sa.func.pi(), "double", const=math.pi, node=node)


def _power(ctx, args, node):
    _need_numeric(ctx, "POWER", args, node)
    return Value(sa.func.power(as_double(args[0]), as_double(args[1])), "double",
                 const=_fold(math.pow, args), aggregate=_agg(args), node=node)


def _rand(ctx, args, node):
    if args:
        raise UnsupportedError("RAND with a seed is not supported by this service; use RAND()",
                               **at(node))
    if ctx.dialect == "postgresql":
        sql = sa.func.random()
    else:   # random() is a 64-bit signed integer in SQLite: map it to [0, 1)
        sql = sa.func.random() / 18446744073709551616.0 + 0.5
    return Value(sql, "double", node=node)


#: Largest number of digits (either way) of ROUND and TRUNCATE.
MAX_DIGITS = 300


def _digits(name, args, node) -> int:
    if len(args) < 2:
        return 0
    d = args[1]
    if not d.is_const or not isinstance(d.const, (int, float)) or not math.isfinite(d.const) \
            or int(d.const) != d.const:
        raise ADQLValidationError(f"the second argument of {name} must be a constant integer",
                                  **at(d.node or node))
    if abs(d.const) > MAX_DIGITS:
        # a double has no digits beyond these (1e-308 .. 1.8e308), and 10**n would overflow
        raise ADQLValidationError(f"the number of digits of {name} must be between "
                                  f"-{MAX_DIGITS} and {MAX_DIGITS}, not {int(d.const)}",
                                  **at(d.node or node))
    return int(d.const)


def _round(ctx, args, node):
    _need_numeric(ctx, "ROUND", args, node)
    n = _digits("ROUND", args, node)
    x = args[0]
    scale = 10.0 ** -n if n < 0 else None
    base = Value(x.sql / scale, "double") if scale else x

    def rnd(v, digits):
        if ctx.dialect == "postgresql":
            return sa.cast(sa.func.round(sa.cast(v.sql, sa.Numeric), digits), sa.Double)
        return sa.func.round(as_double(v), digits)
    sql = rnd(base, max(n, 0))
    if scale:
        sql = sql * scale

    def py(v, *_):   # half away from zero, as both databases do
        q = 10.0 ** n
        return math.copysign(math.floor(abs(v) * q + 0.5), v) / q
    return Value(sql, "double", const=_fold(py, args[:1]), aggregate=_agg(args), node=node)


def _truncate(ctx, args, node):
    _need_numeric(ctx, "TRUNCATE", args, node)
    n = _digits("TRUNCATE", args, node)
    x = args[0]
    if ctx.dialect == "postgresql":
        sql = sa.cast(sa.func.trunc(sa.cast(x.sql, sa.Numeric), n), sa.Double)
    else:
        x_sql = as_double(x)
        if n > 15:      # x * 10^n could overflow; below a double's resolution anyway
            sql = x_sql - sa.func.mod(x_sql, 10.0 ** -n)
        else:
            q = 10.0 ** n
            sql = sa.func.trunc(x_sql * q) / q
            if n >= 0:  # from 2^52 on a double is an integer: nothing to cut (no overflow)
                sql = sa.case((sa.func.abs(x_sql) >= 4503599627370496.0, x_sql), else_=sql)
    return Value(sql, "double",
                 const=_fold(lambda v: math.trunc(v * 10.0 ** n) / 10.0 ** n, args[:1]),
                 aggregate=_agg(args), node=node)


def _case_fold(fn):
    def build(ctx, args, node):
        a = args[0]
        if a.datatype not in ("char", "null"):
            raise ADQLValidationError(f"{fn.upper()} needs a string argument, not {a.datatype}",
                                      **at(a.node or node))
        const = getattr(a.const, fn)() if isinstance(a.const, str) else NOCONST
        return Value(getattr(sa.func, fn)(a.sql), "char", a.arraysize or "*", const=const,
                     aggregate=_agg(args), node=node)
    return build


def _coalesce(ctx, args, node):
    types = {a.datatype for a in args} - {"null"}
    if "geometry" in types or "condition" in types:
        raise ADQLValidationError("COALESCE takes values, not geometries or conditions",
                                  **at(node))
    if types and types <= {"char"}:
        dt = "char"
    elif types and types <= INTEGERS | {"boolean"}:
        dt = "long"
    elif types <= NUMERIC:
        dt = "double" if types else "null"
    else:
        raise ADQLValidationError("COALESCE cannot mix strings and numbers", **at(node))
    meta = args[0].meta if len({(a.meta.unit if a.meta else None) for a in args}) == 1 else None
    sqls = [as_number(a) if dt != "char" else a.sql for a in args]
    val = Value(sa.func.coalesce(*sqls), dt, "*" if dt == "char" else None,
                aggregate=_agg(args), node=node)
    if meta is not None and meta.datatype == dt:
        val.meta = meta
    return val


def _aggregate(name: str):
    """COUNT, AVG, MIN, MAX or SUM of one value; MIN/MAX keep the column's unit and
    datatype, AVG/SUM of a column with a unit keep the unit."""
    lname = name.lower()

    def build(ctx, args, node, distinct=False):
        v = args[0]
        if v.aggregate:
            raise ADQLValidationError("aggregate functions cannot be nested", **at(node))
        if name == "COUNT":
            arg = sa.distinct(v.sql) if distinct else v.sql
            return Value(sa.func.count(arg), "long", aggregate=True, name=lname)
        if v.datatype not in NUMERIC and name in ("AVG", "SUM"):
            raise ADQLValidationError(f"{name} needs a numeric argument", **at(node))
        unit_meta = v.meta
        if name in ("MIN", "MAX"):
            meta = replace(unit_meta, name=lname, ucd=None) if unit_meta else None
            dt = v.datatype if v.datatype != "null" else "double"
            sql = getattr(sa.func, lname)(as_number(v) if dt != "boolean" else v.sql)
            if dt == "boolean":
                sql = getattr(sa.func, lname)(sa.cast(v.sql, sa.Integer))
                dt, meta = "short", None
            return Value(sa.type_coerce(sql, sa_type(dt)), dt, v.arraysize, meta=meta,
                         aggregate=True, name=lname)
        if name == "AVG":
            sql = sa.cast(sa.func.avg(as_double(v) if v.datatype not in FLOATS else v.sql),
                          sa.Double)
            dt = "double"
        elif v.datatype in INTEGERS | {"boolean"}:      # SUM
            sql, dt = sa.cast(sa.func.sum(as_number(v)), sa.BigInteger), "long"
        else:
            sql, dt = sa.cast(sa.func.sum(as_double(v)), sa.Double), "double"
        if distinct:
            inner = as_number(v) if dt == "long" else as_double(v)
            sql = sa.cast(getattr(sa.func, lname)(sa.distinct(inner)),
                          sa.BigInteger if dt == "long" else sa.Double)
        meta = None
        if unit_meta is not None and unit_meta.unit:
            meta = ResultColumn(lname, dt, unit=unit_meta.unit)
        return Value(sql, dt, meta=meta, aggregate=True, name=lname)
    return build


FUNCTIONS: dict[str, Function] = {f.name: f for f in [
    Function("ABS", 1, 1, _abs),
    Function("CEILING", 1, 1, _unary("ceil", math.ceil)),
    Function("DEGREES", 1, 1, _unary("degrees", math.degrees)),
    Function("EXP", 1, 1, _unary("exp", math.exp)),
    Function("FLOOR", 1, 1, _unary("floor", math.floor)),
    Function("LOG", 1, 1, _unary("ln", math.log)),
    Function("LOG10", 1, 1, _log10),
    Function("MOD", 2, 2, _mod),
    Function("PI", 0, 0, _pi),
    Function("POWER", 2, 2, _power),
    Function("RADIANS", 1, 1, _unary("radians", math.radians)),
    Function("RAND", 0, 1, _rand),
    Function("ROUND", 1, 2, _round),
    Function("SQRT", 1, 1, _unary("sqrt", math.sqrt)),
    Function("TRUNCATE", 1, 2, _truncate),
    Function("ACOS", 1, 1, _unary("acos", math.acos), "trig"),
    Function("ASIN", 1, 1, _unary("asin", math.asin), "trig"),
    Function("ATAN", 1, 1, _unary("atan", math.atan), "trig"),
    Function("ATAN2", 2, 2, _atan2, "trig"),
    Function("COS", 1, 1, _unary("cos", math.cos), "trig"),
    Function("COT", 1, 1, _cot, "trig"),
    Function("SIN", 1, 1, _unary("sin", math.sin), "trig"),
    Function("TAN", 1, 1, _unary("tan", math.tan), "trig"),
    Function("LOWER", 1, 1, _case_fold("lower"), "string"),
    Function("UPPER", 1, 1, _case_fold("upper"), "string"),
    Function("COALESCE", 1, 64, _coalesce, "conditional"),
    Function("POINT", 2, 3, geo.build_point, "geometry"),
    Function("CIRCLE", 2, 4, geo.build_circle, "geometry"),
    Function("BOX", 3, 5, geo.build_box, "geometry"),
    Function("POLYGON", 3, 999, geo.build_polygon, "geometry"),
    Function("CONTAINS", 2, 2, geo.build_contains, "geometry"),
    Function("INTERSECTS", 2, 2, geo.build_intersects, "geometry"),
    Function("DISTANCE", 2, 4, geo.build_distance, "geometry"),
    Function("COORD1", 1, 1, geo.build_coord(1), "geometry"),
    Function("COORD2", 1, 1, geo.build_coord(2), "geometry"),
    Function("AREA", 1, 1, geo.build_area, "geometry"),
    Function("COORDSYS", 1, 1, geo.build_coordsys, "geometry"),
    Function("CENTROID", 1, 1, geo.build_centroid, "geometry"),
    *[Function(name, 1, 1, _aggregate(name), "aggregate")
      for name in ("COUNT", "AVG", "MIN", "MAX", "SUM")],
]}

#: ADQL functions this service does not implement (a clear refusal, not "unknown").
UNSUPPORTED = {"IN_UNIT": "IN_UNIT (unit conversion) is not supported by this service",
               "REGION": "REGION (STC-S strings) is not supported by this service"}

_KNOWN = ", ".join(sorted(FUNCTIONS))


def lookup(name: str, node=None) -> Function:
    """The function called ``name`` (upper case); UnsupportedError for ADQL functions
    this service does not implement, UnknownFunctionError for anything else."""
    f = FUNCTIONS.get(name)
    if f is not None:
        return f
    if name in UNSUPPORTED:
        raise UnsupportedError(UNSUPPORTED[name], **at(node))
    raise UnknownFunctionError(f"unknown function {name.lower()!r}; ADQL functions are "
                               f"{_KNOWN}", **at(node))

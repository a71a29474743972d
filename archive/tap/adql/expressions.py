"""Expressions: conditions, comparisons, arithmetic, CASE, CAST, literals, LIKE/IN/BETWEEN.

Each grammar rule ``r`` of an expression is translated by the method ``x_r`` and gives
a typed ``Value``; ``expr`` dispatches on the rule name. Conditions and values share
one precedence ladder in the grammar, so the checks that a condition stands where a
condition is expected (and a value where a value is) are made here.
"""
from __future__ import annotations

import math

import sqlalchemy as sa
from lark import Token, Tree
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import ColumnElement

from . import geometry as geo
from .errors import ADQLValidationError, UnknownColumnError, UnsupportedError
from .scopes import Scope
from .values import (FLOATS, INTEGERS, NOCONST, NUMERIC, Value, as_double, as_number,
                     literal, numeric_result, sa_type)

__all__ = ["ExpressionsMixin"]

#: AND/OR operands nested flat in one group; longer chains become balanced groups of
#: groups, so that SQLite (which parses "a OR b OR c ..." one level per operand, at
#: most 1000 deep) and SQLAlchemy's recursive compiler see a shallow tree.
_GROUP = 64


class _Parenthesised(ColumnElement):
    """A condition in parentheses that sa.and_/sa.or_ do not flatten into their own
    operand list (they unwrap their own Grouping)."""

    inherit_cache = True
    _traverse_internals = [("element", visitors.InternalTraversal.dp_clauseelement)]

    def __init__(self, element):
        self.element = element
        self.type = sa.Boolean()


@compiles(_Parenthesised)
def _compile_parenthesised(element, compiler, **kw):
    return "(" + compiler.process(element.element, **kw) + ")"


def _balanced(fn, parts: list):
    """``fn(*parts)`` (sa.and_ or sa.or_) as a tree of parenthesised groups of at most
    ``_GROUP`` operands: depth about 64 * log64(n) instead of n."""
    while len(parts) > _GROUP:
        parts = [_Parenthesised(fn(*parts[i:i + _GROUP])) for i in range(0, len(parts), _GROUP)]
    return fn(*parts)

_NUMERIC_CASTS = {"SMALLINT": ("short", sa.SmallInteger), "INTEGER": ("int", sa.Integer),
                  "BIGINT": ("long", sa.BigInteger), "REAL": ("float", sa.REAL),
                  "DOUBLE": ("double", sa.Double)}


class ExpressionsMixin:
    """Value expressions and search conditions (mixed into the Translator)."""

    def condition(self, node, scope: Scope, where: str) -> Value:
        v = self.expr(node, scope)
        if v.datatype == "condition":
            return v
        if v.predicate is not None:            # bare CONTAINS(...)/INTERSECTS(...)
            return Value(v.predicate, "condition", node=node, aggregate=v.aggregate)
        raise self.error(ADQLValidationError,
                         f"{where} needs a condition (such as a comparison), not a value", node)

    def value(self, node, scope: Scope, where: str) -> Value:
        v = self.expr(node, scope)
        if v.datatype == "condition":
            raise self.error(ADQLValidationError,
                             f"a condition cannot be used as a value in {where}", node)
        if v.datatype == "geometry":
            raise self.error(UnsupportedError,
                             f"a geometry ({v.name.upper()}) cannot be used as a value in "
                             f"{where}; select its coordinates with COORD1/COORD2, or "
                             "the columns themselves", node)
        return v

    def expr(self, node, scope: Scope) -> Value:
        if isinstance(node, Token):
            raise self.error(ADQLValidationError, f"unexpected {str(node)!r}", node)
        method = getattr(self, "x_" + node.data.rstrip("_"), None)
        if method is None:
            raise self.error(ADQLValidationError, f"unsupported construct {node.data}", node)
        v = method(node, scope)
        if v.node is None:
            v.node = node
        return v

    def _operand(self, node, scope: Scope, what="value") -> Value:
        v = self.expr(node, scope)
        if v.datatype == "condition":
            raise self.error(ADQLValidationError, f"a condition cannot be used as a {what}", node)
        if v.datatype == "geometry":
            raise self.error(ADQLValidationError,
                             f"a geometry ({v.name.upper()}) cannot be used as a {what}", node)
        return v

    def _cond(self, node, scope) -> Value:
        return self.condition(node, scope, "this operator")

    def x_or(self, node, scope):
        parts = [self._cond(c, scope) for c in node.children if isinstance(c, Tree)]
        return Value(_balanced(sa.or_, [p.sql for p in parts]), "condition",
                     aggregate=any(p.aggregate for p in parts))

    def x_and(self, node, scope):
        parts = [self._cond(c, scope) for c in node.children if isinstance(c, Tree)]
        return Value(_balanced(sa.and_, [p.sql for p in parts]), "condition",
                     aggregate=any(p.aggregate for p in parts))

    def x_not(self, node, scope):
        p = self._cond(node.children[-1], scope)
        return Value(sa.not_(p.sql), "condition", aggregate=p.aggregate)

    def _comparable(self, a: Value, b: Value, node):
        ta, tb = a.datatype, b.datatype
        if "null" in (ta, tb):
            # ADQL 2.1 has no NULL value expression (NULL appears only in IS [NOT]
            # NULL); a comparison with NULL is never true in SQL: refuse it
            raise self.error(ADQLValidationError,
                             "NULL cannot be compared (with =, <>, <, >, IN, BETWEEN or "
                             "CASE ... WHEN): such a comparison is never true; use "
                             "IS NULL or IS NOT NULL", node)
        if (ta == "char") != (tb == "char"):
            raise self.error(ADQLValidationError,
                             f"cannot compare a string with a number ({ta} and {tb})", node)
        if ta == "char":
            return a.sql, b.sql
        if ta == "boolean" and tb == "boolean":
            return a.sql, b.sql
        return as_number(a), as_number(b)

    def x_comparison(self, node, scope):
        lnode, op, rnode = node.children
        op = {"!=": "<>"}.get(str(op), str(op))
        a, b = self.expr(lnode, scope), self.expr(rnode, scope)
        special = self._geometry_comparison(a, op, b, node)
        if special is not None:
            return special
        a, b = self._plain(a, lnode), self._plain(b, rnode)
        x, y = self._comparable(a, b, node)
        ops = {"=": x == y, "<>": x != y, "<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}
        return Value(ops[op], "condition", aggregate=a.aggregate or b.aggregate)

    def _plain(self, v, node):
        if v.datatype in ("condition", "geometry"):
            raise self.error(ADQLValidationError,
                             f"a {'condition' if v.datatype == 'condition' else 'geometry'} "
                             "cannot be compared", node)
        return v

    def _geometry_comparison(self, a, op, b, node):
        """CONTAINS(...) = 1 as a plain condition; DISTANCE(...) < r with the index."""
        for pred, other, flipped in ((a, b, False), (b, a, True)):
            if pred.predicate is not None and other.is_const and op in ("=", "<>") \
                    and other.const in (0, 1):
                positive = (other.const == 1) == (op == "=")
                cond = pred.predicate if positive else sa.not_(pred.predicate)
                return Value(cond, "condition")
        for dist, other, flipped in ((a, b, False), (b, a, True)):
            if dist.distance is None or other.datatype not in NUMERIC:
                continue
            eff = op
            if flipped:
                eff = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(op, op)
            if eff in ("<", "<="):
                p1, p2 = dist.distance
                return Value(geo.distance_condition(self, p1, p2, other), "condition",
                             aggregate=other.aggregate)
        return None

    def x_between(self, node, scope):
        trees = [c for c in node.children if isinstance(c, Tree)]
        neg = any(isinstance(c, Token) and c.type == "NOT" for c in node.children)
        v, lo, hi = [self._plain(self._operand(t, scope), t) for t in trees]
        x, lo_sql = self._comparable(v, lo, node)
        _, hi_sql = self._comparable(v, hi, node)
        cond = x.between(lo_sql, hi_sql)
        return Value(sa.not_(cond) if neg else cond, "condition",
                     aggregate=v.aggregate or lo.aggregate or hi.aggregate)

    def x_in_list(self, node, scope):
        trees = [c for c in node.children if isinstance(c, Tree)]
        neg = any(isinstance(c, Token) and c.type == "NOT" for c in node.children)
        v = self._operand(trees[0], scope)
        items = [self._operand(t, scope) for t in trees[1:]]
        x = None
        sqls = []
        for it in items:
            x, y = self._comparable(v, it, node)
            sqls.append(y)
        cond = x.in_(sqls) if not neg else x.not_in(sqls)
        return Value(cond, "condition", aggregate=v.aggregate)

    def x_in_subquery(self, node, scope):
        trees = [c for c in node.children if isinstance(c, Tree)]
        neg = any(isinstance(c, Token) and c.type == "NOT" for c in node.children)
        v = self._operand(trees[0], scope)
        query = self.select_expression(trees[1].children[0], scope)
        if len(query.outputs) != 1:
            raise self.error(ADQLValidationError, f"the subquery of IN must select one column, "
                             f"not {len(query.outputs)}", trees[1])
        cond = v.sql.in_(query.stmt) if not neg else v.sql.not_in(query.stmt)
        return Value(cond, "condition", aggregate=v.aggregate)

    def _like(self, node, scope, insensitive):
        trees = [c for c in node.children if isinstance(c, Tree)]
        neg = any(isinstance(c, Token) and c.type == "NOT" for c in node.children)
        v, p = self._operand(trees[0], scope), self._operand(trees[1], scope)
        for x, t in ((v, trees[0]), (p, trees[1])):
            if x.datatype == "null":
                self._comparable(v, p, node)           # the NULL comparison error
            if x.datatype not in ("char", "null"):
                raise self.error(ADQLValidationError,
                                 f"LIKE compares strings; this is {x.datatype}", t)
        if insensitive:
            cond = (v.sql.ilike(p.sql) if self.dialect == "postgresql"
                    else v.sql.like(p.sql))     # SQLite LIKE is case-insensitive (ASCII)
        elif self.dialect == "postgresql":
            cond = v.sql.like(p.sql)
        else:                                   # SQLite LIKE ignores case: use GLOB
            cond = v.sql.op("GLOB", is_comparison=True)(self._glob_pattern(p))
        return Value(sa.not_(cond) if neg else cond, "condition",
                     aggregate=v.aggregate or p.aggregate)

    @staticmethod
    def _glob_pattern(p: Value):
        if p.is_const and isinstance(p.const, str):
            out = []
            for ch in p.const:
                out.append({"%": "*", "_": "?", "*": "[*]", "?": "[?]", "[": "[[]"}.get(ch, ch))
            return sa.literal("".join(out), sa.String)
        sql = p.sql
        for old, new in (("[", "[[]"), ("*", "[*]"), ("?", "[?]"), ("%", "*"), ("_", "?")):
            sql = sa.func.replace(sql, old, new)
        return sql

    def x_like(self, node, scope):
        return self._like(node, scope, False)

    def x_ilike(self, node, scope):
        return self._like(node, scope, True)

    def x_is_null(self, node, scope):
        v = self._operand(node.children[0], scope)
        neg = any(isinstance(c, Token) and c.type == "NOT" for c in node.children)
        return Value(v.sql.is_not(None) if neg else v.sql.is_(None), "condition",
                     aggregate=v.aggregate)

    def x_exists(self, node, scope):
        query = self.select_expression(node.children[-1].children[0], scope)
        return Value(sa.exists(query.stmt), "condition")

    def x_scalar_subquery(self, node, scope):
        query = self.select_expression(node.children[0].children[0], scope)
        if len(query.outputs) != 1:
            raise self.error(ADQLValidationError,
                             f"a subquery used as a value must select one column, not "
                             f"{len(query.outputs)}", node)
        col = query.outputs[0][1]
        return Value(query.stmt.scalar_subquery(), col.datatype, col.arraysize, meta=col,
                     name=col.name)

    def x_concatenation(self, node, scope):
        parts = [self._operand(c, scope) for c in node.children if isinstance(c, Tree)]
        sql = parts[0].sql
        for p in parts[1:]:
            sql = sql.op("||")(p.sql)
        const = NOCONST
        if all(p.is_const and isinstance(p.const, str) for p in parts):
            const = "".join(p.const for p in parts)
        return Value(sa.type_coerce(sql, sa.String), "char", "*", const=const,
                     aggregate=any(p.aggregate for p in parts))

    def x_arith(self, node, scope):
        kids = node.children
        acc = self._operand(kids[0], scope, "number")
        self._numeric(acc, kids[0])
        for i in range(1, len(kids), 2):
            op, rnode = str(kids[i]), kids[i + 1]
            rhs = self._operand(rnode, scope, "number")
            self._numeric(rhs, rnode)
            acc = self._binary(acc, op, rhs)
        return acc

    def _numeric(self, v, node):
        if v.datatype not in NUMERIC:
            raise self.error(ADQLValidationError,
                             f"arithmetic needs numbers; this is {v.datatype}", node)

    def _binary(self, a: Value, op: str, b: Value) -> Value:
        const = NOCONST
        if a.is_const and b.is_const:
            try:
                if a.const is None or b.const is None:
                    const = None
                else:
                    const = {"+": lambda x, y: x + y, "-": lambda x, y: x - y,
                             "*": lambda x, y: x * y, "/": lambda x, y: x / y}[op](
                        a.const, b.const)
                    if op == "/":
                        const = float(const)
            except ZeroDivisionError:
                const = NOCONST
        agg = a.aggregate or b.aggregate
        if op == "/":   # always true division: ADQL does not say; integer division surprises
            return Value(as_double(a) / as_double(b), "double", const=const, aggregate=agg)
        dt = numeric_result(a, b)
        x, y = as_number(a), as_number(b)
        sql = {"+": x + y, "-": x - y, "*": x * y}[op]
        return Value(sa.type_coerce(sql, sa_type(dt)), dt, const=const, aggregate=agg)

    def x_signed(self, node, scope):
        op, inner = node.children
        v = self._operand(inner, scope, "number")
        self._numeric(v, inner)
        if str(op) == "+":
            return v.with_(meta=None, source=None)
        const = -v.const if v.is_const and v.const is not None else v.const
        dt = "long" if v.datatype in INTEGERS | {"boolean"} else "double"
        return Value(-as_number(v), dt, const=const, aggregate=v.aggregate)

    def x_number(self, node, scope):
        text = str(node.children[0])
        digits = text.lstrip("0")
        if not any(c in text for c in ".eE") and len(digits) <= 19 and int(text) < 2 ** 63:
            return literal(int(text), "long", node)
        value = float(text)       # larger integers are doubles, as in PostgreSQL
        if not math.isfinite(value):
            shown = text if len(text) <= 30 else f"{text[:12]}...{text[-6:]} ({len(text)} characters)"
            raise self.error(ADQLValidationError, f"the number {shown} is too large: it "
                             "does not fit a double precision value (at most about 1.8e308)",
                             node)
        return literal(value, "double", node)

    def x_hex_number(self, node, scope):
        """ADQL 2.1 hexadecimal literal (0x1F): an integer (long)."""
        text = str(node.children[0])
        digits = text[2:].lstrip("0")
        if len(digits) > 16 or int(digits or "0", 16) >= 2 ** 63:
            raise self.error(ADQLValidationError, f"the hexadecimal number {text[:40]} is too "
                             "large: the largest integer is 0x7FFFFFFFFFFFFFFF", node)
        return literal(int(digits or "0", 16), "long", node)

    def x_string(self, node, scope):
        text = "".join(str(t)[1:-1].replace("''", "'") for t in node.children)
        return literal(text, "char", node)

    def x_null(self, node, scope):
        return Value(sa.null(), "null", const=None)

    def x_column_ref(self, node, scope):
        parts = self.qualified(node.children[0])
        if len(parts) > 4:
            raise self.error(UnknownColumnError,
                             f"{'.'.join(p[0] for p in parts)!r} is not a column name", node)
        return self.resolve(parts, scope, node)

    def x_searched_case(self, node, scope):
        whens = [c for c in node.children if isinstance(c, Tree) and c.data == "when_clause"]
        other = next((c for c in node.children if isinstance(c, Tree)
                      and c.data == "else_clause"), None)
        pairs = [(self._cond(w.children[1], scope), self._operand(w.children[3], scope))
                 for w in whens]
        return self._case([(c.sql, v) for c, v in pairs], other, scope, node)

    def x_simple_case(self, node, scope):
        operand = self._operand(node.children[1], scope)
        whens = [c for c in node.children if isinstance(c, Tree) and c.data == "when_clause"]
        other = next((c for c in node.children if isinstance(c, Tree)
                      and c.data == "else_clause"), None)
        pairs = []
        for w in whens:
            key = self._operand(w.children[1], scope)
            x, y = self._comparable(operand, key, w)
            pairs.append((x == y, self._operand(w.children[3], scope)))
        return self._case(pairs, other, scope, node)

    def _case(self, pairs, other, scope, node):
        results = [v for _, v in pairs]
        if other is not None:
            results.append(self._operand(other.children[-1], scope))
        types = {r.datatype for r in results} - {"null"}
        if types <= {"char"} and types:
            dt = "char"
        elif types <= INTEGERS | {"boolean"}:
            dt = "long" if types else "null"
        elif types <= NUMERIC:
            dt = "double"
        else:
            raise self.error(ADQLValidationError,
                             "the results of CASE mix strings and numbers", node)
        conv = (lambda v: v.sql) if dt == "char" else as_number
        whens = [(c, conv(v)) for c, v in pairs]
        else_ = conv(results[-1]) if other is not None else None
        sql = sa.case(*whens, else_=else_)
        return Value(sa.type_coerce(sql, sa_type(dt)), dt, "*" if dt == "char" else None,
                     aggregate=any(r.aggregate for r in results), name="case")

    def x_cast_specification(self, node, scope):
        v = self._operand(node.children[1], scope)
        target = node.children[-1]
        tokens = [t for t in target.children if isinstance(t, Token)]
        kind = tokens[0].type
        length = next((int(t) for t in tokens if t.type == "UNSIGNED_INTEGER"), None)
        if kind in ("POINT", "CIRCLE", "POLYGON", "TIMESTAMP"):
            raise self.error(UnsupportedError,
                             f"CAST to {kind} is not supported by this service", target)
        if kind in _NUMERIC_CASTS:
            dt, typ = _NUMERIC_CASTS[kind]
            if v.datatype == "geometry":
                raise self.error(ADQLValidationError, "cannot CAST a geometry", node)
            arg = as_number(v)
            if v.datatype in FLOATS and dt in INTEGERS:   # truncate on both (PostgreSQL rounds)
                arg = sa.func.trunc(arg)
            return Value(sa.cast(arg, typ()), dt, aggregate=v.aggregate,
                         const=(int(v.const) if dt in INTEGERS else float(v.const))
                         if isinstance(v.const, (int, float)) else NOCONST,
                         name=v.name)
        # CHAR(n) / VARCHAR(n)
        if self.dialect == "postgresql":
            sql = sa.cast(v.sql, sa.String(length) if length else sa.Text())
        else:
            sql = sa.cast(v.sql, sa.Text())
            if length:
                sql = sa.func.substr(sql, 1, length)
        arraysize = (f"{length}" if kind == "CHAR" else f"{length}*") if length else "*"
        return Value(sa.type_coerce(sql, sa.String), "char", arraysize, aggregate=v.aggregate,
                     name=v.name)

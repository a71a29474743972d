"""ADQL syntax tree -> SQLAlchemy Core statement for SQLite or PostgreSQL.

The translator walks the Lark tree once, resolving every name against the
``Catalog`` (unknown or ambiguous tables, columns and functions are errors with a
position), typing every expression (``values.Value``) and building SQLAlchemy
expressions, which take care of quoting and of most dialect differences. Result
column metadata comes from the data model for plain column references and is
inferred for expressions.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from lark import Token, Tree

from archive.result import ResultColumn

from . import functions as fn
from . import geometry as geo
from .catalog import Catalog, CatalogTable
from .errors import (ADQLValidationError, AmbiguousColumnError, ArgumentCountError,
                     QueryTooComplexError, UnknownColumnError, UnknownFunctionError,
                     UnknownTableError, UnsupportedError, at)
from .parser import parse
from .values import (FLOATS, INTEGERS, NOCONST, NUMERIC, Value, as_double, as_number,
                     literal, numeric_result, sa_type)

__all__ = ["Translation", "translate", "MAX_TABLES", "DIALECTS"]

DIALECTS = ("sqlite", "postgresql")
#: Most table references (FROM items, joins, subqueries and CTEs) in one query.
MAX_TABLES = 12

AGGREGATES = ("COUNT", "AVG", "MIN", "MAX", "SUM")


@dataclass
class Translation:
    """The result of ``translate``: a SQLAlchemy selectable, the result columns
    (ResultColumn, in order, unique names) and the qualified names of the tables used."""

    statement: Any
    columns: list[ResultColumn]
    tables: list[str]

    def sql(self, dialect: str) -> str:
        """The SQL text for ``dialect`` with the constants inlined (for display)."""
        return compile_sql(self.statement, dialect)


def compile_sql(statement, dialect: str) -> str:
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql as d
    else:
        from sqlalchemy.dialects import sqlite as d
    return str(statement.compile(dialect=d.dialect(), compile_kwargs={"literal_binds": True}))


def translate(text: str, catalog: Catalog, dialect: str) -> Translation:
    """Parse and translate ADQL ``text`` for ``dialect`` ("sqlite" or "postgresql").

    Raises ``ADQLSyntaxError`` or another ``ADQLError`` (all UsageFaults) naming the
    problem and its line and column.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}; known: {', '.join(DIALECTS)}")
    tree = parse(text)
    return Translator(catalog, dialect).statement(tree)


# -- scopes ---------------------------------------------------------------------------------

@dataclass(eq=False)
class Source:
    """A FROM item: a table, a derived table or a common table expression."""

    name: str                                 # correlation name (alias or table name)
    delimited: bool
    selectable: Any                           # SQLAlchemy table, alias or subquery
    columns: list[ResultColumn]
    schema: str | None = None                 # for unaliased catalogue tables
    aliased: bool = False
    ra: str | None = None
    dec: str | None = None
    spatial: bool = False
    _lookup: tuple | None = field(default=None, repr=False)   # built at first use

    def matches(self, parts: list[tuple[str, bool]]) -> bool:
        """Does the qualifier ``parts`` ([schema,] table) name this source?"""
        def same(a, b):
            return a == b[0] if b[1] or self.delimited else a.lower() == b[0].lower()
        name = parts[-1]
        if not (self.name == name[0] if name[1] else self.name.lower() == name[0].lower()):
            return False
        if len(parts) >= 2:
            if self.aliased or self.schema is None:
                return False
            s = parts[-2]
            return self.schema == s[0] if s[1] else self.schema.lower() == s[0].lower()
        return True

    def column(self, name: tuple[str, bool]) -> ResultColumn | None:
        """The first column called ``name`` (a regular identifier: in any case)."""
        text, delimited = name
        if self._lookup is None:
            exact, folded = {}, {}
            for c in self.columns:
                exact.setdefault(c.name, c)
                folded.setdefault(c.name.lower(), c)
            self._lookup = (exact, folded)
        exact, folded = self._lookup
        return exact.get(text) if delimited else folded.get(text.lower())


@dataclass
class Scope:
    sources: list[Source] = field(default_factory=list)
    parent: "Scope | None" = None
    merged: dict = field(default_factory=dict)       # USING/NATURAL: lower name -> Value
    hidden: set = field(default_factory=set)          # (id(source), name) shown merged


class Translator:
    def __init__(self, catalog: Catalog, dialect: str):
        self.catalog = catalog
        self.dialect = dialect
        self.tables_used: list[str] = []
        self.table_count = 0
        self.ctes: dict[str, tuple[Any, list[ResultColumn]]] = {}

    # -- errors ----------------------------------------------------------------------
    def error(self, cls, message, node=None):
        return cls(message, **at(node))

    # -- statements ------------------------------------------------------------------
    def statement(self, tree: Tree) -> Translation:
        qs = tree.children[0]
        for child in qs.children:
            if child.data == "with_clause":
                self.with_clause(child)
        stmt, outs = self.select_expression(qs.children[-1], None)
        columns = [o[1] for o in outs]
        return Translation(stmt, columns, list(dict.fromkeys(self.tables_used)))

    def with_clause(self, node):
        for wq in node.children:
            if not isinstance(wq, Tree):
                continue
            name, delimited = self.ident(wq.children[0])
            stmt, outs = self.select_expression(wq.children[-1], None)
            cte = stmt.cte(name)
            self.ctes[name if delimited else name.lower()] = (cte, [o[1] for o in outs])

    def select_expression(self, node, scope):
        """-> (selectable, [(label, ResultColumn)])."""
        kids = node.children
        body = kids[0]
        if body.data == "paren_query":
            stmt, outs = self.select_expression(body.children[0], scope)
            stmt = sa.select(*stmt.subquery().c)
            outs = [(o[0], o[1]) for o in outs]
        else:
            stmt, outs = self.set_expression(body, scope)
        order = next((k for k in kids[1:] if k.data == "order_by_clause"), None)
        offset = next((k for k in kids[1:] if k.data == "offset_clause"), None)
        if order is not None:
            stmt = stmt.order_by(*self.order_by(order, stmt, outs, scope))
        if offset is not None:
            stmt = stmt.offset(int(offset.children[-1]))
        return stmt, outs

    def set_expression(self, node, scope):
        if node.data == "select_query":
            self._pending_select = node
            return self.select_query(node, scope)
        if node.data == "paren_query":
            stmt, outs = self.select_expression(node.children[0], scope)
            return stmt, outs
        if node.data == "select_expression":
            return self.select_expression(node, scope)
        op = node.data
        tokens = [c for c in node.children if isinstance(c, Token)]
        all_ = any(t.type == "ALL" for t in tokens)
        left, right = [c for c in node.children if isinstance(c, Tree)]
        lstmt, louts = self.set_expression(left, scope)
        rstmt, routs = self.set_expression(right, scope)
        if len(louts) != len(routs):
            raise self.error(ADQLValidationError,
                             f"the two sides of {op.rstrip('_').upper()} select different "
                             f"numbers of columns ({len(louts)} and {len(routs)})", node)
        parts = [self._compound_part(s) for s in (lstmt, rstmt)]
        fn_name = {"union": "union", "except_": "except_", "intersect": "intersect"}[op]
        if all_:
            fn_name += "_all"
        compound = getattr(sa, fn_name)(*parts)
        return compound, louts

    def _compound_part(self, stmt):
        # SQLite does not accept ORDER BY/LIMIT inside a compound member: wrap those.
        if isinstance(stmt, sa.Select) and (stmt._limit_clause is not None
                                            or stmt._offset_clause is not None
                                            or stmt._order_by_clauses):
            return sa.select(*stmt.subquery().c)
        if isinstance(stmt, sa.CompoundSelect):
            return sa.select(*stmt.subquery().c)
        return stmt

    # -- SELECT ----------------------------------------------------------------------
    def select_query(self, node, outer):
        kids = {k.data: k for k in node.children if isinstance(k, Tree)}
        scope = Scope(parent=outer)
        froms = self.from_clause(kids["from_clause"], scope)
        outs = self.select_list(kids.get("select_list") or kids["select_all"], scope, node)
        head = kids.get("select_head") or kids.get("select_head_swapped")
        distinct, top = False, None
        for h in head.children if head is not None else ():
            if h.data == "set_quantifier":
                distinct = h.children[0].type == "DISTINCT"
            elif h.data == "set_limit":
                top = int(h.children[-1])
        labels = [v.sql.label(name) for name, v, _ in outs]
        stmt = sa.select(*labels).select_from(*froms)
        if distinct:
            stmt = stmt.distinct()
        if "where_clause" in kids:
            cond = self.condition(kids["where_clause"].children[-1], scope, "WHERE")
            if cond.aggregate:
                raise self.error(ADQLValidationError,
                                 "aggregate functions are not allowed in WHERE; use HAVING",
                                 kids["where_clause"])
            stmt = stmt.where(cond.sql)
        groups = []
        if "group_by_clause" in kids:
            for g in kids["group_by_clause"].children[2:]:
                groups.append(self.group_term(g, scope, outs))
            stmt = stmt.group_by(*[g.sql for g in groups])
        if "having_clause" in kids:
            cond = self.condition(kids["having_clause"].children[-1], scope, "HAVING")
            stmt = stmt.having(cond.sql)
        aggregate = bool(groups) or any(v.aggregate for _, v, _ in outs)
        if aggregate:
            self.check_grouping(outs, groups, scope)
        if top is not None:
            stmt = stmt.limit(top)
        self._last_scope = scope
        self._scopes = getattr(self, "_scopes", {})
        self._scopes[id(stmt)] = (scope, outs)
        return stmt, [(name, v.result_column(name)) for name, v, _ in outs]

    def check_grouping(self, outs, groups, scope):
        """Outside aggregates, only grouped columns may be selected (PostgreSQL insists;
        SQLite would silently pick a row)."""
        from sqlalchemy.sql import visitors
        local = set()
        for src in scope.sources:
            local.add(src.selectable)
        grouped = {str(g.sql) for g in groups}
        grouped_cols = set()
        for g in groups:
            for el in visitors.iterate(g.sql):
                if isinstance(el, sa.Column) or el.__visit_name__ == "column":
                    grouped_cols.add(el)
        for name, v, node in outs:
            if v.aggregate or v.is_const or str(v.sql) in grouped:
                continue
            for el in visitors.iterate(v.sql):
                if el.__visit_name__ != "column" or el in grouped_cols:
                    continue
                if getattr(el, "table", None) in local:
                    raise self.error(ADQLValidationError,
                                     f"the selected column {name!r} uses {el.name!r}, which is "
                                     "neither in GROUP BY nor inside an aggregate function", node)

    def select_list(self, node, scope, query_node):
        items = []                          # (name, Value, node)
        if node.data == "select_all":
            for name, value in self.star(scope, None, query_node):
                items.append((name, value, query_node))
        else:
            for item in node.children:
                if item.data == "qualified_star":
                    for name, value in self.star(scope, item.children[0], item):
                        items.append((name, value, item))
                    continue
                expr = item.children[0]
                value = self.value(expr, scope, "the select list")
                alias = None
                if len(item.children) > 1:
                    alias = self.ident(item.children[1].children[-1])[0]
                name = alias or (value.meta.name if value.meta is not None else value.name)
                items.append((name, value, item))
        seen, result = set(), []
        for name, value, n in items:
            unique, k = name, 2
            while unique.lower() in seen:
                unique, k = f"{name}_{k}", k + 1
            seen.add(unique.lower())
            result.append((unique, value, n))
        return result

    def star(self, scope, qualifier, node):
        if qualifier is None:
            sources = scope.sources
            out = [(name, v) for name, v in scope.merged.values()]
        else:
            parts = self.qualified(qualifier)
            sources = [s for s in scope.sources if s.matches(parts)]
            if not sources:
                raise self.error(UnknownTableError,
                                 f"no table called {'.'.join(p[0] for p in parts)!r} in FROM",
                                 qualifier)
            sources, out = sources[:1], []
        for s in sources:
            for c in s.columns:
                if qualifier is None and (id(s), c.name.lower()) in scope.hidden:
                    continue
                out.append((c.name, self.column_value(s, c, node)))
        return out

    def column_value(self, source: Source, col: ResultColumn, node) -> Value:
        sql = source.selectable.c[col.name]
        return Value(sql, col.datatype, col.arraysize, meta=col, name=col.name,
                     source=(source, col.name), node=node)

    # -- FROM ------------------------------------------------------------------------
    def from_clause(self, node, scope):
        froms = []
        for ref in node.children[1:]:
            if not isinstance(ref, Tree):
                continue
            froms.append(self.table_reference(ref, scope))
        return froms

    def table_reference(self, node, scope):
        """Add the sources of ``node`` to ``scope``; return the SQLAlchemy FROM item."""
        if node.data == "table_primary":       # "(" joined_table ")"
            return self.table_reference(node.children[0], scope)
        if node.data in ("joined_table", "cross_join"):
            return self.join(node, scope)
        self.table_count += 1
        if self.table_count > MAX_TABLES:
            raise self.error(QueryTooComplexError,
                             f"the query uses more than {MAX_TABLES} tables", node)
        if node.data == "derived_table":
            name, delimited = self.ident(node.children[-1].children[-1])
            stmt, outs = self.select_expression(node.children[0].children[0], None)
            sub = stmt.subquery(name)
            scope.sources.append(Source(name, delimited, sub, [o[1] for o in outs],
                                        aliased=True))
            return sub
        return self.table_name(node, scope)

    def table_name(self, node, scope):
        parts = self.qualified(node.children[0])
        alias = None
        if len(node.children) > 1:
            alias = self.ident(node.children[1].children[-1])
        if len(parts) > 3:
            raise self.error(UnknownTableError, f"{'.'.join(p[0] for p in parts)!r} is not a "
                             "table name", node)
        if len(parts) == 1:
            key = parts[0][0] if parts[0][1] else parts[0][0].lower()
            if key in self.ctes:
                cte, cols = self.ctes[key]
                sel = cte.alias(alias[0]) if alias else cte
                name = alias or parts[0]
                src = Source(name[0], name[1], sel, cols, aliased=True)
                scope.sources.append(src)
                return sel
        hits = self.catalog.find(parts[-2] if len(parts) >= 2 else None, parts[-1])
        shown = ".".join(p[0] for p in parts)
        if not hits:
            raise self.error(UnknownTableError,
                             f"unknown table {shown!r}; the published tables are "
                             f"{', '.join(self.catalog.table_names())}", node)
        if len(hits) > 1:
            raise self.error(UnknownTableError,
                             f"table name {shown!r} is ambiguous; qualify it: "
                             f"{', '.join(h.qualified_name for h in hits)}", node)
        table: CatalogTable = hits[0]
        self.tables_used.append(table.qualified_name)
        if alias:
            sel = table.table.alias(alias[0])
            src = Source(alias[0], alias[1], sel, table.columns, aliased=True,
                         ra=table.ra, dec=table.dec, spatial=table.spatial)
        else:
            for s in scope.sources:
                if s.selectable is table.table:
                    raise self.error(ADQLValidationError,
                                     f"table {shown!r} appears twice; give it an alias", node)
            sel = table.table
            src = Source(table.name, False, sel, table.columns, schema=table.schema,
                         ra=table.ra, dec=table.dec, spatial=table.spatial)
            if parts[-1][1]:
                src.delimited = True
        scope.sources.append(src)
        return sel

    def join(self, node, scope):
        """All JOIN forms; RIGHT joins are written as LEFT joins with the sides swapped."""
        left_node = right_node = spec = jtype = None
        natural = False
        for k in node.children:
            if isinstance(k, Token):
                natural = natural or k.type == "NATURAL"
            elif left_node is None:
                left_node = k
            elif k.data == "join_type":
                jtype = k
            elif k.data in ("join_on", "join_using"):
                spec = k
            else:
                right_node = k
        kind = jtype.children[0].type if jtype is not None else "INNER"
        n_before = len(scope.sources)
        left = self.table_reference(left_node, scope)
        left_sources = scope.sources[n_before:]
        n_mid = len(scope.sources)
        right = self.table_reference(right_node, scope)
        right_sources = scope.sources[n_mid:]
        local = Scope(sources=left_sources + right_sources, parent=scope.parent,
                      merged=dict(scope.merged))
        if spec is None and not natural:
            if kind != "INNER":
                raise self.error(ADQLValidationError, f"{kind} JOIN needs ON or USING", node)
            return left.join(right, sa.true())
        if spec is not None and spec.data == "join_on":
            onclause = self.condition(spec.children[-1], local, "ON").sql
        else:
            if natural:
                lnames = {c.name.lower() for s in left_sources for c in s.columns}
                names = list(dict.fromkeys((c.name, False) for s in right_sources
                                           for c in s.columns if c.name.lower() in lnames))
            else:
                names = [self.ident(i) for i in spec.children if isinstance(i, Tree)]
            conds = []
            for name in names:
                lv = self._one_column(left_sources, name, node, "left")
                rv = self._one_column(right_sources, name, node, "right")
                conds.append(lv.sql == rv.sql)
                merged = rv if kind == "RIGHT" else lv
                if kind == "FULL":
                    merged = lv.with_(sql=sa.func.coalesce(lv.sql, rv.sql), source=None)
                scope.merged[lv.meta.name.lower()] = (lv.meta.name, merged)
                scope.hidden.add((id(lv.source[0]), lv.meta.name.lower()))
                scope.hidden.add((id(rv.source[0]), rv.meta.name.lower()))
            onclause = sa.and_(*conds) if conds else sa.true()
        if kind == "RIGHT":
            return right.join(left, onclause, isouter=True)
        if kind == "FULL":
            import sqlite3
            if self.dialect == "sqlite" and sqlite3.sqlite_version_info < (3, 39):
                raise self.error(UnsupportedError, "FULL OUTER JOIN needs SQLite 3.39 or later",
                                 node)
            return left.join(right, onclause, full=True)
        return left.join(right, onclause, isouter=(kind == "LEFT"))

    def _one_column(self, sources, name, node, side):
        hits = [(s, c) for s in sources if (c := s.column(name)) is not None]
        if not hits:
            raise self.error(UnknownColumnError,
                             f"join column {name[0]!r} is not in the {side} table", node)
        if len(hits) > 1:
            raise self.error(AmbiguousColumnError,
                             f"join column {name[0]!r} is ambiguous on the {side} side", node)
        return self.column_value(hits[0][0], hits[0][1], node)

    # -- ORDER BY / GROUP BY ------------------------------------------------------------
    def order_by(self, node, stmt, outs, scope):
        terms = []
        entry = getattr(self, "_scopes", {}).get(id(stmt))
        inner_scope, items = entry if entry else (None, None)
        for term in node.children[2:]:
            expr = term.children[0]
            desc = any(isinstance(t, Token) and t.type == "DESC" for t in term.children[1:])
            key = self._output_reference(expr, outs, stmt, items)
            if key is None:
                if inner_scope is None:
                    raise self.error(ADQLValidationError,
                                     "ORDER BY of a UNION/INTERSECT/EXCEPT must name a result "
                                     "column or its position", expr)
                value = self.value(expr, inner_scope, "ORDER BY")
                key = value.sql
            terms.append(key.desc() if desc else key.asc())
        return terms

    def _output_reference(self, expr, outs, stmt, items):
        """ORDER BY a position or a result column name -> that result column, else None."""
        columns = list(stmt.selected_columns)
        if isinstance(expr, Tree) and expr.data == "number":
            text = str(expr.children[0])
            if not text.isdigit() or not 1 <= int(text) <= len(outs):
                raise self.error(ADQLValidationError,
                                 f"ORDER BY position {text} is not a result column "
                                 f"(1 to {len(outs)})", expr)
            return columns[int(text) - 1]
        if isinstance(expr, Tree) and expr.data == "column_ref":
            parts = self.qualified(expr.children[0])
            if len(parts) == 1:
                text, delimited = parts[0]
                hits = [i for i, o in enumerate(outs)
                        if (o[0] == text if delimited else o[0].lower() == text.lower())]
                if len(hits) == 1:
                    return columns[hits[0]]
        return None

    def group_term(self, expr, scope, outs):
        if isinstance(expr, Tree) and expr.data == "column_ref":
            parts = self.qualified(expr.children[0])
            try:
                return self.value(expr, scope, "GROUP BY")
            except UnknownColumnError:
                if len(parts) == 1:
                    for name, v, _ in outs:
                        if name.lower() == parts[0][0].lower():
                            return v
                raise
        value = self.value(expr, scope, "GROUP BY")
        if value.aggregate:
            raise self.error(ADQLValidationError, "aggregate functions are not allowed in "
                             "GROUP BY", expr)
        return value

    # -- names -------------------------------------------------------------------------
    def ident(self, node) -> tuple[str, bool]:
        token = node.children[0]
        if node.data == "delimited_identifier":
            return token[1:-1].replace('""', '"'), True
        return str(token), False

    def qualified(self, node) -> list[tuple[str, bool]]:
        parts = []
        while node.data == "qualified_name":
            if len(node.children) == 1:
                parts.append(self.ident(node.children[0]))
                break
            parts.append(self.ident(node.children[-1]))
            node = node.children[0]
        return parts[::-1]

    def resolve(self, parts, scope: Scope, node) -> Value:
        shown = ".".join(p[0] for p in parts)
        col = parts[-1]
        qualifier = parts[:-1][-2:]
        s = scope
        while s is not None:
            if not qualifier:
                merged = s.merged.get(col[0].lower())
                if merged is not None:
                    return merged[1].with_(node=node)
                hits = [(src, c) for src in s.sources if (c := src.column(col)) is not None]
                if len(hits) > 1:
                    raise self.error(AmbiguousColumnError,
                                     f"column {col[0]!r} is ambiguous: it is in "
                                     f"{', '.join(h[0].name for h in hits)}; qualify it", node)
                if hits:
                    return self.column_value(hits[0][0], hits[0][1], node)
            else:
                srcs = [src for src in s.sources if src.matches(qualifier)]
                if srcs:
                    c = srcs[0].column(col)
                    if c is None:
                        raise self.error(UnknownColumnError,
                                         f"unknown column {col[0]!r} in table {srcs[0].name!r}; "
                                         f"its columns are "
                                         f"{', '.join(x.name for x in srcs[0].columns)}", node)
                    return self.column_value(srcs[0], c, node)
            s = s.parent
        if qualifier:
            raise self.error(UnknownTableError,
                             f"no table called {'.'.join(q[0] for q in qualifier)!r} in FROM "
                             f"(for column {shown!r})", node)
        raise self.error(UnknownColumnError, f"unknown column {col[0]!r}", node)

    # -- expressions -------------------------------------------------------------------
    def condition(self, node, scope, where: str) -> Value:
        v = self.expr(node, scope)
        if v.datatype == "condition":
            return v
        if v.predicate is not None:            # bare CONTAINS(...)/INTERSECTS(...)
            return Value(v.predicate, "condition", node=node, aggregate=v.aggregate)
        raise self.error(ADQLValidationError,
                         f"{where} needs a condition (such as a comparison), not a value", node)

    def value(self, node, scope, where: str) -> Value:
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

    def expr(self, node, scope) -> Value:
        if isinstance(node, Token):
            raise self.error(ADQLValidationError, f"unexpected {str(node)!r}", node)
        method = getattr(self, "x_" + node.data.rstrip("_"), None)
        if method is None:
            raise self.error(ADQLValidationError, f"unsupported construct {node.data}", node)
        v = method(node, scope)
        if v.node is None:
            v.node = node
        return v

    def _operand(self, node, scope, what="value") -> Value:
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
        return Value(sa.or_(*[p.sql for p in parts]), "condition",
                     aggregate=any(p.aggregate for p in parts))

    def x_and(self, node, scope):
        parts = [self._cond(c, scope) for c in node.children if isinstance(c, Tree)]
        return Value(sa.and_(*[p.sql for p in parts]), "condition",
                     aggregate=any(p.aggregate for p in parts))

    def x_not(self, node, scope):
        p = self._cond(node.children[-1], scope)
        return Value(sa.not_(p.sql), "condition", aggregate=p.aggregate)

    def _comparable(self, a: Value, b: Value, node):
        ta, tb = a.datatype, b.datatype
        if "null" in (ta, tb):
            return as_number(a), as_number(b)
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
        stmt, outs = self.select_expression(trees[1].children[0], scope)
        if len(outs) != 1:
            raise self.error(ADQLValidationError,
                             f"the subquery of IN must select one column, not {len(outs)}",
                             trees[1])
        cond = v.sql.in_(stmt) if not neg else v.sql.not_in(stmt)
        return Value(cond, "condition", aggregate=v.aggregate)

    def _like(self, node, scope, insensitive):
        trees = [c for c in node.children if isinstance(c, Tree)]
        neg = any(isinstance(c, Token) and c.type == "NOT" for c in node.children)
        v, p = self._operand(trees[0], scope), self._operand(trees[1], scope)
        for x, t in ((v, trees[0]), (p, trees[1])):
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
        stmt, _ = self.select_expression(node.children[-1].children[0], scope)
        return Value(sa.exists(stmt), "condition")

    def x_scalar_subquery(self, node, scope):
        stmt, outs = self.select_expression(node.children[0].children[0], scope)
        if len(outs) != 1:
            raise self.error(ADQLValidationError,
                             f"a subquery used as a value must select one column, not "
                             f"{len(outs)}", node)
        col = outs[0][1]
        return Value(stmt.scalar_subquery(), col.datatype, col.arraysize, meta=col,
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
        if any(c in text for c in ".eE"):
            return literal(float(text), "double", node)
        value = int(text)
        if value >= 2 ** 63:
            return literal(float(text), "double", node)
        return literal(value, "long", node)

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
        numeric_targets = {"SMALLINT": ("short", sa.SmallInteger), "INTEGER": ("int", sa.Integer),
                           "BIGINT": ("long", sa.BigInteger), "REAL": ("float", sa.REAL),
                           "DOUBLE": ("double", sa.Double)}
        if kind in numeric_targets:
            dt, typ = numeric_targets[kind]
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

    # -- functions -----------------------------------------------------------------------
    def _function_name(self, node):
        name, delimited = self.ident(node.children[0])
        if delimited:
            raise self.error(UnknownFunctionError,
                             f"a function name cannot be a delimited identifier ({name!r})",
                             node.children[0])
        return name.upper()

    def _check_arity(self, name, n, lo, hi, node):
        if not lo <= n <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}" if hi < 999 else f"at least {lo}"
            raise self.error(ArgumentCountError,
                             f"{name} takes {want} argument{'s' if want != '1' else ''}, "
                             f"not {n}", node)

    def _lookup_function(self, name, node):
        if name in fn.FUNCTIONS or name in geo.FUNCTIONS or name in AGGREGATES:
            return
        if name in fn.UNSUPPORTED:
            raise self.error(UnsupportedError, fn.UNSUPPORTED[name], node)
        known = sorted(set(fn.FUNCTIONS) | set(geo.FUNCTIONS) | set(AGGREGATES))
        raise self.error(UnknownFunctionError,
                         f"unknown function {name.lower()!r}; ADQL functions are "
                         f"{', '.join(known)}", node)

    def x_call(self, node, scope):
        name = self._function_name(node)
        self._lookup_function(name, node)
        arg_nodes = []
        if len(node.children) > 1:
            arg_nodes = [c for c in node.children[1].children if isinstance(c, Tree)]
        if name in AGGREGATES:
            return self._aggregate(name, None, arg_nodes, scope, node)
        if name in geo.FUNCTIONS:
            lo, hi, build = geo.FUNCTIONS[name]
            self._check_arity(name, len(arg_nodes), lo, hi, node)
            args = [self._geo_arg(a, scope) for a in arg_nodes]
            return build(self, args, node)
        f = fn.FUNCTIONS[name]
        self._check_arity(name, len(arg_nodes), f.min_args, f.max_args, node)
        args = [self._operand(a, scope, f"argument of {name}") for a in arg_nodes]
        v = f.build(self, args, node)
        v.name = name.lower()
        return v

    def _geo_arg(self, node, scope):
        v = self.expr(node, scope)
        if v.datatype == "condition":
            raise self.error(ADQLValidationError, "a condition cannot be a function argument",
                             node)
        return v

    def x_call_star(self, node, scope):
        name = self._function_name(node)
        if name != "COUNT":
            self._lookup_function(name, node)
            raise self.error(ADQLValidationError, f"{name}(*) is not valid; only COUNT(*)", node)
        return Value(sa.func.count(), "long", aggregate=True, name="count")

    def x_call_quantified(self, node, scope):
        name = self._function_name(node)
        self._lookup_function(name, node)
        if name not in AGGREGATES:
            raise self.error(ADQLValidationError,
                             f"DISTINCT/ALL is only allowed in aggregate functions, not {name}",
                             node)
        quant = node.children[1].children[0].type
        return self._aggregate(name, quant, [node.children[2]], scope, node)

    def _aggregate(self, name, quant, arg_nodes, scope, node):
        self._check_arity(name, len(arg_nodes), 1, 1, node)
        v = self._operand(arg_nodes[0], scope, f"argument of {name}")
        if v.aggregate:
            raise self.error(ADQLValidationError, "aggregate functions cannot be nested", node)
        arg = v.sql
        if quant == "DISTINCT":
            arg = sa.distinct(arg)
        lname = name.lower()
        if name == "COUNT":
            return Value(sa.func.count(arg), "long", aggregate=True, name=lname)
        if v.datatype not in NUMERIC and name in ("AVG", "SUM"):
            raise self.error(ADQLValidationError, f"{name} needs a numeric argument", node)
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
        else:   # SUM
            if v.datatype in INTEGERS | {"boolean"}:
                sql, dt = sa.cast(sa.func.sum(as_number(v)), sa.BigInteger), "long"
            else:
                sql, dt = sa.cast(sa.func.sum(as_double(v)), sa.Double), "double"
        if quant == "DISTINCT":
            inner = as_number(v) if dt == "long" else as_double(v)
            sql = sa.cast(getattr(sa.func, lname)(sa.distinct(inner)),
                          sa.BigInteger if dt == "long" else sa.Double)
        meta = None
        if unit_meta is not None and unit_meta.unit:
            meta = ResultColumn(lname, dt, unit=unit_meta.unit)
        return Value(sql, dt, meta=meta, aggregate=True, name=lname)

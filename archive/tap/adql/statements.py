"""Statements: SELECT, set operations, WITH, FROM and joins, ORDER BY, GROUP BY, TOP/OFFSET.

Every query expression translates to a ``Query``: the SQLAlchemy statement with its
result columns and what the translator knows of its shape (its own TOP, OFFSET and
ORDER BY, whether it is a set operation or a plain scan of one table), which the
caller uses instead of looking inside the SQLAlchemy statement.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from lark import Token, Tree
from sqlalchemy.sql import visitors

from archive.result import ResultColumn

from .catalog import UPLOAD_SCHEMA, CatalogTable
from .errors import (ADQLValidationError, QueryTooComplexError, UnknownColumnError,
                     UnknownTableError, UnsupportedError)
from .parser import MAX_SELECT_ITEMS
from .scopes import Scope, Source

__all__ = ["Query", "StatementsMixin", "MAX_TABLES"]

#: Most table references (FROM items, joins, subqueries and CTEs) in one query.
MAX_TABLES = 12

#: Clauses of a SELECT that make it more than a plain scan of its table.
_NOT_PLAIN = ("where_clause", "group_by_clause", "having_clause")


@dataclass
class Query:
    """One translated query expression."""

    stmt: Any                                   # sa.Select or sa.CompoundSelect
    outputs: list[tuple[str, ResultColumn]]     # (label, result column), in order
    scope: Scope | None = None                  # FROM scope of a SELECT (ORDER BY uses it)
    top: int | None = None                      # its own TOP
    offset: int | None = None                   # its own OFFSET (None: no OFFSET clause)
    ordered: bool = False                       # has its own ORDER BY
    compound: bool = False                      # UNION, EXCEPT or INTERSECT
    plain: bool = False                         # columns of one published table, no more

    @property
    def columns(self) -> list[ResultColumn]:
        return [o[1] for o in self.outputs]


class StatementsMixin:
    """Query expressions and their clauses (mixed into the Translator)."""

    def with_clause(self, node) -> None:
        for wq in node.children:
            if not isinstance(wq, Tree):
                continue
            name, delimited = self.ident(wq.children[0])
            query = self.select_expression(wq.children[-1], None)
            self.ctes[name if delimited else name.lower()] = (query.stmt.cte(name),
                                                              query.columns)

    def select_expression(self, node, scope: Scope | None) -> Query:
        """A query with its ORDER BY and OFFSET; ``scope`` encloses it (subqueries)."""
        kids = node.children
        body = kids[0]
        if body.data == "paren_query":
            inner = self.select_expression(body.children[0], scope)
            query = Query(sa.select(*inner.stmt.subquery().c), inner.outputs)
        else:
            query = self.set_expression(body, scope)
        order = next((k for k in kids[1:] if k.data == "order_by_clause"), None)
        offset = next((k for k in kids[1:] if k.data == "offset_clause"), None)
        if order is not None:
            query.stmt = query.stmt.order_by(*self.order_by(order, query))
            query.ordered, query.plain = True, False
        if offset is not None:
            query.offset = int(offset.children[-1])
            query.stmt = query.stmt.offset(query.offset)
        return query

    def set_expression(self, node, scope: Scope | None) -> Query:
        if node.data == "select_query":
            return self.select_query(node, scope)
        if node.data == "paren_query":
            return self.select_expression(node.children[0], scope)
        if node.data == "select_expression":
            return self.select_expression(node, scope)
        op = node.data
        tokens = [c for c in node.children if isinstance(c, Token)]
        all_ = any(t.type == "ALL" for t in tokens)
        left, right = [c for c in node.children if isinstance(c, Tree)]
        lquery, rquery = self.set_expression(left, scope), self.set_expression(right, scope)
        if len(lquery.outputs) != len(rquery.outputs):
            raise self.error(ADQLValidationError,
                             f"the two sides of {op.rstrip('_').upper()} select different "
                             f"numbers of columns ({len(lquery.outputs)} and "
                             f"{len(rquery.outputs)})", node)
        fn_name = {"union": "union", "except_": "except_", "intersect": "intersect"}[op]
        if all_:
            fn_name += "_all"
        compound = getattr(sa, fn_name)(*[self._compound_part(q) for q in (lquery, rquery)])
        return Query(compound, lquery.outputs, compound=True)

    @staticmethod
    def _compound_part(query: Query):
        # SQLite accepts neither ORDER BY/LIMIT/OFFSET inside a compound member nor a
        # nested compound: wrap those in a SELECT
        if query.compound or query.ordered or query.top is not None or query.offset is not None:
            return sa.select(*query.stmt.subquery().c)
        return query.stmt

    # -- SELECT ----------------------------------------------------------------------
    def select_query(self, node, outer: Scope | None) -> Query:
        kids = {k.data: k for k in node.children if isinstance(k, Tree)}
        scope = Scope(parent=outer)
        froms = self.from_clause(kids["from_clause"], scope)
        select = kids.get("select_list") or kids["select_all"]
        outs = self.select_list(select, scope, node)
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
        plain = (not distinct and not any(k in kids for k in _NOT_PLAIN)
                 and _plain_table(froms, scope) and _plain_list(select))
        return Query(stmt, [(name, v.result_column(name)) for name, v, _ in outs],
                     scope=scope, top=top, plain=plain)

    def check_grouping(self, outs, groups, scope: Scope) -> None:
        """Outside aggregates, only grouped columns may be selected (PostgreSQL insists;
        SQLite would silently pick a row)."""
        local = {src.selectable for src in scope.sources}
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

    def select_list(self, node, scope: Scope, query_node) -> list[tuple]:
        """[(unique result name, Value, node)] of the select list."""
        items = []
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
        if len(items) > MAX_SELECT_ITEMS:
            raise self.error(QueryTooComplexError,
                             f"the select list has {len(items)} columns (after * is "
                             f"expanded); at most {MAX_SELECT_ITEMS} are accepted", query_node)
        seen, result = set(), []
        for name, value, n in items:
            unique, k = name, 2
            while unique.lower() in seen:
                unique, k = f"{name}_{k}", k + 1
            seen.add(unique.lower())
            result.append((unique, value, n))
        return result

    # -- FROM ------------------------------------------------------------------------
    def from_clause(self, node, scope: Scope) -> list:
        return [self.table_reference(ref, scope) for ref in node.children[1:]
                if isinstance(ref, Tree)]

    def table_reference(self, node, scope: Scope):
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
            query = self.select_expression(node.children[0].children[0], None)
            sub = query.stmt.subquery(name)
            scope.sources.append(Source(name, delimited, sub, query.columns, aliased=True))
            return sub
        return self.table_name(node, scope)

    def table_name(self, node, scope: Scope):
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
                scope.sources.append(Source(name[0], name[1], sel, cols, aliased=True))
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
                         ra=table.ra, dec=table.dec, spatial=table.spatial, table=table)
        else:
            for s in scope.sources:
                if s.selectable is table.table:
                    raise self.error(ADQLValidationError,
                                     f"table {shown!r} appears twice; give it an alias", node)
            sel = table.table
            src = Source(table.name, parts[-1][1], sel, table.columns, schema=table.schema,
                         ra=table.ra, dec=table.dec, spatial=table.spatial, table=table)
        scope.sources.append(src)
        return sel

    def join(self, node, scope: Scope):
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
        if node.data == "cross_join":
            return left.join(right, sa.true())
        if spec is None and not natural:
            # ADQL (as SQL-92) requires a join condition; a JOIN without one is not a
            # cross join
            raise self.error(ADQLValidationError,
                             f"{kind} JOIN needs ON or USING (a join condition), or NATURAL; "
                             "for every pair of rows write CROSS JOIN", node)
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
                lv = self.one_column(left_sources, name, node, "left")
                rv = self.one_column(right_sources, name, node, "right")
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
            if self.dialect == "sqlite" and sqlite3.sqlite_version_info < (3, 39):
                raise self.error(UnsupportedError, "FULL OUTER JOIN needs SQLite 3.39 or later",
                                 node)
            return left.join(right, onclause, full=True)
        return left.join(right, onclause, isouter=(kind == "LEFT"))

    # -- ORDER BY / GROUP BY ------------------------------------------------------------
    def order_by(self, node, query: Query) -> list:
        terms = []
        for term in node.children[2:]:
            expr = term.children[0]
            desc = any(isinstance(t, Token) and t.type == "DESC" for t in term.children[1:])
            key = self._output_reference(expr, query)
            if key is None:
                if query.scope is None:
                    raise self.error(ADQLValidationError,
                                     "ORDER BY of a UNION/INTERSECT/EXCEPT must name a result "
                                     "column or its position", expr)
                key = self.value(expr, query.scope, "ORDER BY").sql
            terms.append(key.desc() if desc else key.asc())
        return terms

    def _output_reference(self, expr, query: Query):
        """ORDER BY a position or a result column name -> that result column, else None."""
        outs = query.outputs
        if isinstance(expr, Tree) and expr.data == "number":
            text = str(expr.children[0])
            if not text.isdigit() or not 1 <= int(text) <= len(outs):
                raise self.error(ADQLValidationError,
                                 f"ORDER BY position {text} is not a result column "
                                 f"(1 to {len(outs)})", expr)
            return list(query.stmt.selected_columns)[int(text) - 1]
        if isinstance(expr, Tree) and expr.data == "column_ref":
            parts = self.qualified(expr.children[0])
            if len(parts) == 1:
                text, delimited = parts[0]
                hits = [i for i, o in enumerate(outs)
                        if (o[0] == text if delimited else o[0].lower() == text.lower())]
                if len(hits) == 1:
                    return list(query.stmt.selected_columns)[hits[0]]
        return None

    def group_term(self, expr, scope: Scope, outs):
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


def _plain_table(froms: list, scope: Scope) -> bool:
    """FROM names one published table (a catalogue or TAP_SCHEMA; an uploaded table is
    a temporary table of the query's own connection)."""
    if len(froms) != 1 or len(scope.sources) != 1:
        return False
    table = scope.sources[0].table
    return table is not None and table.schema != UPLOAD_SCHEMA


def _plain_list(node) -> bool:
    """The select list is ``*`` or names columns (``t.*``, ``col``, ``col AS name``)."""
    if node.data == "select_all":
        return True
    return all(item.data == "qualified_star"
               or (isinstance(item.children[0], Tree) and item.children[0].data == "column_ref")
               for item in node.children)

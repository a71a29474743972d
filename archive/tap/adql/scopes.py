"""Scopes and names: the FROM items a query sees and how column references resolve.

A ``Scope`` holds the ``Source``s of one SELECT (tables, derived tables, common table
expressions) and points to the enclosing query's scope, so that a subquery may name
the columns of the outer query (correlation). ``NamesMixin`` turns identifiers and
qualified names of the syntax tree into (text, delimited) pairs and resolves them
against a scope, with the errors ADQL users need (unknown, ambiguous, where).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archive.result import ResultColumn

from .catalog import CatalogTable
from .errors import AmbiguousColumnError, UnknownColumnError, UnknownTableError
from .values import Value

__all__ = ["Source", "Scope", "NamesMixin"]


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
    table: CatalogTable | None = None         # the table behind it (None: subquery, CTE)
    _lookup: tuple | None = field(default=None, repr=False)   # built at first use

    def matches(self, parts: list[tuple[str, bool]]) -> bool:
        """Does the qualifier ``parts`` ([schema,] table) name this source?"""
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
    """The FROM items of one SELECT, inside the scope of the query enclosing it."""

    sources: list[Source] = field(default_factory=list)
    parent: "Scope | None" = None
    merged: dict = field(default_factory=dict)       # USING/NATURAL: lower name -> Value
    hidden: set = field(default_factory=set)          # (id(source), name) shown merged


class NamesMixin:
    """Identifiers, column resolution and ``*`` expansion (mixed into the Translator)."""

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

    def column_value(self, source: Source, col: ResultColumn, node) -> Value:
        sql = source.selectable.c[col.name]
        return Value(sql, col.datatype, col.arraysize, meta=col, name=col.name,
                     source=(source, col.name), node=node)

    def resolve(self, parts, scope: Scope, node) -> Value:
        """The column ``parts`` ([[schema.]table.]column) names, looked up in ``scope``
        and then in the enclosing scopes."""
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

    def star(self, scope: Scope, qualifier, node) -> list[tuple[str, Value]]:
        """The columns of ``*`` (``qualifier`` None) or ``qualifier.*``, in order;
        columns merged by USING/NATURAL come first and once."""
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

    def one_column(self, sources: list[Source], name, node, side: str) -> Value:
        """The join column ``name`` on one side of USING/NATURAL: exactly one must exist."""
        hits = [(s, c) for s in sources if (c := s.column(name)) is not None]
        if not hits:
            raise self.error(UnknownColumnError,
                             f"join column {name[0]!r} is not in the {side} table", node)
        if len(hits) > 1:
            raise self.error(AmbiguousColumnError,
                             f"join column {name[0]!r} is ambiguous on the {side} side", node)
        return self.column_value(hits[0][0], hits[0][1], node)

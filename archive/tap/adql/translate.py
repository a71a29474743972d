"""ADQL syntax tree -> SQLAlchemy Core statement for SQLite or PostgreSQL.

The translator walks the Lark tree once, resolving every name against the
``Catalog`` (unknown or ambiguous tables, columns and functions are errors with a
position), typing every expression (``values.Value``) and building SQLAlchemy
expressions, which take care of quoting and of most dialect differences. Result
column metadata comes from the data model for plain column references and is
inferred for expressions.

The ``Translator`` is put together from one mixin per part of the language:
``statements`` (queries and their clauses), ``scopes`` (names), ``expressions`` and
``calls`` (function calls, against the table in ``functions``); they share the state
kept here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lark import Tree

from archive.result import ResultColumn

from .calls import CallsMixin
from .catalog import Catalog
from .errors import at
from .expressions import ExpressionsMixin
from .parser import parse
from .scopes import NamesMixin
from .statements import MAX_TABLES, StatementsMixin

__all__ = ["Translation", "translate", "compile_sql", "MAX_TABLES", "DIALECTS"]

DIALECTS = ("sqlite", "postgresql")


@dataclass
class Translation:
    """The result of ``translate``: a SQLAlchemy selectable, the result columns
    (ResultColumn, in order, unique names) and the qualified names of the tables used.

    What the executor needs to know of the outermost query: ``top`` its TOP (None if
    it has none, as a set operation never has), ``offset`` its OFFSET (0 if none),
    ``plain_scan`` whether it only reads columns of one published table, in their
    stored order: ``SELECT <columns or *> FROM <table>`` with at most TOP and OFFSET.
    """

    statement: Any
    columns: list[ResultColumn]
    tables: list[str]
    top: int | None = None
    offset: int = 0
    plain_scan: bool = False

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


class Translator(StatementsMixin, NamesMixin, ExpressionsMixin, CallsMixin):
    """One translation: the catalogue and dialect, and what the query has named so far."""

    def __init__(self, catalog: Catalog, dialect: str):
        self.catalog = catalog
        self.dialect = dialect
        self.tables_used: list[str] = []
        self.table_count = 0
        self.ctes: dict[str, tuple[Any, list[ResultColumn]]] = {}

    def error(self, cls, message, node=None):
        return cls(message, **at(node))

    def statement(self, tree: Tree) -> Translation:
        qs = tree.children[0]
        with_clauses = [c for c in qs.children if c.data == "with_clause"]
        for child in with_clauses:
            self.with_clause(child)
        query = self.select_expression(qs.children[-1], None)
        return Translation(query.stmt, query.columns, list(dict.fromkeys(self.tables_used)),
                           top=query.top, offset=query.offset or 0,
                           plain_scan=query.plain and not with_clauses)

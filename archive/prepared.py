"""Statements compiled once and run many times with new values (no execution here).

A ``PreparedStatement`` wraps a SQLAlchemy statement built with ``bindparam()``s;
``archive.query.execute`` runs it. This module also holds the rule, shared by both
execution paths, of when PostgreSQL reads a result through a plain cursor.
"""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from .errors import FatalFault

__all__ = ["PreparedStatement", "LIMIT_PARAM", "pg_plain_cursor"]

#: Name of the bound LIMIT a PreparedStatement gets for ``maxrec``.
LIMIT_PARAM = "_maxrec_limit"
#: PostgreSQL: a statement whose LIMIT allows more rows than this is read through a
#: server-side cursor (flat memory); smaller ones with a plain cursor (psycopg keeps
#: the result in libpq's compact form and makes Python rows only as they are fetched).
PG_CLIENT_CURSOR_ROWS = 100000


def pg_plain_cursor(maxrec: int | None) -> bool:
    """PostgreSQL: whether a statement limited to ``maxrec`` + 1 rows (None: not
    limited) runs on a plain cursor rather than a server-side one."""
    return maxrec is not None and maxrec + 1 <= PG_CLIENT_CURSOR_ROWS


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positions: tuple[str, ...] | None    # positional paramstyles: bind names in order
    defaults: dict                        # values of the binds that carry one (literals)
    required: frozenset                   # binds the caller must give
    processors: tuple                     # (name, bind processor) for types that need one


class PreparedStatement:
    """A statement with ``bindparam()`` placeholders, compiled once per dialect.

    ``execute(engine, prepared, columns, params={name: value}, ...)`` runs it with
    new values: SQLAlchemy builds and compiles the SQL once (so the SQL still comes
    from SQLAlchemy and every value stays a bound parameter), and each execution
    only binds the values and runs the SQL text on the DBAPI cursor. ``maxrec``
    becomes a bound LIMIT, so the statement itself must have none. Rows come as
    the DBAPI returns them, without SQLAlchemy's result processing (SQLite gives
    booleans as 0/1, for example), which the format writers handle since they
    convert values by the declared datatype. Not for statements that need
    per-execution rendering (expanding IN lists, ``literal_execute``).
    """

    def __init__(self, stmt):
        # once per statement, at construction: SQLAlchemy has no public accessor of
        # a Select's LIMIT, and a LIMIT here would be silently replaced by maxrec's
        if getattr(stmt, "_limit_clause", None) is not None:
            raise ValueError("a PreparedStatement gets its LIMIT from maxrec; "
                             "the statement must not have one")
        self.statement = stmt
        self._compiled: dict[tuple[str, bool], _Compiled] = {}

    def compiled(self, dialect, limited: bool) -> _Compiled:
        """The SQL text and parameter plan for ``dialect`` (cached)."""
        key = (dialect.name, limited)
        found = self._compiled.get(key)
        if found is None:
            stmt = self.statement
            if limited:
                stmt = stmt.limit(sa.bindparam(LIMIT_PARAM, type_=sa.Integer))
            compiled = stmt.compile(dialect=dialect)
            names = compiled.params                   # every bind name -> value or None
            binds = {name: compiled.binds[name] for name in names}
            processors = []
            for name, bind in binds.items():
                proc = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if proc is not None:
                    processors.append((name, proc))
            positions = compiled.positiontup
            found = _Compiled(
                compiled.string, tuple(positions) if positions is not None else None,
                {n: v for n, v in names.items() if not binds[n].required},
                frozenset(n for n, b in binds.items() if b.required), tuple(processors))
            self._compiled[key] = found
        return found

    def parameters(self, dialect, limited: bool, params: dict):
        """(SQL text, DBAPI parameters) for one execution with ``params``."""
        compiled = self.compiled(dialect, limited)
        missing = compiled.required.difference(params)
        if missing:
            raise FatalFault(f"prepared statement run without a value for "
                             f"{', '.join(sorted(missing))}")
        values = {**compiled.defaults, **params}
        for name, proc in compiled.processors:
            values[name] = proc(values[name])
        if compiled.positions is not None:
            return compiled.sql, tuple([values[n] for n in compiled.positions])
        return compiled.sql, values

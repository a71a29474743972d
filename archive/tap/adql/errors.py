"""The errors of ADQL parsing and translation: usage faults that name a position."""
from __future__ import annotations

from archive.errors import UsageFault

__all__ = ["ADQLError", "ADQLSyntaxError", "ADQLValidationError", "UnknownTableError",
           "UnknownColumnError", "AmbiguousColumnError", "UnknownFunctionError",
           "ArgumentCountError", "UnsupportedError", "QueryTooComplexError"]


class ADQLError(UsageFault):
    """A query that cannot be run; ``line`` and ``column`` (1-based) locate the problem."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        self.line, self.column = line, column
        where = f" (line {line}, column {column})" if line is not None else ""
        super().__init__(message + where)
        self.reason = message


class ADQLSyntaxError(ADQLError):
    """The query text does not follow the ADQL 2.1 grammar."""


class ADQLValidationError(ADQLError):
    """The query is grammatical but does not fit the published tables or ADQL."""


class UnknownTableError(ADQLValidationError):
    pass


class UnknownColumnError(ADQLValidationError):
    pass


class AmbiguousColumnError(ADQLValidationError):
    pass


class UnknownFunctionError(ADQLValidationError):
    pass


class ArgumentCountError(ADQLValidationError):
    pass


class UnsupportedError(ADQLValidationError):
    """Valid ADQL that this service does not implement (documented in docs/adql.md)."""


class QueryTooComplexError(ADQLValidationError):
    """Nesting or size beyond the limits that keep the translator and database safe."""


def at(node) -> dict:
    """``line``/``column`` keyword arguments for a Lark token or tree node (or {})."""
    if node is None:
        return {}
    if getattr(node, "line", None) is None and hasattr(node, "children"):
        # a tree node starts where its first token does (the parser does not store
        # positions on tree nodes: propagating them doubles the parse time)
        node = _first_token(node)
    line = getattr(node, "line", None)
    if line is None:
        return {}
    return {"line": line, "column": node.column}


def _first_token(tree):
    stack = [tree]
    while stack:
        node = stack.pop()
        children = getattr(node, "children", None)
        if children is None:
            return node
        stack.extend(reversed(children))
    return None

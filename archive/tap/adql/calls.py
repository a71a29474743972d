"""Function calls: name, arguments and quantifier checked against the function table.

The grammar parses every call generically; here the name is looked up in
``functions.FUNCTIONS`` (unknown and unsupported functions are errors at the name),
the number of arguments checked, the arguments translated as the function's kind
wants them (geometry functions accept geometries) and the entry's builder called.
"""
from __future__ import annotations

import sqlalchemy as sa
from lark import Tree

from .errors import ADQLValidationError, UnknownFunctionError
from .functions import lookup
from .scopes import Scope
from .values import Value

__all__ = ["CallsMixin"]


class CallsMixin:
    """``f(...)``, ``COUNT(*)`` and ``f(DISTINCT x)`` (mixed into the Translator)."""

    def _function_name(self, node) -> str:
        name, delimited = self.ident(node.children[0])
        if delimited:
            raise self.error(UnknownFunctionError,
                             f"a function name cannot be a delimited identifier ({name!r})",
                             node.children[0])
        return name.upper()

    def x_call(self, node, scope: Scope) -> Value:
        f = lookup(self._function_name(node), node)
        arg_nodes = []
        if len(node.children) > 1:
            arg_nodes = [c for c in node.children[1].children if isinstance(c, Tree)]
        f.check_arity(len(arg_nodes), node)
        if f.kind == "geometry":
            return f.build(self, [self._geo_arg(a, scope) for a in arg_nodes], node)
        args = [self._operand(a, scope, f"argument of {f.name}") for a in arg_nodes]
        v = f.build(self, args, node)
        v.name = f.name.lower()
        return v

    def _geo_arg(self, node, scope: Scope) -> Value:
        v = self.expr(node, scope)
        if v.datatype == "condition":
            raise self.error(ADQLValidationError, "a condition cannot be a function argument",
                             node)
        return v

    def x_call_star(self, node, scope: Scope) -> Value:
        name = self._function_name(node)
        if name != "COUNT":
            lookup(name, node)
            raise self.error(ADQLValidationError, f"{name}(*) is not valid; only COUNT(*)", node)
        return Value(sa.func.count(), "long", aggregate=True, name="count")

    def x_call_quantified(self, node, scope: Scope) -> Value:
        f = lookup(self._function_name(node), node)
        if f.kind != "aggregate":
            raise self.error(ADQLValidationError,
                             f"DISTINCT/ALL is only allowed in aggregate functions, not {f.name}",
                             node)
        distinct = node.children[1].children[0].type == "DISTINCT"
        v = self._operand(node.children[2], scope, f"argument of {f.name}")
        return f.build(self, [v], node, distinct=distinct)

"""Parsing ADQL 2.1 text into a Lark syntax tree (grammar in ``adql.lark``).

The parser is Lark's LALR(1) with the contextual lexer: linear time, no backtracking,
and an explicit stack, so deeply nested input cannot exhaust Python's recursion. The
tree is then checked for what the BNF says but an LALR grammar cannot express
compactly: reserved words used as regular identifiers, and nesting deeper than the
translator accepts.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import lark
from lark import Tree

from datamodel.names import RESERVED_WORDS

from .errors import ADQLSyntaxError, QueryTooComplexError, at

__all__ = ["parse", "MAX_QUERY_LENGTH", "MAX_DEPTH", "RESERVED_WORDS"]

#: Longest query text accepted, in characters.
MAX_QUERY_LENGTH = 100_000
#: Deepest syntax tree accepted (levels); well within what the translator, SQLAlchemy's
#: compiler and the databases handle. About 40 levels of nested parentheses/functions.
MAX_DEPTH = 150

_READABLE = {
    "LPAR": "'('", "RPAR": "')'", "COMMA": "','", "DOT": "'.'", "STAR": "'*'",
    "SEMICOLON": "';'", "COMP_OP": "a comparison operator", "ADD_OP": "'+' or '-'",
    "MUL_OP": "'*' or '/'", "CONCAT_OP": "'||'", "UNSIGNED_INTEGER": "an unsigned integer",
    "UNSIGNED_NUMBER": "a number", "STRING": "a string literal",
    "REGULAR_IDENTIFIER": "an identifier", "DELIMITED_IDENTIFIER": "an identifier",
    "$END": "the end of the query", "<END-OF-FILE>": "the end of the query",
}


@lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    grammar = (Path(__file__).parent / "adql.lark").read_text()
    return lark.Lark(grammar, parser="lalr", lexer="contextual", propagate_positions=False,
                     maybe_placeholders=False)


def _expected(names) -> str:
    words = sorted({_READABLE.get(n, n) for n in names if not n.startswith("__")})
    if "$END" in names or "<END-OF-FILE>" in names:
        words = ["the end of the query"] + [w for w in words if w != "the end of the query"]
    if len(words) > 12:
        words = words[:12] + ["..."]
    return ", ".join(words) if words else "nothing"


def parse(text: str) -> Tree:
    """Parse ADQL ``text`` into a syntax tree, or raise ``ADQLSyntaxError``.

    The error carries ``line`` and ``column`` (1-based) and a message naming what was
    found and what the grammar expected there.
    """
    if not isinstance(text, str) or not text.strip():
        raise ADQLSyntaxError("the query is empty", 1, 1)
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryTooComplexError(
            f"the query is {len(text)} characters long; the limit is {MAX_QUERY_LENGTH}")
    try:
        tree = _parser().parse(text)
    except lark.UnexpectedCharacters as exc:
        raise ADQLSyntaxError(
            f"unexpected character {text[exc.pos_in_stream]!r}; expected "
            f"{_expected(exc.allowed or ())}", exc.line, exc.column) from None
    except lark.UnexpectedEOF as exc:
        line = text.count("\n") + 1
        column = len(text) - (text.rfind("\n") + 1) + 1
        raise ADQLSyntaxError(f"the query ends too early; expected {_expected(exc.expected)}",
                              line, column) from None
    except lark.UnexpectedToken as exc:
        token = exc.token
        if token.type == "$END":
            line = text.count("\n") + 1
            column = len(text) - (text.rfind("\n") + 1) + 1
            raise ADQLSyntaxError(
                f"the query ends too early; expected {_expected(exc.expected)}",
                line, column) from None
        raise ADQLSyntaxError(f"unexpected {str(token)!r}; expected {_expected(exc.expected)}",
                              token.line, token.column) from None
    _check(tree)
    return tree


_FUNCTION_NODES = ("call", "call_star", "call_quantified")


def _check(tree: Tree) -> None:
    """Refuse reserved words as regular identifiers and over-deep nesting (iteratively)."""
    stack = [(tree, 1, False)]
    while stack:
        node, depth, is_function_name = stack.pop()
        if depth > MAX_DEPTH:
            raise QueryTooComplexError(
                "the query is nested too deeply (more than about "
                f"{MAX_DEPTH // 4} levels of parentheses, functions or subqueries)",
                **at(node))
        if not isinstance(node, Tree):
            continue
        if node.data == "regular_identifier" and not is_function_name:
            token = node.children[0]
            if token.upper() in RESERVED_WORDS:
                raise ADQLSyntaxError(
                    f"{str(token)!r} is a reserved word in ADQL; write it as a delimited "
                    f'identifier, "{token.lower()}", to use it as a name',
                    token.line, token.column)
        for i, child in enumerate(node.children):
            stack.append((child, depth + 1, i == 0 and node.data in _FUNCTION_NODES))

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
from lark import Token, Tree

from datamodel.names import RESERVED_WORDS

from .errors import ADQLSyntaxError, QueryTooComplexError, at

__all__ = ["parse", "MAX_QUERY_LENGTH", "MAX_DEPTH", "MAX_LITERALS", "MAX_SELECT_ITEMS",
           "MAX_SORT_TERMS", "MAX_ROW_COUNT", "MAX_CHAR_LENGTH", "RESERVED_WORDS"]

#: Longest query text accepted, in characters.
MAX_QUERY_LENGTH = 100_000
#: Deepest expression accepted, in levels of the syntax tree, where a chain of
#: ``+ - * / ||`` operators counts one level per term (SQLAlchemy compiles it as that
#: many nested operations, recursively: about five Python frames each). SQLite's
#: parser stack takes about 33 nested function calls: 64 levels are about 28 nested
#: functions or subqueries, or a chain of about 55 terms, on both databases.
#: ``AND``/``OR`` chains do not count: the translator nests them balanced.
MAX_DEPTH = 64
#: Most literal values (numbers and strings: each is a bound parameter) in a query.
MAX_LITERALS = 10_000
#: Most items in a select list (also after ``*`` is expanded), and most terms in an
#: ORDER BY or a GROUP BY clause. SQLite allows 2000 of each and PostgreSQL 1664 in
#: all (ORDER BY and GROUP BY expressions not selected count too): the same limits on
#: both, below both.
MAX_SELECT_ITEMS = 1000
MAX_SORT_TERMS = 250
#: Largest TOP and OFFSET (a 64-bit integer: SQLite's and PostgreSQL's LIMIT/OFFSET).
MAX_ROW_COUNT = 2 ** 63 - 1
#: Longest CHAR(n)/VARCHAR(n) of a CAST (PostgreSQL's limit for varchar).
MAX_CHAR_LENGTH = 10_485_760

_READABLE = {
    "LPAR": "'('", "RPAR": "')'", "COMMA": "','", "DOT": "'.'", "STAR": "'*'",
    "SEMICOLON": "';'", "COMP_OP": "a comparison operator", "ADD_OP": "'+' or '-'",
    "MUL_OP": "'*' or '/'", "CONCAT_OP": "'||'", "UNSIGNED_INTEGER": "an unsigned integer",
    "UNSIGNED_NUMBER": "a number", "UNSIGNED_HEX": "a number", "STRING": "a string literal",
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
#: operator chains that SQLAlchemy and the databases nest one level per term
_CHAINS = ("arith", "concatenation")
_LITERALS = ("number", "string", "hex_number")
_LISTS = {"select_list": ("select list", "items", MAX_SELECT_ITEMS),
          "order_by_clause": ("ORDER BY", "terms", MAX_SORT_TERMS),
          "group_by_clause": ("GROUP BY", "terms", MAX_SORT_TERMS)}


def _check(tree: Tree) -> None:
    """Refuse reserved words as regular identifiers, over-deep nesting and over-wide
    queries (iteratively: no recursion however the tree is shaped)."""
    stack = [(tree, 1, False)]
    literals = 0
    while stack:
        node, depth, is_function_name = stack.pop()
        if depth > MAX_DEPTH:
            raise QueryTooComplexError(
                f"the query is nested too deeply: more than {MAX_DEPTH} levels (about "
                f"{(MAX_DEPTH - 8) // 2} nested functions, subqueries or NOTs; a chain of + - "
                "* / or || counts one level per term); simplify the expression", **at(node))
        if not isinstance(node, Tree):
            continue
        data = node.data
        step = 1
        if data == "regular_identifier" and not is_function_name:
            token = node.children[0]
            if token.upper() in RESERVED_WORDS:
                raise ADQLSyntaxError(
                    f"{str(token)!r} is a reserved word in ADQL; write it as a delimited "
                    f'identifier, "{token.lower()}", to use it as a name',
                    token.line, token.column)
        elif data in _CHAINS:
            terms = sum(1 for c in node.children if isinstance(c, Tree))
            step = terms - 1                    # a op b is one level, as any operator
            if depth + step > MAX_DEPTH and MAX_DEPTH - depth >= 2:
                raise QueryTooComplexError(
                    f"an expression chains {terms} terms with + - * / or || here; at most "
                    f"{MAX_DEPTH - depth + 1} are accepted at this place (the limit is "
                    f"{MAX_DEPTH} levels of nesting in all); split it or use an aggregate",
                    **at(node))
        elif data == "signed":
            step = 2            # -(...) in SQL: a parenthesis level of SQLite's parser
        elif data in _LITERALS:
            literals += 1
            if literals > MAX_LITERALS:
                raise QueryTooComplexError(
                    f"the query has more than {MAX_LITERALS} literal values (numbers and "
                    "strings); split it into several queries or upload the values as a "
                    "table (UPLOAD)", **at(node))
        elif data in _LISTS:
            what, unit, limit = _LISTS[data]
            n = sum(1 for c in node.children if isinstance(c, Tree))
            if n > limit:
                raise QueryTooComplexError(f"the {what} has {n} {unit}; at most {limit} "
                                           "are accepted", **at(node))
        elif data in ("set_limit", "offset_clause"):
            _row_count(node.children[-1], "TOP" if data == "set_limit" else "OFFSET")
        elif data == "cast_target":
            for t in node.children:
                if isinstance(t, Token) and t.type == "UNSIGNED_INTEGER":
                    n = _integer(t)
                    if not 1 <= n <= MAX_CHAR_LENGTH:
                        raise ADQLSyntaxError(
                            f"the length of {node.children[0]} in CAST must be between 1 "
                            f"and {MAX_CHAR_LENGTH}, not {_shown(t)}", t.line, t.column)
        for i, child in enumerate(node.children):
            stack.append((child, depth + step, i == 0 and data in _FUNCTION_NODES))


def _shown(token) -> str:
    text = str(token)
    return text if len(text) <= 30 else text[:12] + "..." + text[-6:] + f" ({len(text)} digits)"


def _integer(token) -> int:
    """The value of an UNSIGNED_INTEGER token; -1 for one of more than 30 digits (never
    converted: Python refuses ints of over 4300 digits and they are all out of range)."""
    text = str(token).lstrip("0") or "0"
    return int(text) if len(text) <= 30 else -1


def _row_count(token, what: str) -> None:
    n = _integer(token)
    if not 0 <= n <= MAX_ROW_COUNT:
        raise ADQLSyntaxError(f"{what} {_shown(token)} is too large; the largest "
                              f"accepted is {MAX_ROW_COUNT}", token.line, token.column)

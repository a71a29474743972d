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

from .errors import ADQLSyntaxError, QueryTooComplexError, at

__all__ = ["parse", "MAX_QUERY_LENGTH", "MAX_DEPTH", "RESERVED_WORDS"]

#: Longest query text accepted, in characters.
MAX_QUERY_LENGTH = 100_000
#: Deepest syntax tree accepted (levels); well within what the translator, SQLAlchemy's
#: compiler and the databases handle. About 40 levels of nested parentheses/functions.
MAX_DEPTH = 150

#: SQL-92 and ADQL 2.1 reserved words (ADQL 2.1 section 2.1.2): a regular identifier
#: may not be one of these; write it delimited ("size").
RESERVED_WORDS = frozenset("""
ABSOLUTE ACTION ADD ALL ALLOCATE ALTER AND ANY ARE AS ASC ASSERTION AT AUTHORIZATION AVG
BEGIN BETWEEN BIT BIT_LENGTH BOTH BY CASCADE CASCADED CASE CAST CATALOG CHAR CHARACTER
CHAR_LENGTH CHARACTER_LENGTH CHECK CLOSE COALESCE COLLATE COLLATION COLUMN COMMIT CONNECT
CONNECTION CONSTRAINT CONSTRAINTS CONTINUE CONVERT CORRESPONDING COUNT CREATE CROSS CURRENT
CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER CURSOR DATE DAY DEALLOCATE DECIMAL
DECLARE DEFAULT DEFERRABLE DEFERRED DELETE DESC DESCRIBE DESCRIPTOR DIAGNOSTICS DISCONNECT
DISTINCT DOMAIN DOUBLE DROP ELSE END END-EXEC ESCAPE EXCEPT EXCEPTION EXEC EXECUTE EXISTS
EXTERNAL EXTRACT FALSE FETCH FIRST FLOAT FOR FOREIGN FOUND FROM FULL GET GLOBAL GO GOTO
GRANT GROUP HAVING HOUR IDENTITY ILIKE IMMEDIATE IN INDICATOR INITIALLY INNER INPUT
INSENSITIVE INSERT INT INTEGER INTERSECT INTERVAL INTO IS ISOLATION JOIN KEY LANGUAGE LAST
LEADING LEFT LEVEL LIKE LOCAL LOWER MATCH MAX MIN MINUTE MODULE MONTH NAMES NATIONAL NATURAL
NCHAR NEXT NO NOT NULL NULLIF NUMERIC OCTET_LENGTH OF OFFSET ON ONLY OPEN OPTION OR ORDER
OUTER OUTPUT OVERLAPS PAD PARTIAL POSITION PRECISION PREPARE PRESERVE PRIMARY PRIOR
PRIVILEGES PROCEDURE PUBLIC READ REAL REFERENCES RELATIVE RESTRICT REVOKE RIGHT ROLLBACK
ROWS SCHEMA SCROLL SECOND SECTION SELECT SESSION SESSION_USER SET SIZE SMALLINT SOME SPACE
SQL SQLCODE SQLERROR SQLSTATE SUBSTRING SUM SYSTEM_USER TABLE TEMPORARY THEN TIME TIMESTAMP
TIMEZONE_HOUR TIMEZONE_MINUTE TO TOP TRAILING TRANSACTION TRANSLATE TRANSLATION TRIM TRUE
UNION UNIQUE UNKNOWN UPDATE UPPER USAGE USER USING VALUE VALUES VARCHAR VARYING VIEW WHEN
WHENEVER WHERE WITH WORK WRITE YEAR ZONE
ABS ACOS AREA ASIN ATAN ATAN2 BIGINT BOX CEILING CENTROID CIRCLE CONTAINS COORD1 COORD2
COORDSYS COS COT DEGREES DISTANCE EXP FLOOR INTERSECTS IN_UNIT LOG LOG10 MOD PI POINT
POLYGON POWER RADIANS RAND REGION ROUND SIN SQRT TAN TRUNCATE
""".split())

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

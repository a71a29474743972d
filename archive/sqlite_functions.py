"""SQL functions the ADQL translation needs on SQLite, registered per connection.

SQLite 3.35+ has the math functions (acos, sin, ln, ...) built in when compiled with
SQLITE_ENABLE_MATH_FUNCTIONS (Debian's and Python's builds are). Where a function is
missing, ``register_functions`` installs a deterministic Python version with the same
semantics (NULL for NULL input and for arguments outside the domain, as SQLite does).
"""
from __future__ import annotations

import math
import sqlite3

__all__ = ["register_functions", "MATH_FUNCTIONS"]


def _safe(f):
    def wrapper(*args):
        if any(a is None for a in args):
            return None
        try:
            return float(f(*(float(a) for a in args)))
        except (ValueError, OverflowError, ZeroDivisionError, TypeError):
            return None
    return wrapper


#: name -> (number of arguments, Python implementation)
MATH_FUNCTIONS = {
    "acos": (1, math.acos), "asin": (1, math.asin), "atan": (1, math.atan),
    "atan2": (2, math.atan2), "cos": (1, math.cos), "sin": (1, math.sin),
    "tan": (1, math.tan), "ceil": (1, math.ceil), "floor": (1, math.floor),
    "ln": (1, math.log), "log10": (1, math.log10), "exp": (1, math.exp),
    "power": (2, math.pow), "sqrt": (1, math.sqrt), "degrees": (1, math.degrees),
    "radians": (1, math.radians), "pi": (0, lambda: math.pi), "mod": (2, math.fmod),
    "trunc": (1, math.trunc),
}

_missing_cache: dict[str, bool] = {}


def _missing(conn: sqlite3.Connection, name: str, nargs: int) -> bool:
    if name not in _missing_cache:
        try:
            conn.execute(f"SELECT {name}({', '.join(['0.5'] * nargs)})").fetchone()
            _missing_cache[name] = False
        except sqlite3.OperationalError:
            _missing_cache[name] = True
    return _missing_cache[name]


def register_functions(conn: sqlite3.Connection) -> None:
    """Install Python versions of the math functions this SQLite lacks on ``conn``."""
    for name, (nargs, f) in MATH_FUNCTIONS.items():
        if _missing(conn, name, nargs):
            conn.create_function(name, nargs, _safe(f), deterministic=True)

"""The "API code" of a catalogue search: the equivalent ADQL, pyvo code and a curl line
(no Flask, no database).

Built from the parsed ``Search`` (not from its SQL), with the position already
resolved to numbers: the same columns (``_r`` as a DISTANCE in arcsec), the area as
ADQL geometry (a cone as ``CONTAINS(POINT, CIRCLE) = 1``; a box or RA/Dec range as
``BETWEEN`` terms, across RA 0/360 as ``(ra >= a OR ra <= b)``), the constraints as
WHERE terms, the order of the page (the sort column with NULLs last, then the
table's key) and ``TOP maxrec``. Run through ``/tap/sync`` it returns the rows of
the search, in the same order.
"""
from __future__ import annotations

import re

import datamodel
from datamodel.names import RESERVED_WORDS
from .. import sky
from .params import DISTANCE, Search
from .query import result_columns

__all__ = ["adql", "python_code", "curl_command"]

_REGULAR = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def _name(name: str) -> str:
    """An ADQL identifier: delimited when not regular or a reserved word."""
    if _REGULAR.match(name) and name.upper() not in RESERVED_WORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def _number(value: float) -> str:
    return repr(float(value))


def _string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _position(table: datamodel.Table) -> tuple[str, str]:
    return (_name(table.role_column("ra").name), _name(table.role_column("dec").name))


def _area(search: Search) -> list[str]:
    if not search.spatial:
        return []
    ra, dec = _position(search.table)
    if search.shape == "cone" and search.radius_deg is not None:
        return [f"CONTAINS(POINT('ICRS', {ra}, {dec}), CIRCLE('ICRS', "
                f"{_number(search.ra)}, {_number(search.dec)}, "
                f"{_number(search.radius_deg)})) = 1"]
    if search.box is None:
        return []
    lo, width, dmin, dmax, full = sky.normalise_box(*search.box)
    terms = [f"{dec} BETWEEN {_number(dmin)} AND {_number(dmax)}"]
    if not full:
        hi = lo + width
        if hi < 360.0:
            terms.append(f"{ra} BETWEEN {_number(lo)} AND {_number(hi)}")
        else:
            terms.append(f"({ra} >= {_number(lo)} OR {ra} <= {_number(hi - 360.0)})")
    return terms


def _constraints(search: Search) -> list[str]:
    terms = []
    for c in search.constraints:
        col = _name(c.column)
        if c.op == "min":
            terms.append(f"{col} >= {c.value!r}")
        elif c.op == "max":
            terms.append(f"{col} <= {c.value!r}")
        elif c.op == "eq" and isinstance(c.value, bool):
            terms.append(f"{col} = {1 if c.value else 0}")
        elif c.op == "eq":
            terms.append(f"{col} = {_string(str(c.value))}")
        else:   # text contains, case-insensitive (% and _ are wildcards in ADQL)
            terms.append(f"LOWER({col}) LIKE {_string('%' + c.value.lower() + '%')}")
    return terms


def _order(search: Search) -> list[str]:
    sort = search.sort or (DISTANCE if search.positional else None)
    desc = " DESC" if search.order == "desc" else ""
    terms = []
    if sort == DISTANCE:
        terms.append(_name(DISTANCE) + desc)
    elif sort:
        col = _name(sort)
        # NULLs last both ways, as on the page (databases differ by default)
        terms += [f"CASE WHEN {col} IS NULL THEN 1 ELSE 0 END", col + desc]
    return terms + [_name(k) for k in search.table.key]


def adql(search: Search) -> str:
    """The ADQL query that returns the rows of ``search`` (all pages, in order)."""
    table = search.table
    columns = []
    for c in result_columns(search):
        if c.name == DISTANCE:
            ra, dec = _position(table)
            columns.append(f"DISTANCE(POINT('ICRS', {ra}, {dec}), POINT('ICRS', "
                           f"{_number(search.ra)}, {_number(search.dec)})) * 3600 "
                           f"AS {_name(DISTANCE)}")
        else:
            columns.append(_name(c.name))
    lines = [f"SELECT TOP {search.maxrec}", "  " + ",\n  ".join(columns),
             f"FROM {_name(table.name)}"]
    where = _area(search) + _constraints(search)
    if where:
        lines.append("WHERE " + "\n  AND ".join(where))
    lines.append("ORDER BY " + ", ".join(_order(search)))
    return "\n".join(lines)


def _cone_only(search: Search) -> bool:
    return (search.shape == "cone" and search.radius_deg is not None
            and search.ra is not None and not search.constraints)


def python_code(search: Search, base: str) -> str:
    """pyvo code (TAP; and SCS for a cone without constraints) giving the rows of
    ``search`` from the archive at ``base`` (absolute URL, no trailing slash)."""
    query = adql(search)
    lines = ["import pyvo", "",
             f'tap = pyvo.dal.TAPService("{base}/tap")',
             'adql = """',
             query,
             '"""',
             f"rows = tap.run_sync(adql, maxrec={search.maxrec}).to_table()",
             "print(rows)"]
    if _cone_only(search):
        lines += ["",
                  "# The same cone through Simple Cone Search. Note: SCS returns its own",
                  "# column set (not the columns chosen above) and at most the service's",
                  "# row limit; the rows are those of the same cone.",
                  f'scs = pyvo.dal.SCSService("{base}/scs/{search.table.name}")',
                  f"cone = scs.search(pos=({_number(search.ra)}, {_number(search.dec)}), "
                  f"radius={_number(search.radius_deg)}).to_table()",
                  "print(cone)"]
    return "\n".join(lines) + "\n"


def curl_command(csv_url: str, table: datamodel.Table) -> str:
    """A curl line downloading the result as CSV from ``csv_url``."""
    quoted = "'" + csv_url.replace("'", "'\\''") + "'"
    return f"curl -o extras-{table.name}-search.csv {quoted}\n"

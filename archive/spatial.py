"""SQLAlchemy conditions for spatial searches on positional tables.

Each condition is the index part (an OR of ``_hpx`` ranges from ``archive.sky``,
which a B-tree index answers) AND the exact part, in plain arithmetic on the
stored unit vector ``_x, _y, _z`` or on the RA/Dec columns: no trigonometry runs
in SQL, so SQLite and PostgreSQL select exactly the same rows. All values are
bound parameters. ``table`` may be a Table or an alias of one (``table.c._hpx``).

Exactness: the cone test compares squared chord lengths,
``(_x-x0)^2 + (_y-y0)^2 + (_z-z0)^2 <= (2 sin(r/2))^2``, which keeps full relative
precision down to the smallest radii (``x.x0 >= cos r`` would not: cos 1" =
1 - 1.2e-11). A row is selected iff its stored position is within the radius up to
about 1e-12 degrees of rounding (docs/conesearch.md, "exactness").
"""
from __future__ import annotations

import math

import sqlalchemy as sa

from . import sky

__all__ = ["cone_condition", "box_condition", "polygon_condition", "distance_expression",
           "chord2_expression", "ranges_condition", "position_columns", "chord_to_degrees",
           "range_bucket", "bound_cone_condition", "bound_distance_expression",
           "cone_parameters"]


def position_columns(table) -> tuple[sa.ColumnElement, sa.ColumnElement]:
    """The principal RA and Dec columns of a positional table or alias."""
    base = getattr(table, "element", table)
    model = getattr(base, "info", {}).get("datamodel")
    if model is not None:
        return table.c[model.role_column("ra").name], table.c[model.role_column("dec").name]
    return table.c.ra, table.c.dec


def ranges_condition(table, ranges: list[tuple[int, int]]):
    """``_hpx`` in any of the half-open ranges (false for an empty list)."""
    hpx = table.c._hpx
    if not ranges:
        return sa.false()
    # the ranges hold integers: [lo, hi) is BETWEEN lo AND hi - 1, one SQL element
    # per range instead of three (cheaper to build for every cone; same index use)
    terms = [hpx.between(lo, hi - 1) for lo, hi in ranges]
    return terms[0] if len(terms) == 1 else sa.or_(*terms)


def _centre(ra: float, dec: float) -> tuple[float, float, float]:
    x, y, z = sky.unit_vectors(ra, dec)
    return float(x), float(y), float(z)


def chord2_expression(table, ra: float, dec: float):
    """Squared chord length between each row's position and (ra, dec), in SQL."""
    x0, y0, z0 = _centre(ra, dec)
    dx = table.c._x - sa.literal(x0, sa.Double)
    dy = table.c._y - sa.literal(y0, sa.Double)
    dz = table.c._z - sa.literal(z0, sa.Double)
    return dx * dx + dy * dy + dz * dz


def cone_condition(table, ra: float, dec: float, radius_deg: float):
    """Rows within ``radius_deg`` of (ra, dec): index ranges AND the exact chord test.

    Raises ``sky.ShapeError`` for invalid values (see ``sky.cone_ranges``).
    """
    ranges = sky.cone_ranges(ra, dec, radius_deg)
    if not ranges:
        return sa.false()
    exact = chord2_expression(table, ra, dec) <= sa.literal(
        sky.chord2_for_radius(float(radius_deg)), sa.Double)
    return sa.and_(ranges_condition(table, ranges), exact)


# -- cones with bound parameters (statements built once, run with new values) -----------
#
# The cone search runs the same query shape for every request; these builders make
# it with ``bindparam()`` placeholders (names below) instead of values, so that one
# statement per (table, number of ranges) is compiled once and reused
# (``archive.query.PreparedStatement``). The SQL and the arithmetic are those of
# ``cone_condition`` and ``distance_expression``, in the same operation order, so
# both select exactly the same rows.

#: Range-list lengths a bound cone statement is built for; longer lists are padded.
_MIN_BUCKET = 2


def range_bucket(count: int) -> int:
    """The number of range placeholders for a list of ``count`` ranges: the next
    power of two, at least 2 (cones take at most about a dozen ranges, so a
    handful of statements cover every cone)."""
    bucket = _MIN_BUCKET
    while bucket < count:
        bucket *= 2
    return bucket


def _bound_chord2(table):
    x0, y0, z0 = (sa.bindparam(n, type_=sa.Double) for n in ("cone_x", "cone_y", "cone_z"))
    dx, dy, dz = table.c._x - x0, table.c._y - y0, table.c._z - z0
    return dx * dx + dy * dy + dz * dz


def bound_cone_condition(table, slots: int):
    """``cone_condition`` with placeholders: ``slots`` ranges ``cone_lo<i>``,
    ``cone_hi<i>``, the centre ``cone_x/y/z`` and ``cone_chord2``. Fill them with
    ``cone_parameters(ra, dec, radius, slots)``."""
    hpx = table.c._hpx
    terms = [sa.and_(hpx >= sa.bindparam(f"cone_lo{i}", type_=sa.BigInteger),
                     hpx < sa.bindparam(f"cone_hi{i}", type_=sa.BigInteger))
             for i in range(slots)]
    ranges = terms[0] if len(terms) == 1 else sa.or_(*terms)
    exact = _bound_chord2(table) <= sa.bindparam("cone_chord2", type_=sa.Double)
    return sa.and_(ranges, exact)


def bound_distance_expression(table):
    """``distance_expression`` from the centre placeholders ``cone_x/y/z``."""
    half = sa.func.sqrt(_bound_chord2(table)) / sa.literal(2.0, sa.Double)
    clipped = sa.case((half >= sa.literal(1.0, sa.Double), sa.literal(1.0, sa.Double)),
                      else_=half)
    return sa.func.degrees(sa.literal(2.0, sa.Double) * sa.func.asin(clipped))


def cone_parameters(ra: float, dec: float, radius_deg: float,
                    ranges: list[tuple[int, int]] | None = None) -> tuple[int, dict]:
    """``(slots, values)`` for ``bound_cone_condition``/``bound_distance_expression``.

    ``ranges`` defaults to ``sky.cone_ranges(ra, dec, radius_deg)``; they are padded
    to ``range_bucket(len(ranges))`` slots with empty ranges ``[0, 0)``, which match
    nothing and cost one index probe each. ``slots`` is 0 for an empty range list
    (the cone selects nothing; run no query). Raises ``sky.ShapeError`` like
    ``cone_condition``.
    """
    if ranges is None:
        ranges = sky.cone_ranges(ra, dec, radius_deg)
    if not ranges:
        return 0, {}
    slots = range_bucket(len(ranges))
    x0, y0, z0 = _centre(ra, dec)
    values = {"cone_x": x0, "cone_y": y0, "cone_z": z0,
              "cone_chord2": sky.chord2_for_radius(float(radius_deg))}
    for i in range(slots):
        lo, hi = ranges[i] if i < len(ranges) else (0, 0)
        values[f"cone_lo{i}"] = lo
        values[f"cone_hi{i}"] = hi
    return slots, values


def box_condition(table, ra_min: float, ra_max: float, dec_min: float, dec_max: float):
    """Rows with ``dec_min <= dec <= dec_max`` and RA in [ra_min, ra_max] (inclusive).

    ``ra_min > ra_max`` (after reducing both modulo 360) wraps through RA 0/360;
    ``ra_max - ra_min >= 360`` means every RA. The exact test is on the RA/Dec
    columns. For an ADQL BOX (centre, width, height) use ``sky.box_from_centre``.
    """
    lo, width, dmin, dmax, full = sky.normalise_box(ra_min, ra_max, dec_min, dec_max)
    ra_col, dec_col = position_columns(table)
    exact = [dec_col >= sa.literal(dmin, sa.Double), dec_col <= sa.literal(dmax, sa.Double)]
    if not full:
        hi = lo + width
        if hi < 360.0:
            exact += [ra_col >= sa.literal(lo, sa.Double), ra_col <= sa.literal(hi, sa.Double)]
        else:   # wraps: [lo, 360) or [0, hi - 360]
            exact.append(sa.or_(ra_col >= sa.literal(lo, sa.Double),
                                ra_col <= sa.literal(hi - 360.0, sa.Double)))
    ranges = sky.box_ranges(ra_min, ra_max, dec_min, dec_max)
    return sa.and_(ranges_condition(table, ranges), *exact)


def polygon_condition(table, vertices):
    """Rows inside (or on an edge of) a convex spherical polygon.

    ``vertices`` are (ra, dec) pairs in degrees, in either orientation; edges are
    great circles. The exact test is ``_x*nx + _y*ny + _z*nz >= 0`` for the inward
    normal of every edge. Non-convex polygons are refused with ``sky.ShapeError``
    (see ``sky.convex_polygon``).
    """
    _, normals = sky.convex_polygon(vertices)
    exact = [table.c._x * sa.literal(float(n[0]), sa.Double)
             + table.c._y * sa.literal(float(n[1]), sa.Double)
             + table.c._z * sa.literal(float(n[2]), sa.Double) >= sa.literal(0.0, sa.Double)
             for n in normals]
    return sa.and_(ranges_condition(table, sky.polygon_ranges(vertices)), *exact)


def distance_expression(table, ra: float, dec: float):
    """Angular distance in degrees from (ra, dec), for SELECT and ORDER BY.

    ``degrees(2 asin(chord / 2))``, exact at small separations (no ``acos`` of a
    dot product). Uses the SQL functions sqrt, asin and degrees, which PostgreSQL
    has and SQLite has when built with its math functions (Debian's 3.40 is).
    Ordering by
    ``chord2_expression`` gives the same order without any function.
    """
    half = sa.func.sqrt(chord2_expression(table, ra, dec)) / sa.literal(2.0, sa.Double)
    clipped = sa.case((half >= sa.literal(1.0, sa.Double), sa.literal(1.0, sa.Double)),
                      else_=half)
    return sa.func.degrees(sa.literal(2.0, sa.Double) * sa.func.asin(clipped))


def chord_to_degrees(chord2: float) -> float:
    """Angular distance in degrees for a squared chord length (Python side)."""
    return math.degrees(2.0 * math.asin(min(1.0, math.sqrt(max(chord2, 0.0)) / 2.0)))

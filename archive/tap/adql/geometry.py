"""ADQL geometry: POINT, CIRCLE, BOX, POLYGON and the functions on them.

Geometries are not SQL values here: they are kept as their parts (centre, radius,
vertices) and every function is written as plain arithmetic on unit vectors, the
same on SQLite and PostgreSQL, no per-row trigonometry where a table's stored
``_x, _y, _z`` can be used:

* CONTAINS(POINT(t.ra, t.dec), <constant CIRCLE/BOX/POLYGON>) on a table with the
  spatial index becomes ``archive.spatial.cone_condition``/``box_condition``/
  ``polygon_condition`` (HEALPix ranges on ``_hpx`` plus the exact test), and so does
  ``DISTANCE(POINT(t.ra, t.dec), <constant POINT>) < r``;
* a column-valued CONTAINS/DISTANCE (a cross-match) goes through
  ``crossmatch_condition``, the one place a positional join is written (the uploads
  code extends it with an index-using join);
* DISTANCE is in degrees, CONTAINS and INTERSECTS give 1 or 0.

Only ICRS is supported (the coordinate-system argument may be omitted, empty or
"ICRS..."). Geometries cannot be selected as result columns (see docs/adql.md).
The ``build_*`` functions are the builders of the ADQL function table
(``functions.FUNCTIONS``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from .errors import ADQLValidationError, UnsupportedError, at
from .values import NOCONST, NUMERIC, Value, as_double

__all__ = ["Point", "Circle", "Box", "Polygon", "crossmatch_condition", "distance_condition",
           "unit_vector", "build_point", "build_circle", "build_box", "build_polygon",
           "build_contains", "build_intersects", "build_distance", "build_coord",
           "build_area", "build_coordsys", "build_centroid"]


@dataclass
class Point:
    ra: Value
    dec: Value
    source: object = None        # the FROM item whose principal position this is

    @property
    def const(self):
        if self.ra.is_const and self.dec.is_const and None not in (self.ra.const, self.dec.const):
            return float(self.ra.const), float(self.dec.const)
        return None


@dataclass
class Circle:
    center: Point
    radius: Value


@dataclass
class Box:
    center: Point
    width: Value
    height: Value


@dataclass
class Polygon:
    vertices: list


def _const_vector(ra, dec):
    r, d = math.radians(ra), math.radians(dec)
    return (math.cos(d) * math.cos(r), math.cos(d) * math.sin(r), math.sin(d))


def unit_vector(p: Point):
    """(x, y, z) of a point: Python floats for constants, the stored ``_x, _y, _z`` of
    an indexed table's position, otherwise computed in SQL from ra/dec."""
    c = p.const
    if c is not None:
        return _const_vector(*c)
    if p.source is not None and getattr(p.source, "spatial", False):
        cols = p.source.selectable.c
        return cols["_x"], cols["_y"], cols["_z"]
    ra, dec = sa.func.radians(as_double(p.ra)), sa.func.radians(as_double(p.dec))
    cos_dec = sa.func.cos(dec)
    return cos_dec * sa.func.cos(ra), cos_dec * sa.func.sin(ra), sa.func.sin(dec)


def _dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cos_radius(r: Value):
    if r.is_const:
        return math.cos(math.radians(min(float(r.const), 180.0)))
    return sa.func.cos(sa.func.radians(as_double(r)))


def _least(ctx, a, b):
    """The smaller of ``a`` and ``b``, NULL if either is (a point with a NULL
    coordinate, as an outer join gives, has no distance): SQLite's two-argument
    min() is NULL then; PostgreSQL's LEAST ignores NULLs, so it is a CASE there."""
    if ctx.dialect == "postgresql":
        return sa.case((a > b, b), else_=a)
    return sa.func.min(a, b)


def distance_sql(ctx, p1: Point, p2: Point):
    """Great-circle distance in degrees, from the chord between the unit vectors
    (accurate at all separations, unlike acos of a dot product near 0)."""
    a, b = unit_vector(p1), unit_vector(p2)
    d = [a[i] - b[i] for i in range(3)]
    chord2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
    half = _least(ctx, sa.func.sqrt(chord2) / 2.0, 1.0)
    return sa.func.degrees(2.0 * sa.func.asin(half))


def crossmatch_condition(ctx, p1: Point, p2: Point, radius: Value):
    """The condition "p1 and p2 are at most ``radius`` degrees apart" for non-constant
    points: one dot product of unit vectors. The single place a positional join is
    built; the uploads code may extend it with an index-using join."""
    a, b = unit_vector(p1), unit_vector(p2)
    exact = _dot(a, b) >= _cos_radius(radius)
    if radius.is_const and radius.const is not None:
        for up, other in ((p1, p2), (p2, p1)):
            ranges = _upload_ranges(up, other, float(radius.const))
            if ranges is not None:
                return sa.and_(ranges, exact)
    return exact


def _upload_ranges(up: Point, other: Point, radius_deg: float):
    """The index-using part of a cross-match between an uploaded table's position
    and an indexed table's: the uploaded table offers it through
    ``info["crossmatch_ranges"]`` of its temporary table (see archive.tap.uploads).
    The position is the table's own, or any two of its columns the query names
    (``info["positions"]`` makes them its position)."""
    if not _indexed(other) or up.const is not None:
        return None
    source = up.source
    if source is None:            # two plain columns of one table, not its position
        if up.ra.source is None or up.dec.source is None \
                or up.ra.source[0] is not up.dec.source[0]:
            return None
        source = up.ra.source[0]
        element = getattr(source.selectable, "element", source.selectable)
        positions = getattr(element, "info", {}).get("positions")
        if positions is None or not positions(up.ra.source[1], up.dec.source[1]):
            return None
    selectable = source.selectable
    table = getattr(selectable, "element", selectable)
    provider = getattr(table, "info", {}).get("crossmatch_ranges")
    if provider is None:
        return None
    return provider(selectable, other.source.selectable.c["_hpx"], radius_deg)


def _index_cone(p: Point, center, radius_deg):
    from archive import spatial
    return spatial.cone_condition(p.source.selectable, center[0], center[1], radius_deg)


def _indexed(p: Point) -> bool:
    return p.const is None and p.source is not None and getattr(p.source, "spatial", False)


def distance_condition(ctx, p1: Point, p2: Point, radius: Value):
    """DISTANCE(p1, p2) <= radius, using the spatial index when one side is a table's
    position and the other and the radius are constants."""
    if radius.is_const and radius.const is not None:
        if p2.const is not None and _indexed(p1):
            return _index_cone(p1, p2.const, float(radius.const))
        if p1.const is not None and _indexed(p2):
            return _index_cone(p2, p1.const, float(radius.const))
    return crossmatch_condition(ctx, p1, p2, radius)


# -- constructors -------------------------------------------------------------------------

def _coordsys(args, node, name):
    """Strip an optional leading coordinate-system literal; only ICRS is known."""
    if args and args[0].datatype == "char":
        cs = args[0]
        if not cs.is_const:
            raise ADQLValidationError(f"the coordinate system of {name} must be a string literal",
                                      **at(cs.node or node))
        text = (cs.const or "").strip().upper()
        if text and not text.startswith("ICRS"):
            raise UnsupportedError(f"coordinate system {cs.const!r} in {name} is not supported; "
                                   "this service knows only ICRS", **at(cs.node or node))
        return args[1:]
    return args


def _numbers(args, node, name):
    for i, a in enumerate(args):
        if a.datatype not in NUMERIC:
            raise ADQLValidationError(f"argument {i + 1} of {name} must be numeric, "
                                      f"not {a.datatype}", **at(a.node or node))


def _geom(value, kinds, name, node):
    if value.datatype != "geometry" or not isinstance(value.geom, kinds):
        want = " or ".join(k.__name__.upper() for k in kinds)
        raise ADQLValidationError(f"{name} needs a {want} here", **at(value.node or node))
    return value.geom


def _check_coordinates(ra: Value, dec: Value) -> None:
    """Constant coordinates must be finite, and a declination within [-90, 90]."""
    for v, what in ((ra, "RA"), (dec, "Dec")):
        if v.is_const and isinstance(v.const, (int, float)) and not math.isfinite(v.const):
            raise ADQLValidationError(f"the {what} of a position must be a finite number, "
                                      f"not {v.const}", **at(v.node))
    if dec.is_const and isinstance(dec.const, (int, float)) and not -90 <= dec.const <= 90:
        raise ADQLValidationError(f"the Dec of a position must be between -90 and 90 "
                                  f"degrees, not {dec.const:g}", **at(dec.node))


def make_point(ra: Value, dec: Value) -> Point:
    _check_coordinates(ra, dec)
    src = None
    if ra.source is not None and dec.source is not None and ra.source[0] is dec.source[0]:
        s = ra.source[0]
        if s.ra is not None and ra.source[1] == s.ra and dec.source[1] == s.dec:
            src = s
    return Point(ra, dec, src)


def build_point(ctx, args, node):
    args = _coordsys(args, node, "POINT")
    if len(args) != 2:
        raise ADQLValidationError("POINT takes two coordinates", **at(node))
    _numbers(args, node, "POINT")
    return Value(None, "geometry", geom=make_point(*args), name="point", node=node,
                 aggregate=any(a.aggregate for a in args))


def _center(args, node, name, extra):
    """Centre as a POINT value or two coordinates, followed by ``extra`` numbers."""
    if args and args[0].datatype == "geometry":
        center = _geom(args[0], (Point,), name, node)
        rest = args[1:]
    else:
        if len(args) < 2:
            raise ADQLValidationError(f"{name} needs a centre", **at(node))
        _numbers(args[:2], node, name)
        center, rest = make_point(args[0], args[1]), args[2:]
    if len(rest) != extra:
        raise ADQLValidationError(f"{name} takes a centre and {extra} size argument(s)",
                                  **at(node))
    _numbers(rest, node, name)
    return center, rest


def build_circle(ctx, args, node):
    center, (radius,) = _center(_coordsys(args, node, "CIRCLE"), node, "CIRCLE", 1)
    if radius.is_const and radius.const is not None and not 0 <= radius.const <= 180:
        raise ADQLValidationError(f"the radius of CIRCLE must be between 0 and 180 degrees, "
                                  f"not {radius.const}", **at(radius.node or node))
    return Value(None, "geometry", geom=Circle(center, radius), name="circle", node=node)


def build_box(ctx, args, node):
    center, (w, h) = _center(_coordsys(args, node, "BOX"), node, "BOX", 2)
    return Value(None, "geometry", geom=Box(center, w, h), name="box", node=node)


def build_polygon(ctx, args, node):
    args = _coordsys(args, node, "POLYGON")
    if args and all(a.datatype == "geometry" for a in args):
        vertices = [_geom(a, (Point,), "POLYGON", node) for a in args]
    else:
        _numbers(args, node, "POLYGON")
        if len(args) % 2:
            raise ADQLValidationError("POLYGON needs pairs of coordinates", **at(node))
        vertices = [make_point(args[i], args[i + 1]) for i in range(0, len(args), 2)]
    if len(vertices) < 3:
        raise ADQLValidationError("POLYGON needs at least three vertices", **at(node))
    return Value(None, "geometry", geom=Polygon(vertices), name="polygon", node=node)


# -- predicates -------------------------------------------------------------------------

def _const_box(box: Box, node):
    c = box.center.const
    if c is None or not (box.width.is_const and box.height.is_const):
        raise UnsupportedError("BOX with column-valued arguments is not supported; "
                               "use constants", **at(node))
    from archive.sky import box_from_centre   # the same BOX reading as the web form's
    try:
        return box_from_centre(c[0], c[1], float(box.width.const), float(box.height.const))
    except ValueError as exc:
        raise ADQLValidationError(f"BOX: {exc}", **at(node)) from None


def _const_polygon(poly: Polygon, node):
    vs = [v.const for v in poly.vertices]
    if any(v is None for v in vs):
        raise UnsupportedError("POLYGON with column-valued vertices is not supported; "
                               "use constants", **at(node))
    return vs


def _edges(vertices):
    """Edge normals of a convex spherical polygon, oriented so that inside is >= 0."""
    vecs = np.array([_const_vector(*v) for v in vertices])
    normals = np.cross(vecs, np.roll(vecs, -1, axis=0))
    centre = vecs.sum(axis=0)
    signs = normals @ centre
    if not (np.all(signs > 0) or np.all(signs < 0)):
        raise UnsupportedError("only convex polygons can be tested against computed positions; "
                               "use the table's own ra/dec columns", None, None)
    return normals if signs[0] > 0 else -normals


def _contains_point(ctx, p: Point, shape, node):
    if isinstance(shape, Point):
        return distance_condition(ctx, p, shape, Value(None, const=0.0))
    if isinstance(shape, Circle):
        if shape.center.const is not None and shape.radius.is_const and _indexed(p):
            return _index_cone(p, shape.center.const, float(shape.radius.const))
        return crossmatch_condition(ctx, p, shape.center, shape.radius)
    if isinstance(shape, Box):
        ra_min, ra_max, dec_min, dec_max = _const_box(shape, node)
        if _indexed(p):
            from archive import spatial
            return spatial.box_condition(p.source.selectable, ra_min, ra_max, dec_min, dec_max)
        ra, dec = as_double(p.ra), as_double(p.dec)
        in_ra = (sa.and_(ra >= ra_min, ra <= ra_max) if ra_min <= ra_max
                 else sa.or_(ra >= ra_min, ra <= ra_max))
        return sa.and_(dec >= dec_min, dec <= dec_max, in_ra)
    if isinstance(shape, Polygon):
        vertices = _const_polygon(shape, node)
        from archive.sky import ShapeError, convex_polygon
        try:
            convex_polygon(vertices)          # refuses degenerate and non-convex ones
        except ShapeError as exc:
            raise ADQLValidationError(f"POLYGON: {exc}", **at(node)) from None
        if _indexed(p):
            from archive import spatial
            return spatial.polygon_condition(p.source.selectable, vertices)
        try:
            normals = _edges(vertices)
        except UnsupportedError as exc:
            raise UnsupportedError(exc.reason, **at(node)) from None
        v = unit_vector(p)
        return sa.and_(*[_dot(v, tuple(float(c) for c in n)) >= 0 for n in normals])
    raise ADQLValidationError("unknown geometry", **at(node))


def _predicate(ctx, cond, node, name):
    return Value(sa.case((cond, 1), else_=0), "int", predicate=cond, name=name, node=node)


def build_contains(ctx, args, node):
    a = _geom(args[0], (Point, Circle, Box, Polygon), "CONTAINS", node)
    b = _geom(args[1], (Point, Circle, Box, Polygon), "CONTAINS", node)
    if isinstance(a, Point):
        return _predicate(ctx, _contains_point(ctx, a, b, node), node, "contains")
    if isinstance(a, Circle) and isinstance(b, Circle):
        d = distance_sql(ctx, a.center, b.center)
        return _predicate(ctx, d + as_double(a.radius) <= as_double(b.radius), node, "contains")
    raise UnsupportedError("CONTAINS is supported for a POINT in any region and a CIRCLE in "
                           "a CIRCLE", **at(node))


def build_intersects(ctx, args, node):
    a = _geom(args[0], (Point, Circle, Box, Polygon), "INTERSECTS", node)
    b = _geom(args[1], (Point, Circle, Box, Polygon), "INTERSECTS", node)
    if isinstance(a, Point):
        return _predicate(ctx, _contains_point(ctx, a, b, node), node, "intersects")
    if isinstance(b, Point):
        return _predicate(ctx, _contains_point(ctx, b, a, node), node, "intersects")
    if isinstance(a, Circle) and isinstance(b, Circle):
        radius = Value(as_double(a.radius) + as_double(b.radius), "double")
        if a.radius.is_const and b.radius.is_const:
            radius = Value(radius.sql, "double", const=float(a.radius.const) + float(b.radius.const))
        return _predicate(ctx, distance_condition(ctx, a.center, b.center, radius), node,
                          "intersects")
    raise UnsupportedError("INTERSECTS is supported between a POINT and any region and "
                           "between two CIRCLEs", **at(node))


def build_distance(ctx, args, node):
    if len(args) == 4:
        _numbers(args, node, "DISTANCE")
        p1, p2 = make_point(args[0], args[1]), make_point(args[2], args[3])
    elif len(args) == 2:
        p1 = _geom(args[0], (Point,), "DISTANCE", node)
        p2 = _geom(args[1], (Point,), "DISTANCE", node)
    else:
        raise ADQLValidationError("DISTANCE takes two POINTs or four coordinates", **at(node))
    const = NOCONST
    if p1.const and p2.const:
        a, b = np.array(_const_vector(*p1.const)), np.array(_const_vector(*p2.const))
        const = math.degrees(2 * math.asin(min(np.linalg.norm(a - b) / 2, 1.0)))
    return Value(distance_sql(ctx, p1, p2), "double", name="distance", node=node,
                 distance=(p1, p2), const=const,
                 meta=None, aggregate=False).with_(arraysize=None)


def build_coord(index):
    def build(ctx, args, node):
        p = _geom(args[0], (Point,), f"COORD{index}", node)
        v = p.ra if index == 1 else p.dec
        return v.with_(name=f"coord{index}", node=node)
    return build


def build_area(ctx, args, node):
    g = _geom(args[0], (Circle, Box, Polygon), "AREA", node)
    sq_deg = (180 / math.pi) ** 2
    if isinstance(g, Circle):
        if g.radius.is_const:
            const = 2 * math.pi * (1 - math.cos(math.radians(float(g.radius.const)))) * sq_deg
            return Value(sa.literal(const, sa.Double), "double", const=const, name="area",
                         node=node)
        sql = 2 * math.pi * (1 - sa.func.cos(sa.func.radians(as_double(g.radius)))) * sq_deg
        return Value(sql, "double", name="area", node=node)
    if isinstance(g, Box):
        ra_min, ra_max, dec_min, dec_max = _const_box(g, node)
        dra = (ra_max - ra_min) % 360.0 or (360.0 if float(g.width.const) >= 360 else 0.0)
        const = math.radians(dra) * (math.sin(math.radians(dec_max))
                                     - math.sin(math.radians(dec_min))) * sq_deg
    else:
        vs = [np.array(_const_vector(*v)) for v in _const_polygon(g, node)]
        total = 0.0    # signed solid angle of the fan of triangles (Van Oosterom-Strackee)
        for i in range(1, len(vs) - 1):
            a, b, c = vs[0], vs[i], vs[i + 1]
            num = float(np.dot(a, np.cross(b, c)))
            den = 1 + float(np.dot(a, b) + np.dot(b, c) + np.dot(c, a))
            total += 2 * math.atan2(num, den)
        total = abs(total)
        const = min(total, 4 * math.pi - total) * sq_deg
    return Value(sa.literal(const, sa.Double), "double", const=const, name="area", node=node)


def build_coordsys(ctx, args, node):
    _geom(args[0], (Point, Circle, Box, Polygon), "COORDSYS", node)
    return Value(sa.literal("ICRS", sa.String), "char", "*", const="ICRS", name="coordsys",
                 node=node)


def build_centroid(ctx, args, node):
    g = _geom(args[0], (Point, Circle, Box, Polygon), "CENTROID", node)
    if isinstance(g, Point):
        return args[0]
    if isinstance(g, (Circle, Box)):
        return Value(None, "geometry", geom=g.center, name="centroid", node=node)
    vs = np.array([_const_vector(*v) for v in _const_polygon(g, node)]).sum(axis=0)
    ra = math.degrees(math.atan2(vs[1], vs[0])) % 360.0
    dec = math.degrees(math.atan2(vs[2], math.hypot(vs[0], vs[1])))
    from .values import literal
    return Value(None, "geometry", geom=Point(literal(ra, "double"), literal(dec, "double")),
                 name="centroid", node=node)


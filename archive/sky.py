"""Sky geometry: the HEALPix index and unit vectors every positional table stores,
and the index ranges that cover cones, boxes and polygons.

Pure numpy/healpy, no Flask, no database. Positions are indexed with HEALPix NESTED
at ``ORDER`` = 29 in an int64, so every coarser cell of order k is the contiguous
integer range ``[p << 2(29-k), (p+1) << 2(29-k))``; each row also stores its unit
vector (x, y, z), so an exact cone test is plain arithmetic.

A shape becomes a short list of half-open ``[lo, hi)`` ranges of the order-29
index: healpy covers it (``inclusive=True``: every cell that touches the shape,
and perhaps a few more) at a coarser order chosen from the shape's size, and the
cells are shifted to order 29 and merged. The ranges are a superset of the shape;
``archive.spatial`` adds the exact test. See docs/conesearch.md ("spatial engine").
"""
from __future__ import annotations

import math

import healpy as hp
import numpy as np

__all__ = ["ORDER", "NSIDE", "TINY", "MAX_QUERY_ORDER", "unit_vectors", "healpix_index",
           "order_for_radius", "chord2_for_radius", "cone_ranges", "box_ranges",
           "box_from_centre", "polygon_ranges", "convex_polygon", "normalise_box",
           "ShapeError"]

ORDER = 29
NSIDE = 1 << ORDER

#: The finest order a shape is covered at (cells of 0.2 arcsec). healpy's inclusive
#: tests run at ``fact`` (4) times the resolution and abort the process beyond order
#: 29; at orders above about 22 ``query_disc`` also returned no cell at all for discs
#: of 1e-9 rad (healpy 1.20.1), so we stay well below both.
MAX_QUERY_ORDER = 20
_FACT = 4
#: Angular resolution of an order-0 cell, in degrees (about 58.6).
_RESOL0 = math.degrees(hp.nside2resol(1))
#: Radius margin, in radians, added before asking healpy for the cells of a cone, so
#: that rounding in ang2pix/query_disc can never lose a cell holding a boundary point.
_MARGIN = 1e-9
#: Smallest disc radius (radians, 0.2 arcsec, about one cell at MAX_QUERY_ORDER)
#: passed to healpy: tinier discs are covered as if they were this large.
_MIN_QUERY_RADIUS = 1e-6
_ALL_SKY = [(0, 12 << (2 * ORDER))]
#: Most ranges a box or polygon coverage may have before the order is coarsened.
_MAX_RANGES = 32


class ShapeError(ValueError):
    """A shape that cannot be searched (bad coordinates, non-convex polygon ...)."""


#: Components smaller than this are stored as exactly 0 (see ``unit_vectors``).
TINY = 1e-100


def _flush(v):
    return np.where(np.abs(v) < TINY, 0.0, v)


def unit_vectors(ra, dec):
    """Unit vectors (x, y, z) of positions given in degrees, as float64 arrays.

    Components below ``TINY`` (1e-100) in magnitude are set to exactly 0, a shift
    of the position by less than 1e-100 rad. PostgreSQL raises "value out of
    range: underflow" when a float8 product rounds to 0 (SQLite does not), so
    the squared differences and dot products of the exact tests must never fall
    below the smallest double: with every non-zero component at least 1e-100, a
    non-zero difference is at least about 1e-116 and its square 1e-232.
    """
    ra_r = np.radians(np.asarray(ra, dtype=np.float64))
    dec_r = np.radians(np.asarray(dec, dtype=np.float64))
    cos_dec = np.cos(dec_r)
    return (_flush(cos_dec * np.cos(ra_r)), _flush(cos_dec * np.sin(ra_r)),
            _flush(np.sin(dec_r)))


def healpix_index(ra, dec):
    """HEALPix NESTED index at ``ORDER`` of positions in degrees (int64 array)."""
    return hp.ang2pix(NSIDE, np.asarray(ra, dtype=np.float64),
                      np.asarray(dec, dtype=np.float64), nest=True, lonlat=True).astype(np.int64)


# -- helpers ----------------------------------------------------------------------------

def _finite(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ShapeError(f"{name} must be a number, not {value!r}") from None
    if not math.isfinite(v):
        raise ShapeError(f"{name} must be a finite number, not {value!r}")
    return v


def _check_dec(name: str, dec: float) -> float:
    dec = _finite(name, dec)
    if not -90.0 <= dec <= 90.0:
        raise ShapeError(f"{name}={dec:g} is outside [-90, 90] degrees")
    return dec


def order_for_radius(radius_deg: float) -> int:
    """The order whose cells are just smaller than ``radius_deg`` (cell size in (r/2, r]).

    A cone covered at that order takes at most about a dozen merged ranges and
    the cells cover about 2 to 3 times the cone's area (measured on random cones
    from 1 arcsec to 10 degrees; docs/conesearch.md).
    """
    if radius_deg <= 0:
        return MAX_QUERY_ORDER
    ratio = _RESOL0 / radius_deg
    if not math.isfinite(ratio):          # a subnormal radius (5e-324): the finest order
        return MAX_QUERY_ORDER
    k = math.ceil(math.log2(ratio))
    return max(0, min(MAX_QUERY_ORDER, k))


def chord2_for_radius(radius_deg: float) -> float:
    """Squared chord length ``(2 sin(r/2))**2`` between unit vectors ``radius_deg`` apart.

    The exact cone test compares squared chord lengths instead of ``x.x0 >= cos r``:
    ``1 - cos r`` loses all but a few digits for radii of an arcsecond
    (cos 1" = 1 - 1.2e-11), the chord keeps full relative precision.
    """
    r = math.radians(min(max(radius_deg, 0.0), 180.0))
    return (2.0 * math.sin(r / 2.0)) ** 2


def _to_storage(ranges: np.ndarray, order: int) -> list[tuple[int, int]]:
    """Shift half-open ranges of cells at ``order`` to ``ORDER`` and merge adjacent ones."""
    shift = 2 * (ORDER - order)
    out: list[tuple[int, int]] = []
    for lo, hi in np.asarray(ranges, dtype=np.int64).reshape(-1, 2).tolist():
        lo, hi = lo << shift, hi << shift
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _pixels_to_ranges(pixels: np.ndarray, order: int) -> list[tuple[int, int]]:
    pixels = np.unique(np.asarray(pixels, dtype=np.int64))
    if pixels.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(pixels) != 1) + 1
    starts = pixels[np.r_[0, breaks]]
    ends = pixels[np.r_[breaks - 1, pixels.size - 1]] + 1
    return _to_storage(np.column_stack([starts, ends]), order)


# -- cones ------------------------------------------------------------------------------

def cone_ranges(ra: float, dec: float, radius_deg: float) -> list[tuple[int, int]]:
    """Half-open ranges of the order-29 index covering the cone (a superset of it).

    Raises ShapeError for non-finite values, a declination outside [-90, 90] or a
    negative radius. A radius of 180 degrees or more covers the whole sky.
    """
    ra = _finite("RA", ra) % 360.0
    dec = _check_dec("Dec", dec)
    radius = _finite("radius", radius_deg)
    if radius < 0:
        raise ShapeError(f"radius={radius:g} must not be negative")
    if radius >= 180.0:
        return list(_ALL_SKY)
    order = order_for_radius(radius)
    vec = hp.ang2vec(ra, dec, lonlat=True)
    rad = min(max(math.radians(radius), _MIN_QUERY_RADIUS) * (1 + 1e-9) + _MARGIN, math.pi)
    ranges = hp.query_disc(1 << order, vec, rad, inclusive=True, fact=_FACT, nest=True,
                           return_ranges=True)
    return _to_storage(ranges, order)


# -- boxes ------------------------------------------------------------------------------

def normalise_box(ra_min: float, ra_max: float, dec_min: float,
                  dec_max: float) -> tuple[float, float, float, float, bool]:
    """Check a RA/Dec box and return ``(ra_min, width, dec_min, dec_max, full_ra)``.

    RA limits are taken modulo 360; ``ra_min > ra_max`` (after that) means the range
    wraps through RA 0/360, e.g. 350..10. ``ra_max - ra_min >= 360`` before
    normalisation means every RA. Dec limits must lie in [-90, 90] with
    ``dec_min <= dec_max``.
    """
    lo, hi = _finite("RA minimum", ra_min), _finite("RA maximum", ra_max)
    dmin, dmax = _check_dec("Dec minimum", dec_min), _check_dec("Dec maximum", dec_max)
    if dmin > dmax:
        raise ShapeError(f"Dec minimum {dmin:g} is above Dec maximum {dmax:g}")
    if hi - lo >= 360.0:
        return 0.0, 360.0, dmin, dmax, True
    lo, hi = lo % 360.0, hi % 360.0
    width = (hi - lo) % 360.0
    return lo, width, dmin, dmax, False


def box_from_centre(ra: float, dec: float, width: float,
                    height: float) -> tuple[float, float, float, float]:
    """RA/Dec limits ``(ra_min, ra_max, dec_min, dec_max)`` of an ADQL-style BOX.

    ADQL gives a box as centre, width and height. We read it, as pgSphere's
    ``sbox`` and DaCHS do, as the RA range ``ra +- width/2`` (degrees of RA, not
    scaled by cos Dec) and the Dec range ``dec +- height/2`` clipped to the poles;
    a width of 360 degrees or more means every RA.
    """
    ra = _finite("box centre RA", ra)
    dec = _check_dec("box centre Dec", dec)
    width, height = _finite("box width", width), _finite("box height", height)
    if width < 0 or height < 0:
        raise ShapeError("box width and height must not be negative")
    dmin, dmax = max(-90.0, dec - height / 2), min(90.0, dec + height / 2)
    if width >= 360.0:
        return 0.0, 360.0, dmin, dmax
    return (ra - width / 2) % 360.0, (ra + width / 2) % 360.0, dmin, dmax


def _box_candidates(order, ra_min, width, dec_min, dec_max, full_ra):
    """Cells at ``order`` that may touch the box (conservative)."""
    nside = 1 << order
    ra_c = (ra_min + width / 2) % 360.0
    dec_c = (dec_min + dec_max) / 2
    corners_ra = np.array([ra_min, ra_min + width, ra_min, ra_min + width])
    corners_dec = np.array([dec_min, dec_min, dec_max, dec_max])
    cvec = np.array(unit_vectors(ra_c, dec_c))
    kvec = np.array(unit_vectors(corners_ra, corners_dec))
    circum = math.degrees(math.acos(min(1.0, float((cvec[:, None] * kvec).sum(0).min()))))
    if not full_ra and width <= 180.0 and circum < 80.0:
        # all corners within 80 deg of the centre: the box lies in that cone
        rad = max(math.radians(circum), _MIN_QUERY_RADIUS) * (1 + 1e-9) + _MARGIN
        pix = hp.query_disc(nside, cvec, rad, inclusive=True, fact=_FACT, nest=True)
    else:
        theta1 = math.radians(90.0 - dec_max)
        theta2 = math.radians(90.0 - dec_min)
        pix = hp.query_strip(nside, max(0.0, theta1 - 1e-9), min(math.pi, theta2 + 1e-9),
                             inclusive=True, nest=False)
        pix = hp.ring2nest(nside, pix)
    # keep the cells whose enclosing circle (1% and 1e-9 rad of slack) meets the box
    rho = math.degrees(hp.max_pixrad(nside) * 1.01 + _MARGIN)
    pra, pdec = hp.pix2ang(nside, pix, nest=True, lonlat=True)
    keep = (pdec + rho >= dec_min) & (pdec - rho <= dec_max)
    if not full_ra:
        cosd = np.cos(np.radians(pdec))
        polar = np.abs(pdec) + rho >= 90.0
        with np.errstate(invalid="ignore", divide="ignore"):
            half = np.degrees(np.arcsin(np.clip(math.sin(math.radians(rho)) / cosd, 0, 1)))
        start = (pra - half) % 360.0
        meets = (((start - ra_min) % 360.0) <= width) | (((ra_min - start) % 360.0) <= 2 * half)
        keep &= polar | meets
    return pix[keep]


def box_ranges(ra_min: float, ra_max: float, dec_min: float,
               dec_max: float) -> list[tuple[int, int]]:
    """Half-open ranges of the order-29 index covering a RA/Dec box (a superset of it).

    ``ra_min > ra_max`` wraps through RA 0/360 (see ``normalise_box``). The order
    is the finest (from the box size) that keeps the list at most about 32 ranges.
    For an ADQL BOX (centre, width, height), convert with ``box_from_centre``.
    """
    lo, width, dmin, dmax, full = normalise_box(ra_min, ra_max, dec_min, dec_max)
    if full and dmin <= -90.0 and dmax >= 90.0:
        return list(_ALL_SKY)
    size = min(dmax - dmin, width * math.cos(math.radians(max(abs(dmin), abs(dmax)))))
    best = None
    # start at a coarse order and refine while the list stays short
    order = max(0, order_for_radius(max(dmax - dmin, min(width, 180.0), 1e-12)) - 1)
    finest = order_for_radius(max(size, 1e-12) / 2)
    while True:
        ranges = _pixels_to_ranges(_box_candidates(order, lo, width, dmin, dmax, full), order)
        if best is not None and len(ranges) > _MAX_RANGES:
            break
        best = ranges
        if order >= finest or order >= MAX_QUERY_ORDER:
            break
        order += 1
    return best


# -- polygons ---------------------------------------------------------------------------

def convex_polygon(vertices) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors and inward edge normals of a convex spherical polygon.

    ``vertices`` is a sequence of (ra, dec) pairs in degrees (at least 3), in
    either orientation; edges are great-circle arcs from each vertex to the next
    and from the last back to the first. A point p is inside (or on the edge) iff
    ``p . n >= 0`` for every returned normal n. Non-convex or self-intersecting
    polygons, repeated vertices and polygons not contained in a hemisphere are
    refused with a ShapeError (healpy's coverage needs convex polygons too).
    """
    try:
        pts = [(float(a), float(b)) for a, b in vertices]
    except (TypeError, ValueError):
        raise ShapeError("a polygon needs a sequence of (ra, dec) pairs") from None
    if len(pts) < 3:
        raise ShapeError(f"a polygon needs at least 3 vertices, not {len(pts)}")
    for i, (a, b) in enumerate(pts, 1):
        _finite(f"RA of polygon vertex {i}", a)
        _check_dec(f"Dec of polygon vertex {i}", b)
    ra, dec = np.array(pts).T
    vec = np.column_stack(unit_vectors(ra, dec))
    nxt = np.roll(vec, -1, axis=0)
    # a x (b - a) == a x b, but keeps full relative precision for short edges, where
    # a x b would be a small difference of products of order 1
    normals = np.cross(vec, nxt - vec)
    norms = np.linalg.norm(normals, axis=1)
    if (norms < 1e-15).any():
        i = int(np.argmax(norms < 1e-15)) + 1
        raise ShapeError(f"polygon vertices {i} and {i % len(pts) + 1} coincide or are "
                         "antipodal: an edge is undefined")
    normals = _flush(normals / norms[:, None])   # no float8 underflow in SQL products
    # orientation from the turn at each vertex: the next vertex lies on the left of edge i
    turn = np.einsum("ij,ij->i", normals, np.roll(nxt, -1, axis=0))
    if (turn < 0).all():
        normals = -normals
    elif not (turn > 0).all():
        raise ShapeError("the polygon is not convex (or its edges cross); only convex "
                         "polygons are supported: split it into convex pieces")
    # a convex polygon must also wind once: each vertex inside all the other edges
    inside = vec @ normals.T
    # an edge's own end points lie on it by construction; their computed products are
    # rounding noise (~1e-10 for edges of a few milliarcseconds), so they are not tested
    n = len(pts)
    idx = np.arange(n)
    inside[idx, idx] = 0.0
    inside[(idx + 1) % n, idx] = 0.0
    if (inside < -1e-12).any():
        raise ShapeError("the polygon is not convex (its edges wind more than once "
                         "round the sky); only convex polygons are supported")
    return vec, normals


def polygon_ranges(vertices) -> list[tuple[int, int]]:
    """Half-open ranges of the order-29 index covering a convex polygon (a superset).

    See ``convex_polygon`` for what is accepted. The order comes from the radius of
    the polygon's circumscribing circle about the normalised vertex mean.
    """
    vec, _ = convex_polygon(vertices)
    centre = vec.sum(axis=0)
    centre /= np.linalg.norm(centre)
    radius = math.degrees(math.acos(min(1.0, float((vec @ centre).min()))))
    order = order_for_radius(radius)
    while True:
        ranges = _to_storage(hp.query_polygon(1 << order, vec, inclusive=True, fact=_FACT,
                                              nest=True, return_ranges=True), order)
        if len(ranges) <= _MAX_RANGES or order == 0:
            return ranges
        order -= 1

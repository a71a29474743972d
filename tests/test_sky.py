"""archive.sky: HEALPix index ranges of cones, boxes and polygons (no database)."""
from __future__ import annotations

import math

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from hypothesis import given, settings
from hypothesis import strategies as st

from archive import sky

ra_st = st.one_of(st.floats(0, 360, exclude_max=True), st.sampled_from([0.0, 359.9999999]))
dec_st = st.one_of(st.floats(-90, 90), st.sampled_from([90.0, -90.0, 0.0]))
radius_st = st.floats(math.log10(1 / 3600), 1.0).map(lambda e: 10 ** e)


def _contains(ranges, hpx) -> np.ndarray:
    hpx = np.asarray(hpx, dtype=np.int64)
    return np.array([any(lo <= h < hi for lo, hi in ranges) for h in hpx.tolist()])


@settings(max_examples=150, deadline=None)
@given(ra=ra_st, dec=dec_st, radius=radius_st)
def test_cone_ranges_cover_the_cone_and_stay_short(ra, dec, radius):
    ranges = sky.cone_ranges(ra, dec, radius)
    assert 1 <= len(ranges) <= 16
    # sorted, disjoint, non-adjacent half-open ranges within the order-29 index space
    flat = [v for r in ranges for v in r]
    assert flat == sorted(flat) and all(lo < hi for lo, hi in ranges)
    assert all(ranges[i][1] < ranges[i + 1][0] for i in range(len(ranges) - 1))
    assert 0 <= flat[0] and flat[-1] <= 12 << 58
    # the centre and points on the boundary (and just inside it) are covered
    centre = SkyCoord(ra * u.deg, dec * u.deg)
    pa = np.linspace(0, 360, 24, endpoint=False) * u.deg
    pts = [centre] + [centre.directional_offset_by(pa, r * u.deg)
                      for r in (radius, radius * (1 - 1e-12), radius / 2)]
    ra_all = np.concatenate([np.atleast_1d(p.ra.deg) for p in pts])
    dec_all = np.concatenate([np.atleast_1d(p.dec.deg) for p in pts])
    assert _contains(ranges, sky.healpix_index(ra_all, dec_all)).all()
    # and the coverage is not wasteful: at most ~16x the cone's area
    covered = sum(hi - lo for lo, hi in ranges) * 4 * math.pi / (12 << 58)
    area = 2 * math.pi * (1 - math.cos(math.radians(radius)))
    assert covered <= max(16 * area, 5e-12)


@pytest.mark.parametrize("radius,order", [(1 / 3600, 18), (1 / 60, 12), (0.25, 8),
                                          (10.0, 3), (60.0, 0), (1e-9, sky.MAX_QUERY_ORDER)])
def test_order_for_radius(radius, order):
    assert sky.order_for_radius(radius) == order
    if order not in (0, sky.MAX_QUERY_ORDER):
        # a cell at that order is no larger than the radius, one order coarser is
        resol = math.degrees(math.sqrt(4 * math.pi / (12 * 4 ** order)))
        assert resol <= radius < 2 * resol


def test_whole_sky_and_tiny_cones():
    assert sky.cone_ranges(10, 10, 180) == [(0, 12 << 58)]
    # a radius of zero still covers the cell of the centre (healpy returns nothing at
    # very fine orders for such discs; the engine never asks it that)
    for ra, dec in [(0.0, 0.0), (10.0, 20.0), (0.0, 90.0), (123.4, -89.99)]:
        ranges = sky.cone_ranges(ra, dec, 0.0)
        assert _contains(ranges, sky.healpix_index([ra], [dec])).all()


def test_chord_is_exact_for_tiny_radii():
    r = 1 / 3600
    c2 = sky.chord2_for_radius(r)
    # the chord form keeps relative precision where 1 - cos r would not
    assert math.isclose(c2, math.radians(r) ** 2, rel_tol=1e-10)
    assert sky.chord2_for_radius(0) == 0 and sky.chord2_for_radius(180) == 4.0


@settings(max_examples=80, deadline=None)
@given(ra_min=ra_st, width=st.floats(1e-4, 359.0), dec_min=st.floats(-90, 89.9),
       height=st.floats(1e-4, 60))
def test_box_ranges_cover_the_box(ra_min, width, dec_min, height):
    dec_max = min(90.0, dec_min + height)
    ra_max = (ra_min + width) % 360.0
    ranges = sky.box_ranges(ra_min, ra_max, dec_min, dec_max)
    assert 1 <= len(ranges) <= 40
    rng = np.random.default_rng(0)
    ra = np.r_[ra_min + rng.uniform(0, width, 200), ra_min, ra_min + width,
               ra_min, ra_min + width] % 360.0
    dec = np.r_[rng.uniform(dec_min, dec_max, 200), dec_min, dec_min, dec_max, dec_max]
    assert _contains(ranges, sky.healpix_index(ra, dec)).all()


def test_box_wraps_through_ra_zero():
    wrapped = sky.box_ranges(350, 10, -5, 5)
    assert _contains(wrapped, sky.healpix_index([355, 5, 0, 359.999], [0, 0, 4.9, -4.9])).all()
    assert not _contains(wrapped, sky.healpix_index([180, 20, 340], [0, 0, 0])).any()
    assert sky.box_ranges(0, 360, -90, 90) == [(0, 12 << 58)]


def test_box_from_centre():
    assert sky.box_from_centre(0, 0, 20, 10) == (350.0, 10.0, -5.0, 5.0)
    assert sky.box_from_centre(180, 88, 10, 10) == (175.0, 185.0, 83.0, 90.0)
    assert sky.box_from_centre(10, 0, 400, 2) == (0.0, 360.0, -1.0, 1.0)
    with pytest.raises(sky.ShapeError, match="negative"):
        sky.box_from_centre(0, 0, -1, 1)


@settings(max_examples=60, deadline=None)
@given(ra=ra_st, dec=dec_st, radius=st.floats(1e-3, 30), n=st.integers(3, 9),
       reverse=st.booleans())
def test_polygon_ranges_cover_the_polygon(ra, dec, radius, n, reverse):
    centre = SkyCoord(ra * u.deg, dec * u.deg)
    angles = np.linspace(0, 360, n, endpoint=False)
    if reverse:
        angles = angles[::-1]
    vert = centre.directional_offset_by(angles * u.deg, radius * u.deg)
    ranges = sky.polygon_ranges(list(zip(vert.ra.deg, vert.dec.deg)))
    assert 1 <= len(ranges) <= 32
    inner = centre.directional_offset_by(np.linspace(0, 360, 30) * u.deg,
                                         radius * math.cos(math.pi / n) * 0.999 * u.deg)
    ra_all = np.r_[vert.ra.deg, inner.ra.deg, ra]
    dec_all = np.r_[vert.dec.deg, inner.dec.deg, dec]
    assert _contains(ranges, sky.healpix_index(ra_all, dec_all)).all()


@pytest.mark.parametrize("vertices,message", [
    ([(0, 0), (10, 0), (5, 1), (5, 10)], "not convex"),
    ([(0, 0), (10, 0)], "at least 3"),
    ([(0, 0), (0, 0), (5, 5)], "coincide"),
    ([(0, 0), (10, 0), (5, 95)], "outside"),
    ([(0, 0), ("x", 0), (5, 5)], "sequence of"),
    ([(0, 0), (120, 0), (240, 0)], "not convex"),
])
def test_polygon_refusals(vertices, message):
    with pytest.raises(sky.ShapeError, match=message):
        sky.polygon_ranges(vertices)


@pytest.mark.parametrize("args,message", [
    ((10, 91, 1), "outside"), ((10, 0, -1), "negative"), ((float("inf"), 0, 1), "finite"),
    (("x", 0, 1), "must be a number"),
])
def test_cone_refusals(args, message):
    with pytest.raises(sky.ShapeError, match=message):
        sky.cone_ranges(*args)

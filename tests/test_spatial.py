"""The spatial engine in real databases, compared with brute force (SQLite and PostgreSQL).

Each hypothesis example inserts a small generated catalogue around the shape
(random points, points near the poles and RA 0/360, and points placed on the
boundary and 2e-9 deg either side of it) into the ``transients`` table, with
``_hpx``/``_x``/``_y``/``_z`` from ``archive.sky`` as ingest computes them, runs
the condition from ``archive.spatial`` and rolls back.

What "exact" means here:
- every row farther than 1e-9 deg from the boundary (by astropy's separation,
  or the independent planar test for polygons) is selected iff it is inside;
- rows within 1e-9 deg of the boundary may fall either way, but the database
  must decide exactly as the documented double-precision formula does (computed
  here with numpy), so SQLite and PostgreSQL select the same rows every time.
"""
from __future__ import annotations

import math

import astropy.units as u
import numpy as np
import pytest
import sqlalchemy as sa
from astropy.coordinates import SkyCoord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matplotlib.path import Path as MplPath

from archive import sky, spatial
from archive.db import catalogue_tables, metadata
from conftest import BACKENDS, new_database_url

TABLE = catalogue_tables["transients"]
TOL = 1e-9                       # degrees: the boundary band
OFF = 2e-9                       # degrees: boundary probes just inside / outside
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request, tmp_path_factory):
    url = new_database_url(request.param, tmp_path_factory.mktemp(f"spatial-{request.param}"))
    eng = sa.create_engine(url)
    metadata.create_all(eng, tables=[TABLE])
    yield eng
    eng.dispose()


def _rows(ra, dec):
    ra = np.mod(np.asarray(ra, dtype=float), 360.0)
    dec = np.clip(np.asarray(dec, dtype=float), -90.0, 90.0)
    x, y, z = sky.unit_vectors(ra, dec)
    hpx = sky.healpix_index(ra, dec)
    return [{"name": f"s{i}", "obs_id": "0000000000", "ra": float(ra[i]), "dec": float(dec[i]),
             "_hpx": int(hpx[i]), "_x": float(x[i]), "_y": float(y[i]), "_z": float(z[i])}
            for i in range(len(ra))], ra, dec


def _select(engine, rows, condition) -> set[int]:
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            conn.execute(TABLE.insert(), rows)
            got = conn.execute(sa.select(TABLE.c.name).where(condition)).scalars().all()
        finally:
            trans.rollback()
    return {int(n[1:]) for n in got}


def _background(rng, n=60):
    """Random points all over the sky plus points at the poles and on RA 0/360."""
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    ra_special = np.array([0.0, 359.9999999999, 1e-12, 180.0, 0.0, 90.0])
    dec_special = np.array([90.0, -90.0, 89.9999999, -89.9999999, 0.0, 0.0])
    return np.r_[ra, ra_special], np.r_[dec, dec_special]


def _ring(centre: SkyCoord, radius_deg: float, n: int, rng):
    pa = rng.uniform(0, 360, n) * u.deg
    pts = [centre.directional_offset_by(pa, (radius_deg + d) * u.deg)
           for d in (0.0, -OFF, OFF)]
    return (np.concatenate([p.ra.deg for p in pts]), np.concatenate([p.dec.deg for p in pts]))


ra_st = st.one_of(st.floats(0, 360, exclude_max=True),
                  st.sampled_from([0.0, 359.99999999, 1e-9, 180.0, 359.9]))
dec_st = st.one_of(st.floats(-90, 90), st.sampled_from([90.0, -90.0, 89.9999, -89.999, 0.0]))
radius_st = st.one_of(st.floats(math.log10(1 / 3600), 1.0).map(lambda e: 10 ** e),
                      st.sampled_from([1 / 3600, 10.0, 1 / 60, 0.25]))


@SETTINGS
@given(ra=ra_st, dec=dec_st, radius=radius_st, seed=st.integers(0, 2**32 - 1))
def test_cone_matches_astropy(engine, ra, dec, radius, seed):
    rng = np.random.default_rng(seed)
    centre = SkyCoord(ra * u.deg, dec * u.deg)
    bra, bdec = _background(rng)
    # points inside and around the cone, and on its boundary
    near = centre.directional_offset_by(rng.uniform(0, 360, 40) * u.deg,
                                        rng.uniform(0, 2 * radius, 40) * u.deg)
    rra, rdec = _ring(centre, radius, 12, rng)
    rows, pra, pdec = _rows(np.r_[bra, near.ra.deg, rra], np.r_[bdec, near.dec.deg, rdec])
    got = _select(engine, rows, spatial.cone_condition(TABLE, ra, dec, radius))

    sep = SkyCoord(pra * u.deg, pdec * u.deg).separation(centre).deg
    clear = np.abs(sep - radius) > TOL
    inside = set(np.flatnonzero(clear & (sep <= radius)))
    outside = set(np.flatnonzero(clear & (sep > radius)))
    assert inside <= got, f"missed {sorted(inside - got)}"
    assert not (outside & got), f"wrongly selected {sorted(outside & got)}"
    # the probes 2e-9 deg inside/outside the boundary are resolved
    n_ring = len(rra) // 3
    probes_in = set(range(len(pra) - 2 * n_ring, len(pra) - n_ring))
    assert probes_in <= got
    # boundary band: exactly what the documented formula says, on every backend
    x, y, z = sky.unit_vectors(pra, pdec)
    x0, y0, z0 = (float(v) for v in sky.unit_vectors(ra % 360.0, dec))
    d2 = (x - x0) * (x - x0) + (y - y0) * (y - y0) + (z - z0) * (z - z0)
    assert got == set(np.flatnonzero(d2 <= sky.chord2_for_radius(radius)))


box_st = st.tuples(ra_st, st.floats(1e-4, 40.0), dec_st, st.floats(1e-4, 30.0))


@SETTINGS
@given(box=box_st, seed=st.integers(0, 2**32 - 1))
def test_box_matches_brute_force(engine, box, seed):
    ra_min, width, dec_c, height = box
    ra_max = (ra_min + width) % 360.0          # wraps through 0/360 when it passes 360
    dec_min, dec_max = max(-90.0, dec_c - height / 2), min(90.0, dec_c + height / 2)
    rng = np.random.default_rng(seed)
    bra, bdec = _background(rng)
    n = 50
    ira = ra_min - 0.2 * width + rng.uniform(0, 1.4 * width, n)
    idec = dec_min - 0.2 * height + rng.uniform(0, 1.4 * height, n)
    # on the edges and 2e-9 deg either side
    edge_dec = rng.uniform(dec_min, dec_max, 4)
    edge_ra = ra_min + rng.uniform(0, width, 4)
    era = np.r_[[ra_min, ra_min - OFF, ra_min + OFF, ra_max, ra_max + OFF, ra_max - OFF] * 4,
                np.repeat(edge_ra, 6)]
    edec = np.r_[np.repeat(edge_dec, 6),
                 [dec_min, dec_min - OFF, dec_min + OFF, dec_max, dec_max + OFF,
                  dec_max - OFF] * 4]
    rows, pra, pdec = _rows(np.r_[bra, ira, era], np.r_[bdec, idec, edec])
    got = _select(engine, rows, spatial.box_condition(TABLE, ra_min, ra_max, dec_min, dec_max))

    in_dec = (pdec >= dec_min) & (pdec <= dec_max)
    if ra_min <= ra_max:
        in_ra = (pra >= ra_min) & (pra <= ra_max)
    else:
        in_ra = (pra >= ra_min) | (pra <= ra_max)
    assert got == set(np.flatnonzero(in_dec & in_ra))


def _gnomonic(ra, dec, ra0, dec0):
    """Tangent-plane coordinates about (ra0, dec0): great circles become straight lines."""
    a, d, a0, d0 = map(np.radians, (ra, dec, ra0, dec0))
    cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(a - a0)
    xi = np.cos(d) * np.sin(a - a0) / cosc
    eta = (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(a - a0)) / cosc
    return xi, eta, cosc


@SETTINGS
@given(ra=ra_st, dec=dec_st, radius=st.floats(1e-3, 20.0), nvert=st.integers(3, 8),
       reverse=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_polygon_matches_brute_force(engine, ra, dec, radius, nvert, reverse, seed):
    rng = np.random.default_rng(seed)
    centre = SkyCoord(ra * u.deg, dec * u.deg)
    # vertices on a small circle, in angle order: always a convex polygon
    angles = np.sort(rng.uniform(0, 360, nvert))
    if np.diff(np.r_[angles, angles[0] + 360]).min() < 1.0:
        angles = np.linspace(0, 360, nvert, endpoint=False) + rng.uniform(0, 360)
    if reverse:
        angles = angles[::-1]
    vert = centre.directional_offset_by(angles * u.deg, radius * u.deg)
    vertices = list(zip(vert.ra.deg, vert.dec.deg))
    bra, bdec = _background(rng)
    near = centre.directional_offset_by(rng.uniform(0, 360, 60) * u.deg,
                                        rng.uniform(0, 1.3 * radius, 60) * u.deg)
    # points on each edge (great-circle interpolation of the vertex vectors)
    vv = np.column_stack(sky.unit_vectors(vert.ra.deg, vert.dec.deg))
    t = rng.uniform(0, 1, (nvert, 3))
    edge = (vv[:, None, :] * (1 - t)[..., None] + np.roll(vv, -1, 0)[:, None, :] * t[..., None])
    edge = edge.reshape(-1, 3)
    edge /= np.linalg.norm(edge, axis=1)[:, None]
    era = np.degrees(np.arctan2(edge[:, 1], edge[:, 0])) % 360
    edec = np.degrees(np.arcsin(np.clip(edge[:, 2], -1, 1)))
    rows, pra, pdec = _rows(np.r_[bra, near.ra.deg, era], np.r_[bdec, near.dec.deg, edec])
    got = _select(engine, rows, spatial.polygon_condition(TABLE, vertices))

    # independent answer: straight-line polygon in the gnomonic projection
    xi, eta, cosc = _gnomonic(pra, pdec, ra, dec)
    vxi, veta, _ = _gnomonic(vert.ra.deg, vert.dec.deg, ra, dec)
    planar = MplPath(np.column_stack([vxi, veta])).contains_points(
        np.column_stack([xi, eta])) & (cosc > 0)
    # distance (deg) of each point from the nearest edge's great circle
    _, normals = sky.convex_polygon(vertices)
    p = np.column_stack(sky.unit_vectors(pra, pdec))
    edge_dist = np.degrees(np.arcsin(np.clip(np.abs(p @ normals.T), 0, 1))).min(axis=1)
    clear = edge_dist > TOL
    inside, outside = set(np.flatnonzero(clear & planar)), set(np.flatnonzero(clear & ~planar))
    assert inside <= got, f"missed {sorted(inside - got)}"
    assert not (outside & got), f"wrongly selected {sorted(outside & got)}"
    # boundary band: the documented formula (all edge dot products >= 0), evaluated
    # in the same order as the SQL, x*nx + y*ny + z*nz (not BLAS, which may fuse)
    px, py, pz = (c[:, None] for c in sky.unit_vectors(pra, pdec))
    dots = px * normals[:, 0] + py * normals[:, 1] + pz * normals[:, 2]
    assert got == set(np.flatnonzero((dots >= 0).all(axis=1)))
    assert len(got) > 0


@pytest.mark.parametrize("radius", [1 / 3600, 1 / 60, 0.25, 10.0])
def test_cone_distance_and_order(engine, radius):
    """distance_expression agrees with astropy to 1e-9 deg and orders nearest first."""
    rng = np.random.default_rng(7)
    centre = SkyCoord(359.9999 * u.deg, -45.0 * u.deg)
    near = centre.directional_offset_by(rng.uniform(0, 360, 50) * u.deg,
                                        rng.uniform(0, radius, 50) * u.deg)
    rows, pra, pdec = _rows(near.ra.deg, near.dec.deg)
    dist = spatial.distance_expression(TABLE, 359.9999, -45.0).label("d")
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            conn.execute(TABLE.insert(), rows)
            got = conn.execute(sa.select(TABLE.c.name, dist)
                               .where(spatial.cone_condition(TABLE, 359.9999, -45.0, radius))
                               .order_by(dist)).all()
        finally:
            trans.rollback()
    sep = SkyCoord(pra * u.deg, pdec * u.deg).separation(centre).deg
    assert len(got) == 50
    d = np.array([g.d for g in got])
    assert (np.diff(d) >= 0).all()
    idx = [int(g.name[1:]) for g in got]
    assert np.abs(d - sep[idx]).max() < 1e-9


def test_cone_uses_the_index(engine):
    """The cone becomes index range scans, not a full scan (SQL plan)."""
    cond = spatial.cone_condition(TABLE, 10.0, 20.0, 1 / 60)
    stmt = sa.select(TABLE.c.name).where(cond)
    with engine.connect() as conn:
        compiled = stmt.compile(conn)
        if engine.dialect.name == "sqlite":
            params = tuple(compiled.params[k] for k in compiled.positiontup)
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + str(compiled), params))
            assert "USING INDEX ix_transients__hpx" in plan, plan
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")  # tiny table: force the choice
            plan = " ".join(r[0] for r in conn.execute(
                sa.text("EXPLAIN " + str(stmt.compile(
                    conn, compile_kwargs={"literal_binds": True})))))
            assert "ix_transients__hpx" in plan, plan


def test_bad_shapes_raise_clear_errors():
    with pytest.raises(sky.ShapeError, match="outside"):
        spatial.cone_condition(TABLE, 10, 91, 1)
    with pytest.raises(sky.ShapeError, match="negative"):
        spatial.cone_condition(TABLE, 10, 0, -1)
    with pytest.raises(sky.ShapeError, match="finite"):
        spatial.cone_condition(TABLE, float("nan"), 0, 1)
    with pytest.raises(sky.ShapeError, match="above"):
        spatial.box_condition(TABLE, 0, 10, 5, -5)
    with pytest.raises(sky.ShapeError, match="not convex"):
        spatial.polygon_condition(TABLE, [(0, 0), (10, 0), (5, 1), (5, 10)])
    with pytest.raises(sky.ShapeError, match="at least 3"):
        spatial.polygon_condition(TABLE, [(0, 0), (10, 0)])


def test_tiny_coordinates_do_not_underflow(engine):
    """PostgreSQL raises on float8 underflow: centres and rows with coordinates like
    1e-239 must still work (and give the same rows as SQLite)."""
    rows, _, _ = _rows([0.0, 1e-200, 0.0, 90.0, 5e-300, 1e-170],
                       [1e-239, 0.0, -1e-180, 1e-250, 1e-300, 0.5])
    got = _select(engine, rows, spatial.cone_condition(TABLE, 0.0, 1.358652279973977e-239, 1.0))
    assert got == {0, 1, 2, 4, 5}
    got = _select(engine, rows, spatial.polygon_condition(
        TABLE, [(1e-200, -1.0), (1.0, 1e-220), (1e-210, 1.0), (359.0, 1e-230)]))
    assert got == {0, 1, 2, 4, 5}

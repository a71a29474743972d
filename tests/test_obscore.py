"""ivoa.obscore: rows of the demo products, cone queries through /tap/sync, TAP_SCHEMA
and VOSI, incremental re-ingest, settings."""
from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from astropy import units as u
from astropy.io import fits, votable
from astropy.io.votable import ucd as ucd_check

import datamodel
from archive.db import PUBLISHED, Database, catalogue_tables, ivoa_tables, products
from archive.tap.adql import Catalog, translate
from datamodel.obscore import OBSCORE, OBSCORE_DATA_MODEL
from helpers import tap_sync
from ingest.errors import IngestError
from ingest.lightcurves import INSTRUME, write_products
from ingest.obscore import access_url, publisher_did, wavelength_range
from ingest.products import ingest_products
from ingest_helpers import fetch_all, file_table, run_cli, synthetic, write

OBSCORE_T = ivoa_tables["obscore"]
DESCRIBED = {"bblc", "bglc_500s", "hrlc_500s", *(k for k in datamodel.PRODUCT_TYPES
                                                 if k.startswith("ublc_"))}


def _obscore(config) -> dict:
    return {r.obs_publisher_did: r for r in fetch_all(config, sa.select(OBSCORE_T))}


def _votable_rows(response) -> list[dict]:
    assert response.status_code == 200, response.data[:2000]
    table = votable.parse_single_table(io.BytesIO(response.data)).to_table()
    return [dict(zip(table.colnames, row)) for row in table]


# -- the rows of the demo archive ---------------------------------------------------

def test_every_time_series_has_one_row_and_nothing_else(demo_archive):
    prods = fetch_all(demo_archive, sa.select(products))
    rows = _obscore(demo_archive)
    authority = demo_archive["IVOID_AUTHORITY"]
    expected = {publisher_did(authority, p.path) for p in prods if p.product_type in DESCRIBED}
    assert set(rows) == expected
    assert {p.product_type for p in prods} - DESCRIBED >= {"pds", "qlimg", "preview"}
    subtypes = {r.dataproduct_subtype for r in rows.values()}
    assert {"bblc", "ublc_500s", "ublc_opt", "ublc_500s_b1", "bglc_500s",
            "hrlc_500s"} <= subtypes <= DESCRIBED
    assert {r.dataproduct_type for r in rows.values()} == {"timeseries"}


def test_values_match_products_catalogue_and_fits_headers(demo_archive):
    prods = {p.path: p for p in fetch_all(demo_archive, sa.select(products))}
    ap = catalogue_tables["aperiodic"]
    detections = {r.extras_id: r for r in fetch_all(demo_archive, sa.select(ap))}
    base = Path(demo_archive["PRODUCTS_DIR"])
    rows = _obscore(demo_archive)
    assert len(rows) > 100
    for did, r in rows.items():
        path = did.split("?", 1)[1]
        p = prods[path]
        det = detections[p.extras_id]
        assert did == f"ivo://extras.archive/extras?{path}"
        assert r.access_url == f"/products/{path}"      # no BASE_URL in the test archive
        assert (r.obs_collection, r.calib_level, r.facility_name) == ("EXTraS", 3, "XMM")
        assert (r.obs_id, r.access_format) == (p.obs_id, p.mime) == (det.obs_id, "application/fits")
        assert r.access_estsize == math.ceil(p.size / 1000)
        assert r.target_name == det.iauname
        assert (r.s_ra, r.s_dec) == (det.ra, det.dec)
        assert (r.t_min, r.t_max) == (p.t_min, p.t_max)
        assert r.t_exptime == pytest.approx((p.t_max - p.t_min) * 86400.0, rel=1e-12)
        ptype = datamodel.PRODUCT_TYPES[p.product_type]
        ucd_check.parse_ucd(r.o_ucd, check_controlled_vocabulary=True, has_colon=False)
        assert r.o_ucd.startswith("phot.count")
        assert (r.em_xel, r.s_fov, r.s_region, r.pol_states) == (1, None, None, None)
        with fits.open(base / path) as hdul:
            h = hdul[ptype.extension].header
            assert r.instrument_name == {"EPN": "EPIC-pn", "EMOS1": "EPIC-MOS1",
                                         "EMOS2": "EPIC-MOS2"}[h["INSTRUME"]]
            assert INSTRUME[p.camera] == h["INSTRUME"] and h["TELESCOP"] == "XMM"
            assert h["OBS_ID"] == r.obs_id
            assert (h["SRC_RA"], h["SRC_DEC"]) == pytest.approx((r.s_ra, r.s_dec), abs=1e-9)
            assert r.t_xel == h["NAXIS2"] == len(hdul[ptype.extension].data)
            if ptype.binning:
                assert r.t_resolution == h["TIMEDEL"]
                if ptype.binning == "500s":
                    assert r.t_resolution == 500.0
            else:
                assert r.t_resolution is None        # Bayesian blocks
            # E_MIN/E_MAX in eV, em_min/em_max in m: lambda = hc/E
            lo = (h["E_MAX"] * u.eV).to(u.m, equivalencies=u.spectral()).value
            hi = (h["E_MIN"] * u.eV).to(u.m, equivalencies=u.spectral()).value
            assert (r.em_min, r.em_max) == pytest.approx((lo, hi), rel=1e-9)
            mjd0 = h["MJDREF"] + (h["TSTART"] + h["TIMEZERO"]) / 86400.0
            assert r.t_min == pytest.approx(mjd0, abs=1e-9)
        assert r._hpx is not None


def test_wavelengths_of_the_bands():
    # 12 keV is 1.0332 A, 0.2 keV 61.99 A
    assert wavelength_range("full") == pytest.approx((1.0332e-10, 6.1992e-9), rel=1e-4)
    assert wavelength_range(None) == wavelength_range("full")
    lo, hi = wavelength_range("b1")
    assert lo < hi and hi == pytest.approx(6.1992e-9, rel=1e-4)


# -- queries ------------------------------------------------------------------------------

def _brute_force_cone(rows, ra, dec, radius):
    sel = set()
    for did, r in rows.items():
        a = np.radians([r.s_ra, r.s_dec, ra, dec])
        cos_d = (np.sin(a[1]) * np.sin(a[3])
                 + np.cos(a[1]) * np.cos(a[3]) * np.cos(a[0] - a[2]))
        if np.degrees(np.arccos(np.clip(cos_d, -1, 1))) <= radius and \
                r.dataproduct_type == "timeseries":
            sel.add(did)
    return sel


@pytest.mark.parametrize("radius", [0.001, 1.0, 5.0, 30.0])
def test_cone_query_finds_the_light_curves_of_a_region(demo_archive, client, radius):
    rows = _obscore(demo_archive)
    centre = sorted(rows.values(), key=lambda r: r.obs_publisher_did)[len(rows) // 2]
    ra, dec = centre.s_ra, centre.s_dec
    query = ("SELECT * FROM ivoa.obscore WHERE dataproduct_type='timeseries' AND "
             f"CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', {ra!r}, {dec!r}, "
             f"{radius})) = 1")
    found = _votable_rows(tap_sync(client, query, MAXREC="100000"))
    expected = _brute_force_cone(rows, ra, dec, radius)
    assert expected                      # the centre's own products at least
    assert {r["obs_publisher_did"] for r in found} == expected
    assert all(r["dataproduct_type"] == "timeseries" for r in found)
    # the columns of SELECT *: the published ones, in order, no index columns
    assert list(found[0]) == [c.name for c in OBSCORE.columns]


def test_distance_query_uses_the_same_rows(demo_archive, client):
    rows = _obscore(demo_archive)
    r0 = next(iter(rows.values()))
    query = ("SELECT obs_publisher_did FROM ivoa.obscore WHERE "
             f"DISTANCE(POINT('ICRS', s_ra, s_dec), POINT('ICRS', {r0.s_ra!r}, {r0.s_dec!r}))"
             " < 2")
    found = {r["obs_publisher_did"] for r in _votable_rows(tap_sync(client, query))}
    assert found == _brute_force_cone(rows, r0.s_ra, r0.s_dec, 2.0)


def test_cone_on_obscore_uses_the_healpix_index():
    query = ("SELECT obs_id FROM ivoa.obscore WHERE "
             "CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 10, 20, 1)) = 1")
    sql = translate(query, Catalog.of(PUBLISHED), "sqlite").sql("sqlite")
    assert "_hpx" in sql and "_x" in sql


def test_tap_schema_and_vosi_list_the_table(client):
    rows = _votable_rows(tap_sync(
        client, "SELECT column_name, datatype, unit, ucd, utype, std FROM TAP_SCHEMA.columns "
                "WHERE table_name = 'ivoa.obscore' ORDER BY column_index"))
    assert [r["column_name"] for r in rows] == [c.name for c in OBSCORE.columns]
    by_name = {r["column_name"]: r for r in rows}
    for mandatory in ("obs_publisher_did", "calib_level", "s_ra", "s_dec", "t_min", "em_min",
                      "access_url", "access_estsize", "pol_states", "t_xel"):
        assert by_name[mandatory]["utype"].startswith("obscore:")
        assert by_name[mandatory]["std"] == 1
    assert by_name["access_estsize"]["unit"] == "kbyte"
    assert (by_name["s_ra"]["ucd"], by_name["s_ra"]["datatype"]) == ("pos.eq.ra", "double")
    tables = _votable_rows(tap_sync(
        client, "SELECT table_name, utype FROM TAP_SCHEMA.tables WHERE schema_name = 'ivoa'"))
    assert [(t["table_name"], t["utype"]) for t in tables] == [
        ("ivoa.obscore", "ivo://ivoa.net/std/ObsCore#table-1.1")]
    vosi = client.get("/tap/tables/ivoa.obscore")
    assert vosi.status_code == 200 and b"<name>ivoa.obscore</name>" in vosi.data
    assert b"<name>s_ra</name>" in vosi.data
    caps = client.get("/tap/capabilities").data.decode()
    assert f'<dataModel ivo-id="{OBSCORE_DATA_MODEL}">ObsCore-1.1</dataModel>' in caps


# -- incremental ingest ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def synth():
    return synthetic(300, seed=33)


def _write_for(synth, config, index) -> list[Path]:
    row = {k: (v[index].item() if hasattr(v[index], "item") else v[index])
           for k, v in synth.aperiodic.items()}
    event = {k: v[index] for k, v in synth.events.items()}
    o = int(synth.events["obs"][index])
    directory = Path(config["PRODUCTS_DIR"]) / row["obs_id"]
    directory.mkdir(parents=True, exist_ok=True)
    return write_products(directory, row, event, float(synth.observations["tstart"][o]),
                          float(synth.observations["tstop"][o]), seed=[3, index])


@pytest.fixture
def small(empty_config, synth, tmp_path):
    path = write(file_table("aperiodic", synth.aperiodic), tmp_path / "a.fits", "fits")
    result = run_cli(empty_config, "ingest", "catalogue", str(path), "--catalogue",
                     "aperiodic")
    assert result.exit_code == 0, result.output
    files = _write_for(synth, empty_config, 0) + _write_for(synth, empty_config, 1)
    return empty_config, files


def _ingest(config):
    db = Database(config["DATABASE_URL"])
    try:
        return ingest_products(db.engine, config, previews=False, workers=1)
    finally:
        db.dispose()


def _rel(config, path: Path) -> str:
    return path.relative_to(config["PRODUCTS_DIR"]).as_posix()


def test_reingest_writes_only_new_changed_and_removed_rows(small, synth):
    config, files = small
    report = _ingest(config)
    described = [f for f in files if datamodel.match_product(f.name)[0].key in DESCRIBED]
    assert (report.obscore.added, report.obscore.removed) == (len(described), 0)
    first = _obscore(config)
    assert len(first) == len(described)

    report = _ingest(config)                                  # nothing changed
    assert (report.obscore.added, report.obscore.removed) == (0, 0)
    assert _obscore(config) == first

    changed = next(f for f in described if f.name.startswith("ublc") and "_500s.fit" in f.name)
    with fits.open(changed, mode="update") as hdul:
        hdul["RATE"].header["TSTOP"] = hdul["RATE"].header["TSTOP"] + 1000.0
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    gone = next(f for f in described if f.name.startswith("bblc"))
    gone.unlink()
    new = _write_for(synth, config, 2)
    new_described = [f for f in new if datamodel.match_product(f.name)[0].key in DESCRIBED]
    report = _ingest(config)
    assert report.obscore.removed == 2                        # the changed and the gone
    assert report.obscore.added == 1 + len(new_described)     # the changed and the new
    rows = _obscore(config)
    did = publisher_did(config["IVOID_AUTHORITY"], _rel(config, changed))
    assert rows[did].t_max == pytest.approx(first[did].t_max + 1000.0 / 86400.0, abs=1e-9)
    assert publisher_did(config["IVOID_AUTHORITY"], _rel(config, gone)) not in rows
    unchanged = set(first) - {did, publisher_did(config["IVOID_AUTHORITY"], _rel(config, gone))}
    assert all(rows[d] == first[d] for d in unchanged)
    assert len(rows) == len(described) - 1 + len(new_described)


def test_headers_are_read_once(small, monkeypatch):
    """The ingest hands the sync what it read; only a fill opens files again."""
    import ingest.obscore as obscore_module
    config, _ = small
    opened = []
    real = obscore_module.read_axes
    monkeypatch.setattr(obscore_module, "read_axes",
                        lambda args: opened.append(args[0]) or real(args))
    report = _ingest(config)
    assert report.obscore.added > 0 and opened == []
    db = Database(config["DATABASE_URL"])
    try:
        with db.engine.begin() as conn:
            conn.execute(OBSCORE_T.delete())
    finally:
        db.dispose()
    report = _ingest(config)
    assert len(opened) == report.obscore.added > 0


def test_existing_archive_is_filled_by_the_next_ingest(small):
    config, _ = small
    _ingest(config)
    full = _obscore(config)
    db = Database(config["DATABASE_URL"])
    try:                              # an archive made before ivoa.obscore existed
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE obscore")
    finally:
        db.dispose()
    db = Database(config["DATABASE_URL"])      # opening creates the missing table
    try:
        with db.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(OBSCORE_T)).scalar() == 0
    finally:
        db.dispose()
    result = run_cli(config, "ingest", "products", "--no-previews", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert f"ivoa.obscore: {len(full)} rows written, 0 removed" in result.output
    assert "0 new, 0 changed" in result.output
    assert _obscore(config) == full


def test_base_url_and_authority_changes_rewrite_the_rows(small):
    config, files = small
    _ingest(config)
    n = len(_obscore(config))
    config = {**config, "BASE_URL": "https://extras.example.org/archive/",
              "IVOID_AUTHORITY": "ivo://example.org/"}
    report = _ingest(config)
    assert (report.obscore.added, report.obscore.removed) == (n, n)
    rows = _obscore(config)
    path = _rel(config, files[0])
    assert all(d.startswith("ivo://example.org/extras?") for d in rows)
    for r in rows.values():
        assert r.access_url == access_url(config["BASE_URL"], r.obs_publisher_did.split("?")[1])
        assert r.access_url.startswith("https://extras.example.org/archive/products/")
    assert access_url("https://h/a/", path) == f"https://h/a/products/{path}"


@pytest.mark.parametrize("authority", ["", "extras.archive", "ivo://", "ivo://a/b",
                                       "ivo://a?b", "http://extras.archive"])
def test_bad_authority_is_refused_before_anything_is_written(small, authority):
    config, _ = small
    with pytest.raises(IngestError, match="IVOID_AUTHORITY"):
        _ingest({**config, "IVOID_AUTHORITY": authority})
    assert fetch_all(config, sa.select(sa.func.count()).select_from(products))[0][0] == 0
    assert _obscore(config) == {}


def test_products_of_a_detection_without_position_are_left_out(small):
    config, files = small
    _ingest(config)
    n = len(_obscore(config))
    first = datamodel.match_product(files[0].name)[1]
    ap = catalogue_tables["aperiodic"]
    db = Database(config["DATABASE_URL"])
    try:
        with db.engine.begin() as conn:
            conn.execute(ap.delete().where(ap.c.obs_id == first["obs_id"],
                                           ap.c.src_num == first["src_num"],
                                           ap.c.camera == first["camera"]))
    finally:
        db.dispose()
    report = _ingest(config)
    gone = sum(1 for f in files
               if datamodel.match_product(f.name)[0].key in DESCRIBED
               and datamodel.match_product(f.name)[1] == first)
    assert report.obscore.removed == report.obscore.unplaced == gone
    assert len(_obscore(config)) == n - gone
    assert "left out" in report.summary()

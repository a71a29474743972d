"""The demo archive: deterministic, consistent between catalogues, realistic, with events."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import sqlalchemy as sa
from astropy.io import fits

import datamodel
from archive.config import load_config
from archive.db import catalogue_tables, products
from conftest import new_database_url
from ingest.demo import build_demo
from ingest_helpers import fetch_all, run_cli, snapshot


def test_same_seed_same_archive(empty_config, backend, tmp_path):
    other_dir = tmp_path / "second"
    other_dir.mkdir()
    other = load_config({"DATA_DIR": str(other_dir),
                         "DATABASE_URL": new_database_url(backend, other_dir)}, environ={})
    a = build_demo(empty_config, rows=600, seed=9, workers=1, products=False)
    b = build_demo(other, rows=600, seed=9, workers=1, products=False)
    assert a["rows"] == b["rows"] and a["rows"]["aperiodic"] == 600
    for table in datamodel.TABLES:
        assert snapshot(empty_config, table) == snapshot(other, table), table
    c = build_demo(other, rows=600, seed=10, workers=1, products=False)
    assert snapshot(other, "aperiodic") != snapshot(empty_config, "aperiodic")
    assert c["rows"]["aperiodic"] == 600


def test_demo_command(empty_config):
    result = run_cli(empty_config, "demo", "--data-dir", empty_config["DATA_DIR"],
                     "--rows", "400", "--seed", "3", "--no-previews", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "aperiodic: 400 rows" in result.output
    rows = fetch_all(empty_config, sa.select(sa.func.count()).select_from(products))
    assert rows[0][0] > 0
    assert not [p for p in Path(empty_config["PRODUCTS_DIR"]).rglob("*.png")
                if not p.name.startswith("qlimg")]


def test_all_tables_filled_and_consistent(demo_archive):
    cfg = demo_archive
    ap, per, lt, pts, cls, tr = (catalogue_tables[n] for n in (
        "aperiodic", "periodic", "longterm", "longterm_points", "classification",
        "transients"))
    counts = {n: fetch_all(cfg, sa.select(sa.func.count()).select_from(t))[0][0]
              for n, t in catalogue_tables.items()}
    assert counts["aperiodic"] == 3000
    assert all(c > 0 for c in counts.values()), counts
    # periodic rows are detections of aperiodic rows, same source and position
    orphans = fetch_all(cfg, sa.select(sa.func.count()).select_from(per).where(~sa.exists().where(
        sa.and_(ap.c.extras_id == per.c.extras_id, ap.c.srcid == per.c.srcid,
                ap.c.ra == per.c.ra))))
    assert orphans[0][0] == 0
    # classification covers every source of the aperiodic catalogue
    missing = fetch_all(cfg, sa.select(sa.func.count(sa.distinct(ap.c.srcid))).where(
        ~sa.exists().where(cls.c.srcid == ap.c.srcid)))
    assert missing[0][0] == 0
    # long-term: sources with several observations, each with its points
    per_src = dict(fetch_all(cfg, sa.select(pts.c.srcid, sa.func.count()).group_by(pts.c.srcid)))
    for srcid, n_obs in fetch_all(cfg, sa.select(lt.c.srcid, lt.c.n_obs)):
        assert n_obs >= 2 and per_src[srcid] == n_obs
    assert set(per_src) <= {r[0] for r in fetch_all(cfg, sa.select(lt.c.srcid))}
    cams = {r[0] for r in fetch_all(cfg, sa.select(ap.c.camera).distinct())}
    assert cams == {"PN", "M1", "M2"}
    assert fetch_all(cfg, sa.select(sa.func.count()).select_from(tr))[0][0] >= 10


def test_sources_sit_in_fields_including_the_hard_cases(demo_archive):
    ap = catalogue_tables["aperiodic"]
    rows = fetch_all(demo_archive, sa.select(ap.c.ra, ap.c.dec, ap.c.obs_id))
    ra = np.array([r[0] for r in rows])
    dec = np.array([r[1] for r in rows])
    assert (dec > 89.5).any() and (dec < -89.5).any()
    assert (ra < 0.3).any() and (ra > 359.7).any()
    # every observation's detections lie within a 15' field (30' across)
    by_obs = {}
    for r in rows:
        by_obs.setdefault(r[2], []).append((r[0], r[1]))
    from astropy.coordinates import SkyCoord
    import astropy.units as u
    for pos in list(by_obs.values())[:40]:
        c = SkyCoord([p[0] for p in pos] * u.deg, [p[1] for p in pos] * u.deg)
        sep = c[:, None].separation(c[None, :]).deg
        assert sep.max() <= 0.5 + 1e-3


def test_value_distributions_and_injected_events(demo_archive):
    ap = catalogue_tables["aperiodic"]
    rows = fetch_all(demo_archive, sa.select(ap.c.ub_lc500_co_pval, ap.c.bb_lc_nblocks,
                                           ap.c.ub_lc500_ave, ap.c.sum_flag))
    p = np.array([r[0] for r in rows])
    nblocks = np.array([r[1] for r in rows])
    rate = np.array([r[2] for r in rows])
    variable = p < 1e-5
    assert 0.005 < variable.mean() < 0.15
    # the constant sources' p-values are uniform
    hist, _ = np.histogram(p[~variable], bins=5, range=(0, 1))
    assert hist.min() > 0.12 * (~variable).sum()
    flagged = variable & (nblocks > 1)
    assert flagged.sum() >= 40
    assert np.median(nblocks[~variable]) == 1
    # log-normal rates: spread over orders of magnitude
    assert np.percentile(rate, 95) / np.percentile(rate, 5) > 30
    assert np.mean([r[3] == 0 for r in rows]) > 0.6


def test_flare_is_visible_in_the_light_curve_and_the_statistics(demo_archive):
    ap = catalogue_tables["aperiodic"]
    base = Path(demo_archive["PRODUCTS_DIR"])
    rows = fetch_all(demo_archive, sa.select(products.c.path, ap.c.ub_lc500_skew,
                                           ap.c.ub_lc500_co_pval, ap.c.bb_lc_nblocks).join(
        ap, ap.c.extras_id == products.c.extras_id).where(
        products.c.product_type == "ublc_500s", ap.c.ub_lc500_skew > 1.5,
        ap.c.ub_lc500_co_pval < 1e-5, ap.c.camera == "PN"))
    assert rows, "no flare among the detections with products"
    peaks = []
    for path, _skew, _p, nblocks in rows:
        assert nblocks > 1
        with fits.open(base / path) as hdul:
            rate = hdul["RATE"].data["RATE"]
            peaks.append(rate.max() / max(np.median(rate), 1e-3))
    assert max(peaks) > 3


def test_light_curve_products_follow_xmm_conventions(demo_archive):
    base = Path(demo_archive["PRODUCTS_DIR"])
    rows = fetch_all(demo_archive, sa.select(products.c.path, products.c.product_type,
                                           products.c.extras_id).where(
        products.c.category == "lightcurve"))
    assert rows
    ap = catalogue_tables["aperiodic"]
    ids = {r[0] for r in fetch_all(demo_archive, sa.select(ap.c.extras_id))}
    for path, ptype, xid in rows[:60]:
        assert xid in ids
        with fits.open(base / path) as hdul:
            pt = datamodel.PRODUCT_TYPES[ptype]
            hdu = hdul[pt.extension]
            h = hdu.header
            for key in ("TSTART", "TSTOP", "MJDREF", "TIMESYS", "TIMEUNIT", "TELESCOP",
                        "INSTRUME", "OBS_ID", "EXPIDSTR", "SRC_NUM", "SRCID", "SRC_RA",
                        "SRC_DEC"):
                assert key in h, (path, key)
            assert h["MJDREF"] == 50814 and h["TIMESYS"] == "TT" and h["TELESCOP"] == "XMM"
            assert set(pt.columns) <= set(hdu.columns.names)
            if ptype.startswith("ublc"):
                assert {"TIME", "RATE", "ERROR", "FRACEXP", "BACKV"} <= set(hdu.columns.names)
                assert "TIMEDEL" in h and "E_MIN" in h and "E_MAX" in h
                t = hdu.data["TIME"]
                assert h["TSTART"] <= t.min() and t.max() <= h["TSTOP"]
    previewable = [r for r in rows if datamodel.PRODUCT_TYPES[r[1]].previewable]
    pngs = {r[0] for r in fetch_all(demo_archive, sa.select(products.c.preview_of).where(
        products.c.product_type == "preview"))}
    assert {r[0] for r in previewable} == pngs

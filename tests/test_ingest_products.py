"""Product ingest: registration, checksums, links, quick-looks, incremental re-runs, errors."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import datamodel
from ingest.lightcurves import products_for, write_products
from ingest_helpers import file_table, run_cli, snapshot, synthetic, write


@pytest.fixture(scope="module")
def synth():
    return synthetic(300, seed=21)


def _row(synth, i):
    return {k: (v[i].item() if hasattr(v[i], "item") else v[i])
            for k, v in synth.aperiodic.items()}


def _write_for(synth, config, indices) -> list[Path]:
    """Product files of aperiodic rows ``indices`` under PRODUCTS_DIR/<obs_id>/."""
    out = []
    obs = synth.observations
    for i in indices:
        row = _row(synth, i)
        event = {k: v[i] for k, v in synth.events.items()}
        o = int(synth.events["obs"][i])
        directory = Path(config["PRODUCTS_DIR"]) / row["obs_id"]
        directory.mkdir(parents=True, exist_ok=True)
        out += write_products(directory, row, event, float(obs["tstart"][o]),
                              float(obs["tstop"][o]), seed=[1, i])
    return out


@pytest.fixture
def archive(empty_config, synth, tmp_path):
    path = write(file_table("aperiodic", synth.aperiodic), tmp_path / "a.fits", "fits")
    result = run_cli(empty_config, "ingest", "catalogue", str(path), "--catalogue",
                     "aperiodic")
    assert result.exit_code == 0, result.output
    pn = int(np.flatnonzero(synth.aperiodic["camera"] == "PN")[0])
    mos = int(np.flatnonzero(synth.aperiodic["camera"] == "M1")[0])
    files = _write_for(synth, empty_config, [pn, mos])
    return empty_config, files, (pn, mos)


def _ingest(config, *extra, directory=None):
    return run_cli(config, "ingest", "products",
                   str(directory or config["PRODUCTS_DIR"]), "--workers", "1", *extra)


def _products(config):
    from archive.db import Database, products
    import sqlalchemy as sa
    db = Database(config["DATABASE_URL"])
    try:
        with db.engine.connect() as conn:
            return {r.path: r for r in conn.execute(sa.select(products))}
    finally:
        db.dispose()


def test_products_are_registered_linked_and_previewed(archive, synth):
    config, files, (pn, mos) = archive
    result = _ingest(config)
    assert result.exit_code == 0, result.output
    rows = _products(config)
    base = Path(config["PRODUCTS_DIR"])
    lcs = [f for f in files if datamodel.match_product(f.name)[0].previewable]
    assert len(lcs) == 3 + 7          # M1: bblc, 2 ublc; PN: + 3 bands + background
    assert len(rows) == len(files) + len(lcs)
    for f in files:
        rel = f.relative_to(base).as_posix()
        r = rows[rel]
        assert r.size == f.stat().st_size and r.mtime_ns == f.stat().st_mtime_ns
        assert r.checksum == "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest()
        ptype, keys = datamodel.match_product(f.name)
        assert r.product_type == ptype.key and r.mime == ptype.mime
        assert (r.obs_id, r.exp_id, r.camera, r.src_num) == (
            keys["obs_id"], keys["exp_id"], keys["camera"], keys["src_num"])
        assert r.extras_id == f"{r.obs_id}_{r.exp_id}_{r.camera}_{r.src_num}"
    for lc in lcs:
        png = lc.with_suffix(".png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        r = rows[png.relative_to(base).as_posix()]
        assert r.product_type == "preview" and r.preview_of == lc.relative_to(base).as_posix()
    assert f"{len(lcs)} quick-looks drawn" in result.output


def test_band_binning_and_time_range_are_recorded(archive):
    config, files, _ = archive
    assert _ingest(config).exit_code == 0
    rows = _products(config)
    base = Path(config["PRODUCTS_DIR"])
    timed = 0
    for f in files:
        r = rows[f.relative_to(base).as_posix()]
        ptype, _ = datamodel.match_product(f.name)
        assert (r.band, r.binning) == (ptype.band, ptype.binning)
        if f.suffix == ".fit":
            with fits.open(f) as hdul:
                hdr = hdul[ptype.extension].header
            start = hdr["MJDREF"] + (hdr["TSTART"] + hdr.get("TIMEZERO", 0.0)) / 86400.0
            stop = hdr["MJDREF"] + (hdr["TSTOP"] + hdr.get("TIMEZERO", 0.0)) / 86400.0
            assert r.t_min == pytest.approx(start, abs=1e-9)
            assert r.t_max == pytest.approx(stop, abs=1e-9)
            assert 51500 < r.t_min < r.t_max < 62000        # XMM era, MJD
            timed += 1
        else:
            assert r.t_min is None and r.t_max is None     # images
    assert timed >= 10


def test_time_ranges_are_filled_in_once_for_an_older_archive(archive):
    """Rows recorded before the time range was kept are read again once, then not."""
    import sqlalchemy as sa
    from archive.db import Database, products
    config, files, _ = archive
    assert _ingest(config).exit_code == 0
    before = _products(config)
    db = Database(config["DATABASE_URL"])
    try:
        with db.engine.begin() as conn:
            conn.execute(sa.update(products).values(t_min=None, t_max=None))
    finally:
        db.dispose()
    fits_files = [f for f in files if f.suffix == ".fit"]
    again = _ingest(config)
    assert again.exit_code == 0, again.output
    assert f"{len(fits_files)} files read" in again.output
    assert "; 0 quick-looks drawn" in again.output          # content unchanged: not redrawn
    after = _products(config)
    assert {p: (r.t_min, r.t_max) for p, r in after.items()} == \
        {p: (r.t_min, r.t_max) for p, r in before.items()}
    third = _ingest(config, "--no-previews")
    assert "0 files read" in third.output


def test_rerun_reads_only_new_and_changed_files(archive, synth, monkeypatch):
    config, files, _ = archive
    assert _ingest(config).exit_code == 0
    first = snapshot(config, "products")

    import ingest.products as products_module
    opened = []
    real = products_module.inspect_file

    def spy(path, key):
        opened.append(Path(path).name)
        return real(path, key)

    monkeypatch.setattr(products_module, "inspect_file", spy)
    drawn = []
    real_draw = products_module.draw_previews
    monkeypatch.setattr(products_module, "draw_previews",
                        lambda pairs, workers, **kw: drawn.extend(pairs)
                        or real_draw(pairs, workers, **kw))

    result = _ingest(config)
    assert result.exit_code == 0, result.output
    assert opened == [] and drawn == []
    assert "0 files read" in result.output and "0 new, 0 changed" in result.output
    assert snapshot(config, "products") == first

    # change one light curve, add the products of a new detection
    changed = next(f for f in files if f.name.startswith("ublc") and "_500s.fit" in f.name)
    with fits.open(changed, mode="update") as hdul:
        hdul["RATE"].data["RATE"][0] += 1.0
        hdul["RATE"].header["COMMENT"] = "rate corrected"
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    new_index = int(np.flatnonzero(synth.aperiodic["camera"] == "M2")[3])
    new_files = _write_for(synth, config, [new_index])
    result = _ingest(config)
    assert result.exit_code == 0, result.output
    new_pngs = [f.with_suffix(".png").name for f in new_files
                if datamodel.match_product(f.name)[0].previewable]
    expected = {changed.name, changed.with_suffix(".png").name,
                *(f.name for f in new_files), *new_pngs}
    assert set(opened) == expected
    assert {Path(p[0]).name for p in drawn} == {changed.name} | {
        f.name for f in new_files if datamodel.match_product(f.name)[0].previewable}
    rows = _products(config)
    rel = changed.relative_to(config["PRODUCTS_DIR"]).as_posix()
    assert rows[rel].checksum == "sha256:" + hashlib.sha256(changed.read_bytes()).hexdigest()
    assert f"{len(new_files) + len(new_pngs)} new, 2 changed" in result.output


def test_removed_files_are_unregistered(archive):
    config, files, _ = archive
    assert _ingest(config, "--no-previews").exit_code == 0
    files[0].unlink()
    result = _ingest(config, "--no-previews")
    assert result.exit_code == 0, result.output
    assert "1 removed" in result.output
    rel = files[0].relative_to(config["PRODUCTS_DIR"]).as_posix()
    assert rel not in _products(config)


def test_no_previews_option(archive):
    config, files, _ = archive
    result = _ingest(config, "--no-previews")
    assert result.exit_code == 0, result.output
    assert not list(Path(config["PRODUCTS_DIR"]).rglob("*.png")) or all(
        datamodel.match_product(p.name)[0].key == "qlimg"
        for p in Path(config["PRODUCTS_DIR"]).rglob("*.png"))
    assert len(_products(config)) == len(files)


def test_product_without_catalogue_row_is_an_error(archive, synth):
    config, files, _ = archive
    assert _ingest(config).exit_code == 0
    before = snapshot(config, "products")
    row = _row(synth, 0)
    row.update(obs_id="0999999999", src_num=4242)
    directory = Path(config["PRODUCTS_DIR"]) / "0999999999"
    directory.mkdir()
    o = int(synth.events["obs"][0])
    orphans = write_products(directory, row, {k: v[0] for k, v in synth.events.items()},
                             float(synth.observations["tstart"][o]),
                             float(synth.observations["tstop"][o]), seed=3)
    result = _ingest(config)
    assert result.exit_code != 0
    assert str(orphans[0]) in result.output
    assert "obs_id=0999999999" in result.output and "src_num=4242" in result.output
    assert "match no row of the aperiodic or periodic catalogue" in result.output
    assert snapshot(config, "products") == before
    # no quick-look left behind (qlimg_*.png are products written above)
    assert not [p for p in directory.glob("*.png") if not p.name.startswith("qlimg")]


def test_light_curve_without_required_columns_is_an_error(archive, synth):
    config, files, _ = archive
    before = snapshot(config, "products")
    bad = next(f for f in files if f.name.endswith("_500s.fit") and f.name.startswith("ublc"))
    with fits.open(bad) as hdul:
        cols = [c for c in hdul["RATE"].columns if c.name not in ("FRACEXP", "ERROR")]
        hdu = fits.BinTableHDU.from_columns(cols, header=hdul["RATE"].header)
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(bad, overwrite=True)
    result = _ingest(config)
    assert result.exit_code != 0
    assert f"{bad}: extension RATE lacks the required column(s) ERROR, FRACEXP" in result.output
    assert snapshot(config, "products") == before
    assert not list(Path(config["PRODUCTS_DIR"]).rglob("*.png")) or all(
        datamodel.match_product(p.name)[0].key == "qlimg"
        for p in Path(config["PRODUCTS_DIR"]).rglob("*.png"))


def test_truncated_light_curve_is_an_error(archive):
    config, files, _ = archive
    bad = next(f for f in files if f.name.startswith("bblc"))
    data = bad.read_bytes()
    bad.write_bytes(data[:3000])
    result = _ingest(config)
    assert result.exit_code != 0
    assert str(bad) in result.output and "cannot read the file as FITS" in result.output
    assert snapshot(config, "products") == []


def test_directory_outside_products_dir(archive, tmp_path):
    config, _, _ = archive
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    result = _ingest(config, directory=outside)
    assert result.exit_code != 0
    assert "must lie inside PRODUCTS_DIR" in result.output


def test_subdirectory_ingest_and_product_set(archive, synth):
    config, files, (pn, _) = archive
    sub = Path(config["PRODUCTS_DIR"]) / synth.aperiodic["obs_id"][pn]
    result = _ingest(config, "--no-previews", directory=sub)
    assert result.exit_code == 0, result.output
    rows = _products(config)
    assert rows and all(p.startswith(sub.name + "/") for p in rows)
    kinds = {r.product_type for r in rows.values() if r.camera == "PN"}
    assert kinds == set(products_for({"camera": "PN"}))

"""archive.lightcurves.read and encode on the demo archive's real product files, and on
files written here for what the demo lacks (a GTI extension, nulls, a leap second,
truncation)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest
from astropy.io import fits
from astropy.time import Time

from archive.lightcurves import encode, lookup
from archive.lightcurves.read import (NotALightCurve, UnreadableProduct, read_product,
                                      time_conversion)
from lightcurve_helpers import fits_table, product_paths


def _file(config, path):
    return str(Path(config["PRODUCTS_DIR"]) / path)


@pytest.mark.parametrize("product_type", ["ublc_500s", "ublc_opt", "ublc_500s_b2",
                                          "bglc_500s"])
def test_uniform_bins_equal_the_file(demo_archive, product_type):
    path = product_paths(demo_archive, product_type=product_type)[0]
    series = read_product(_file(demo_archive, path), product_type)
    cols, header = fits_table(demo_archive, path)
    assert series.kind == "bins"
    assert list(series.columns) == ["TIME", "RATE", "ERROR", "FRACEXP"]
    for name, values in series.columns.items():
        assert values.flags.c_contiguous and values.dtype.isnative
        np.testing.assert_array_equal(values.astype(np.float64), cols[name])
    for key in ("TSTART", "TSTOP", "TIMEZERO", "MJDREF", "TIMESYS", "TIMEDEL", "E_MIN",
                "E_MAX", "INSTRUME"):
        assert series.header[key] == header[key]
    assert series.units["RATE"] == "count/s"
    # no GTI extension in the demo files: the GTI is TSTART-TSTOP, and says so
    assert series.gti_start.tolist() == [header["TSTART"]]
    assert series.gti_stop.tolist() == [header["TSTOP"]]
    assert series.gti_source.startswith("header")


def test_bayesian_blocks_hardness_and_power(demo_archive):
    path = product_paths(demo_archive, product_type="bblc")[0]
    blocks = read_product(_file(demo_archive, path), "bblc")
    cols, _ = fits_table(demo_archive, path)
    assert blocks.kind == "blocks"
    assert list(blocks.columns) == ["TSTART", "TSTOP", "RATE", "ERATE", "FRACEXP"]
    np.testing.assert_array_equal(blocks.columns["TSTOP"], cols["TSTOP"])
    hr_path = product_paths(demo_archive, product_type="hrlc_500s")[0]
    hr = read_product(_file(demo_archive, hr_path), "hrlc_500s")
    assert hr.kind == "hardness" and set(hr.columns) == {"TIME", "HR", "HR_ERR"}
    pds_path = product_paths(demo_archive, product_type="pds")[0]
    pds = read_product(_file(demo_archive, pds_path), "pds")
    assert pds.kind == "power" and pds.time == {}
    np.testing.assert_allclose(pds.columns["FREQ"], fits_table(demo_archive, pds_path,
                                                               "POWER")[0]["FREQ"])


def test_time_conversion_agrees_with_astropy(demo_archive):
    path = product_paths(demo_archive, product_type="ublc_500s")[0]
    series = read_product(_file(demo_archive, path), "ublc_500s")
    t, h = series.time, series.header
    start = Time(h["MJDREF"] + (h["TSTART"] + h["TIMEZERO"]) / 86400, format="mjd",
                 scale="tt")
    assert t["mjd_start"] == pytest.approx(start.mjd, abs=1e-9)
    assert t["utc_start"] == start.utc.isot
    # TT-UTC = 32.184 s + TAI-UTC (leap seconds) at that date: the Unix time of the
    # start computed the page's way equals astropy's
    assert t["timesys_minus_utc"] in (32.184 + np.arange(30, 40)).round(3).tolist()
    unix = (h["MJDREF"] - 40587) * 86400 + h["TSTART"] + h["TIMEZERO"] - t["timesys_minus_utc"]
    assert unix == pytest.approx(start.utc.unix, abs=1e-4)
    assert t["leap"] is None


def test_a_leap_second_inside_the_file_is_located():
    # 2016-12-31T23:59:60 UTC: TT-UTC goes from 68.184 to 69.184 s
    mjdref = 50814.0
    leap = Time("2017-01-01T00:00:00", scale="utc").tt
    met = (leap.mjd - mjdref) * 86400
    conv = time_conversion({"TSTART": met - 3600, "TSTOP": met + 3600, "MJDREF": mjdref,
                            "TIMESYS": "TT", "TIMEZERO": 0.0})
    assert conv["timesys_minus_utc"] == pytest.approx(68.184)
    assert conv["leap"]["timesys_minus_utc"] == pytest.approx(69.184)
    assert conv["leap"]["met"] == pytest.approx(met, abs=2e-3)


def _write(path, columns, header=None, gti=None):
    hdu = fits.BinTableHDU.from_columns(columns, name="RATE")
    for k, v in {"TSTART": 1000.0, "TSTOP": 3000.0, "MJDREF": 50814.0, "TIMESYS": "TT",
                 "TIMEZERO": 0.0, "TIMEDEL": 500.0, **(header or {})}.items():
        hdu.header[k] = v
    hdus = [fits.PrimaryHDU(), hdu]
    if gti is not None:
        hdus.append(fits.BinTableHDU.from_columns(
            [fits.Column("START", "D", array=gti[0]), fits.Column("STOP", "D", array=gti[1])],
            name="STDGTI"))
    fits.HDUList(hdus).writeto(path)


def test_gti_extension_and_nulls_become_json_null(tmp_path):
    path = tmp_path / "lc.fit"
    time = np.array([1250.0, 1750.0, 2250.0, 2750.0])
    _write(path, [fits.Column("TIME", "D", array=time),
                  fits.Column("RATE", "E", array=[1.0, np.nan, 2.5, np.inf]),
                  fits.Column("ERROR", "E", array=[0.1, 0.2, np.nan, 0.1]),
                  fits.Column("FRACEXP", "J", array=[1, 1, -99, 1], null=-99)],
           gti=([1000.0, 2000.0], [1900.0, 3000.0]))
    series = read_product(str(path), "ublc_500s")
    assert series.gti_start.tolist() == [1000.0, 2000.0]
    assert series.gti_stop.tolist() == [1900.0, 3000.0]
    assert series.gti_source == "STDGTI extension"
    product = lookup.Product({"path": "x/lc.fit", "product_type": "ublc_500s", "band": "full",
                              "camera": "PN", "obs_id": "x", "exp_id": "S001", "src_num": 1,
                              "extras_id": "x", "binning": "500s", "checksum": "sha256:00"})
    doc = orjson.loads(encode.dumps(encode.series_document(product, series, {})))
    assert doc["columns"]["RATE"] == [1.0, None, 2.5, None]
    assert doc["columns"]["ERROR"][2] is None
    assert doc["columns"]["FRACEXP"] == [1.0, 1.0, None, 1.0]
    assert doc["columns"]["TIME"] == time.tolist()
    assert doc["gti"] == {"start": [1000.0, 2000.0], "stop": [1900.0, 3000.0],
                          "source": "STDGTI extension"}


def test_unreadable_files_say_why(demo_archive, tmp_path):
    source = Path(_file(demo_archive, product_paths(demo_archive,
                                                    product_type="ublc_500s")[0]))
    truncated = tmp_path / "truncated.fit"
    truncated.write_bytes(source.read_bytes()[:4000])
    with pytest.raises(UnreadableProduct, match="cannot be read as FITS"):
        read_product(str(truncated), "ublc_500s")
    garbage = tmp_path / "garbage.fit"
    garbage.write_bytes(b"not a FITS file at all" * 200)
    with pytest.raises(UnreadableProduct, match="cannot be read"):
        read_product(str(garbage), "ublc_500s")
    lacking = tmp_path / "lacking.fit"
    _write(lacking, [fits.Column("TIME", "D", array=[1.0]),
                     fits.Column("RATE", "E", array=[1.0])])
    with pytest.raises(UnreadableProduct, match="lacks the column.*ERROR, FRACEXP"):
        read_product(str(lacking), "ublc_500s")
    no_ref = tmp_path / "noref.fit"
    shutil.copy(source, no_ref)
    with fits.open(no_ref, mode="update") as hdul:
        del hdul["RATE"].header["MJDREF"]
    with pytest.raises(UnreadableProduct, match="MJDREF"):
        read_product(str(no_ref), "ublc_500s")


def test_images_and_previews_are_not_light_curves(demo_archive):
    png = product_paths(demo_archive, product_type="qlimg")[0]
    with pytest.raises(NotALightCurve, match="not a light curve.*qlimg"):
        read_product(_file(demo_archive, png), "qlimg")
    with pytest.raises(NotALightCurve, match="quick-look plot"):
        read_product(_file(demo_archive, png), "preview")

"""The data model: valid UCDs and VOUnits, regular ADQL names, products recognised."""
import warnings

import pytest
from astropy import units as u
from astropy.io.votable import ucd as ucd_check

import datamodel
from datamodel.obscore import OBSCORE_TABLES
from datamodel.tap_schema import TAP_SCHEMA_TABLES

ALL_TABLES = [*datamodel.TABLES.values(), *OBSCORE_TABLES.values(), *TAP_SCHEMA_TABLES.values()]
ALL_COLUMNS = [(t.name, c) for t in ALL_TABLES for c in t.columns]


@pytest.mark.parametrize("table, column", ALL_COLUMNS,
                         ids=[f"{t}.{c.name}" for t, c in ALL_COLUMNS])
def test_ucd_and_unit_are_valid(table, column):
    if column.ucd:
        ucd_check.parse_ucd(column.ucd, check_controlled_vocabulary=True, has_colon=False)
    if column.unit:
        with warnings.catch_warnings():
            warnings.simplefilter("error")      # deprecated VOUnits fail too
            u.Unit(column.unit, format="vounit")
    assert column.description


def test_five_catalogues_six_tables():
    assert {t.catalogue for t in datamodel.TABLES.values()} == {
        "aperiodic", "transients", "periodic", "longterm", "classification"}
    assert len(datamodel.TABLES) == 6


@pytest.mark.parametrize("table", datamodel.positional_tables(), ids=lambda t: t.name)
def test_positional_tables_have_one_principal_id_ra_dec(table):
    assert table.role_column("id").ucd == "meta.id;meta.main"
    assert table.role_column("id").datatype == "char"
    assert table.role_column("ra").ucd == "pos.eq.ra;meta.main"
    assert table.role_column("dec").ucd == "pos.eq.dec;meta.main"
    assert sum(1 for c in table.columns if c.ucd and "meta.main" in c.ucd) == 3


def test_real_extras_names_are_accepted_on_input():
    aperiodic = datamodel.get_table("extras.aperiodic")
    assert "3XMM_SUM_FLAG" in aperiodic.column("sum_flag").input_names
    assert "UB_LC500_CO_PVAL" in aperiodic.column("ub_lc500_co_pval").input_names


def test_unknown_table_names_the_known_ones():
    with pytest.raises(KeyError, match="aperiodic"):
        datamodel.get_table("nosuch")


def test_foreign_keys_point_at_declared_columns():
    for table in datamodel.TABLES.values():
        for fk in table.foreign_keys:
            target = datamodel.TABLES[fk.target]
            for col, tcol in zip(fk.columns, fk.target_columns):
                assert table.column(col).datatype == target.column(tcol).datatype


@pytest.mark.parametrize("filename, key", [
    ("bblc_0001730201_PN_U002_9.fit", "bblc"),
    ("ublc_0001730201_PN_U002_9_500s.fit", "ublc_500s"),
    ("ublc_0001730201_M1_S001_123_opt_b3.fit", "ublc_opt_b3"),
    ("bglc_0001730201_M2_U002_9_500s.fit", "bglc_500s"),
    ("hrlc_0001730201_PN_U002_9_500s.fit", "hrlc_500s"),
    ("pds_0001730201_PN_U002_9.fit", "pds"),
    ("qlimg_0001730201_PN_U002_9.png", "qlimg"),
    ("ublc_0001730201_PN_U002_9_500s.png", "preview"),
])
def test_products_recognised_by_name(filename, key):
    ptype, keys = datamodel.match_product(filename)
    assert ptype.key == key
    assert keys == {"obs_id": "0001730201", "camera": filename.split("_")[2],
                    "exp_id": filename.split("_")[3], "src_num": int(filename.split("_")[4].split(".")[0])}
    if key != "preview":
        assert ptype.filename(keys["obs_id"], keys["camera"], keys["exp_id"],
                              keys["src_num"]) == filename


@pytest.mark.parametrize("filename", [
    "bblc_001730201_PN_U002_9.fit",      # OBS_ID of 9 digits
    "bblc_0001730201_XX_U002_9.fit",     # no such camera
    "bblc_0001730201_PN_U002_09.fit",    # zero-padded SRC_NUM
    "ublc_0001730201_PN_U002_9_100s.fit",
    "notes.txt",
])
def test_other_files_are_not_products(filename):
    assert datamodel.match_product(filename) is None


def test_every_light_curve_binning_and_band_is_declared():
    keys = set(datamodel.PRODUCT_TYPES)
    for binning in ("500s", "opt"):
        assert f"ublc_{binning}" in keys
        for band in ("b1", "b2", "b3"):
            assert f"ublc_{binning}_{band}" in keys
    assert {"bblc", "bglc_500s", "hrlc_500s", "pds", "qlimg"} <= keys

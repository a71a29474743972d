"""Catalogue readers and messages: gzip FITS, CSV byte-order marks, delimiters and
encodings, 1-based rows, problem counts, values as written, duplicate keys among
the other problems; on SQLite and PostgreSQL."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from archive.db import catalogue_tables
from ingest_helpers import count, fetch_all, file_table, run_cli, snapshot, synthetic, write

import sqlalchemy as sa


@pytest.fixture(scope="module")
def synth():
    return synthetic(400, seed=11)


def _ok(config, path, catalogue="aperiodic", *options):
    result = run_cli(config, "ingest", "catalogue", str(path), "--catalogue", catalogue,
                     *options)
    assert result.exit_code == 0, result.output
    return result.output


def _refused(config, path, catalogue="aperiodic", *options) -> list[str]:
    """Expect a refusal that wrote nothing; the message lines (``Error: `` removed)."""
    before = {t: snapshot(config, t) for t in ("aperiodic", "transients")}
    result = run_cli(config, "ingest", "catalogue", str(path), "--catalogue", catalogue,
                     *options)
    assert result.exit_code == 1, result.output
    assert {t: snapshot(config, t) for t in before} == before
    # the progress lines of the steps done before the refusal ("ingest: ...") aside
    lines = [line for line in result.output.strip().splitlines()
             if not line.startswith("ingest: ")]
    assert lines[0].startswith("Error: ")
    return [lines[0][len("Error: "):], *lines[1:]]


def _gzip(path, target):
    with open(path, "rb") as src, gzip.open(target, "wb") as dst:
        dst.write(src.read())
    return target


# -- FITS --------------------------------------------------------------------------------

def test_gzip_fits_is_read(empty_config, synth, tmp_path):
    plain = write(file_table("aperiodic", synth.aperiodic), tmp_path / "a.fits", "fits")
    packed = _gzip(plain, tmp_path / "a.fits.gz")
    assert packed.stat().st_size < plain.stat().st_size
    out = _ok(empty_config, packed)
    assert "400 rows ingested into aperiodic (fits;" in out
    rows = snapshot(empty_config)
    _ok(empty_config, plain)                          # the same rows, replaced
    assert snapshot(empty_config) == rows and count(empty_config, "aperiodic") == 400


def test_truncated_gzip_fits_is_refused(empty_config, synth, tmp_path):
    plain = write(file_table("aperiodic", synth.aperiodic), tmp_path / "a.fits", "fits")
    packed = _gzip(plain, tmp_path / "a.fits.gz").read_bytes()
    cut = tmp_path / "cut.fits.gz"
    cut.write_bytes(packed[: len(packed) * 2 // 3])
    (line,) = _refused(empty_config, cut)
    assert line.startswith(f"{cut}: cannot read the file as FITS")


# -- CSV ---------------------------------------------------------------------------------

def _csv(synth, tmp_path, rows=30, name="a.csv"):
    return write(file_table("aperiodic", synth.aperiodic)[:rows], tmp_path / name, "csv")


def test_csv_with_a_utf8_bom(empty_config, synth, tmp_path):
    path = _csv(synth, tmp_path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert "30 rows ingested" in _ok(empty_config, path)
    t = catalogue_tables["aperiodic"]
    obs = fetch_all(empty_config, sa.select(t.c.obs_id).distinct())
    assert {r[0] for r in obs} <= set(synth.aperiodic["obs_id"][:30].tolist())


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_csv_delimiter_is_sniffed(empty_config, synth, tmp_path, delimiter):
    path = _csv(synth, tmp_path)
    path.write_text(path.read_text().replace(",", delimiter))
    assert "30 rows ingested" in _ok(empty_config, path)
    assert count(empty_config, "aperiodic") == 30


def test_csv_delimiter_option(empty_config, synth, tmp_path):
    path = _csv(synth, tmp_path)
    path.write_text(path.read_text().replace(",", "\t"))
    assert "30 rows ingested" in _ok(empty_config, path, "aperiodic", "--delimiter", "tab")
    # a wrong delimiter: the whole line is one value
    lines = _refused(empty_config, path, "aperiodic", "--delimiter", ";")
    assert "required column(s) missing" in lines[0]


def test_csv_delimiter_of_two_characters_is_refused(empty_config, synth, tmp_path):
    path = _csv(synth, tmp_path)
    (line,) = _refused(empty_config, path, "aperiodic", "--delimiter", ";;")
    assert line == f"{path}: the delimiter must be one character, not ';;'"


def test_csv_encoding_option(empty_config, synth, tmp_path):
    table = file_table("transients", synth.transients)[:10]
    table["NAME"] = table["NAME"].astype(object)
    table["NAME"][2] = "XMMU J0001+0002 é"
    utf8 = write(table, tmp_path / "t.csv", "csv")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(utf8.read_text(encoding="utf-8").encode("latin-1"))
    (line,) = _refused(empty_config, latin, "transients")
    assert line == (f"{latin}: line 4: byte 0xe9 is not utf-8 text "
                    "(choose the file's encoding with --encoding)")
    _ok(empty_config, latin, "transients", "--encoding", "latin-1")
    t = catalogue_tables["transients"]
    names = {r[0] for r in fetch_all(empty_config, sa.select(t.c.name))}
    assert "XMMU J0001+0002 é" in names
    (line,) = _refused(empty_config, latin, "transients", "--encoding", "klingon")
    assert line == f"{latin}: unknown encoding 'klingon'"


def test_delimiter_on_fits_is_refused(empty_config, synth, tmp_path):
    path = write(file_table("aperiodic", synth.aperiodic)[:5], tmp_path / "a.fits", "fits")
    (line,) = _refused(empty_config, path, "aperiodic", "--delimiter", ";")
    assert line == f"{path}: --delimiter and --encoding apply to CSV files only, this is FITS"


def test_ragged_csv_row_is_named_1_based(empty_config, synth, tmp_path):
    path = _csv(synth, tmp_path)
    lines = path.read_text().splitlines()
    lines[5] = ",".join(lines[5].split(",")[:3])            # data row 5, line 6
    path.write_text("\n".join(lines) + "\n")
    (line,) = _refused(empty_config, path)
    assert line == (f"{path}: row 5 (line 6): 3 values, the header names 38 columns "
                    "(delimiter ',')")


def test_csv_values_are_echoed_as_written(empty_config, synth, tmp_path):
    path = _csv(synth, tmp_path)
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[3].split(",")
    cells[header.index("DEC")] = "95.000"
    lines[3] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    lines = _refused(empty_config, path)
    assert lines[1] == f"{path}: row 3, column DEC: 95.000 is above the maximum 90"


# -- messages ------------------------------------------------------------------------------

def test_float32_values_are_echoed_as_written(empty_config, synth, tmp_path):
    table = file_table("aperiodic", synth.aperiodic)[:20]
    assert table["UB_LC500_CO_PVAL"].dtype == np.float32
    table["UB_LC500_CO_PVAL"][4] = np.float32(1.7)
    path = write(table, tmp_path / "f32.fits", "fits")
    lines = _refused(empty_config, path)
    assert lines == [f"{path}: 1 problem(s); nothing was ingested",
                     f"{path}: row 5, column UB_LC500_CO_PVAL: 1.7 is above the maximum 1"]


def test_headline_counts_the_problems_listed(empty_config, synth, tmp_path):
    table = file_table("aperiodic", synth.aperiodic)[:50]
    table["DEC"][[3, 8]] = 95.0
    table["RA"][20] = -1.0
    path = write(table, tmp_path / "three.fits", "fits")
    lines = _refused(empty_config, path)
    assert lines[0] == f"{path}: 3 problem(s); nothing was ingested"
    assert [ln.split(": ", 1)[1] for ln in lines[1:]] == [
        "row 4, column DEC: 95.0 is above the maximum 90",
        "row 9, column DEC: 95.0 is above the maximum 90",
        "row 21, column RA: -1.0 is below the minimum 0"]


def test_headline_counts_every_problem_when_not_all_are_listed(empty_config, synth,
                                                               tmp_path):
    table = file_table("aperiodic", synth.aperiodic)[:50]
    table["DEC"][10:22] = 95.0                                 # 12 bad rows
    path = write(table, tmp_path / "twelve.fits", "fits")
    lines = _refused(empty_config, path)
    assert lines[0] == f"{path}: 12 problem(s); nothing was ingested (the first 5 listed)"
    assert [ln.split(": ")[1] for ln in lines[1:6]] == [f"row {r}, column DEC"
                                                        for r in range(11, 16)]
    assert lines[6:] == ["... and 7 more problem(s)"]


def test_duplicate_keys_are_reported_with_the_other_problems(empty_config, synth, tmp_path):
    table = file_table("aperiodic", synth.aperiodic)[:40]
    for name in ("OBS_ID", "EXP_ID", "CAMERA", "SRC_NUM"):
        table[name][30] = table[name][3]
    table["DEC"][10] = -95.0
    path = write(table, tmp_path / "dup.fits", "fits")
    lines = _refused(empty_config, path)
    assert lines[0] == f"{path}: 2 problem(s); nothing was ingested"
    assert lines[1] == f"{path}: row 11, column DEC: -95.0 is below the minimum -90"
    key = ", ".join(str(table[c][3]) for c in ("OBS_ID", "EXP_ID", "CAMERA", "SRC_NUM"))
    assert lines[2] == (f"{path}: row 31, column obs_id, exp_id, camera, src_num: "
                        f"duplicate key (obs_id, exp_id, camera, src_num) = ({key}), "
                        "already on row 4")

"""Catalogue ingest never destroys data silently: the empty-column guard, --mode
replace|append, --dry-run and ``ingest validate``, on SQLite and PostgreSQL."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from archive.db import catalogue_tables
from ingest_helpers import count, fetch_all, file_table, run_cli, snapshot, synthetic, write

TABLES = ("aperiodic", "periodic", "transients", "classification")


@pytest.fixture(scope="module")
def synth():
    return synthetic(400, seed=11)


@pytest.fixture
def loaded(empty_config, synth, tmp_path):
    """An archive holding the 400-row aperiodic catalogue."""
    path = write(file_table("aperiodic", synth.aperiodic), tmp_path / "aperiodic.fits", "fits")
    result = run_cli(empty_config, "ingest", "catalogue", str(path), "--catalogue", "aperiodic")
    assert result.exit_code == 0, result.output
    return empty_config


def _state(config) -> dict:
    """Every row of the catalogue tables and of the search cache."""
    state = {t: snapshot(config, t) for t in TABLES}
    from archive.db import search_cache
    state["search_cache"] = sorted(tuple(r) for r in fetch_all(config, sa.select(search_cache)))
    return state


def _sqlite_bytes(config) -> dict:
    """The SQLite database file and its WAL, byte for byte (digests); {} for PostgreSQL."""
    url = sa.engine.make_url(config["DATABASE_URL"])
    if url.get_backend_name() != "sqlite":
        return {}
    base = Path(url.database)
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (base, Path(f"{base}-wal")) if p.exists()}


def _refused(config, *args) -> str:
    """Run ``ingest catalogue ARGS``, expect a refusal with nothing written; the message
    (one line after ``Error: ``)."""
    before, raw = _state(config), _sqlite_bytes(config)
    result = run_cli(config, "ingest", "catalogue", *args)
    assert result.exit_code == 1, result.output
    assert _state(config) == before
    assert _sqlite_bytes(config) == raw
    # the progress lines of the steps done before the refusal ("ingest: ...") aside
    lines = [line for line in result.output.strip().splitlines()
             if not line.startswith("ingest: ")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def _ids(table, rows):
    return [f"{table['OBS_ID'][i]}_{table['EXP_ID'][i]}_{table['CAMERA'][i]}_{table['SRC_NUM'][i]}"
            for i in rows]


# -- the case: a periodic-search file ingested as aperiodic ------------------------

def test_periodic_file_as_aperiodic_is_refused(loaded, synth, tmp_path):
    """Before: exit 0, and the aperiodic rows with the periodic keys lost their
    variability statistics (NULL). Now refused, naming the missing columns."""
    path = write(file_table("periodic", synth.periodic), tmp_path / "periodic.fits", "fits")
    line = _refused(loaded, str(path), "--catalogue", "aperiodic")
    assert f"{path}: the file has only 9 of the 39 columns of aperiodic" in line
    assert "missing: iauname, lii, bii, sum_flag," in line and "ub_lc500_co_pval" in line
    assert "--allow-empty-columns" in line and "nothing was ingested" in line


def test_allow_empty_columns_loads_the_same_file_when_asked(loaded, synth, tmp_path):
    path = write(file_table("periodic", synth.periodic), tmp_path / "periodic.fits", "fits")
    result = run_cli(loaded, "ingest", "catalogue", str(path), "--catalogue", "aperiodic",
                     "--allow-empty-columns")
    assert result.exit_code == 0, result.output
    n = len(synth.periodic["obs_id"])
    assert f"{n} existing rows replaced" in result.output
    assert "columns of aperiodic not in the file, left empty: iauname," in result.output
    t = catalogue_tables["aperiodic"]
    nulls = fetch_all(loaded, sa.select(sa.func.count()).select_from(t)
                      .where(t.c.ub_lc500_co_pval.is_(None)))[0][0]
    assert nulls == n                              # the operator asked for it


# -- replacing rows must not empty values ---------------------------------------------------

def test_replacing_without_one_column_is_refused(loaded, synth, tmp_path):
    table = file_table("aperiodic", synth.aperiodic)[50:60]
    table.remove_column("UB_LC500_CO_PVAL")
    path = write(table, tmp_path / "nopval.fits", "fits")
    line = _refused(loaded, str(path), "--catalogue", "aperiodic")
    assert (f"{path}: row 1, column ub_lc500_co_pval: replacing rows of aperiodic would "
            "leave empty values they hold, in 1 column(s): ub_lc500_co_pval (10 rows)") in line


def test_new_rows_without_a_column_are_loaded(empty_config, synth, tmp_path):
    table = file_table("aperiodic", synth.aperiodic)
    table.remove_column("UB_LC500_CO_PVAL")
    path = write(table, tmp_path / "nopval.fits", "fits")
    result = run_cli(empty_config, "ingest", "catalogue", str(path), "--catalogue", "aperiodic")
    assert result.exit_code == 0, result.output
    assert "left empty: ub_lc500_co_pval" in result.output
    assert count(empty_config, "aperiodic") == 400


def test_an_empty_csv_cell_over_a_value_is_refused(loaded, synth, tmp_path):
    table = file_table("aperiodic", synth.aperiodic)[:20]
    table["UB_LC500_SKEW"] = table["UB_LC500_SKEW"].astype(object)
    table["UB_LC500_SKEW"][6] = ""
    table["FVAR"] = table["FVAR"].astype(object)
    table["FVAR"][13] = ""
    path = write(table, tmp_path / "holes.csv", "csv")
    line = _refused(loaded, str(path), "--catalogue", "aperiodic")
    assert (f"{path}: row 7, column ub_lc500_skew: replacing rows of aperiodic would leave "
            "empty values they hold, in 2 column(s): ub_lc500_skew (1 rows), fvar (1 rows)"
            ) in line
    result = run_cli(loaded, "ingest", "catalogue", str(path), "--catalogue", "aperiodic",
                     "--allow-empty-columns")
    assert result.exit_code == 0, result.output
    t = catalogue_tables["aperiodic"]
    (xid,) = _ids(table, [6])
    assert fetch_all(loaded, sa.select(t.c.ub_lc500_skew, t.c.fvar)
                     .where(t.c.extras_id == xid)) == [(None, pytest.approx(table["FVAR"][6]))]


def test_replacing_with_every_column_filled_is_allowed(loaded, synth, tmp_path):
    table = file_table("aperiodic", synth.aperiodic)[:30]
    table["UB_LC500_CO_PVAL"][:] = np.float32(0.5)
    path = write(table, tmp_path / "update.fits", "fits")
    result = run_cli(loaded, "ingest", "catalogue", str(path), "--catalogue", "aperiodic")
    assert result.exit_code == 0, result.output
    assert "0 new; 30 existing rows replaced; 400 rows in the table" in result.output


# -- --mode append ---------------------------------------------------------------------------

def test_append_refuses_keys_already_in_the_table(loaded, synth, tmp_path):
    table = file_table("aperiodic", synth.aperiodic)[395:]          # last 5, already there
    path = write(table, tmp_path / "again.fits", "fits")
    line = _refused(loaded, str(path), "--catalogue", "aperiodic", "--mode", "append")
    first = ", ".join(str(table[c][0]) for c in ("OBS_ID", "EXP_ID", "CAMERA", "SRC_NUM"))
    assert (f"{path}: 5 row(s) have a key (obs_id, exp_id, camera, src_num) already in "
            f"aperiodic: row 1: ({first}); row 2: ") in line
    assert "and 2 more; --mode append only adds new rows (--mode replace replaces them)" in line


def test_append_adds_new_rows(empty_config, synth, tmp_path):
    table = file_table("aperiodic", synth.aperiodic)
    first = write(table[:300], tmp_path / "first.fits", "fits")
    second = write(table[300:], tmp_path / "second.fits", "fits")
    for path in (first, second):
        result = run_cli(empty_config, "ingest", "catalogue", str(path), "--catalogue",
                         "aperiodic", "--mode", "append")
        assert result.exit_code == 0, result.output
        assert "0 existing rows replaced" in result.output
    assert count(empty_config, "aperiodic") == 400


def test_unknown_mode_is_a_usage_error(loaded, synth, tmp_path):
    path = write(file_table("aperiodic", synth.aperiodic)[:5], tmp_path / "a.fits", "fits")
    before = _state(loaded)
    result = run_cli(loaded, "ingest", "catalogue", str(path), "--catalogue", "aperiodic",
                     "--mode", "merge")
    assert result.exit_code == 2 and "'merge' is not one of 'replace', 'append'" in result.output
    assert _state(loaded) == before


# -- --dry-run and validate -----------------------------------------------------------------

def _mixed_file(synth, tmp_path) -> Path:
    """100 rows of the loaded catalogue (changed) and 50 with new keys."""
    table = file_table("aperiodic", synth.aperiodic)[200:350]
    table["UB_LC500_CO_PVAL"][:] = np.float32(0.25)
    table["SRC_NUM"][100:] += 1000                         # new keys
    table["EXTRA_NOTE"] = ["x"] * len(table)
    return write(table, tmp_path / "mixed.fits", "fits")


def test_dry_run_counts_and_writes_nothing(loaded, synth, tmp_path):
    path = _mixed_file(synth, tmp_path)
    before, raw = _state(loaded), _sqlite_bytes(loaded)
    result = run_cli(loaded, "ingest", "catalogue", str(path), "--catalogue", "aperiodic",
                     "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{path}: dry run, nothing written: 150 rows for aperiodic (fits): 50 new, "
        "100 replacing existing rows, 300 rows of the table unchanged; 450 rows in the "
        "table after the ingest",
        "columns not in the data model, ignored: EXTRA_NOTE",
        "problems: none"]
    assert _state(loaded) == before
    assert _sqlite_bytes(loaded) == raw
    # the real ingest does what the dry run said
    result = run_cli(loaded, "ingest", "catalogue", str(path), "--catalogue", "aperiodic")
    assert result.exit_code == 0, result.output
    assert "(fits; 50 new; 100 existing rows replaced; 450 rows in the table" in result.output
    assert count(loaded, "aperiodic") == 450


def test_dry_run_lists_the_problems_and_fails(loaded, synth, tmp_path):
    table = file_table("aperiodic", synth.aperiodic)[:10]
    table.remove_column("FVAR")
    path = write(table, tmp_path / "nofvar.fits", "fits")
    before, raw = _state(loaded), _sqlite_bytes(loaded)
    result = run_cli(loaded, "ingest", "catalogue", str(path), "--catalogue", "aperiodic",
                     "--dry-run", "--mode", "append")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{path}: dry run, nothing written: 10 rows for aperiodic "
                               "(fits): 0 new, 10 replacing existing rows, 390 rows")
    assert lines[1] == "columns of aperiodic not in the file, left empty: fvar"
    assert lines[2] == "1 problem(s): the ingest would be refused"
    assert lines[3].startswith(f"{path}: 10 row(s) have a key") and len(lines) == 4
    assert _state(loaded) == before and _sqlite_bytes(loaded) == raw


def test_dry_run_of_the_periodic_file_names_every_problem(loaded, synth, tmp_path):
    path = write(file_table("periodic", synth.periodic), tmp_path / "periodic.fits", "fits")
    before = _state(loaded)
    result = run_cli(loaded, "ingest", "catalogue", str(path), "--catalogue", "aperiodic",
                     "--dry-run")
    assert result.exit_code == 1
    assert "2 problem(s): the ingest would be refused" in result.output
    assert "the file has only 9 of the 39 columns" in result.output
    assert "would leave empty values they hold, in 30 column(s)" in result.output
    assert _state(loaded) == before


def test_dry_run_of_invalid_values_reports_them(loaded, synth, tmp_path):
    table = file_table("aperiodic", synth.aperiodic)[:10]
    table["DEC"][3] = 95.0
    path = write(table, tmp_path / "bad.fits", "fits")
    before = _state(loaded)
    result = run_cli(loaded, "ingest", "validate", str(path), "--catalogue", "aperiodic")
    assert result.exit_code == 1
    assert f"{path}: row 4, column DEC: 95.0 is above the maximum 90" in result.output
    assert _state(loaded) == before


def test_validate_is_the_dry_run(loaded, synth, tmp_path):
    path = _mixed_file(synth, tmp_path)
    before, raw = _state(loaded), _sqlite_bytes(loaded)
    dry = run_cli(loaded, "ingest", "catalogue", str(path), "--catalogue", "aperiodic",
                  "--dry-run")
    validate = run_cli(loaded, "ingest", "validate", str(path), "--catalogue", "aperiodic")
    top = run_cli(loaded, "validate", str(path), "--catalogue", "aperiodic")
    assert validate.exit_code == dry.exit_code == top.exit_code == 0
    assert validate.output == dry.output == top.output
    assert _state(loaded) == before and _sqlite_bytes(loaded) == raw

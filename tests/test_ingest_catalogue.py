"""Catalogue ingest: formats, mapping, validation errors, idempotence, all-or-nothing."""
from __future__ import annotations

import math
import subprocess
import sys

import pytest
import sqlalchemy as sa

from archive import sky
from archive.db import Database, catalogue_tables
from ingest_helpers import count, file_table, run_cli, snapshot, synthetic, write

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def synth():
    return synthetic(400, seed=11)


@pytest.fixture
def aperiodic_fits(synth, tmp_path):
    return write(file_table("aperiodic", synth.aperiodic), tmp_path / "aperiodic.fits", "fits")


@pytest.fixture
def loaded(empty_config, aperiodic_fits):
    """An archive that already holds the aperiodic catalogue."""
    result = run_cli(empty_config, "ingest", "catalogue", str(aperiodic_fits),
                     "--catalogue", "aperiodic")
    assert result.exit_code == 0, result.output
    return empty_config


def _rows(config, table, *cols, where=None):
    db = Database(config["DATABASE_URL"])
    try:
        t = catalogue_tables[table]
        stmt = sa.select(*[t.c[c] for c in cols])
        if where is not None:
            stmt = stmt.where(where(t))
        with db.engine.connect() as conn:
            return conn.execute(stmt).all()
    finally:
        db.dispose()


def _bad_input(config, path, catalogue="aperiodic"):
    """Ingest ``path``, expecting failure with the database unchanged; the message."""
    before = {t: snapshot(config, t) for t in ("aperiodic", "transients", "classification")}
    result = run_cli(config, "ingest", "catalogue", str(path), "--catalogue", catalogue)
    assert result.exit_code != 0
    after = {t: snapshot(config, t) for t in before}
    assert after == before
    return result.output


# -- good input in each format ------------------------------------------------------------

def test_fits_ingest_maps_columns_and_builds_index(empty_config, synth, aperiodic_fits):
    result = run_cli(empty_config, "ingest", "catalogue", str(aperiodic_fits),
                     "--catalogue", "aperiodic")
    assert result.exit_code == 0, result.output
    assert "400 rows ingested into aperiodic" in result.output
    rows = _rows(empty_config, "aperiodic", "extras_id", "obs_id", "exp_id", "camera",
                 "src_num", "ra", "dec", "_hpx", "_x", "_y", "_z", "sum_flag")
    assert len(rows) == 400
    ap = synth.aperiodic
    by_id = {r.extras_id: r for r in rows}
    for i in (0, 137, 399):
        xid = f"{ap['obs_id'][i]}_{ap['exp_id'][i]}_{ap['camera'][i]}_{ap['src_num'][i]}"
        r = by_id[xid]                              # id built from Table.id_template
        assert r.obs_id == ap["obs_id"][i] and r.obs_id.startswith("0")
        assert r.ra == pytest.approx(ap["ra"][i], abs=1e-12)
        assert r._hpx == int(sky.healpix_index(ap["ra"][i], ap["dec"][i]))
        x, y, z = sky.unit_vectors(ap["ra"][i], ap["dec"][i])
        assert (r._x, r._y, r._z) == pytest.approx((float(x), float(y), float(z)))
        assert r.sum_flag == ap["sum_flag"][i]      # read from 3XMM_SUM_FLAG


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_postgresql_load_is_vacuumed_after_the_commit(empty_config, aperiodic_fits):
    """Every page of the new rows is all-visible when the ingest returns (VACUUM ran:
    ANALYZE alone leaves the visibility map empty)."""
    result = run_cli(empty_config, "ingest", "catalogue", str(aperiodic_fits),
                     "--catalogue", "aperiodic")
    assert result.exit_code == 0, result.output
    db = Database(empty_config["DATABASE_URL"])
    try:
        with db.engine.connect() as conn:
            pages, visible = conn.execute(sa.text(
                "SELECT relpages, relallvisible FROM pg_class WHERE relname = 'aperiodic'")
            ).one()
    finally:
        db.dispose()
    assert pages > 0 and visible == pages


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_postgresql_analyzes_after_large_loads_only(loaded, synth, tmp_path):
    """ANALYZE (manual: pg_stat_user_tables.analyze_count) after a load bringing at
    least a tenth of the table's rows; a small update leaves it to autovacuum."""
    def analyses():
        db = Database(loaded["DATABASE_URL"])
        try:
            with db.engine.connect() as conn:
                return conn.execute(sa.text(
                    "SELECT analyze_count FROM pg_stat_user_tables "
                    "WHERE relname = 'aperiodic'")).scalar_one()
        finally:
            db.dispose()

    first = analyses()
    assert first >= 1                                   # the fixture's 400-row load
    table = file_table("aperiodic", synth.aperiodic)
    for rows, expected in ((10, first), (100, first + 1)):
        path = write(table[:rows], tmp_path / f"update{rows}.fits", "fits")
        result = run_cli(loaded, "ingest", "catalogue", str(path), "--catalogue", "aperiodic")
        assert result.exit_code == 0, result.output
        assert analyses() == expected, rows


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_failing_vacuum_does_not_fail_the_committed_load(empty_config, aperiodic_fits,
                                                          monkeypatch, caplog):
    from ingest import load as load_module
    original = load_module._Session.execute

    def execute(self, stmt, parameters=None):
        if isinstance(stmt, str) and stmt.startswith("VACUUM"):
            raise RuntimeError("canceling statement due to user request (simulated)")
        return original(self, stmt, parameters)

    monkeypatch.setattr(load_module._Session, "execute", execute)
    with caplog.at_level("WARNING", logger="ingest.load"):
        result = run_cli(empty_config, "ingest", "catalogue", str(aperiodic_fits),
                         "--catalogue", "aperiodic")
    assert result.exit_code == 0, result.output
    assert count(empty_config, "aperiodic") == 400
    assert "VACUUM of aperiodic after the load failed" in caplog.text
    assert "simulated" in caplog.text


def test_votable_ingest(empty_config, synth, tmp_path):
    path = write(file_table("classification", synth.classification), tmp_path / "c.vot",
                 "votable")
    result = run_cli(empty_config, "ingest", "catalogue", str(path), "--catalogue",
                     "classification")
    assert result.exit_code == 0, result.output
    rows = _rows(empty_config, "classification", "srcid", "src_class", "class_prob")
    assert len(rows) == len(synth.classification["srcid"])
    want = dict(zip(synth.classification["srcid"].tolist(),
                    synth.classification["src_class"].tolist()))
    assert {r.srcid: r.src_class for r in rows} == want     # CLASS -> src_class


def test_csv_ingest_keeps_leading_zeros(empty_config, synth, tmp_path):
    path = write(file_table("aperiodic", synth.aperiodic)[:50], tmp_path / "a.csv", "csv")
    assert path.read_text().splitlines()[1].startswith("0")
    result = run_cli(empty_config, "ingest", "catalogue", str(path), "--catalogue",
                     "aperiodic")
    assert result.exit_code == 0, result.output
    rows = _rows(empty_config, "aperiodic", "obs_id", "extras_id", "ub_lc500_co_pval")
    assert len(rows) == 50
    assert {r.obs_id for r in rows} == set(synth.aperiodic["obs_id"][:50].tolist())
    assert all(r.extras_id.startswith(r.obs_id + "_") for r in rows)


def test_csv_transients_and_lowercase_names(empty_config, synth, tmp_path):
    table = file_table("transients", synth.transients)
    table.rename_columns(table.colnames, [n.lower() for n in table.colnames])
    path = write(table, tmp_path / "t.csv", "csv")
    result = run_cli(empty_config, "ingest", "catalogue", str(path), "--catalogue",
                     "transients")
    assert result.exit_code == 0, result.output
    assert count(empty_config, "transients") == len(synth.transients["name"])


def test_format_from_content_without_extension(empty_config, synth, tmp_path):
    path = write(file_table("classification", synth.classification), tmp_path / "c.vot",
                 "votable")
    plain = tmp_path / "classification_dump"
    plain.write_bytes(path.read_bytes())
    result = run_cli(empty_config, "ingest", "catalogue", str(plain), "--catalogue",
                     "classification")
    assert result.exit_code == 0, result.output
    assert "(votable;" in result.output


# -- idempotence and all-or-nothing ----------------------------------------------------------

def test_ingest_twice_gives_the_same_state(loaded, aperiodic_fits):
    first = snapshot(loaded)
    result = run_cli(loaded, "ingest", "catalogue", str(aperiodic_fits), "--catalogue",
                     "aperiodic")
    assert result.exit_code == 0, result.output
    assert "400 existing rows replaced" in result.output
    assert snapshot(loaded) == first
    assert count(loaded, "aperiodic") == 400


def test_reingest_replaces_changed_rows_without_duplicates(loaded, synth, tmp_path):
    table = file_table("aperiodic", synth.aperiodic)[:10]
    table["UB_LC500_CO_PVAL"][:] = 0.5
    path = write(table, tmp_path / "update.fits", "fits")
    result = run_cli(loaded, "ingest", "catalogue", str(path), "--catalogue", "aperiodic")
    assert result.exit_code == 0, result.output
    assert count(loaded, "aperiodic") == 400
    first = synth.aperiodic
    xid = f"{first['obs_id'][0]}_{first['exp_id'][0]}_{first['camera'][0]}_{first['src_num'][0]}"
    (row,) = _rows(loaded, "aperiodic", "ub_lc500_co_pval",
                   where=lambda t: t.c.extras_id == xid)
    assert row.ub_lc500_co_pval == pytest.approx(0.5)


def test_reingest_of_most_rows_with_index_rebuild_replaces_only_those(loaded, synth,
                                                                      tmp_path, monkeypatch):
    """A file holding 300 of the table's 400 rows (changed): more rows than the table
    keeps otherwise, so the indexes are rebuilt and the staged keys deleted with the
    table's indexes dropped; the other 100 rows stay as they were."""
    from ingest import load as load_module
    monkeypatch.setattr(load_module, "REBUILD_MIN_ROWS", 100)
    before = {r.extras_id: r.ub_lc500_co_pval
              for r in _rows(loaded, "aperiodic", "extras_id", "ub_lc500_co_pval")}
    table = file_table("aperiodic", synth.aperiodic)[100:]
    table["UB_LC500_CO_PVAL"][:] = 0.25
    path = write(table, tmp_path / "most.fits", "fits")
    result = run_cli(loaded, "ingest", "catalogue", str(path), "--catalogue", "aperiodic")
    assert result.exit_code == 0, result.output
    assert "300 existing rows replaced; 400 rows in the table" in result.output
    after = {r.extras_id: r.ub_lc500_co_pval
             for r in _rows(loaded, "aperiodic", "extras_id", "ub_lc500_co_pval")}
    assert after.keys() == before.keys()
    ap = synth.aperiodic
    changed = {f"{ap['obs_id'][i]}_{ap['exp_id'][i]}_{ap['camera'][i]}_{ap['src_num'][i]}"
               for i in range(100, 400)}
    assert all(after[x] == pytest.approx(0.25) for x in changed)
    assert all(after[x] == before[x] for x in after.keys() - changed)


def test_bad_row_5000_after_4999_good_leaves_previous_state(loaded, tmp_path):
    big = synthetic(5000, seed=3)
    table = file_table("aperiodic", big.aperiodic)
    table["DEC"][4999] = 91.5
    path = write(table, tmp_path / "big.fits", "fits")
    out = _bad_input(loaded, path)
    assert f"{path}: row 5000, column DEC: 91.5 is above the maximum 90" in out
    assert count(loaded, "aperiodic") == 400


def test_database_failure_mid_load_rolls_back(loaded, monkeypatch, tmp_path):
    """A failure after some chunks were inserted (and indexes dropped) undoes everything."""
    from ingest import load as load_module
    big = synthetic(3000, seed=5)
    path = write(file_table("aperiodic", big.aperiodic), tmp_path / "big.fits", "fits")
    monkeypatch.setattr(load_module, "CHUNK_ROWS", 500)
    monkeypatch.setattr(load_module, "REBUILD_MIN_ROWS", 1000)
    calls = {"n": 0}
    original = load_module._Session.insert_rows

    def failing(self, table, data):
        # on SQLite this runs in the loading child process: the chunk number is
        # reported through the exception, not through ``calls``
        if table.name == "aperiodic":
            calls["n"] += 1
            if calls["n"] == 4:
                raise RuntimeError(f"disk full (simulated) in chunk {calls['n']} "
                                   f"of {len(data)} rows")
        return original(self, table, data)

    monkeypatch.setattr(load_module._Session, "insert_rows", failing)
    before = snapshot(loaded)
    with pytest.raises(RuntimeError, match=r"simulated\) in chunk 4 of 500 rows"):
        run_cli(loaded, "ingest", "catalogue", str(path), "--catalogue", "aperiodic")
    assert snapshot(loaded) == before
    # the indexes dropped for the bulk load are back
    db = Database(loaded["DATABASE_URL"])
    try:
        names = {ix["name"] for ix in sa.inspect(db.engine).get_indexes("aperiodic")}
    finally:
        db.dispose()
    assert {ix.name for ix in catalogue_tables["aperiodic"].indexes} <= names


def test_ingest_with_the_archive_connections_open_keeps_the_database_sound(
        loaded, aperiodic_fits, backend):
    """Ingests while this process holds the archive's own connections open (as the
    demo and the CLI do): the database stays sound and the counts right."""
    from ingest.catalogue import ingest_catalogue
    before = snapshot(loaded)
    db = Database(loaded["DATABASE_URL"])
    t = catalogue_tables["aperiodic"]
    try:
        with db.engine.connect() as conn, db.readonly.connect() as reader:
            assert conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() == 400
            assert reader.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() == 400
            conn.rollback()
            reader.rollback()
            for _ in range(2):
                report = ingest_catalogue(db.engine, aperiodic_fits, "aperiodic")
                assert (report.rows, report.replaced, report.total) == (400, 400, 400)
            assert reader.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() == 400
            if backend == "sqlite":
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
    finally:
        db.dispose()
    assert snapshot(loaded) == before                  # re-ingest: the same rows


# -- bad input: each names file, row and column, and changes nothing ------------------------

def test_missing_required_column(loaded, synth, tmp_path):
    table = file_table("aperiodic", synth.aperiodic)
    table.remove_column("SRCID")
    path = write(table, tmp_path / "nosrcid.fits", "fits")
    out = _bad_input(loaded, path)
    assert str(path) in out and "required column(s) missing: SRCID" in out


def test_wrong_type_in_csv(loaded, synth, tmp_path):
    table = file_table("aperiodic", synth.aperiodic)[:20]
    path = write(table, tmp_path / "wrong.csv", "csv")
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    col = header.index("SRC_NUM")
    cells = lines[7].split(",")
    cells[col] = "seven"
    lines[7] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    out = _bad_input(loaded, path)
    assert f"{path}: row 7, column SRC_NUM: 'seven' is not an integer" in out


def test_wrong_type_in_fits(loaded, synth, tmp_path):
    table = file_table("aperiodic", synth.aperiodic)[:20]
    table["ONTIME"] = table["ONTIME"].astype(str)
    table["ONTIME"][2] = "long"
    path = write(table, tmp_path / "wrongtype.fits", "fits")
    out = _bad_input(loaded, path)
    assert f"{path}: row 3, column ONTIME: 'long' is not a number" in out


def test_nan_position(loaded, synth, tmp_path):
    table = file_table("aperiodic", synth.aperiodic)[:30]
    table["RA"][11] = math.nan
    path = write(table, tmp_path / "nan.fits", "fits")
    out = _bad_input(loaded, path)
    assert f"{path}: row 12, column RA: NaN is not allowed here" in out


def test_empty_required_value_in_csv(loaded, synth, tmp_path):
    table = file_table("aperiodic", synth.aperiodic)[:30]
    table["DEC"] = table["DEC"].astype(object)
    table["DEC"][4] = ""
    path = write(table, tmp_path / "empty.csv", "csv")
    out = _bad_input(loaded, path)
    assert f"{path}: row 5, column DEC: a value is required" in out


@pytest.mark.parametrize("column, value, text", [
    ("DEC", -90.5, "-90.5 is below the minimum -90"),
    ("RA", 360.0, "360.0 is at or above the (exclusive) maximum 360"),
    ("RA", -0.1, "-0.1 is below the minimum 0"),
    ("UB_LC500_CO_PVAL", 1.5, "1.5 is above the maximum 1"),
])
def test_out_of_range(loaded, synth, tmp_path, column, value, text):
    table = file_table("aperiodic", synth.aperiodic)[:30]
    table[column][20] = value
    path = write(table, tmp_path / "range.fits", "fits")
    out = _bad_input(loaded, path)
    assert f"{path}: row 21, column {column}" in out and text in out


@pytest.mark.parametrize("fmt", ["fits", "csv"])
def test_value_outside_an_enumeration(loaded, synth, tmp_path, fmt):
    """A column the data model declares an enumeration (Column.choices) takes only
    its values: CAMERA is PN, M1 or M2."""
    table = file_table("aperiodic", synth.aperiodic)[:30]
    table["CAMERA"][12] = "M3"
    path = write(table, tmp_path / f"camera.{fmt}", fmt)
    out = _bad_input(loaded, path)
    assert f"{path}: row 13, column CAMERA" in out and "'M3' is not one of PN, M1, M2" in out


def test_duplicate_keys(loaded, synth, tmp_path):
    table = file_table("aperiodic", synth.aperiodic)[:40]
    for name in ("OBS_ID", "EXP_ID", "CAMERA", "SRC_NUM"):
        table[name][30] = table[name][3]
    path = write(table, tmp_path / "dup.fits", "fits")
    out = _bad_input(loaded, path)
    assert f"{path}: row 31, column obs_id, exp_id, camera, src_num: duplicate key" in out
    assert "already on row 4" in out


def test_truncated_fits(loaded, aperiodic_fits, tmp_path):
    data = aperiodic_fits.read_bytes()
    path = tmp_path / "truncated.fits"
    path.write_bytes(data[: len(data) // 2])
    out = _bad_input(loaded, path)
    assert str(path) in out and "cannot read the file as FITS" in out


def test_unreadable_garbage(loaded, tmp_path):
    path = tmp_path / "garbage.fits"
    path.write_bytes(b"\x00\x01 this is not FITS" * 50)
    out = _bad_input(loaded, path)
    assert str(path) in out and "cannot read" in out


def test_truncated_votable(loaded, synth, tmp_path):
    path = write(file_table("classification", synth.classification), tmp_path / "c.vot",
                 "votable")
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    out = _bad_input(loaded, path, "classification")
    assert str(path) in out and "cannot read the file as VOTABLE" in out


def test_missing_file(loaded, tmp_path):
    out = _bad_input(loaded, tmp_path / "nowhere.fits")
    assert "nowhere.fits: no such file" in out


def test_unknown_catalogue(loaded, aperiodic_fits):
    out = _bad_input(loaded, aperiodic_fits, catalogue="sources")
    assert "unknown catalogue 'sources'" in out and "aperiodic" in out


def test_bad_values_everywhere_are_listed_together(loaded, synth, tmp_path):
    table = file_table("aperiodic", synth.aperiodic)[:50]
    table["DEC"][2] = 95.0
    table["SRC_NUM"][9] = 0
    path = write(table, tmp_path / "multi.fits", "fits")
    out = _bad_input(loaded, path)
    assert "row 3, column DEC" in out and "row 10, column SRC_NUM" in out
    assert "2 problem(s); nothing was ingested" in out


def test_problems_of_one_row_are_listed_in_column_order(loaded, synth, tmp_path):
    """Columns are checked in threads; the report is the same as one pass in the
    data model's column order would give, run after run."""
    table = file_table("aperiodic", synth.aperiodic)[:50]
    table["DEC"][4] = 95.0
    table["RA"][4] = 400.0
    table["SRC_NUM"][4] = 0
    table["SRC_NUM"][1] = 0
    path = write(table, tmp_path / "row5.fits", "fits")
    outputs = {_bad_input(loaded, path) for _ in range(3)}
    assert len(outputs) == 1
    lines = [ln for ln in outputs.pop().splitlines() if ": row " in ln]
    assert [ln.split(": row ")[1].split(":")[0] for ln in lines] == [
        "2, column SRC_NUM", "5, column SRC_NUM", "5, column RA", "5, column DEC"]


# -- the real command line ------------------------------------------------------------------

def test_command_line_end_to_end(empty_config, synth, tmp_path):
    path = write(file_table("aperiodic", synth.aperiodic), tmp_path / "a.fits", "fits")
    cmd = [sys.executable, "-c", "import sys; from archive.cli import main; sys.exit(main())",
           "--data-dir", empty_config["DATA_DIR"], "--database-url",
           empty_config["DATABASE_URL"], "ingest", "catalogue", str(path),
           "--catalogue", "aperiodic"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "400 rows ingested into aperiodic" in done.stdout
    bad = cmd[:-1] + ["nonsense"]
    failed = subprocess.run(bad, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1
    assert "unknown catalogue 'nonsense'" in failed.stderr
    assert count(empty_config, "aperiodic") == 400


def _split_loads(monkeypatch):
    """Make a 3000-row SQLite load use part files: three parts of 1000 rows."""
    from ingest import load as load_module
    monkeypatch.setattr(load_module, "PART_MIN_ROWS", 1000)
    monkeypatch.setattr(load_module, "REBUILD_MIN_ROWS", 1000)
    monkeypatch.setattr(load_module.os, "cpu_count", lambda: 3)
    return load_module


def _break_part_writers(monkeypatch, load_module, action):
    """Make every helper writing a part file call ``action()`` before its inserts."""
    original = load_module._Session.insert_rows

    def insert_rows(self, table, data):
        if "journal_mode=OFF" in self.pragmas:          # a helper writing a part file
            action()
        return original(self, table, data)

    monkeypatch.setattr(load_module._Session, "insert_rows", insert_rows)


def _part_files(config):
    from pathlib import Path
    return sorted(Path(sa.engine.make_url(config["DATABASE_URL"]).database)
                  .parent.glob(".ingest-part-*"))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_load_split_over_part_files_gives_the_same_table(
        empty_config, monkeypatch, tmp_path):
    """Rows written by helper processes into part files and taken into the table
    give exactly the rows (and the HEALPix storage order) of a load in one process;
    a re-ingest through parts replaces every row; no part file is left behind."""
    big = synthetic(3000, seed=21)
    path = write(file_table("aperiodic", big.aperiodic), tmp_path / "big.fits", "fits")
    other = dict(empty_config, DATABASE_URL="sqlite:///" + str(tmp_path / "one.sqlite"))
    result = run_cli(other, "ingest", "catalogue", str(path), "--catalogue", "aperiodic")
    assert result.exit_code == 0, result.output

    _split_loads(monkeypatch)
    for _ in range(2):                     # fresh table, then every row replaced
        result = run_cli(empty_config, "ingest", "catalogue", str(path),
                         "--catalogue", "aperiodic")
        assert result.exit_code == 0, result.output
        assert count(empty_config, "aperiodic") == 3000
        assert snapshot(empty_config) == snapshot(other)
        assert _part_files(empty_config) == []
    db = Database(empty_config["DATABASE_URL"])
    try:
        t = catalogue_tables["aperiodic"]
        with db.engine.connect() as conn:
            hpx = conn.execute(sa.select(t.c._hpx).order_by(sa.literal_column("rowid"))
                               ).scalars().all()
            names = {ix["name"] for ix in sa.inspect(conn).get_indexes("aperiodic")}
    finally:
        db.dispose()
    assert hpx == sorted(hpx)
    assert {ix.name for ix in t.indexes} <= names


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_failure_writing_a_part_file_leaves_the_database_unchanged(
        loaded, monkeypatch, tmp_path):
    load_module = _split_loads(monkeypatch)
    big = synthetic(3000, seed=22)
    path = write(file_table("aperiodic", big.aperiodic), tmp_path / "big.fits", "fits")

    def failing():
        raise RuntimeError("disk full (simulated) in a part file")

    _break_part_writers(monkeypatch, load_module, failing)
    before = snapshot(loaded)
    with pytest.raises(RuntimeError, match=r"writing rows 1001-2000 \(in load order\) "
                                           r"failed: RuntimeError: disk full \(simulated\) "
                                           r"in a part file"):
        run_cli(loaded, "ingest", "catalogue", str(path), "--catalogue", "aperiodic")
    assert snapshot(loaded) == before
    assert _part_files(loaded) == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_part_files_of_a_killed_load_are_removed_by_the_next(empty_config, monkeypatch,
                                                             tmp_path):
    """A load killed outright (SIGKILL) cannot remove its part files; the next split
    load removes those whose process is gone, and leaves a running one's alone."""
    import os
    from pathlib import Path
    _split_loads(monkeypatch)
    directory = Path(sa.engine.make_url(empty_config["DATABASE_URL"]).database).parent
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()                                       # a process id that is gone
    stale = directory / f".ingest-part-{proc.pid}-0123abcd.sqlite"
    running = directory / f".ingest-part-{os.getpid()}-4567cdef.sqlite"
    for path in (stale, running):
        path.write_bytes(b"left over")
    big = synthetic(3000, seed=23)
    path = write(file_table("aperiodic", big.aperiodic), tmp_path / "big.fits", "fits")
    result = run_cli(empty_config, "ingest", "catalogue", str(path), "--catalogue", "aperiodic")
    assert result.exit_code == 0, result.output
    assert not stale.exists()
    assert running.exists()
    running.unlink()
    assert count(empty_config, "aperiodic") == 3000


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_part_writer_that_dies_fails_the_load_cleanly(loaded, monkeypatch, tmp_path):
    """A helper killed outright (no message sent) fails the load with its exit code;
    the database and the data directory are as before."""
    import os
    load_module = _split_loads(monkeypatch)
    big = synthetic(3000, seed=24)
    path = write(file_table("aperiodic", big.aperiodic), tmp_path / "big.fits", "fits")
    _break_part_writers(monkeypatch, load_module, lambda: os._exit(9))
    before = snapshot(loaded)
    with pytest.raises(RuntimeError,
                       match=r"writing rows 1001-2000 \(in load order\) failed: exit code 9"):
        run_cli(loaded, "ingest", "catalogue", str(path), "--catalogue", "aperiodic")
    assert snapshot(loaded) == before
    assert _part_files(loaded) == []

"""Operator commands: --version, one-line database errors on every command (--traceback
for details), ``info`` and ``drop catalogue``, on both backends."""
from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

import datamodel
from archive.db import Database, catalogue_tables, ivoa_tables, products, search_cache
from helpers import free_port
from helpers import ArchiveRunner


def _run(config, *args, **kwargs):
    return ArchiveRunner().invoke(["--data-dir", config["DATA_DIR"],
                                   "--database-url", config["DATABASE_URL"], *args], **kwargs)


def test_version():
    result = ArchiveRunner().invoke(["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == \
        f"extras-archive, version {importlib.metadata.version('extras-archive')}"


# -- a database that cannot be used: one line on every command -------------------------

BAD_URLS = {
    "malformed": ("not a url", "is not valid"),
    "unknown backend": ("nosuchdb://host/x", "names a backend that is not installed"),
    "bad port": ("postgresql+psycopg://u:secret@127.0.0.1:notaport/x", "is not valid"),
    "unreachable": ("postgresql+psycopg://u:secret@127.0.0.1:{port}/x", "Connection refused"),
    "not a directory": ("sqlite:////proc/no/such/dir/archive.sqlite", "cannot use the database"),
}

COMMANDS = {
    "init-db": ["init-db"],
    "info": ["info"],
    "drop": ["drop", "catalogue", "aperiodic", "--yes"],
    "ingest catalogue": ["ingest", "catalogue", "{file}", "--catalogue", "aperiodic"],
    "ingest products": ["ingest", "products"],
    "demo": ["demo", "--rows", "100", "--no-products"],
    "serve": ["serve", "--bind", "127.0.0.1:{port}"],
    "worker": ["worker", "--once"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("kind", sorted(BAD_URLS))
def test_unusable_database_is_one_line(kind, command, tmp_path):
    url, expected = BAD_URLS[kind]
    port = free_port()
    url = url.format(port=port)
    data = tmp_path / "data"
    (data / "products").mkdir(parents=True)
    (tmp_path / "a.csv").write_text("OBS_ID\n1\n")
    args = [a.format(file=tmp_path / "a.csv", port=free_port()) for a in COMMANDS[command]]
    result = ArchiveRunner().invoke(["--data-dir", str(data), "--database-url", url, *args])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and expected in errors[0], result.output
    assert "Traceback" not in result.output
    assert "secret" not in result.output             # the password is never shown
    assert errors[0].endswith("(--traceback for details)")


def test_traceback_option_shows_the_error(tmp_path):
    result = ArchiveRunner().invoke(["--traceback", "--data-dir", str(tmp_path),
                                     "--database-url", "nosuchdb://host/x", "info"])
    assert result.exit_code == 1
    assert isinstance(result.exception, sa.exc.NoSuchModuleError)
    # without the option the same error is one line
    result = ArchiveRunner().invoke(["--data-dir", str(tmp_path),
                                     "--database-url", "nosuchdb://host/x", "info"])
    assert isinstance(result.exception, SystemExit)


# -- info --------------------------------------------------------------------------------

@pytest.fixture
def small_archive(empty_config):
    from ingest.demo import build_demo
    build_demo(empty_config, rows=200, seed=3, workers=1, previews=False)
    return empty_config


def _du(path) -> int:
    out = subprocess.run(["du", "-s", "-B1", str(path)], capture_output=True, text=True,
                         check=True).stdout
    return int(out.split()[0])


def test_info(small_archive):
    config = small_archive
    db = Database(config["DATABASE_URL"])
    try:
        from archive.tap import uws
        uws.create_job(db, config, [("LANG", "ADQL"), ("QUERY", "SELECT TOP 1 ra FROM "
                                                        "extras.aperiodic")])
        with db.engine.connect() as conn:
            counts = {n: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                      for n, t in catalogue_tables.items()}
            hpx = {n: np.array(conn.execute(sa.select(t.c._hpx)).scalars().all(),
                               dtype=np.int64)
                   for n, t in catalogue_tables.items() if "_hpx" in t.c}
            files = conn.execute(sa.select(products.c.path, products.c.category)).all()
            obscore = conn.execute(sa.select(sa.func.count()).select_from(
                ivoa_tables["obscore"])).scalar_one()
    finally:
        db.dispose()
    result = _run(config, "info", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    by_name = {c["name"]: c for c in info["catalogues"]}
    assert set(by_name) == set(datamodel.TABLES)
    for name, table in datamodel.TABLES.items():
        entry = by_name[name]
        assert entry["rows"] == counts[name] > 0
        assert entry["columns"] == len(table.columns)
        if table.positional:
            cells = np.unique(hpx[name] >> 38).size          # order 29 -> order 10
            assert entry["coverage"]["cells"] == cells
            assert entry["coverage"]["sky_fraction"] == pytest.approx(cells / (12 * 4 ** 10))
        else:
            assert entry["coverage"] is None
    base = Path(config["PRODUCTS_DIR"])
    sizes: dict[str, list[int]] = {}
    for path, category in files:
        sizes.setdefault(category, []).append((base / path).stat().st_size)
    assert info["products"]["files"] == len(files) > 0
    assert info["products"]["by_category"] == {
        c: {"files": len(s), "bytes": sum(s)} for c, s in sorted(sizes.items())}
    assert info["obscore_rows"] == obscore > 0
    assert info["jobs"] == {"PENDING": 1}
    assert info["disk"]["products_dir"] == _du(config["PRODUCTS_DIR"])
    assert info["disk"]["data_dir"] == _du(config["DATA_DIR"])
    assert info["database"]["backend"] == config["DATABASE_URL"].split(":")[0].split("+")[0]
    if info["database"]["backend"] == "sqlite":
        assert info["database"]["bytes"] == sum(
            _du(p) for p in Path(config["DATA_DIR"]).glob("archive.sqlite*"))
    else:
        assert info["database"]["bytes"] > 1_000_000
    # the text form says the same
    text = _run(config, "info").output
    for name in datamodel.TABLES:
        assert re.search(rf"^  {name} +{counts[name]} rows +{by_name[name]['columns']} columns",
                         text, re.M), text
    assert f"products: {len(files)} files" in text
    assert "async jobs: PENDING 1" in text
    assert f"ivoa.obscore: {obscore} rows" in text


# -- drop catalogue ----------------------------------------------------------------------

def _state(config) -> dict:
    """Everything drop may touch: every catalogue, products, ObsCore, cache, MOC files."""
    db = Database(config["DATABASE_URL"])
    try:
        with db.engine.connect() as conn:
            state = {}
            for table in [*catalogue_tables.values(), products, ivoa_tables["obscore"],
                          search_cache]:
                cols = [c for c in table.c if c.name != "id"]
                state[table.name] = sorted(tuple(r) for r in conn.execute(sa.select(*cols)))
    finally:
        db.dispose()
    state["moc"] = sorted(p.name for p in (Path(config["DATA_DIR"]) / "moc").glob("*"))
    return state


def _prepare_caches(config):
    """MOC files and cached searches of the aperiodic and periodic catalogues."""
    from archive.catalogues.coverage import coverage
    db = Database(config["DATABASE_URL"])
    try:
        for name in ("aperiodic", "periodic"):
            assert coverage(db.readonly, datamodel.TABLES[name], config["DATA_DIR"],
                            timeout=30) is not None
        with db.engine.begin() as conn:
            conn.execute(search_cache.insert(), [
                {"key": f"{name}-{i}", "catalogue": name, "rows": 1, "size": 1, "hits": 0,
                 "used": 0.0, "payload": b"x"}
                for name in ("aperiodic", "periodic", "transients") for i in range(2)])
    finally:
        db.dispose()


def test_drop_linked_catalogue(small_archive):
    config = small_archive
    _prepare_caches(config)
    before = _state(config)
    # the confirmation: "no" changes nothing
    result = _run(config, "drop", "catalogue", "aperiodic", input="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output
    assert "would remove" in result.output and "drop catalogue aperiodic?" in result.output
    assert _state(config) == before
    result = _run(config, "drop", "catalogue", "aperiodic", input="y\n")
    assert result.exit_code == 0, result.output
    after = _state(config)

    assert after["aperiodic"] == [] and before["aperiodic"]
    for name in ("periodic", "longterm", "longterm_points", "classification", "transients"):
        assert after[name] == before[name]
    db = Database(config["DATABASE_URL"])
    try:
        with db.engine.connect() as conn:
            pe = catalogue_tables["periodic"]
            periodic = {r.extras_id: r for r in conn.execute(sa.select(pe))}
            kept = conn.execute(sa.select(products)).all()
            obscore = conn.execute(sa.select(ivoa_tables["obscore"])).all()
    finally:
        db.dispose()
    # product rows: those still linked (through periodic) stay, the others go
    assert kept and len(kept) < len(before["products"])
    assert all(p.extras_id in periodic for p in kept)
    xid = [c.name for c in products.c if c.name != "id"].index("extras_id")
    linked_before = [r for r in before["products"] if r[xid] in periodic]
    assert len(kept) == len(linked_before)
    # every file stays on disk
    assert all((Path(config["PRODUCTS_DIR"]) / r[0]).is_file() for r in before["products"])
    # ObsCore: a row per described product still linked, written from the periodic row
    from datamodel import obscore as oc
    described = {p.path: p for p in kept if p.product_type in oc.OBSERVABLES}
    assert described and len(obscore) == len(described)
    for row in obscore:
        path = row.obs_publisher_did.split("?", 1)[1]
        source = periodic[described[path].extras_id]
        assert (row.s_ra, row.s_dec) == (source.ra, source.dec)
        assert row.target_name == str(source.srcid)          # no aperiodic IAU name now
    # caches: the aperiodic ones go, the others stay
    assert {r[1] for r in after["search_cache"]} == {"periodic", "transients"}
    assert not any(m.startswith("aperiodic-") for m in after["moc"])
    assert sorted(m for m in before["moc"] if m.startswith("periodic-")) == after["moc"]
    summary = result.output.strip().splitlines()[-1]
    assert summary.startswith(f"catalogue aperiodic: removed {len(before['aperiodic'])} rows, "
                              f"{len(before['products']) - len(kept)} product rows")


def test_drop_unlinked_catalogue(small_archive):
    config = small_archive
    _prepare_caches(config)
    before = _state(config)
    result = _run(config, "drop", "catalogue", "transients", "--yes")
    assert result.exit_code == 0, result.output
    after = _state(config)
    assert after["transients"] == [] and before["transients"]
    assert {r[1] for r in after["search_cache"]} == {"aperiodic", "periodic"}
    for name in set(before) - {"transients", "search_cache"}:
        assert after[name] == before[name], name


def test_drop_failure_midway_changes_nothing(small_archive):
    """A statement failing after the rows, products and ObsCore rows were deleted (the
    last one, the cache's): everything is as before, MOC files included."""
    config = small_archive
    _prepare_caches(config)
    db = Database(config["DATABASE_URL"])
    try:
        with db.engine.begin() as conn:
            if db.dialect == "sqlite":
                conn.exec_driver_sql(
                    "CREATE TRIGGER fail_drop BEFORE DELETE ON search_cache "
                    "BEGIN SELECT RAISE(ABORT, 'injected failure'); END")
            else:
                conn.exec_driver_sql(
                    "CREATE FUNCTION fail_drop() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'injected failure'; END $$")
                conn.exec_driver_sql(
                    "CREATE TRIGGER fail_drop BEFORE DELETE ON search_cache "
                    "FOR EACH STATEMENT EXECUTE FUNCTION fail_drop()")
    finally:
        db.dispose()
    before = _state(config)
    result = _run(config, "drop", "catalogue", "aperiodic", "--yes")
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot use the database")
    assert "injected failure" in result.output and "Traceback" not in result.output
    assert _state(config) == before


def test_drop_unknown_catalogue(tmp_path):
    result = ArchiveRunner().invoke(["--data-dir", str(tmp_path), "drop", "catalogue",
                                     "nosuch", "--yes"])
    assert result.exit_code == 2
    assert "'nosuch' is not one of" in result.output and "'aperiodic'" in result.output

"""TAP_SCHEMA is filled from the data model, on both backends, idempotently."""
from __future__ import annotations

import sqlalchemy as sa

import datamodel
from archive.db import Database, fill_tap_schema, init_db, tap_schema_tables
from datamodel.names import RESERVED_WORDS, adql_name
from datamodel.obscore import OBSCORE_TABLES
from datamodel.publish import tap_schema_rows
from datamodel.tap_schema import TAP_SCHEMA_TABLES


def _rows(engine, name):
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(tap_schema_tables[name]))]


def test_new_database_has_tap_schema(empty_config):
    db = Database(empty_config["DATABASE_URL"])
    try:
        schemas = {r["schema_name"] for r in _rows(db.engine, "schemas")}
        assert schemas == {"extras", "ivoa", "TAP_SCHEMA"}
        tables = {r["table_name"]: r for r in _rows(db.engine, "tables")}
        expected = {t.qualified_name for t in datamodel.TABLES.values()}
        expected |= {"ivoa.obscore"}
        expected |= {f"TAP_SCHEMA.{n}" for n in TAP_SCHEMA_TABLES}
        assert set(tables) == expected
        assert all(r["table_type"] == "table" for r in tables.values())
        columns = _rows(db.engine, "columns")
        n_columns = sum(len(t.columns) for t in (
            *datamodel.TABLES.values(), *OBSCORE_TABLES.values(), *TAP_SCHEMA_TABLES.values()))
        assert len(columns) == n_columns
    finally:
        db.dispose()


def test_columns_carry_the_data_model_metadata(empty_config):
    db = Database(empty_config["DATABASE_URL"])
    try:
        cols = {(r["table_name"], r["column_name"]): r for r in _rows(db.engine, "columns")}
        ra = cols[("extras.aperiodic", "ra")]
        model = datamodel.TABLES["aperiodic"].column("ra")
        assert (ra["datatype"], ra["unit"], ra["ucd"], ra["description"]) == (
            "double", "deg", "pos.eq.ra;meta.main", model.description)
        assert ra["principal"] == 1 and ra["indexed"] == 1 and ra["std"] == 0
        assert ra["arraysize"] is None and ra["size"] is None
        obs = cols[("extras.aperiodic", "obs_id")]
        assert (obs["datatype"], obs["arraysize"], obs["size"]) == ("char", "10", 10)
        # flags are integers 0/1 (taplint E_CINT, E_CLOG)
        for row in cols.values():
            for flag in ("indexed", "principal", "std"):
                assert row[flag] in (0, 1)
        # TAP_SCHEMA describes itself as standard columns
        assert cols[("TAP_SCHEMA.columns", "column_name")]["std"] == 1
        # column_index orders the columns as the data model does
        aper = sorted((r for r in cols.values() if r["table_name"] == "extras.aperiodic"),
                      key=lambda r: r["column_index"])
        assert [r["column_name"] for r in aper] == [
            c.name for c in datamodel.TABLES["aperiodic"].columns]
    finally:
        db.dispose()


def test_reserved_column_names_are_stored_delimited(empty_config):
    db = Database(empty_config["DATABASE_URL"])
    try:
        names = {r["column_name"] for r in _rows(db.engine, "columns")
                 if r["table_name"] == "TAP_SCHEMA.columns"}
        assert '"size"' in names and "size" not in names
        # nothing else published is a reserved word, undelimited
        for r in _rows(db.engine, "columns"):
            bare = r["column_name"].strip('"')
            assert (bare.upper() in RESERVED_WORDS) == r["column_name"].startswith('"')
    finally:
        db.dispose()
    assert adql_name("size") == '"size"' and adql_name("ra") == "ra"


def test_foreign_keys_include_tap_schema_own_five(empty_config):
    db = Database(empty_config["DATABASE_URL"])
    try:
        keys = {r["key_id"]: r for r in _rows(db.engine, "keys")}
        key_columns = _rows(db.engine, "key_columns")
        own = [(k["from_table"], k["target_table"]) for k in keys.values()
               if k["from_table"].startswith("TAP_SCHEMA.")]
        assert sorted(own) == sorted([
            ("TAP_SCHEMA.tables", "TAP_SCHEMA.schemas"),
            ("TAP_SCHEMA.columns", "TAP_SCHEMA.tables"),
            ("TAP_SCHEMA.keys", "TAP_SCHEMA.tables"),
            ("TAP_SCHEMA.keys", "TAP_SCHEMA.tables"),
            ("TAP_SCHEMA.key_columns", "TAP_SCHEMA.keys")])
        # the catalogue foreign keys, with their columns
        periodic = [k for k in keys.values() if k["from_table"] == "extras.periodic"]
        assert len(periodic) == 1 and periodic[0]["target_table"] == "extras.aperiodic"
        cols = [(c["from_column"], c["target_column"]) for c in key_columns
                if c["key_id"] == periodic[0]["key_id"]]
        assert cols == [("obs_id", "obs_id"), ("exp_id", "exp_id"), ("camera", "camera"),
                        ("src_num", "src_num")]
        # every key column exists in TAP_SCHEMA.columns
        published = {(r["table_name"], r["column_name"]) for r in _rows(db.engine, "columns")}
        for c in key_columns:
            key = keys[c["key_id"]]
            assert (key["from_table"], c["from_column"]) in published
            assert (key["target_table"], c["target_column"]) in published
    finally:
        db.dispose()


def test_fill_is_idempotent_and_repairs_changes(empty_config):
    db = Database(empty_config["DATABASE_URL"])
    try:
        before = {n: sorted(map(repr, _rows(db.engine, n))) for n in tap_schema_tables}
        assert fill_tap_schema(db.engine) is False          # already up to date
        init_db(db.engine)
        assert {n: sorted(map(repr, _rows(db.engine, n))) for n in tap_schema_tables} == before
        # a stale TAP_SCHEMA (as after a data-model change) is rewritten at start-up
        with db.engine.begin() as conn:
            conn.execute(sa.update(tap_schema_tables["columns"])
                         .where(tap_schema_tables["columns"].c.column_name == "ra")
                         .values(unit="rad"))
            conn.execute(sa.delete(tap_schema_tables["key_columns"]))
        assert fill_tap_schema(db.engine) is True
        assert {n: sorted(map(repr, _rows(db.engine, n))) for n in tap_schema_tables} == before
    finally:
        db.dispose()


def test_text_values_fit_their_declared_arraysize():
    """A TAP_SCHEMA value longer than its FIELD's arraysize would be invalid VOTable."""
    for name, rows in tap_schema_rows().items():
        table = TAP_SCHEMA_TABLES[name]
        for column in table.columns:
            if column.datatype != "char" or not column.arraysize.rstrip("*"):
                continue
            limit = int(column.arraysize.rstrip("*"))
            for row in rows:
                value = row[column.name]
                assert value is None or len(value) <= limit, (name, column.name, value)

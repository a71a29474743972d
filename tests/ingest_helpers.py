"""Helpers shared by the ingest tests: input files, CLI runs, database snapshots."""
from __future__ import annotations

import warnings
from pathlib import Path

import sqlalchemy as sa
from astropy.table import Table

import datamodel
from archive.db import Database, catalogue_tables, products
from helpers import ArchiveRunner


def synthetic(rows: int, seed: int = 7):
    from ingest.synthetic import generate
    return generate(rows, seed)


def file_table(name: str, columns: dict) -> Table:
    """An input table with the original upper-case names, as the demo writes them."""
    from ingest.demo import _file_table
    return _file_table(datamodel.TABLES[name], columns)


def write(table: Table, path: Path, fmt: str) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "votable":
            table.write(path, format="votable", overwrite=True)
        elif fmt == "csv":
            table.write(path, format="ascii.csv", overwrite=True)
        else:
            table.write(path, format="fits", overwrite=True)
    return path


def run_cli(config: dict, *args: str):
    """Run ``extras-archive --data-dir ... --database-url ... ARGS`` in process."""
    return ArchiveRunner().invoke(["--data-dir", config["DATA_DIR"],
                                   "--database-url", config["DATABASE_URL"], *args],
                                  catch_exceptions=False)


def fetch_all(config: dict, stmt) -> list:
    """Every row ``stmt`` selects in the archive ``config`` names."""
    db = Database(config["DATABASE_URL"])
    try:
        with db.engine.connect() as conn:
            return conn.execute(stmt).all()
    finally:
        db.dispose()


def snapshot(config: dict, table: str = "aperiodic") -> list[tuple]:
    """Every row of a table (catalogue name or 'products'), sorted: for equality checks."""
    db = Database(config["DATABASE_URL"])
    try:
        t = products if table == "products" else catalogue_tables[table]
        cols = [c for c in t.c if c.name != "id"]
        with db.engine.connect() as conn:
            rows = conn.execute(sa.select(*cols)).all()
        return sorted(tuple(r) for r in rows)
    finally:
        db.dispose()


def count(config: dict, table: str) -> int:
    db = Database(config["DATABASE_URL"])
    try:
        t = products if table == "products" else catalogue_tables[table]
        with db.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
    finally:
        db.dispose()

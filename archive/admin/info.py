"""What an archive holds: ``extras-archive info``.

Catalogues (rows, columns, sky coverage), products (files and bytes by category),
ivoa.obscore rows, async jobs by phase, the database's size and the disk use of the
data, products and job directories. Every figure is one aggregate query or a walk of
a directory; the coverage is the number of HEALPix cells of order
``archive.catalogues.coverage.MOC_ORDER`` (3.4') holding a row, the cells of the
catalogue's MOC, read with the same query (``moc_cells``) through the read-only
executor, so ``info`` writes nothing.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import sqlalchemy as sa

import datamodel
from ..catalogues.coverage import MOC_ORDER, moc_cells
from ..cli_context import masked_url
from ..db import catalogue_tables, ivoa_tables, products, uws_jobs

__all__ = ["archive_info", "format_info", "disk_use", "human_bytes"]


def disk_use(path: str | Path) -> int | None:
    """Bytes on disk under ``path`` (``du``: allocated blocks, links not followed);
    None if it does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    total = 0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            st = current.lstat()
        except FileNotFoundError:
            continue                        # removed while walking
        total += st.st_blocks * 512
        if current.is_dir() and not current.is_symlink():
            try:
                stack.extend(Path(e.path) for e in os.scandir(current))
            except OSError:
                continue
    return total


def _database_bytes(engine) -> int | None:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.pg_database_size(
                sa.func.current_database()))).scalar_one())
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    return sum(disk_use(database + suffix) or 0 for suffix in ("", "-wal", "-shm"))


def _catalogue(conn, db, name: str, table: datamodel.Table, timeout: float) -> dict:
    rows = conn.execute(sa.select(sa.func.count()).select_from(catalogue_tables[name])
                        ).scalar_one()
    entry = {"name": name, "table": f"{table.schema}.{table.name}", "rows": int(rows),
             "columns": len(table.columns), "coverage": None}
    if table.positional and rows:
        cells = len(moc_cells(db.readonly, table, MOC_ORDER, timeout=timeout))
        fraction = cells / (12 * 4 ** MOC_ORDER)
        entry["coverage"] = {"healpix_order": MOC_ORDER, "cells": cells,
                             "sky_fraction": fraction,
                             "square_degrees": fraction * 4 * math.pi * (180 / math.pi) ** 2}
    return entry


def archive_info(db, config: dict) -> dict:
    """Everything ``extras-archive info`` shows, as plain data (``--json``)."""
    timeout = float(config["QUERY_TIMEOUT"])
    engine = db.engine
    with engine.connect() as conn:
        catalogues = [_catalogue(conn, db, name, table, timeout)
                      for name, table in datamodel.TABLES.items()]
        by_category = {
            category: {"files": int(n), "bytes": int(size or 0)}
            for category, n, size in conn.execute(
                sa.select(products.c.category, sa.func.count(), sa.func.sum(products.c.size))
                .group_by(products.c.category).order_by(products.c.category))}
        obscore = conn.execute(sa.select(sa.func.count()).select_from(
            ivoa_tables["obscore"])).scalar_one()
        jobs = {phase: int(n) for phase, n in conn.execute(
            sa.select(uws_jobs.c.phase, sa.func.count()).group_by(uws_jobs.c.phase)
            .order_by(uws_jobs.c.phase))}
    data_dir = Path(config["DATA_DIR"])
    return {
        "data_dir": str(data_dir),
        "database": {"url": masked_url(config["DATABASE_URL"]), "backend": engine.dialect.name,
                     "bytes": _database_bytes(engine)},
        "catalogues": catalogues,
        "products": {"files": sum(c["files"] for c in by_category.values()),
                     "bytes": sum(c["bytes"] for c in by_category.values()),
                     "by_category": by_category},
        "obscore_rows": int(obscore),
        "jobs": jobs,
        "disk": {"data_dir": disk_use(data_dir),
                 "products_dir": disk_use(config["PRODUCTS_DIR"]),
                 "jobs_dir": disk_use(data_dir / "jobs")},
    }


def human_bytes(n: int | None) -> str:
    """``n`` bytes for people: 1023 B, 1.5 KiB, 12.3 MiB ...; "-" for None."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def format_info(info: dict) -> str:
    """The text ``extras-archive info`` prints."""
    db = info["database"]
    lines = [f"data directory: {info['data_dir']}",
             f"database: {db['url']} ({db['backend']}, {human_bytes(db['bytes'])})",
             "catalogues:"]
    for c in info["catalogues"]:
        text = f"  {c['name']:<16} {c['rows']:>10} rows {c['columns']:>4} columns"
        cov = c["coverage"]
        if cov:
            text += (f"   coverage {cov['square_degrees']:.2f} deg2 = "
                     f"{100 * cov['sky_fraction']:.4f} % of the sky ({cov['cells']} "
                     f"HEALPix cells of order {cov['healpix_order']})")
        lines.append(text)
    p = info["products"]
    lines.append(f"products: {p['files']} files, {human_bytes(p['bytes'])}")
    for category, c in p["by_category"].items():
        lines.append(f"  {category:<16} {c['files']:>10} files {human_bytes(c['bytes']):>10}")
    lines.append(f"ivoa.obscore: {info['obscore_rows']} rows")
    jobs = info["jobs"]
    lines.append("async jobs: " + (", ".join(f"{phase} {n}" for phase, n in jobs.items())
                                   if jobs else "none"))
    d = info["disk"]
    lines.append(f"disk use: data directory {human_bytes(d['data_dir'])}, products "
                 f"{human_bytes(d['products_dir'])}, job results {human_bytes(d['jobs_dir'])}")
    return "\n".join(lines)

"""Helpers of the product-download tests (tests/test_products_*.py): the registered
products of the demo archive, and scratch products registered by inserting rows
directly (files written, deleted or changed by the test, links pointing out)."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

#: The observation of the scratch products: no demo product belongs to it.
SCRATCH_OBS = "0999999999"


def product_rows(app, *conditions) -> list[dict]:
    """Rows of the products table (as dicts, ordered by path) matching ``conditions``."""
    from archive.db import get_db, products
    with get_db(app).engine.connect() as conn:
        rows = conn.execute(sa.select(products).where(*conditions)
                            .order_by(products.c.path)).mappings().all()
    return [dict(r) for r in rows]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_of(app, row) -> Path:
    return Path(app.config["PRODUCTS_DIR"]) / row["path"]


@pytest.fixture
def scratch(app):
    """``add(name, data=None, target=None)``: a product file ``PRODUCTS_DIR/0999999999/
    <name>`` (with ``data``, or a symbolic link to ``target``) and its products row,
    inserted directly; every scratch file and row is removed afterwards."""
    from archive.db import get_db, products
    engine = get_db(app).engine
    directory = Path(app.config["PRODUCTS_DIR"]) / SCRATCH_OBS
    directory.mkdir(exist_ok=True)
    added = []

    def add(name: str, data: bytes | None = None, target: Path | None = None) -> dict:
        path = directory / name
        if target is not None:
            path.symlink_to(target)
        else:
            path.write_bytes(data)
        st = path.stat()
        n = len(added) + 1
        row = {"path": f"{SCRATCH_OBS}/{name}", "product_type": "bblc",
               "category": "lightcurve", "mime": "application/fits", "size": st.st_size,
               "mtime_ns": st.st_mtime_ns, "checksum": "sha256:" + sha256(path.read_bytes()),
               "obs_id": SCRATCH_OBS, "exp_id": "S001", "camera": "PN", "src_num": n,
               "extras_id": f"{SCRATCH_OBS}_S001_PN_{n}", "band": "full"}
        with engine.begin() as conn:
            conn.execute(sa.insert(products).values(**row))
        added.append(row)
        return row

    yield add
    with engine.begin() as conn:
        conn.execute(sa.delete(products).where(products.c.obs_id == SCRATCH_OBS))
    shutil.rmtree(directory, ignore_errors=True)

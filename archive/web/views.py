"""The web blueprint: pages for people (landing page first)."""
from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, render_template

import datamodel
from ..db import catalogue_tables, get_db

bp = Blueprint("web", __name__)


def catalogue_counts(engine) -> list[dict]:
    """Each published table with its row count, in publication order."""
    rows = []
    with engine.connect() as conn:
        for name, table in datamodel.TABLES.items():
            count = conn.execute(sa.select(sa.func.count()).select_from(
                catalogue_tables[name])).scalar_one()
            rows.append({"table": table, "rows": count})
    return rows


@bp.route("/")
def index():
    db = get_db()
    return render_template("web/index.html", catalogues=catalogue_counts(db.readonly))

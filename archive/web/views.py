"""The web blueprint: pages for people (landing page, detection and source pages)."""
from __future__ import annotations

import math

import sqlalchemy as sa
from flask import Blueprint, current_app, render_template, request

import datamodel
from ..db import catalogue_tables, get_db
from ..conesearch.search import ALL as CONE_ALL
from ..errors import NotFoundFault
from ..http import base_url
from .sources import columns_for, find_detection, find_source, outside_links, product_groups

bp = Blueprint("web", __name__)

#: The documentation: markdown files in the repository's docs/ directory (not served
#: by the archive), each with what it covers; tests/test_navigation.py checks each exists.
DOCS: tuple[tuple[str, str], ...] = (
    ("web.md", "the pages for people: search forms, catalogue, detection and source pages"),
    ("tap.md", "the TAP service: endpoints, parameters, limits"),
    ("adql.md", "the ADQL dialect: geometry, functions, what is translated how"),
    ("async.md", "asynchronous TAP jobs (UWS)"),
    ("conesearch.md", "Simple Cone Search per catalogue"),
    ("datalink.md", "DataLink: from a catalogue row to its products"),
    ("obscore.md", "ObsCore: the light curves in ivoa.obscore"),
    ("products.md", "the product files and bulk downloads"),
    ("lightcurves.md", "light-curve previews and their JSON"),
    ("resolver.md", "name resolution (/resolve)"),
    ("formats.md", "output formats"),
    ("ingest.md", "building an archive: ingest commands"),
    ("deploy.md", "running the server: settings, gunicorn"),
    ("architecture.md", "the code's layers"),
)


def catalogue_counts(engine) -> list[dict]:
    """Each published table with its row count, in publication order."""
    rows = []
    with engine.connect() as conn:
        for name, table in datamodel.TABLES.items():
            count = conn.execute(sa.select(sa.func.count()).select_from(
                catalogue_tables[name])).scalar_one()
            rows.append({"table": table, "rows": count})
    return rows


@bp.app_template_filter("value")
def _value(value, column=None):
    """A catalogue value as people read it: floats to the precision they carry."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        name = column.get("name") if isinstance(column, dict) else getattr(column, "name", "")
        if name in ("ra", "dec", "lii", "bii"):
            return f"{value:.6f}"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.4g}"
        return f"{value:.6g}"
    return str(value)


@bp.app_template_filter("filesize")
def _filesize(size: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


@bp.route("/")
def index():
    db = get_db()
    return render_template("web/index.html", catalogues=catalogue_counts(db.readonly),
                           base=base_url(), docs=DOCS, all_cones=CONE_ALL)


@bp.route("/detections/<extras_id>")
def detection(extras_id: str):
    """One detection: position, catalogue rows, products by category, links out."""
    found = find_detection(get_db().readonly, extras_id,
                           timeout=float(current_app.config["QUERY_TIMEOUT"]))
    if found is None:
        raise NotFoundFault(f"there is no detection {extras_id!r} in the aperiodic or "
                            "periodic catalogue; detection ids read "
                            "<obs_id>_<exp_id>_<camera>_<src_num>, e.g. "
                            "0001730201_U002_PN_9")
    query = request.args.get("q", "")
    return render_template(
        "web/detection.html", d=found, query=query, root=request.script_root,
        groups=product_groups(found.products, query),
        columns={name: columns_for(name) for name in ("aperiodic", "periodic")},
        links=outside_links(found.ra, found.dec, found.srcid))


@bp.route("/sources/<int:srcid>")
def source(srcid: int):
    """One 3XMM source: its detections and its rows in every catalogue."""
    found = find_source(get_db().readonly, srcid,
                        timeout=float(current_app.config["QUERY_TIMEOUT"]))
    if found is None:
        raise NotFoundFault(f"no catalogue of this archive has the 3XMM source "
                            f"{srcid}")
    return render_template(
        "web/source.html", s=found, root=request.script_root,
        columns={name: columns_for(name) for name in datamodel.TABLES},
        links=outside_links(found.ra, found.dec, found.srcid))

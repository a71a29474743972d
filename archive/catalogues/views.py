"""The catalogue pages (/catalogues): description, columns, row count, sky coverage
(MOC as FITS, JSON and a picture) and downloads of each whole catalogue."""
from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, render_template, request, send_file

import datamodel
from ..db import catalogue_tables, get_db
from ..errors import NotFoundFault
from ..query import execute
from ..result import ResultColumn
from .coverage import coverage
from .export import DOWNLOAD_FORMATS, download_format, file_name, whole_catalogue

bp = Blueprint("catalogues", __name__, url_prefix="/catalogues")

VERBOSITY = {1: "minimal", 2: "standard", 3: "full"}


def _timeout() -> float:
    return float(current_app.config["QUERY_TIMEOUT"])


def _catalogue(name: str) -> datamodel.Table:
    table = datamodel.TABLES.get(name)
    if table is None:
        raise NotFoundFault(f"there is no catalogue {name!r}; the catalogues are "
                            f"{', '.join(datamodel.TABLES)} (see /catalogues)")
    return table


def _row_count(table: datamodel.Table) -> int:
    stmt = sa.select(sa.func.count()).select_from(catalogue_tables[table.name])
    result = execute(get_db().readonly, stmt, [ResultColumn("n", "long")], maxrec=None,
                     timeout=_timeout())
    return int(next(row for chunk in result.chunks() for row in chunk)[0])


def _coverage(table: datamodel.Table):
    return coverage(get_db().readonly, table, current_app.config["DATA_DIR"],
                    timeout=_timeout())


def _positional(table: datamodel.Table):
    found = _coverage(table)
    if found is None:
        raise NotFoundFault(f"the catalogue {table.name!r} has no positions, so it has no "
                            "sky coverage (MOC)")
    return found


@bp.route("", strict_slashes=False)
def catalogue_list():
    """Every catalogue: title, table, row count, description."""
    rows = [{"table": t, "rows": _row_count(t)} for t in datamodel.TABLES.values()]
    return render_template("catalogues/list.html", catalogues=rows)


@bp.route("/<name>")
def catalogue(name: str):
    """One catalogue: its columns, row count, coverage and downloads."""
    table = _catalogue(name)
    found = _coverage(table)
    sky = None
    if found is not None:
        from mocpy import MOC
        moc = MOC.load(str(found.fits), format="fits")
        sky = {"fraction": moc.sky_fraction, "order": found.order}
    return render_template("catalogues/catalogue.html", table=table, rows=_row_count(table),
                           coverage=found, sky=sky, verbosity=VERBOSITY,
                           formats=DOWNLOAD_FORMATS)


#: The sky coverage files: extension -> (attribute of the coverage, MIME type).
MOC_FILES = {"fits": ("fits", "application/fits"), "json": ("json", "application/json"),
             "png": ("png", "image/png")}


@bp.route("/<name>/moc.<ext>")
def moc(name: str, ext: str):
    """The catalogue's MOC as FITS or JSON, or its all-sky picture."""
    if ext not in MOC_FILES:
        raise NotFoundFault(f"there is no moc.{ext}; the coverage is served as "
                            + ", ".join(f"moc.{e}" for e in MOC_FILES))
    found = _positional(_catalogue(name))
    attribute, mime = MOC_FILES[ext]
    return send_file(getattr(found, attribute), mimetype=mime, conditional=True,
                     download_name=f"extras-{name}-moc.{ext}")


@bp.route("/<name>/download")
def download(name: str):
    """The whole catalogue as FITS or VOTable, streamed as an attachment."""
    table = _catalogue(name)
    fmt = download_format(request.args.get("format"))
    result = whole_catalogue(get_db().readonly, table, timeout=_timeout())
    headers = {"Content-Disposition": f'attachment; filename="{file_name(table, fmt)}"'}
    return Response(fmt.render(result), status=200, content_type=fmt.content_type(),
                    headers=headers, direct_passthrough=True)

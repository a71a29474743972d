"""The whole catalogue as a streamed download (FITS or VOTable).

The download is the query ``SELECT <published columns> FROM <table>`` run through the
one executor (``archive.query.execute``) with no row limit, as TAP runs it, and
encoded by the format registry: rows are read and written chunk by chunk, so memory
stays flat whatever the catalogue's size.
"""
from __future__ import annotations

import sqlalchemy as sa

import datamodel
from ..db import catalogue_tables
from ..errors import UsageFault
from ..formats import Format, get_format
from ..query import execute
from ..result import QueryResult, columns_of

__all__ = ["DOWNLOAD_FORMATS", "download_format", "whole_catalogue", "file_name"]

#: the formats a whole catalogue is offered in: request value -> format registry key
DOWNLOAD_FORMATS = {"fits": "fits", "votable": "votable"}


def download_format(requested: str | None) -> Format:
    """The format of a download request (``fits`` or ``votable``); anything else is a
    usage error that names the accepted values."""
    key = (requested or "").strip().lower()
    if key not in DOWNLOAD_FORMATS:
        raise UsageFault(f"unknown download format {requested!r}; the accepted formats "
                         f"are {', '.join(DOWNLOAD_FORMATS)}")
    return get_format(DOWNLOAD_FORMATS[key])


def file_name(table: datamodel.Table, fmt: Format) -> str:
    """``extras-<name>.fits`` or ``extras-<name>.vot``."""
    extension = "fits" if fmt.key == "fits" else "vot"
    return f"extras-{table.name}.{extension}"


def whole_catalogue(engine, table: datamodel.Table, *, timeout: float) -> QueryResult:
    """Every row and every published column of ``table``, streamed."""
    sql_table = catalogue_tables[table.name]
    stmt = sa.select(*(sql_table.c[c.name] for c in table.columns))
    return execute(engine, stmt, columns_of(table.columns), maxrec=None, timeout=timeout,
                   plain_scan=True)

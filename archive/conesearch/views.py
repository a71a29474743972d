"""Simple Cone Search HTTP endpoints: ``/scs/<catalogue>`` (GET and POST),
``/scs/<catalogue>/capabilities`` and ``/scs/<catalogue>/availability``.

Errors follow SCS 1.03 for VO clients: a VOTable with ``<INFO name="Error"
value="..."/>`` (and the DALI QUERY_STATUS=ERROR INFO). Errors in the request are
answered with HTTP 200, as SCS 1.03 clients expect (TOPCAT reads the message only
from a 200 answer; pyvo reads it either way); an unknown catalogue is a 404, a
server-side failure a 5xx, each with the same kind of VOTable. Browsers get the
site's error page (the shared edge, ``archive.http``, decides).

DataLink plugs in through ``app.extensions["scs_descriptors"]``: a callable
``(service_name, columns, base_url) -> list[str]`` of VOTable RESOURCE fragments
added to every result but the SR=0 metadata query; the ID_MAIN FIELD then carries an ``ID`` equal to its
name (``search.with_id_field``) for them to ``ref``.
"""
from __future__ import annotations

from itertools import chain

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, render_template

import datamodel
from ..db import catalogue_tables, get_db
from ..errors import ArchiveFault
from ..formats import get_format
from ..formats.votable import error_document
from ..http import availability_response, base_url, request_params, vo_errors
from .params import parse_cone
from .search import ALL, cone_search, find_catalogue, result_columns, with_id_field

__all__ = ["bp"]

bp = Blueprint("conesearch", __name__, url_prefix="/scs")

#: SCS 1.03 names text/xml as the MIME type of the answer.
SCS_MIME = "text/xml"
#: Bodies up to this size are sent in one piece (with Content-Length); larger ones stream.
_BUFFER_BYTES = 1 << 20


def _scs_error(fault: ArchiveFault) -> Response:
    status = 200 if type(fault).status == 400 else fault.status
    return Response(error_document(fault.message, scs=True), status=status,
                    content_type=SCS_MIME)


vo_errors(bp, _scs_error)


def _base_url(name: str) -> str:
    return base_url(f"/scs/{name}")


def _body(pieces):
    """Small answers in one piece (with Content-Length), large ones streamed."""
    buffered, size = [], 0
    for piece in pieces:
        buffered.append(piece)
        size += len(piece)
        if size > _BUFFER_BYTES:
            return chain(buffered, pieces)
    return b"".join(buffered)


@bp.route("/<catalogue>", methods=["GET", "POST"])
def cone(catalogue: str):
    """Run one cone search: RA, DEC, SR [, VERB, MAXREC, RESPONSEFORMAT]."""
    name = find_catalogue(catalogue)
    cone_req = parse_cone(request_params(), current_app.config)
    fmt = get_format(cone_req.response_format)
    # not on the metadata query (SR=0, no rows): pyvo's SCSService.columns lists the
    # descriptor's PARAMs as columns
    hook = current_app.extensions.get("scs_descriptors") if cone_req.sr > 0 else None
    columns = result_columns(name, cone_req.verb)
    if hook is not None:
        columns = with_id_field(columns)
    result = cone_search(get_db().readonly, name, cone_req.ra, cone_req.dec, cone_req.sr,
                         verb=cone_req.verb, maxrec=cone_req.maxrec,
                         timeout=float(current_app.config["QUERY_TIMEOUT"]),
                         columns=columns)
    if hook is not None:
        result.resources.extend(hook(name, result.columns, _base_url(name)))
    if cone_req.response_format is None and fmt.key == "votable":
        content_type = SCS_MIME
    else:
        content_type = fmt.content_type(cone_req.response_format)
    return Response(_body(fmt.render(result)), content_type=content_type)


def _test_position(name: str) -> tuple[float, float]:
    """A position with data for the capabilities' testQuery (first row by index)."""
    tables = ([t.name for t in datamodel.positional_tables()] if name == ALL else [name])
    with get_db().readonly.connect() as conn:
        for table_name in tables:
            t = catalogue_tables[table_name]
            row = conn.execute(sa.select(t.c.ra, t.c.dec).order_by(t.c._hpx).limit(1)).first()
            if row is not None:
                return float(row.ra), float(row.dec)
    return 0.0, 0.0


@bp.route("/<catalogue>/capabilities")
def capabilities(catalogue: str):
    """VOSI capabilities of one cone search service."""
    name = find_catalogue(catalogue)
    title = "all catalogues combined" if name == ALL else datamodel.TABLES[name].title
    ra, dec = _test_position(name)
    config = current_app.config
    body = render_template(
        "conesearch/capabilities.xml", base=_base_url(name), title=title,
        max_sr=float(config["SCS_MAX_SR"]),
        max_records=int(config.get("SCS_HARD_MAXREC", config["SCS_DEFAULT_MAXREC"])),
        test_ra=repr(ra), test_dec=repr(dec), test_sr=0.01)
    return Response(body, content_type="text/xml")


@bp.route("/<catalogue>/availability")
def availability(catalogue: str):
    """VOSI availability: available if the database answers a read-only query."""
    find_catalogue(catalogue)
    return availability_response(get_db())

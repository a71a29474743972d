"""The DataLink blueprint: ``/datalink/links`` (GET and POST, ``ID`` repeated),
``/datalink/capabilities`` and ``/datalink/availability``.

It also plugs the DataLink service descriptor into cone-search results
(``app.extensions["scs_descriptors"]``, see ``archive.conesearch.views``).
Request-level errors (a RESPONSEFORMAT other than VOTable) are DALI error
VOTables; problems with single IDs are error rows of the links table.
"""
from __future__ import annotations

from flask import Blueprint, Response, current_app

from ..db import get_db
from ..errors import ArchiveFault
from ..formats import get_format
from ..formats.votable import error_document
from ..http import availability_response, base_url, request_params, vo_errors, xml_response
from .descriptor import service_descriptor
from .ids import parse_links_request
from .links import LINKS_MIME, STANDARD_ID, VOTABLE_MIME, links_result, links_rows

__all__ = ["bp", "links_access_url"]

bp = Blueprint("datalink", __name__, url_prefix="/datalink")


def _dali_error(fault: ArchiveFault) -> Response:
    return Response(error_document(fault.message), status=fault.status,
                    content_type=VOTABLE_MIME)


vo_errors(bp, _dali_error)


def links_access_url() -> str:
    """The absolute URL of the {links} endpoint."""
    return base_url("/datalink/links")


def _scs_descriptors(service: str, columns, _service_url: str) -> list[str]:
    """Service descriptors of a cone-search result: one per FIELD with an ID."""
    return [service_descriptor(links_access_url(), c.field_id) for c in columns
            if c.field_id]


@bp.record_once
def _plug_into_cone_search(state) -> None:
    state.app.extensions["scs_descriptors"] = _scs_descriptors


@bp.route("/links", methods=["GET", "POST"])
def links():
    """DataLink {links}: the links of each ID, grouped by ID, as a TABLEDATA VOTable."""
    config = current_app.config
    request = parse_links_request(request_params(), int(config["DATALINK_MAX_IDS"]))
    rows = links_rows(get_db().readonly, request.ids, base=base_url(),
                      products_dir=config["PRODUCTS_DIR"])
    body = b"".join(get_format("votable/td").render(links_result(rows, request.overflow)))
    return Response(body, content_type=LINKS_MIME)


@bp.route("/capabilities")
def capabilities():
    """VOSI capabilities of the DataLink service."""
    return xml_response("datalink/capabilities.xml", standard_id=STANDARD_ID,
                        links=links_access_url(), base=base_url("/datalink"))


@bp.route("/availability")
def availability():
    """VOSI availability: available if the archive database answers."""
    return availability_response(get_db())

"""The TAP blueprint, ``/tap``: built here from the routes of its view modules.

``sync`` (the page for people, /sync), ``metadata`` (VOSI: /capabilities,
/availability, /tables), ``jobs`` (UWS: /async and the jobs), ``examples``
(/examples). Every fault is answered by the shared edge (``archive.http``): a
DALI error VOTable for VO clients, an HTML page for browsers.
"""
from __future__ import annotations

from flask import Blueprint, Response

from ...errors import ArchiveFault
from ...formats.votable import error_document
from ...http import vo_errors
from . import examples, jobs, metadata, sync

__all__ = ["bp", "VOTABLE_MIME"]

VOTABLE_MIME = "application/x-votable+xml"


def _dali_error(fault: ArchiveFault) -> Response:
    return Response(error_document(fault.message), status=fault.status,
                    content_type=VOTABLE_MIME)


bp = Blueprint("tap", __name__, url_prefix="/tap")
for module in (sync, metadata, jobs, examples):
    module.routes.add_to(bp)
vo_errors(bp, _dali_error)

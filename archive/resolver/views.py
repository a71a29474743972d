"""The resolver blueprint: ``GET /resolve?name=...`` answers JSON
``{"name", "ra", "dec", "resolver", "resolved_name", "cached"}``, or
``{"error": message, "status": code}`` with 400 (empty, over-long, ambiguous or
malformed), 404 (unknown name) or 503 (Simbad cannot be reached)."""
from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, request

from ..db import get_db
from ..errors import ArchiveFault
from ..http import Routes, vo_errors
from .service import resolve as resolve_name

__all__ = ["bp"]

JSON_MIME = "application/json"
routes = Routes()


def _json(document: dict, status: int = 200) -> Response:
    response = Response(json.dumps(document), status=status, content_type=JSON_MIME)
    response.headers["Cache-Control"] = "no-store" if status >= 500 else "max-age=300"
    return response


def _answer(fault: ArchiveFault) -> Response:
    return _json({"error": fault.message, "status": fault.status}, fault.status)


@routes.route("/resolve")
def resolve():
    """Resolve the ``name`` parameter to a position."""
    db = get_db()
    found = resolve_name(db.engine, db.readonly, request.args.get("name"),
                         current_app.config)
    return _json(found.as_dict())


bp = Blueprint("resolver", __name__)
routes.add_to(bp)
vo_errors(bp, _answer)

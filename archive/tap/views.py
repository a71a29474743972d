"""TAP 1.1 HTTP endpoints: /tap, /tap/sync, /tap/capabilities, /tap/availability, /tap/tables.

Every error a VO client can get from these endpoints is a DALI error VOTable
(QUERY_STATUS=ERROR) with a 4xx/5xx status, never an HTML page.

Table uploads plug in through ``app.extensions["tap_uploads"]``: a callable
``(request: TapRequest, config) -> list | None`` returning the uploaded-table
objects for ``run_query`` (see ``archive.tap.run``). While it is absent, UPLOAD
is refused and the capabilities declare no upload method.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

import sqlalchemy as sa
from flask import Response, current_app, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from ..db import get_db
from ..errors import ArchiveFault, FatalFault, NotFoundFault, UsageFault
from ..params import Params
from .blueprint import bp
from .run import parse_request, run_query
from .vosi import ADQL_FEATURES, DETAILS, find_table, output_formats, table_entry, tableset

__all__ = ["bp", "request_params", "tap_base_url", "SERVER_TOKEN"]

log = logging.getLogger(__name__)

VOTABLE_MIME = "application/x-votable+xml"
XML_MIME = "text/xml"
SERVER_TOKEN = "extras-archive/0.1.0"
_STARTED = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def request_params() -> Params:
    """The DALI parameters of the current request (query string, form, multipart)."""
    form = request.form if request.method == "POST" else None
    files = request.files if request.method == "POST" else None
    return Params(request.args, form, files=files)


def tap_base_url() -> str:
    """The TAP base URL: BASE_URL from the configuration, else from the request host."""
    configured = current_app.config.get("BASE_URL")
    if configured:
        return configured.rstrip("/") + "/tap"
    return url_for("tap.index", _external=True).rstrip("/")


def _has_route(path: str) -> bool:
    return any(rule.rule == path for rule in current_app.url_map.iter_rules())


def _uploads_hook():
    return current_app.extensions.get("tap_uploads")


def _error_response(fault: ArchiveFault) -> Response:
    from ..formats.votable import error_document
    return Response(error_document(fault.message), status=fault.status,
                    content_type=VOTABLE_MIME)


@bp.errorhandler(ArchiveFault)
def _fault(exc: ArchiveFault):
    return _error_response(exc)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    fault = UsageFault(exc.description or exc.name)
    fault.status = exc.code or 400
    return _error_response(fault)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    log.exception("TAP request failed: %s", request.url)
    return _error_response(FatalFault(f"internal error while handling the request: "
                                      f"{type(exc).__name__}: {exc}"))


@bp.after_request
def _server_header(response: Response) -> Response:
    # taplint W_SVR0/W_SVRV: identify the software in the Server header
    response.headers["Server"] = SERVER_TOKEN
    return response


def _xml(template: str, status: int = 200, **context) -> Response:
    return Response(render_template(template, **context), status=status,
                    content_type=XML_MIME)


# -- pages ----------------------------------------------------------------------------

@bp.route("", strict_slashes=False)
def index():
    """A page for people: what the endpoints are, and a small query form."""
    import datamodel
    from ..formats import all_formats
    from datamodel.publish import published_tables
    config = current_app.config
    return render_template(
        "tap/index.html", base=tap_base_url(), formats=all_formats(),
        tables=published_tables(), default_maxrec=config["TAP_DEFAULT_MAXREC"],
        hard_maxrec=config["TAP_HARD_MAXREC"], has_async=_has_route("/tap/async"),
        has_examples=_has_route("/tap/examples"), catalogues=datamodel.TABLES)


# -- sync -------------------------------------------------------------------------------

@bp.route("/sync", methods=["GET", "POST"])
def sync():
    """Run a query and stream its result inline (no redirect)."""
    config = current_app.config
    params = request_params()
    tap_request = parse_request(params, config)
    uploads = None
    hook = _uploads_hook()
    if hook is not None and tap_request.uploads:
        uploads = hook(tap_request, config)
    result = run_query(tap_request, get_db(), config, uploads=uploads)
    fmt = tap_request.format
    headers = {}
    if fmt.extension:
        disposition = "inline" if fmt.key.startswith("votable") or fmt.key == "html" \
            else "attachment"
        headers["Content-Disposition"] = f'{disposition}; filename="result.{fmt.extension}"'
    # a generator: rows are encoded and sent as they come, never held in memory
    return Response(fmt.render(result), status=200,
                    content_type=fmt.content_type(tap_request.format_requested),
                    headers=headers, direct_passthrough=True)


# -- VOSI -------------------------------------------------------------------------------

@bp.route("/capabilities")
def capabilities():
    from ..formats import all_formats
    config = current_app.config
    uploads = _uploads_hook() is not None
    return _xml("tap/capabilities.xml", base=tap_base_url(), features=ADQL_FEATURES,
                formats=output_formats(all_formats()),
                upload_methods=["inline", "http"] if uploads else [],
                retention=int(config["ASYNC_DESTRUCTION_DAYS"]) * 86400,
                execution_duration=int(config["ASYNC_EXECUTION_DURATION"]),
                default_maxrec=int(config["TAP_DEFAULT_MAXREC"]),
                hard_maxrec=int(config["TAP_HARD_MAXREC"]),
                upload_bytes=int(config["UPLOAD_MAX_BYTES"]),
                examples=_has_route("/tap/examples"))


@bp.route("/availability")
def availability():
    """Available if the archive database answers a read-only query."""
    started = time.monotonic()
    try:
        with get_db().readonly.connect() as conn:
            conn.execute(sa.text("SELECT 1")).scalar_one()
        available = True
        note = f"the archive database answered in {1000 * (time.monotonic() - started):.1f} ms"
    except Exception as exc:            # any failure means: not available
        available, note = False, f"the archive database does not answer: {exc}"
    return _xml("tap/availability.xml", available=available, up_since=_STARTED, note=note)


@bp.route("/tables")
def tables():
    """VOSI tables 1.1: every table with its columns (detail=min: tables only)."""
    detail = request_params().get("DETAIL")
    if detail is not None and detail not in DETAILS:
        raise UsageFault(f"DETAIL={detail!r} is not understood; use detail=min or "
                         "detail=max")
    return _xml("tap/tables.xml", schemas=tableset(detail or "max"))


@bp.route("/tables/<path:name>")
def table(name: str):
    """One table's VOSI document, or 404."""
    found = find_table(name)
    if found is None:
        raise NotFoundFault(f"there is no table {name!r}; see {tap_base_url()}/tables "
                            "for the published ones")
    return _xml("tap/table.xml", table=table_entry(found, "max"))


@bp.route("/<path:rest>", methods=["GET", "POST"])
def not_found(rest: str):
    """Unknown TAP resources: a DALI error VOTable rather than an HTML page."""
    raise NotFoundFault(f"there is no TAP resource /tap/{rest}; the service has /sync, "
                        "/capabilities, /availability and /tables")

"""TAP pages and the synchronous endpoint: /tap (for people), /tap/sync, and the
DALI 404 for unknown TAP resources.

Table uploads of sync queries are read here (``archive.tap.uploads.sync_uploads``),
beside the view that runs the query.
"""
from __future__ import annotations

import itertools

from flask import Response, current_app, render_template

import datamodel
from datamodel.publish import published_tables
from ...datalink.descriptor import add_descriptors
from ...db import get_db
from ...errors import NotFoundFault
from ...formats import all_formats
from ...http import Routes, base_url, query_form_link, request_params
from ...web.sources import page_links
from ..examples import EXAMPLES
from ..run import parse_request, run_query
from ..uploads import sync_uploads

__all__ = ["routes", "tap_base_url"]

routes = Routes()


def tap_base_url() -> str:
    """The TAP base URL: BASE_URL from the configuration, else from the request host."""
    return base_url("/tap")


#: The query the form shows when it is opened without one.
DEFAULT_QUERY = ("SELECT TOP 10 extras_id, ra, dec, ub_lc500_co_pval FROM extras.aperiodic "
                 "ORDER BY ub_lc500_co_pval")


@routes.route("", strict_slashes=False)
def index():
    """A page for people: what the endpoints are, and the ADQL form, filled from
    QUERY, MAXREC and RESPONSEFORMAT of the URL (the error page's way back, an
    example's "edit" link), with the examples one click away."""
    config = current_app.config
    params = request_params()
    formats = all_formats()
    fmt = str(params.first("RESPONSEFORMAT", "FORMAT", default="html") or "html").lower()
    return render_template(
        "tap/index.html", base=tap_base_url(), formats=formats,
        tables=published_tables(), default_maxrec=config["TAP_DEFAULT_MAXREC"],
        hard_maxrec=config["TAP_HARD_MAXREC"], catalogues=datamodel.TABLES,
        query=params.get("QUERY") or DEFAULT_QUERY,
        maxrec=params.get("MAXREC") or config["TAP_DEFAULT_MAXREC"],
        format=fmt if fmt in {f.key for f in formats} else "html",
        examples=EXAMPLES)


@routes.route("/sync", methods=["GET", "POST"])
def sync():
    """Run a query and stream its result inline (no redirect)."""
    config = current_app.config
    tap_request = parse_request(request_params(), config)
    uploads = sync_uploads(tap_request, config) if tap_request.uploads else None
    result = run_query(tap_request, get_db(), config, uploads=uploads)
    add_descriptors(result, base_url("/datalink/links"))     # DataLink, on id columns
    fmt = tap_request.format
    headers = {}
    if fmt.extension:
        disposition = "inline" if fmt.key.startswith("votable") or fmt.key == "html" \
            else "attachment"
        headers["Content-Disposition"] = f'{disposition}; filename="result.{fmt.extension}"'
    options = {}
    if fmt.key == "html":               # result rows lead to their detection/source pages
        options["links"] = page_links(result.columns, base_url())
        form = query_form_link()
        options["nav"] = [("Home", base_url("/")), ("ADQL form", base_url("/tap"))] + \
            ([("Edit this query in the form", form)] if form else [])
    # a generator: rows are encoded and sent as they come, never held in memory; its
    # first pieces (the header and the first chunk of rows, already fetched) are
    # encoded before the status is sent, so that a value the format cannot carry
    # (an integer overflow) is a 400, not a 200 cut short (CSV and TSV have no
    # in-band error marker)
    return Response(_primed(fmt.render(result, **options), 2), status=200,
                    content_type=fmt.content_type(tap_request.format_requested),
                    headers=headers, direct_passthrough=True)


def _primed(pieces, n: int):
    """``pieces`` with its first ``n`` items computed now (errors raised here)."""
    pieces = iter(pieces)
    first = list(itertools.islice(pieces, n))
    return itertools.chain(first, pieces)


@routes.route("/<path:rest>", methods=["GET", "POST"])
def not_found(rest: str):
    """Unknown TAP resources: a DALI error VOTable rather than the site's 404 page."""
    raise NotFoundFault(f"there is no TAP resource /tap/{rest}; the service has /sync, "
                        "/async, /capabilities, /availability, /tables and /examples")

"""The products blueprint: ``/products/<path>`` (one product file) and
``/products/bulk`` (a zip or tar of a selection).

One product: the file registered under exactly that path (``products.path``),
found on disk by :mod:`.store`, sent by Werkzeug's ``send_file`` with its MIME type,
Content-Length, ``ETag`` (the SHA-256 digest), ``Last-Modified``, conditional GET
(304) and single byte ranges (206, 416); a request for several ranges gets the whole
file (200). Bulk: the selection is checked and counted first (:mod:`.selection`),
then the archive streams (:mod:`.bulk`).

Errors: browsers get the site's error page; every other client (curl, wget,
scripts) gets a short ``text/plain`` message with the status, which is what a
download tool shows or saves.
"""
from __future__ import annotations

from flask import Blueprint, Response, current_app, g, request, send_file
from werkzeug.exceptions import RequestEntityTooLarge, RequestedRangeNotSatisfiable
from werkzeug.http import parse_range_header

from ..db import get_db
from ..errors import ArchiveFault, UsageFault
from ..http import request_params, vo_errors
from .bulk import FORMATS, parse_format, stream_archive
from .selection import MAX_VALUES, TooLargeFault, parse_selection, select_products
from .store import find_product, locate

__all__ = ["bp"]

bp = Blueprint("products", __name__, url_prefix="/products")
#: Form data a bulk request may POST (10,000 paths of ~50 characters take ~600 kB)
_FORM_BYTES = 4 * 2 ** 20


class RangeFault(UsageFault):
    status = 416


def _text_error(fault: ArchiveFault) -> Response:
    return Response(f"{fault.status} {fault.dali_text}\n", status=fault.status,
                    content_type="text/plain; charset=utf-8")


vo_errors(bp, _text_error)


@bp.after_request
def _unsatisfiable_range(response: Response) -> Response:
    """A 416 names the file's length (RFC 9110 15.5.17), whoever rendered it."""
    size = g.pop("product_size", None)
    if response.status_code == 416 and size is not None:
        response.headers["Content-Range"] = f"bytes */{size}"
    return response


def _whole_file_for_several_ranges() -> None:
    """Answer a request for several ranges, or in a unit other than bytes, with the
    whole file (RFC 9110 14.2 lets a server ignore Range; Werkzeug would answer 416)."""
    header = request.headers.get("Range")
    if header is None:
        return
    parsed = parse_range_header(header)
    unit = header.split("=", 1)[0].strip().lower()
    if unit != "bytes" or (parsed is not None and len(parsed.ranges) > 1):
        request.environ.pop("HTTP_RANGE", None)


@bp.route("/<path:path>", merge_slashes=False)
def product(path: str):
    """The product file registered under ``path``; GET and HEAD."""
    config = current_app.config
    item = find_product(get_db().readonly, path)
    where = locate(config["PRODUCTS_DIR"], item)
    g.product_size = where.size
    _whole_file_for_several_ranges()
    try:
        return send_file(where.real_path, mimetype=item.mime, download_name=item.filename,
                         conditional=True, etag=item.sha256, last_modified=where.mtime,
                         max_age=int(config["PRODUCTS_MAX_AGE"]))
    except RequestedRangeNotSatisfiable:
        raise RangeFault(f"the requested range ({request.headers.get('Range')}) is not "
                         f"satisfiable: {item.path!r} has {where.size} bytes (byte "
                         f"positions 0-{where.size - 1})") from None


@bp.route("/bulk", methods=["GET", "POST"])
def bulk():
    """A zip (default) or tar of the selected products, streamed."""
    # room for MAX_VALUES long paths in a POSTed form (Flask's defaults: 500 kB, 1,000 fields)
    request.max_form_memory_size = _FORM_BYTES
    request.max_form_parts = MAX_VALUES + 100
    try:
        params = request_params()
    except RequestEntityTooLarge:
        raise TooLargeFault(f"the request is too large: a bulk download request takes at "
                            f"most {MAX_VALUES:,} values and {_FORM_BYTES // 2 ** 20} MiB "
                            "of form data; select whole observations (obs_id) or sources "
                            "(srcid), or split the list") from None
    fmt = parse_format(params.get("format"))
    selection = parse_selection(params)
    config = current_app.config
    chosen = select_products(get_db().readonly, selection,
                             max_files=int(config["BULK_DOWNLOAD_MAX_FILES"]),
                             max_bytes=int(config["BULK_DOWNLOAD_MAX_BYTES"]))
    stem = selection.stem()
    extension, mime = FORMATS[fmt]
    body = stream_archive(chosen, config["PRODUCTS_DIR"], stem, fmt)
    response = Response(body, mimetype=mime)
    response.headers["Content-Disposition"] = f'attachment; filename="{stem}.{extension}"'
    response.headers["X-Archive-Files"] = str(len(chosen))
    response.headers["X-Archive-Bytes"] = str(sum(p.size for p in chosen))
    response.cache_control.no_store = True
    return response

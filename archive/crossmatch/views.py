"""The cross-match blueprint: ``GET /crossmatch`` (the form), ``POST /crossmatch``
(multipart: ``file`` or ``text``, ``catalogue``, ``radius``, ``unit``, ``format``).

Any bad input is shown in the form with HTTP 400; nothing is written. The result is
an HTML page in the site's layout (``format=html``, the default) or a download in a
format of the registry (``format=csv``, ``votable``, ``fits``, ``json``...)."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template, request

from ..db import get_db
from ..errors import UsageFault
from ..formats import all_formats
from ..http import Routes, base_url
from ..web.sources import PAGES
from . import service

__all__ = ["bp"]

routes = Routes()


def _form(status: int = 200, error: str | None = None, **values) -> Response:
    config = current_app.config
    fields = {"catalogue": "aperiodic", "radius": "10", "unit": "arcsec", "format": "html",
              "text": ""}
    fields.update({k: v for k, v in values.items() if v is not None})
    body = render_template(
        "crossmatch/form.html", error=error, fields=fields, catalogues=service.catalogues(),
        units=list(service.UNITS), formats=[f for f in all_formats() if f.key != "html"],
        max_radius=config["CROSSMATCH_MAX_RADIUS_ARCSEC"],
        max_bytes=config["UPLOAD_MAX_BYTES"], max_lines=config["CROSSMATCH_MAX_LINES"])
    return Response(body, status=status, content_type="text/html; charset=utf-8")


@routes.route("/crossmatch", methods=["GET"])
def form():
    """The form (fields may be pre-filled from the query string)."""
    return _form(**{k: request.args.get(k) for k in ("catalogue", "radius", "unit", "format")})


def _links(match) -> list:
    """Per result column: the page URL prefix its values lead to, or None."""
    root = base_url()
    links = [None] * match.input_columns
    links += [root + PAGES[name] if name in PAGES else None
              for name in match.catalogue_names]
    return links + [None]


@routes.route("/crossmatch", methods=["POST"])
def run():
    """Run the cross-match of the uploaded file or the pasted list."""
    config = current_app.config
    form = request.form
    keep = {k: form.get(k) for k in ("catalogue", "radius", "unit", "format", "text")}
    db = get_db()
    try:
        checked = service.parse_request(form, config)
        upload = request.files.get("file")
        text = form.get("text") or ""
        unresolved = []
        if upload is not None and upload.filename:
            if text.strip():
                raise UsageFault("give either a file or a pasted list, not both")
            table = service.input_table(upload.stream, config)
        elif text.strip():
            table, unresolved = service.pasted_table(text, db, config)
        else:
            raise UsageFault("upload a file (CSV, VOTable or FITS) or paste a list of "
                             "positions or names, one per line")
        html = checked.format is None
        maxrec = int(config["CROSSMATCH_HTML_ROWS"] if html else config["TAP_HARD_MAXREC"])
        match = service.run_crossmatch(table, checked, db, config, maxrec)
    except UsageFault as fault:
        return _form(400, fault.message, **keep)
    for u in unresolved:
        match.result.infos.append(("UNRESOLVED", f"line {u.line}: {u.text}", u.message))
    if not html:
        fmt = checked.format
        name = f"crossmatch-{checked.catalogue.name}.{fmt.extension}"
        return Response(fmt.render(match.result), content_type=fmt.mime,
                        headers={"Content-Disposition": f'attachment; filename="{name}"'},
                        direct_passthrough=True)
    rows = [row for chunk in match.result.chunks() for row in chunk]
    body = render_template(
        "crossmatch/result.html", match=match, rows=rows, links=_links(match),
        columns=match.result.columns, request_=checked, unresolved=unresolved,
        matched=len({r[match.input_columns - 1] for r in rows
                     if r[-1] is not None}),
        inputs=table.nrows, overflow=match.result.overflow)
    return Response(body, content_type="text/html; charset=utf-8")


bp = Blueprint("crossmatch", __name__)
routes.add_to(bp)

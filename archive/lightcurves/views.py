"""The light-curve blueprint, ``/lightcurves``: JSON of a product, its interactive
page, all light curves of a detection on one time axis, the long-term light curve of
a source, and the plotting library (BokehJS, from the bokeh wheel: no CDN).

Faults are answered by the shared edge: the site's error page for browsers and for
the pages; a JSON ``{"error": ..., "status": ...}`` for scripts calling the JSON
endpoints (the pages' own JavaScript included).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from flask import Blueprint, Response, current_app, render_template, request, \
    send_from_directory, url_for

from ..db import get_db
from ..errors import ArchiveFault, NotFoundFault
from ..http import Routes, html_error, vo_errors
from . import encode, lookup

__all__ = ["bp"]

JSON_MIME = "application/json"
#: The BokehJS files the pages load (the rest of the wheel's static tree is not served).
BOKEH_FILES = ("bokeh.min.js", "bokeh-api.min.js")
BOKEH_VERSION = importlib.metadata.version("bokeh")
_JSON_ENDPOINTS = {"lightcurves.data", "lightcurves.longterm_json"}

routes = Routes()


def _bokeh_dir() -> Path:
    spec = importlib.util.find_spec("bokeh")
    return Path(spec.submodule_search_locations[0]) / "server" / "static" / "js"


def _json(document: dict, status: int = 200) -> Response:
    return Response(encode.dumps(document), status=status, content_type=JSON_MIME)


def _answer(fault: ArchiveFault) -> Response:
    if request.endpoint in _JSON_ENDPOINTS:
        return _json({"error": fault.message, "status": fault.status}, fault.status)
    return html_error(fault)


def _links(product: lookup.Product) -> dict[str, str]:
    return {
        "fits": f"/products/{product.path}",
        "data": url_for("lightcurves.data", path=product.path),
        "view": url_for("lightcurves.view", path=product.path),
        "detection_page": f"/detections/{product.extras_id}",
        "detection_curves": url_for("lightcurves.detection", obs_id=product.obs_id,
                                    src_num=product.src_num),
    }


@routes.route("/data/<path:path>")
def data(path: str):
    """JSON of one light-curve product, with an ETag from its checksum."""
    db, config = get_db(), current_app.config
    product = lookup.find_product(db.readonly, path)
    lookup.check_lightcurve(product)
    tag = encode.etag(product)
    headers = {"ETag": f'"{tag}"',
               "Cache-Control": f"public, max-age={int(config['LIGHTCURVES_MAX_AGE'])}"}
    if tag in request.if_none_match:
        lookup.product_file(config["PRODUCTS_DIR"], product)    # 410 if it has gone
        return Response(status=304, headers=headers)
    product, series = lookup.load_series(db.readonly, config["PRODUCTS_DIR"], path)
    response = _json(encode.series_document(product, series, _links(product)))
    response.headers.update(headers)
    return response


@routes.route("/view/<path:path>")
def view(path: str):
    """The interactive page of one light curve (the file is read once here, so that a
    missing or unreadable file is said at once, in the page)."""
    db = get_db()
    product, series = lookup.load_series(db.readonly, current_app.config["PRODUCTS_DIR"],
                                         path)
    return render_template("lightcurves/view.html", product=product, series=series,
                           links=_links(product), cameras=lookup.CAMERAS,
                           bokeh_version=BOKEH_VERSION)


@routes.route("/detection/<obs_id>/<int:src_num>")
def detection(obs_id: str, src_num: int):
    """pn, MOS1 and MOS2 light curves (bands, background, binnings) of one source in
    one observation, on one time axis."""
    found = lookup.detection_products(get_db().readonly, obs_id, src_num)
    curves = [{**{k: p.row[k] for k in ("path", "product_type", "camera", "exp_id",
                                        "band", "binning", "extras_id", "t_min", "t_max")},
               "data": url_for("lightcurves.data", path=p.path),
               "view": url_for("lightcurves.view", path=p.path)}
              for p in found if p.category == "lightcurve"]
    if not curves:
        raise NotFoundFault(f"no light curves of source {src_num} in observation "
                            f"{obs_id} are in this archive")
    extras_ids = sorted({(c["camera"], c["extras_id"]) for c in curves})
    return render_template("lightcurves/detection.html", obs_id=obs_id, src_num=src_num,
                           curves=curves, extras_ids=extras_ids, cameras=lookup.CAMERAS,
                           bokeh_version=BOKEH_VERSION)


@routes.route("/longterm/<int:srcid>")
def longterm(srcid: int):
    points = lookup.longterm_points(get_db().readonly, srcid)
    return render_template("lightcurves/longterm.html", source=points["source"],
                           count=len(points["obs_id"]), srcid=srcid,
                           bokeh_version=BOKEH_VERSION)


@routes.route("/longterm/<int:srcid>.json")
def longterm_json(srcid: int):
    points = lookup.longterm_points(get_db().readonly, srcid)
    links = {"page": url_for("lightcurves.longterm", srcid=srcid),
             "source_page": f"/sources/{srcid}"}
    return _json(encode.longterm_document(points, links))


@routes.route("/static/<path:filename>")
def static(filename: str):
    """BokehJS from the installed bokeh wheel (only the files the pages use)."""
    if filename not in BOKEH_FILES:
        raise NotFoundFault(f"/lightcurves/static/ serves {', '.join(BOKEH_FILES)} only")
    return send_from_directory(_bokeh_dir(), filename, max_age=7 * 86400)


bp = Blueprint("lightcurves", __name__, url_prefix="/lightcurves")
routes.add_to(bp)
vo_errors(bp, _answer)

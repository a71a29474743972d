"""The search blueprint: ``GET /search/<catalogue>``, the search form of one catalogue
and its results (an HTML page of the sorted result, or the whole result downloaded
in any format of the registry). Without parameters it shows the form; a request with
bad parameters shows the form again with a message at each bad field (HTTP 400)."""
from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, render_template, request, url_for

import datamodel
from ..db import get_db
from ..errors import NotFoundFault
from ..formats import all_formats, get_format
from ..http import base_url
from ..resolver.service import resolve as resolve_name
from ..web.sources import page_links
from .params import DISTANCE, SHAPES, UNITS, constraint_fields, parse
from .apicode import adql, curl_command, python_code
from .cache import Settings, cached_page
from .combined import FIRST_ROWS, combined, parse_combined
from .query import page, run

__all__ = ["bp"]

bp = Blueprint("search", __name__)


def _table(catalogue: str) -> datamodel.Table:
    try:
        return datamodel.TABLES[catalogue.lower()]
    except KeyError:
        raise NotFoundFault(f"there is no catalogue {catalogue!r} to search; the "
                            f"catalogues are {', '.join(datamodel.TABLES)}") from None


def _choices(table) -> dict[str, tuple[str, ...]]:
    """The choice list of each enumerated column (``Column.choices``)."""
    return {c.name: c.choices for c in table.columns if c.choices}


def _link(**changes) -> str:
    """This page's URL with some parameters changed (None removes one)."""
    items = [(k, v) for k, v in request.args.items(multi=True) if k not in changes]
    for key, value in changes.items():
        if value is not None:
            items.append((key, value))
    return request.base_url + ("?" + urlencode(items) if items else "")


def _form(table, search=None, status=200):
    body = render_template(
        "search/form.html", table=table, search=search,
        values=search.values if search else {}, errors=search.errors if search else {},
        fields={c.name: constraint_fields(c) for c in table.columns}, enums=_choices(table),
        shapes=SHAPES, units=UNITS,
        formats=[f for f in all_formats() if f.key != "html"])
    return Response(body, status=status, content_type="text/html; charset=utf-8")


def _combined_form(search=None, status=200, result=None):
    body = render_template(
        "search/combined.html", search=search, result=result, units=UNITS,
        values=search.values if search else {}, errors=search.errors if search else {},
        catalogues=[t for t in datamodel.TABLES.values()], first=FIRST_ROWS,
        links=page_links, full=lambda name: url_for(
            "search.search", catalogue=name,
            **{k: v for k, v in search.values.items() if v is not None}))
    return Response(body, status=status, content_type="text/html; charset=utf-8")


@bp.route("/search")
def combined_search():
    """The combined search: one cone in every positional catalogue, and the 3XMM
    sources found in it; without parameters its form and the per-catalogue forms."""
    if not request.args:
        return _combined_form()
    db = get_db()
    config = current_app.config
    found = parse_combined(request.args, config,
                           lambda text: resolve_name(db.engine, db.readonly, text, config),
                           get_format)
    if found.errors:
        return _combined_form(found, 400)
    result = combined(db.readonly, found, timeout=float(config["QUERY_TIMEOUT"]))
    return _combined_form(found, 200, result)


@bp.route("/search/<catalogue>")
def search(catalogue: str):
    """The form of one catalogue, or the result of the search its parameters give."""
    table = _table(catalogue)
    if not request.args:
        return _form(table)
    db = get_db()
    config = current_app.config
    found = parse(table, request.args, config,
                  lambda text: resolve_name(db.engine, db.readonly, text, config),
                  get_format)
    if found.errors:
        return _form(table, found, 400)
    timeout = float(config["QUERY_TIMEOUT"])
    if found.format != "html":
        fmt = get_format(found.format)
        result = run(db.readonly, found, timeout=timeout)
        response = Response(fmt.render(result), content_type=fmt.content_type())
        response.headers["Content-Disposition"] = (
            f'attachment; filename="extras-{table.name}-search.{fmt.extension}"')
        return response
    result, total = cached_page(db.engine, db.readonly, found, timeout=timeout,
                                settings=Settings.of(config))
    if result is None:
        result = page(db.readonly, found, timeout=timeout, total=total)
    columns = result.columns
    table_names = {c.name for c in table.columns}
    return render_template(
        "search/results.html", table=table, search=found, page=result,
        links=page_links(columns, request.script_root), link=_link, distance=DISTANCE,
        fields={c.name: constraint_fields(c) for c in table.columns},
        filtered={name for c in columns if c.name in table_names
                  for name, _kind in constraint_fields(table.column(c.name))},
        enums=_choices(table),
        formats=[f for f in all_formats() if f.key != "html"],
        share=_link(), form_url=_link(format=None, page=None),
        api={"adql": adql(found), "python": python_code(found, base_url()),
             "curl": curl_command(_link(format="csv", page=None), table)})

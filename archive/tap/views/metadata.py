"""VOSI endpoints of TAP: /tap/capabilities, /tap/availability, /tap/tables[/name]."""
from __future__ import annotations

from flask import current_app

from ...db import get_db
from ...errors import NotFoundFault, UsageFault
from ...formats import all_formats
from ...http import Routes, availability_response, base_url, request_params, xml_response
from ..vosi import (ADQL_FEATURES, DATA_MODELS, DETAILS, find_table, output_formats,
                    table_entry, tableset)
from .sync import tap_base_url

__all__ = ["routes"]

routes = Routes()


@routes.route("/capabilities")
def capabilities():
    config = current_app.config
    return xml_response(
        "tap/capabilities.xml", base=tap_base_url(), features=ADQL_FEATURES,
        data_models=DATA_MODELS,
        formats=output_formats(all_formats()), upload_methods=["inline", "http"],
        retention=int(config["ASYNC_DESTRUCTION_DAYS"]) * 86400,
        execution_duration=int(config["ASYNC_EXECUTION_DURATION"]),
        default_maxrec=int(config["TAP_DEFAULT_MAXREC"]),
        hard_maxrec=int(config["TAP_HARD_MAXREC"]),
        upload_bytes=int(config["UPLOAD_MAX_BYTES"]),
        datalink=base_url("/datalink/links"))


@routes.route("/availability")
def availability():
    return availability_response(get_db())


@routes.route("/tables")
def tables():
    """VOSI tables 1.1: every table with its columns (detail=min: tables only)."""
    detail = request_params().get("DETAIL")
    if detail is not None and detail not in DETAILS:
        raise UsageFault(f"DETAIL={detail!r} is not understood; use detail=min or "
                         "detail=max")
    return xml_response("tap/tables.xml", schemas=tableset(detail or "max"))


@routes.route("/tables/<path:name>")
def table(name: str):
    """One table's VOSI document, or 404."""
    found = find_table(name)
    if found is None:
        raise NotFoundFault(f"there is no table {name!r}; see {tap_base_url()}/tables "
                            "for the published ones")
    return xml_response("tap/table.xml", table=table_entry(found, "max"))

"""/tap/examples: the DALI examples document (XHTML with RDFa)."""
from __future__ import annotations

from flask import Response, render_template

from ...http import Routes, base_url
from ..examples import EXAMPLES
from .sync import tap_base_url

__all__ = ["routes"]

routes = Routes()


@routes.route("/examples", methods=["GET"])
def examples():
    """Curated example queries, readable by people, TOPCAT, pyvo and taplint."""
    body = render_template("tap/examples.html", examples=EXAMPLES, base=tap_base_url(),
                           home=base_url("/"))
    return Response(body, content_type="application/xhtml+xml; charset=utf-8")

"""/tap/examples: the DALI examples document (XHTML with RDFa)."""
from __future__ import annotations

from flask import Response, render_template

from .blueprint import bp
from .examples import EXAMPLES
from .views import tap_base_url

__all__ = ["bp"]


@bp.route("/examples", methods=["GET"])
def examples():
    """Curated example queries, readable by people, TOPCAT, pyvo and taplint."""
    body = render_template("tap/examples.html", examples=EXAMPLES, base=tap_base_url())
    return Response(body, content_type="application/xhtml+xml; charset=utf-8")

"""The one place where blueprints are registered: one blueprint per protocol."""
from __future__ import annotations

__all__ = ["register_blueprints"]


def register_blueprints(app) -> None:
    """The pages for people, TAP (/tap), Simple Cone Search (/scs), DataLink (/datalink),
    products (/products), light curves (/lightcurves), catalogue pages (/catalogues) and
    the name resolver (/resolve) and the
    web cross-match (/crossmatch); /health and /metrics for operations."""
    from .catalogues.views import bp as catalogues_bp
    from .conesearch.views import bp as conesearch_bp
    from .crossmatch.views import bp as crossmatch_bp
    from .datalink.views import bp as datalink_bp
    from .lightcurves.views import bp as lightcurves_bp
    from .ops.views import bp as ops_bp
    from .products.views import bp as products_bp
    from .resolver.views import bp as resolver_bp
    from .search.views import bp as search_bp
    from .tap.views import bp as tap_bp
    from .web.views import bp as web_bp
    for bp in (web_bp, tap_bp, conesearch_bp, datalink_bp, products_bp, lightcurves_bp,
               catalogues_bp, resolver_bp, crossmatch_bp, search_bp, ops_bp):
        app.register_blueprint(bp)

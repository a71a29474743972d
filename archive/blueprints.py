"""The one place where blueprints are registered: one blueprint per protocol."""
from __future__ import annotations


def register_blueprints(app) -> None:
    from .web.views import bp as web_bp
    app.register_blueprint(web_bp)
    # TAP: every TAP view module attaches its routes to the one TAP blueprint;
    # import them all BEFORE registering it (routes cannot be added afterwards)
    from .tap import views as _tap_views  # noqa: F401  (sync, VOSI)
    from .tap import uws_views as _tap_uws_views  # noqa: F401  (async, UWS)
    from .tap import examples_views as _tap_examples  # noqa: F401  (/tap/examples)
    from .tap.blueprint import bp as tap_bp
    app.register_blueprint(tap_bp)
    # Simple Cone Search: /scs/<catalogue>, /scs/all
    from .conesearch.views import bp as conesearch_bp
    app.register_blueprint(conesearch_bp)

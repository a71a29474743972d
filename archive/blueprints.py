"""The one place where blueprints are registered: one blueprint per protocol."""
from __future__ import annotations


def register_blueprints(app) -> None:
    from .web.views import bp as web_bp
    app.register_blueprint(web_bp)

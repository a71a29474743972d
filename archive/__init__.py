"""The extras-archive Flask application."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from flask import Flask

from .config import load_config

__all__ = ["create_app"]

ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application: configuration, database, blueprints."""
    app = Flask(__name__, template_folder=str(ROOT / "templates"),
                static_folder=str(ROOT / "archive" / "static"))
    app.config.update(load_config(test_config))
    from . import db, http
    db.init_app(app)
    http.install(app)
    from .blueprints import register_blueprints
    register_blueprints(app)
    from .body_timeout import BodyTimeout
    app.wsgi_app = BodyTimeout(app.wsgi_app, float(app.config["REQUEST_BODY_IDLE_TIMEOUT"]))
    return app

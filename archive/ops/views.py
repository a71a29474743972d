"""/health (for load balancers) and /metrics (for Prometheus)."""
from __future__ import annotations

import json

from flask import Blueprint, Response

from ..db import get_db
from . import health, metrics

__all__ = ["bp"]

bp = Blueprint("ops", __name__)


@bp.record_once
def _follow_pools(state) -> None:
    metrics.instrument_pools(get_db(state.app))


@bp.route("/health")
def health_check():
    """200 with a JSON report when the database answers, 503 otherwise; never cached."""
    healthy, doc = health.check(get_db())
    return Response(json.dumps(doc), status=200 if healthy else 503,
                    content_type="application/json",
                    headers={"Cache-Control": "no-store"})


@bp.route("/metrics")
def prometheus_metrics():
    """Every gunicorn worker's metrics, in Prometheus' text format."""
    return Response(metrics.exposition(get_db()), content_type=metrics.CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})

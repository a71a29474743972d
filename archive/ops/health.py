"""The health check load balancers poll: does the database answer, how fast.

Cheap on purpose (one ``SELECT 1`` on a pooled connection), so that HAProxy or
nginx can poll it every second from every balancer.
"""
from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

__all__ = ["check"]


def _probe(engine) -> dict[str, Any]:
    started = time.monotonic()
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).scalar_one()
    except Exception as exc:            # any failure means: this server cannot serve
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    return {"ok": True, "ms": round(1000 * (time.monotonic() - started), 2)}


def check(db) -> tuple[bool, dict[str, Any]]:
    """(healthy, the JSON document): healthy when the primary database answers.

    Read replicas (``Database.replica_status``: one dict per replica, state ok, down
    or lagging) are reported too but do not make the server unhealthy: with none
    usable the primary answers the queries.
    """
    database = _probe(db.engine)
    doc: dict[str, Any] = {"status": "ok" if database["ok"] else "unavailable",
                           "database": database}
    try:
        doc["replicas"] = db.replica_status()
    except Exception as exc:            # a report, never a reason to fail the check
        doc["replicas"] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    return database["ok"], doc

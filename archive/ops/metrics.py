"""Prometheus metrics through prometheus-client.

* ``archive_http_requests_total{route,method,status}`` and
  ``archive_http_request_duration_seconds{route}`` (a histogram): every request,
  labelled by its URL rule (``/tap/async/<job_id>``), never the raw path, so the
  number of series stays bounded; requests no rule matched are ``route="unmatched"``.
* ``archive_db_connections_in_use{engine}`` and ``archive_db_pool_size{engine}``:
  pooled connections checked out, and the pools' sizes (``readwrite``: jobs, caches;
  ``readonly``: user queries on the primary, ``replicaN``), kept up to date by SQLAlchemy pool events.
* ``archive_uws_jobs{phase}``: async jobs by phase, counted in the database when
  Prometheus scrapes (the job table is shared by every server and worker, so no
  process could count them alone).

Under gunicorn every worker process has its own counters; with the environment
variable ``PROMETHEUS_MULTIPROC_DIR`` (set by ``archive/gunicorn_conf.py``) they write
them to files there and a scrape of any worker adds up every worker's files
(prometheus-client's multiprocess mode). Without it (one process, tests) the
process's own registry is read.
"""
from __future__ import annotations

import os
import weakref

import sqlalchemy as sa
from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter,
                               Gauge, Histogram, generate_latest, multiprocess)
from prometheus_client.core import GaugeMetricFamily

from ..db import uws_jobs

__all__ = ["CONTENT_TYPE_LATEST", "observe_request", "instrument_pools", "exposition"]

REQUESTS = Counter("archive_http_requests", "HTTP requests answered",
                   ["route", "method", "status"])
LATENCY = Histogram("archive_http_request_duration_seconds",
                    "Time from a request's arrival to the last byte of its answer",
                    ["route"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                                        5.0, 10.0, 30.0, 60.0, float("inf")))
IN_USE = Gauge("archive_db_connections_in_use", "Pooled database connections checked out",
               ["engine"], multiprocess_mode="livesum")
POOL_SIZE = Gauge("archive_db_pool_size", "Connections the pools keep (not counting overflow)",
                  ["engine"], multiprocess_mode="livesum")


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    REQUESTS.labels(route, method, str(status)).inc()
    LATENCY.labels(route).observe(seconds)


_FOLLOWED: "weakref.WeakSet" = weakref.WeakSet()


def instrument_pools(db) -> None:
    """Follow the pools of ``db``'s engines: read-write, read-only on the primary, and
    one per read replica (``replica1`` ...)."""
    replicas = db.replicas.replicas if db.replicas else ()
    engines = [("readwrite", db.engine), ("readonly", db.readonly_primary),
               *((f"replica{i}", r.engine) for i, r in enumerate(replicas, 1))]
    for name, engine in engines:
        if engine in _FOLLOWED:
            continue
        _FOLLOWED.add(engine)
        gauge = IN_USE.labels(name)
        # QueuePool.size() is a method, SingletonThreadPool.size (SQLite read-only
        # engine: one connection per thread, kept up to that many) a number
        size = getattr(engine.pool, "size", 0)
        POOL_SIZE.labels(name).inc(size() if callable(size) else int(size or 0))
        sa.event.listen(engine, "checkout", lambda *_, g=gauge: g.inc())
        sa.event.listen(engine, "checkin", lambda *_, g=gauge: g.dec())


class _JobsByPhase:
    """A collector that counts the jobs by phase in the database at scrape time."""

    def __init__(self, db):
        self.db = db

    def collect(self):
        family = GaugeMetricFamily("archive_uws_jobs", "Async (UWS) jobs by phase",
                                   labels=["phase"])
        stmt = sa.select(uws_jobs.c.phase, sa.func.count()).group_by(uws_jobs.c.phase)
        with self.db.engine.connect() as conn:
            counts = dict(conn.execute(stmt).all())
        for phase in ("PENDING", "QUEUED", "EXECUTING", "COMPLETED", "ERROR", "ABORTED"):
            family.add_metric([phase], counts.get(phase, 0))
        yield family


def exposition(db) -> bytes:
    """The metrics in Prometheus' text format: every gunicorn worker's (multiprocess
    mode) or this process's, and the jobs by phase."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):     # prometheus-client's own variable
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_Process())
    registry.register(_JobsByPhase(db))
    return generate_latest(registry)


class _Process:
    """This process's default registry, as a collector of a scrape's registry."""

    def collect(self):
        return REGISTRY.collect()

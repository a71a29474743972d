"""gunicorn settings that agree with the archive's own time limits.

``extras-archive serve`` runs ``gunicorn -c python:archive.gunicorn_conf wsgi:app``,
and docs/deploy.md documents the same line; options given on gunicorn's command line
(``--workers``, ``--bind`` ...) override the values here.

Why a gthread worker, whatever ``--threads`` says: gunicorn's master kills a worker
whose heartbeat is older than ``timeout``. The ``sync`` worker beats only between
requests, so a request longer than ``timeout`` -- a synchronous query, a UWS WAIT,
a large result or product streamed to a slow client -- is cut off mid-answer
(gunicorn issues #1801, #1974). The ``gthread`` worker beats from its main loop
while threads serve the requests, so the timeout only catches a worker that hangs,
and the archive's own limits decide how long a request may take:

* ``QUERY_TIMEOUT``: the database work of a synchronous query (the stream to the
  client is not limited: a slow reader gets all the rows);
* ``ASYNC_WAIT_CAP``: the longest blocking UWS WAIT;
* ``ASYNC_EXECUTION_DURATION``: an asynchronous job (run by a worker thread, not
  in a request).

``timeout`` is derived from them (:func:`worker_timeout`): longer than any request
the archive lets run, so that even a worker stalled inside one of them (a long C
call holding the GIL) is not killed before the archive's own limit stops the work.
``graceful_timeout`` is the same: on SIGTERM gunicorn stops accepting connections
and lets each worker finish the requests it serves (a running sync query is answered
in full).

Prometheus multiprocess mode (``archive.ops.metrics``): every worker process writes
its metrics to files in ``PROMETHEUS_MULTIPROC_DIR`` and a scrape of any worker adds
them up. The variable is set here, before any worker forks and before
prometheus-client is imported (it chooses its storage at import); when it is not set
already, a fresh temporary directory is made and removed on exit. The master empties
it at start (stale files of an earlier run would count again) and hands back the
files of a worker that exits (``child_exit``).
"""
from __future__ import annotations

import glob
import os
import shutil
import tempfile
import time

from archive.config import load_config

__all__ = ["worker_timeout", "WORKER_TIMEOUT_MARGIN"]

#: Seconds added to the longest request limit to give gunicorn's worker timeout.
WORKER_TIMEOUT_MARGIN = 30


def worker_timeout(config: dict) -> int:
    """gunicorn's worker timeout for ``config``: the longest time the archive lets a
    request run (QUERY_TIMEOUT, ASYNC_WAIT_CAP) plus a margin, in whole seconds."""
    longest = max(float(config["QUERY_TIMEOUT"]), float(config["ASYNC_WAIT_CAP"]))
    return int(longest + 0.999) + WORKER_TIMEOUT_MARGIN


_config = load_config()

_MADE_DIR = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _MADE_DIR = tempfile.mkdtemp(prefix="extras-archive-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _MADE_DIR

worker_class = "gthread"
threads = 4
workers = 2 * (os.cpu_count() or 1)
timeout = worker_timeout(_config)
# a restart lets a sync query or a WAIT that is running finish
graceful_timeout = timeout
_started = float(os.environ.get("EXTRAS_ARCHIVE_SERVE_STARTED") or time.time())


def on_starting(server):
    """Refuse the sync worker (it would cut long requests at ``timeout``); remove the
    metric files of an earlier run."""
    if server.cfg.worker_class_str != "gthread":
        raise SystemExit(
            f"extras-archive needs gunicorn's gthread worker (got "
            f"{server.cfg.worker_class_str!r}): the sync worker cuts any request "
            f"longer than the worker timeout; drop the --worker-class option")
    for stale in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        os.remove(stale)


def child_exit(server, worker):
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _MADE_DIR is not None:
        shutil.rmtree(_MADE_DIR, ignore_errors=True)


def when_ready(server):
    server.log.info(
        "extras-archive: %s workers x %s threads, worker timeout %s s "
        "(QUERY_TIMEOUT %g s, ASYNC_WAIT_CAP %g s, + %s s)", server.cfg.workers,
        server.cfg.threads, server.cfg.timeout, float(_config["QUERY_TIMEOUT"]),
        float(_config["ASYNC_WAIT_CAP"]), WORKER_TIMEOUT_MARGIN)


def post_worker_init(worker):
    worker.log.info("extras-archive: worker %s ready, %.1f s after the start",
                    worker.pid, time.time() - _started)

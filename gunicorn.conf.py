"""gunicorn's configuration file for the archive (``gunicorn -c gunicorn.conf.py wsgi:app``;
``extras-archive serve`` passes it): only what the archive's operations need.

* Prometheus multiprocess mode: every worker process writes its metrics to files in
  ``PROMETHEUS_MULTIPROC_DIR`` and a scrape of any worker adds them up. The variable
  is set here, before any worker forks and before prometheus-client is imported
  (it chooses its storage at import); when it is not set already, a fresh
  temporary directory is made and removed on exit. The master empties it at start
  (stale files of an earlier run would count again) and hands back the files of a
  worker that exits (``child_exit``).
* Graceful shutdown: on SIGTERM gunicorn stops accepting connections and lets each
  worker finish the requests it is serving for ``graceful_timeout`` seconds; it is
  set to the archive's QUERY_TIMEOUT plus a margin, so a running sync query is
  answered in full. A command-line ``--graceful-timeout`` still wins.
"""
import glob as _glob
import os as _os
import shutil as _shutil
import tempfile as _tempfile

from archive.config import load_config as _load_config

_MADE_DIR = None
if not _os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _MADE_DIR = _tempfile.mkdtemp(prefix="extras-archive-metrics-")
    _os.environ["PROMETHEUS_MULTIPROC_DIR"] = _MADE_DIR

graceful_timeout = int(float(_load_config()["QUERY_TIMEOUT"])) + 10


def on_starting(server):
    for stale in _glob.glob(_os.path.join(_os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        _os.remove(stale)


def child_exit(server, worker):
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _MADE_DIR is not None:
        _shutil.rmtree(_MADE_DIR, ignore_errors=True)

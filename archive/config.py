"""Configuration from one place: defaults, an instance file, environment variables.

Precedence, lowest first: ``DEFAULTS``; the instance file (the Python file named by
``EXTRAS_ARCHIVE_CONFIG``, else ``<DATA_DIR>/config.py`` if it exists: upper-case
names only); environment variables ``EXTRAS_ARCHIVE_<NAME>``; explicit overrides
(the test configuration, CLI options). The result is a plain dict that is passed
down; library code never reads the environment itself.
"""
from __future__ import annotations

import os
import runpy
from pathlib import Path
from typing import Any, Mapping

__all__ = ["DEFAULTS", "ENV_PREFIX", "ConfigError", "load_config"]

ENV_PREFIX = "EXTRAS_ARCHIVE_"

DEFAULTS: dict[str, Any] = {
    # where the database (SQLite), products, job results and caches live
    "DATA_DIR": "archive-data",
    # SQLAlchemy URL; empty means sqlite:///<DATA_DIR>/archive.sqlite
    "DATABASE_URL": "",
    # PostgreSQL streaming replicas for user queries (archive/replicas.py); the
    # primary (DATABASE_URL) keeps the writes: jobs, caches, ingest
    "READ_REPLICA_URLS": [],
    "REPLICA_MAX_LAG": 30.0,          # seconds a replica may be behind, else skipped
    "REPLICA_CHECK_INTERVAL": 2.0,    # seconds between looks at each replica's state
    # "" (direct connections) or "pgbouncer-transaction" (pgbouncer, pool_mode=transaction)
    "DATABASE_POOLER": "",
    # public base URL (scheme://host[:port][/prefix]); empty: taken from each request
    "BASE_URL": "",
    "ARCHIVE_TITLE": "EXTraS Variability Archive",
    # queries
    "QUERY_TIMEOUT": 60.0,            # seconds, sync queries (TAP sync, cone search, form)
    "REQUEST_BODY_IDLE_TIMEOUT": 30.0,   # seconds a client may pause sending a request body
    "TAP_DEFAULT_MAXREC": 20000,      # rows returned when MAXREC is not given
    "TAP_HARD_MAXREC": 20000000,      # rows returned at most, whatever MAXREC says
    "SCS_MAX_SR": 10.0,               # degrees
    "SCS_DEFAULT_MAXREC": 20000,
    "SCS_HARD_MAXREC": 1000000,       # rows a cone search returns at most, whatever MAXREC says
    "SEARCH_DEFAULT_MAXREC": 100000,  # rows of a web form search when maxrec is not given
    "SEARCH_HARD_MAXREC": 1000000,    # rows of a web form search at most, whatever maxrec says
    "SEARCH_CACHE_MIN_ROWS": 1000,    # web search results cached from this many rows ...
    "SEARCH_CACHE_MAX_ROWS": 200000,  # ... up to this many (archive/search/cache.py)
    "SEARCH_CACHE_MAX_BYTES": 256 * 1024 * 1024,   # all cached results; 0: no cache
    # async jobs (UWS)
    "ASYNC_EXECUTION_DURATION": 3600,     # seconds, default and maximum for a job
    "ASYNC_DESTRUCTION_DAYS": 7,          # default lifetime of a job
    "ASYNC_WORKER_IN_PROCESS": True,      # run a worker thread inside the web server
    "ASYNC_WAIT_CAP": 50.0,               # seconds a blocking WAIT may last at most
    "ASYNC_POLL_INTERVAL": 0.2,           # seconds between a worker's looks at the queue
    "ASYNC_HEARTBEAT_INTERVAL": 2.0,      # seconds between heartbeats of a running job
    "ASYNC_HEARTBEAT_TIMEOUT": 30.0,      # a worker silent this long is taken as dead
    "ASYNC_MAX_ATTEMPTS": 2,              # runs of a job whose worker died, then ERROR
    "ASYNC_SWEEP_INTERVAL": 10.0,         # seconds between sweeps (orphans, destruction)
    "ASYNC_LIST_MAX": 1000,               # jobs listed at most by GET /tap/async
    "ASYNC_QUEUE_MAX": 1000,              # jobs QUEUED or EXECUTING at most (all servers)
    "ASYNC_QUEUE_MAX_PER_CLIENT": 50,     # ... of them from one client address
    "JOBS_DIR": "",                       # job files (shared storage); empty: <DATA_DIR>/jobs
    # table uploads
    "UPLOAD_MAX_BYTES": 200 * 1024 * 1024,
    "UPLOAD_MAX_ROWS": 2000000,
    "UPLOAD_MAX_COLUMNS": 1000,           # columns of an uploaded table (SQLite allows 2000)
    "UPLOAD_MAX_ARRAYSIZE": 65536,        # elements a VOTable FIELD may declare (arraysize)
    "UPLOAD_URL_ALLOW": [],               # hosts that UPLOAD=name,http(s)://... may name
    # operations (archive/ops): proxies, access log
    "TRUSTED_PROXIES": 0,                 # proxies in front whose X-Forwarded-* are trusted
    "ACCESS_LOG": True,                   # one JSON line per request (logger archive.access)
    # DataLink
    "DATALINK_MAX_IDS": 1000,             # IDs one {links} request answers; more: OVERFLOW
    # products
    "PRODUCTS_DIR": "",                   # empty means <DATA_DIR>/products
    # IVOA authority of the dataset identifiers (ivoa.obscore obs_publisher_did)
    "IVOID_AUTHORITY": "ivo://extras.archive",
    "LIGHTCURVES_MAX_AGE": 300,           # seconds a browser may reuse light-curve JSON
    "PRODUCTS_MAX_AGE": 3600,             # seconds a client may cache a product file
    "BULK_DOWNLOAD_MAX_FILES": 20000,     # files in one bulk download at most
    "BULK_DOWNLOAD_MAX_BYTES": 20 * 1024 ** 3,   # bytes in one bulk download at most
    # name resolution (/resolve): Simbad's TAP service, its timeout, how long misses last
    "SIMBAD_URL": "https://simbad.cds.unistra.fr/simbad/sim-tap",
    "SIMBAD_TIMEOUT": 3.0,                # seconds (connect and read) for Simbad
    "RESOLVER_MISS_TTL": 3600,            # seconds an unknown name stays cached as unknown
    # web cross-match (/crossmatch)
    "CROSSMATCH_MAX_RADIUS_ARCSEC": 600.0,   # largest match radius
    "CROSSMATCH_MAX_LINES": 1000,            # pasted lines at most (each may ask Simbad)
    "CROSSMATCH_HTML_ROWS": 2000,            # rows the HTML page shows; downloads: TAP_HARD_MAXREC
}


class ConfigError(ValueError):
    """A configuration value that cannot be used, naming its source."""


def _convert(name: str, raw: str, default: Any, source: str) -> Any:
    try:
        if isinstance(default, bool):
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, list):
            return [p.strip() for p in raw.split(",") if p.strip()]
    except ValueError:
        kind = type(default).__name__
        raise ConfigError(f"{source}: {name}={raw!r} is not a valid {kind}") from None
    return raw


def _instance_file(config: Mapping[str, Any], environ: Mapping[str, str]) -> Path | None:
    named = environ.get(ENV_PREFIX + "CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"{ENV_PREFIX}CONFIG names {path}, which is not a file")
        return path
    path = Path(config["DATA_DIR"]) / "config.py"
    return path if path.is_file() else None


def load_config(overrides: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Build the configuration dict (see the module docstring for the precedence)."""
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    config = dict(DEFAULTS)
    # DATA_DIR decides where the instance file is, so settle it first
    if ENV_PREFIX + "DATA_DIR" in environ:
        config["DATA_DIR"] = environ[ENV_PREFIX + "DATA_DIR"]
    if "DATA_DIR" in overrides:
        config["DATA_DIR"] = overrides["DATA_DIR"]
    path = _instance_file(config, environ)
    if path is not None:
        values = runpy.run_path(str(path))
        config.update({k: v for k, v in values.items() if k.isupper()})
    for key, raw in environ.items():
        if key.startswith(ENV_PREFIX) and key != ENV_PREFIX + "CONFIG":
            name = key[len(ENV_PREFIX):]
            config[name] = _convert(name, raw, DEFAULTS.get(name, ""), f"environment {key}")
    config.update(overrides)
    data_dir = Path(config["DATA_DIR"]).expanduser().resolve()
    config["DATA_DIR"] = str(data_dir)
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = f"sqlite:///{data_dir / 'archive.sqlite'}"
    if not config["JOBS_DIR"]:
        config["JOBS_DIR"] = str(data_dir / "jobs")
    if not config["PRODUCTS_DIR"]:
        config["PRODUCTS_DIR"] = str(data_dir / "products")
    _check_database(config)
    return config


#: values of DATABASE_POOLER
POOLERS = ("", "pgbouncer-transaction")


def _check_database(config: dict) -> None:
    """Refuse database settings that cannot work together, naming the setting."""
    postgres = config["DATABASE_URL"].startswith("postgresql")
    if config["DATABASE_POOLER"] not in POOLERS:
        raise ConfigError(f"DATABASE_POOLER={config['DATABASE_POOLER']!r} is not one of "
                          f"{', '.join(repr(p) for p in POOLERS)}")
    if config["DATABASE_POOLER"] and not postgres:
        raise ConfigError("DATABASE_POOLER is for a PostgreSQL DATABASE_URL")
    replicas = config["READ_REPLICA_URLS"]
    if isinstance(replicas, str):
        raise ConfigError("READ_REPLICA_URLS must be a list of URLs, not a string")
    if replicas and not postgres:
        raise ConfigError("READ_REPLICA_URLS needs a PostgreSQL DATABASE_URL (the primary)")
    for url in replicas:
        if not str(url).startswith("postgresql"):
            raise ConfigError(f"READ_REPLICA_URLS: {url.split('@')[-1]!r} is not a "
                              "PostgreSQL URL")
    for name in ("REPLICA_MAX_LAG", "REPLICA_CHECK_INTERVAL"):
        if not float(config[name]) > 0:
            raise ConfigError(f"{name}={config[name]!r} must be a positive number of seconds")

"""The database: SQLAlchemy metadata derived from the data model, engines, set-up.

Every published table (catalogues and TAP_SCHEMA) is built from its ``datamodel``
declaration; positional tables get the spatial index columns ``_hpx`` (HEALPix
NESTED, order 29) and ``_x, _y, _z`` (unit vector), which are never published.
Internal tables (products, jobs, name cache) are declared here too.
"""
from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from sqlalchemy.engine import Engine

import datamodel
from datamodel.obscore import OBSCORE_TABLES
from datamodel.publish import tap_schema_rows
from datamodel.tap_schema import TAP_SCHEMA_TABLES, physical_name

__all__ = ["metadata", "catalogue_tables", "ivoa_tables", "tap_schema_tables", "PUBLISHED", "products", "name_cache",
           "search_cache",
           "uws_jobs", "SQL_TYPES", "SQLITE_PAGE_SIZE", "sql_type",
           "create_engine", "create_readonly_engine", "pooler_options", "init_db", "fill_tap_schema", "table_for",
           "sqlite_authorizer", "Database", "init_app", "get_db"]

#: SQLAlchemy types of the VOTable datatypes stored in the database
SQL_TYPES = {
    "boolean": lambda: sa.Boolean(create_constraint=False),
    "short": sa.SmallInteger,
    "int": sa.Integer,
    "long": sa.BigInteger,
    "float": sa.REAL,
    "double": sa.Double,
    "char": sa.String,
    "unicodeChar": sa.String,
}


def sql_type(column):
    """The SQLAlchemy type of a column (anything with a VOTable ``datatype``)."""
    return SQL_TYPES[column.datatype]()


metadata = sa.MetaData()


def _build(table: datamodel.Table) -> sa.Table:
    name = physical_name(table)
    cols = [sa.Column(c.name, sql_type(c), nullable=not c.required) for c in table.columns]
    extra = []
    if table.positional:
        cols += [sa.Column("_hpx", sa.BigInteger, nullable=False),
                 sa.Column("_x", sa.Double, nullable=False),
                 sa.Column("_y", sa.Double, nullable=False),
                 sa.Column("_z", sa.Double, nullable=False)]
        extra.append(sa.Index(f"ix_{name}__hpx", "_hpx"))
    extra.append(sa.Index(f"ux_{name}_key", *table.key, unique=True))
    for c in table.columns:
        # the key's index also answers searches on its leading column: a second
        # index on that column would only cost ingest time and disk space
        if c.indexed and c.name != table.key[0]:
            extra.append(sa.Index(f"ix_{name}_{c.name}", c.name,
                                  unique=c.role == "id" and table.id_template is not None))
    return sa.Table(name, metadata, *cols, *extra, info={"datamodel": table})


#: SQLAlchemy tables of the published catalogues, by data-model short name.
catalogue_tables: dict[str, sa.Table] = {n: _build(t) for n, t in datamodel.TABLES.items()}
#: SQLAlchemy tables of the ivoa schema (ivoa.obscore), by ADQL short name.
ivoa_tables: dict[str, sa.Table] = {n: _build(t) for n, t in OBSCORE_TABLES.items()}
#: SQLAlchemy tables of TAP_SCHEMA, by ADQL short name (schemas, tables, columns, ...).
tap_schema_tables: dict[str, sa.Table] = {n: _build(t) for n, t in TAP_SCHEMA_TABLES.items()}


#: Every published table as (data-model table, SQLAlchemy table), in publication order:
#: what ADQL queries may name (``archive.tap.adql.Catalog.of(PUBLISHED)``).
PUBLISHED: tuple[tuple[datamodel.Table, sa.Table], ...] = (
    *((t, catalogue_tables[n]) for n, t in datamodel.TABLES.items()),
    *((t, ivoa_tables[n]) for n, t in OBSCORE_TABLES.items()),
    *((t, tap_schema_tables[n]) for n, t in TAP_SCHEMA_TABLES.items()))


def table_for(table: datamodel.Table) -> sa.Table:
    """The SQLAlchemy table of a published data-model table."""
    if table.schema == "TAP_SCHEMA":
        return tap_schema_tables[table.name]
    return (ivoa_tables if table.schema == "ivoa" else catalogue_tables)[table.name]


#: Registered product files. ``path`` is relative to PRODUCTS_DIR (``<obs_id>/<name>``)
#: and names the product in its URL. Band and binning come from the product type;
#: ``t_min``/``t_max`` (MJD, TT) from the FITS header (TSTART/TSTOP, MJDREF) of time
#: series, NULL for images. Columns added after the first release are nullable, so
#: that ``init_db`` can add them to an existing archive (``_upgrade``).
products = sa.Table(
    "products", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("path", sa.String, nullable=False, unique=True),
    sa.Column("product_type", sa.String, nullable=False),
    sa.Column("category", sa.String, nullable=False),
    sa.Column("mime", sa.String, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("mtime_ns", sa.BigInteger, nullable=False),
    sa.Column("checksum", sa.String, nullable=False),       # "sha256:<hex>"
    sa.Column("obs_id", sa.String, nullable=False),
    sa.Column("exp_id", sa.String, nullable=False),
    sa.Column("camera", sa.String, nullable=False),
    sa.Column("src_num", sa.Integer, nullable=False),
    sa.Column("extras_id", sa.String, nullable=False, index=True),  # linked catalogue row
    sa.Column("preview_of", sa.String, nullable=True),     # path of the light curve drawn
    sa.Column("band", sa.String, nullable=True),            # datamodel.BANDS key
    sa.Column("binning", sa.String, nullable=True),         # "500s", "opt" or NULL
    sa.Column("t_min", sa.Double, nullable=True),           # MJD (TT)
    sa.Column("t_max", sa.Double, nullable=True),
    sa.Index("ix_products_obs_id", "obs_id", "camera"),
)

#: Name-resolver cache (Simbad answers and misses).
name_cache = sa.Table(
    "name_cache", metadata,
    sa.Column("name", sa.String, primary_key=True),        # normalised query
    sa.Column("ra", sa.Double, nullable=True),
    sa.Column("dec", sa.Double, nullable=True),
    sa.Column("source", sa.String, nullable=False),         # "simbad", "archive", "miss"
    sa.Column("resolved_name", sa.String, nullable=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)

#: Results of web form searches (archive.search.cache), keyed by the normalised query;
#: the rows of a catalogue's entries are deleted when it is ingested again.
search_cache = sa.Table(
    "search_cache", metadata,
    sa.Column("key", sa.String(64), primary_key=True),      # sha256 of the query
    sa.Column("catalogue", sa.String, nullable=False, index=True),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),           # bytes of payload
    sa.Column("hits", sa.Integer, nullable=False),
    sa.Column("used", sa.Double, nullable=False),            # time.time() of last use
    sa.Column("payload", sa.LargeBinary, nullable=False),    # Arrow IPC file
)

#: UWS jobs (TAP async); results and uploaded files live in DATA_DIR/jobs/<job_id>/.
#: Times are naive UTC on both backends (owned by archive.tap.uws).
uws_jobs = sa.Table(
    "uws_jobs", metadata,
    sa.Column("job_id", sa.String(40), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("owner", sa.String, nullable=True),
    sa.Column("client", sa.String, nullable=True),          # requester's address (queue limits)
    sa.Column("phase", sa.String(16), nullable=False, index=True),
    sa.Column("parameters", sa.JSON, nullable=False),       # [[name, value], ...] in order
    sa.Column("files", sa.JSON, nullable=False),            # names of uploaded parts kept
    sa.Column("creation_time", sa.DateTime, nullable=False, index=True),
    sa.Column("start_time", sa.DateTime, nullable=True),
    sa.Column("end_time", sa.DateTime, nullable=True),
    sa.Column("execution_duration", sa.Integer, nullable=False),   # seconds
    sa.Column("destruction", sa.DateTime, nullable=False, index=True),
    sa.Column("quote", sa.DateTime, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("error_type", sa.String(16), nullable=True),  # "fatal" | "transient"
    sa.Column("worker", sa.String, nullable=True),          # who claimed it (host:pid:token)
    sa.Column("heartbeat", sa.DateTime, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("result_rows", sa.BigInteger, nullable=True),
    sa.Column("result_type", sa.String, nullable=True),     # MIME type of results/result
    sa.Column("result_file", sa.String, nullable=True),     # file name under the job dir
    sa.Column("result_size", sa.BigInteger, nullable=True),
    sa.Column("overflow", sa.Boolean(create_constraint=False), nullable=True),
)


#: Page size of new SQLite archives. Larger than SQLite's 4096 bytes because the
#: catalogue tables are wide (43 columns, ~400 bytes a row): fewer pages to write,
#: link and checkpoint per row (1,000,000-row ingest: 13.2-14.3 s with 4 KiB pages,
#: 11.9-12.7 s with 16 KiB). It takes effect only when a database is created.
SQLITE_PAGE_SIZE = 16384


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")     # before WAL mode is set
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA cache_size=-65536")
    cur.execute("PRAGMA mmap_size=1073741824")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()
    _register_sql_functions(dbapi_conn)


def _register_sql_functions(dbapi_conn) -> None:
    """SQL functions ADQL translation relies on (math functions SQLite may lack)."""
    from .sqlite_functions import register_functions
    register_functions(dbapi_conn)


def create_engine(url: str, **kwargs) -> Engine:
    """An engine for ``url`` with the settings this archive relies on."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False,
                                                     "timeout": 30}, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


def init_db(engine: Engine) -> None:
    """Create every table and index that does not exist yet (idempotent)."""
    if engine.url.get_backend_name() == "sqlite" and engine.url.database:
        from pathlib import Path
        Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)
    metadata.create_all(engine)
    _upgrade(engine)
    # TAP_SCHEMA is derived from the data model: fill it, or refresh it after a change
    fill_tap_schema(engine)


def _upgrade(engine: Engine) -> None:
    """Add the internal tables' nullable columns and indexes that an archive made by an
    earlier release lacks (``create_all`` only creates missing tables)."""
    inspector = sa.inspect(engine)
    for table in (products, uws_jobs, name_cache):
        present = {c["name"] for c in inspector.get_columns(table.name)}
        missing = [c for c in table.columns if c.name not in present]
        indexes = {ix["name"] for ix in inspector.get_indexes(table.name)}
        if not missing and all(ix.name in indexes for ix in table.indexes):
            continue
        try:
            _add(engine, table, missing, indexes)
        except sa.exc.DBAPIError:
            # another process (a gunicorn worker starting beside this one) added them
            present = {c["name"] for c in sa.inspect(engine).get_columns(table.name)}
            if any(c.name not in present for c in missing):
                raise


def _add(engine: Engine, table: sa.Table, missing: list, indexes: set[str]) -> None:
    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as conn:
        for column in missing:
            if not column.nullable:
                raise RuntimeError(f"cannot add the NOT NULL column {column.name} to "
                                   f"{table.name} of an existing archive")
            # names and types come from this module's metadata, not from a request
            conn.exec_driver_sql(
                f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} "
                f"{column.type.compile(dialect=engine.dialect)}")
        for index in table.indexes:
            if index.name not in indexes:
                index.create(conn, checkfirst=True)


def _normalised(rows: list[dict], table: sa.Table) -> list[tuple]:
    names = [c.name for c in table.columns]
    return sorted((tuple(r.get(n) for n in names) for r in rows), key=repr)


def _lock(conn, dialect: str, tables: dict[str, sa.Table]) -> None:
    """Serialise concurrent fillers (several gunicorn workers start at once)."""
    if dialect == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(742315001)")
    else:
        # a write statement first thing in the transaction takes SQLite's write lock
        # (waiting under busy_timeout), so the read below sees the latest state
        conn.execute(sa.delete(tables["key_columns"]).where(sa.false()))


def fill_tap_schema(engine: Engine) -> bool:
    """Make TAP_SCHEMA match the data model; returns True if it was rewritten."""
    wanted = tap_schema_rows()
    with engine.begin() as conn:
        _lock(conn, engine.dialect.name, tap_schema_tables)
        same = all(
            _normalised([dict(r._mapping) for r in conn.execute(sa.select(tbl))], tbl)
            == _normalised(wanted[name], tbl)
            for name, tbl in tap_schema_tables.items())
        if same:
            return False
        for name in ("key_columns", "keys", "columns", "tables", "schemas"):
            conn.execute(sa.delete(tap_schema_tables[name]))
        for name in ("schemas", "tables", "columns", "keys", "key_columns"):
            if wanted[name]:
                conn.execute(sa.insert(tap_schema_tables[name]), wanted[name])
    return True


# -- engines --------------------------------------------------------------------------

# SQLite read-only enforcement: the authorizer every connection of the read-only
# engine carries (the security policy lives with the code that installs it)
_DENIED = {getattr(sqlite3, n) for n in (
    "SQLITE_ATTACH", "SQLITE_DETACH", "SQLITE_PRAGMA", "SQLITE_CREATE_INDEX",
    "SQLITE_CREATE_TABLE", "SQLITE_CREATE_TRIGGER", "SQLITE_CREATE_VIEW",
    "SQLITE_DROP_INDEX", "SQLITE_DROP_TABLE", "SQLITE_DROP_TRIGGER", "SQLITE_DROP_VIEW",
    "SQLITE_ALTER_TABLE", "SQLITE_REINDEX", "SQLITE_ANALYZE", "SQLITE_CREATE_VTABLE",
    "SQLITE_DROP_VTABLE", "SQLITE_TRANSACTION", "SQLITE_SAVEPOINT")}
_WRITES = {sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE}
_TEMP_OK = {getattr(sqlite3, n) for n in (
    "SQLITE_CREATE_TEMP_TABLE", "SQLITE_DROP_TEMP_TABLE", "SQLITE_CREATE_TEMP_INDEX",
    "SQLITE_DROP_TEMP_INDEX")}


def sqlite_authorizer(action, arg1, arg2, dbname, _source):
    """Refuse anything but reading the archive; temporary tables (uploads) are allowed."""
    if action in _TEMP_OK:
        return sqlite3.SQLITE_OK
    if action in _WRITES:
        return sqlite3.SQLITE_OK if dbname == "temp" else sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and arg2 and arg2.lower() in (
            "load_extension", "readfile", "writefile", "edit"):
        return sqlite3.SQLITE_DENY
    if action in _DENIED:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _sqlite_path(url: str) -> str:
    return sa.engine.make_url(url).database


def create_readonly_engine(url: str, **kwargs) -> Engine:
    """An engine whose connections can only read the archive.

    SQLite: the file is opened with ``mode=ro`` and every connection gets
    ``sqlite_authorizer``, which refuses writes to the main database, ATTACH, DETACH
    and PRAGMA; the engine's ``archive_sqlite_path`` names the file (the columnar
    reader opens it too). PostgreSQL: every transaction is READ ONLY; ``kwargs`` go
    to SQLAlchemy's ``create_engine`` (e.g. ``connect_args``).
    """
    if url.startswith("sqlite"):
        path = _sqlite_path(url)

        def connect():
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False,
                                   timeout=30)
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA cache_size=-65536")
            conn.execute("PRAGMA mmap_size=1073741824")
            conn.execute("PRAGMA temp_store=MEMORY")
            _register_sql_functions(conn)
            return conn

        engine = sa.create_engine("sqlite://", creator=connect)
        def authorize(dbapi_conn, record, _proxy):
            # once per connection, at its first checkout: after SQLAlchemy's own
            # first-connect PRAGMAs, and never again (setting an authorizer makes
            # SQLite re-prepare every cached statement)
            if not record.info.get("authorizer"):
                dbapi_conn.set_authorizer(sqlite_authorizer)
                record.info["authorizer"] = True

        sa.event.listen(engine, "checkout", authorize)
        engine.archive_sqlite_path = path
        return engine
    return sa.create_engine(url, pool_pre_ping=True,
                            execution_options={"postgresql_readonly": True}, **kwargs)


def pooler_options(pooler: str) -> dict:
    """Engine options for connections through ``pooler`` (setting DATABASE_POOLER).

    pgbouncer in transaction mode hands each transaction whichever server connection
    is free, so nothing may outlive a transaction: psycopg must not prepare
    statements on the server (``prepare_threshold=None``; it does after 5 runs of a
    query), and the ADBC reader of plain scans is not used on PostgreSQL
    (``archive_columnar``: its session is made READ ONLY with a SET SESSION, which
    would stay on a server connection that other clients then get). The executor's
    time limit is a SET LOCAL in every case (``archive.query``).
    """
    if pooler == "pgbouncer-transaction":
        return {"connect_args": {"prepare_threshold": None}}
    return {}


class Database:
    """The engines of one archive: ``engine`` reads and writes on the primary (ingest,
    jobs, caches); ``readonly`` is the read-only engine for the next user query: a
    read replica in turn if any is usable (``archive.replicas``), else
    ``readonly_primary``."""

    def __init__(self, url: str, *, replicas=(), max_lag: float = 30.0,
                 check_interval: float = 2.0, pooler: str = ""):
        from .replicas import Replicas
        self.url = url
        options = pooler_options(pooler)
        self.engine = create_engine(url, **options)
        init_db(self.engine)
        self.readonly_primary = create_readonly_engine(url, **options)
        self.replicas = None
        if replicas:
            self.replicas = Replicas(self.readonly_primary, replicas,
                                     make_engine=create_readonly_engine,
                                     connect_args=options.get("connect_args", {}),
                                     max_lag=max_lag, interval=check_interval)
        for engine in self._readonly_engines():
            engine.archive_columnar = not pooler

    @classmethod
    def from_config(cls, config) -> "Database":
        """The Database the settings describe (DATABASE_URL, READ_REPLICA_URLS,
        REPLICA_MAX_LAG, REPLICA_CHECK_INTERVAL, DATABASE_POOLER)."""
        return cls(config["DATABASE_URL"], replicas=config.get("READ_REPLICA_URLS") or (),
                   max_lag=float(config.get("REPLICA_MAX_LAG", 30.0)),
                   check_interval=float(config.get("REPLICA_CHECK_INTERVAL", 2.0)),
                   pooler=config.get("DATABASE_POOLER", ""))

    @property
    def readonly(self) -> Engine:
        return self.replicas.pick() if self.replicas else self.readonly_primary

    def replica_status(self) -> list[dict]:
        """Each read replica's state (``archive.replicas.Replicas.status``); [] if none."""
        return self.replicas.status() if self.replicas else []

    def _readonly_engines(self) -> list[Engine]:
        return [self.readonly_primary, *(
            r.engine for r in (self.replicas.replicas if self.replicas else ()))]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def dispose(self):
        self.engine.dispose()
        self.readonly_primary.dispose()
        if self.replicas:
            self.replicas.dispose()


def init_app(app) -> None:
    """Attach the archive's Database to a Flask app (``app.extensions['archive_db']``)."""
    app.extensions["archive_db"] = Database.from_config(app.config)


def get_db(app=None) -> Database:
    """The Database of ``app`` (default: the current app)."""
    if app is None:
        from flask import current_app as app
    return app.extensions["archive_db"]

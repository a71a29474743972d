"""The TAP query path shared by sync requests and async jobs (no Flask).

``parse_request(params, config)`` checks the TAP parameters (LANG, QUERY, MAXREC,
RESPONSEFORMAT/FORMAT, RUNID, UPLOAD; REQUEST=doQuery is accepted and ignored,
unknown parameters are ignored) and ``run_query`` translates the ADQL, runs it
read-only under the configured time limit and returns a streaming
``QueryResult``. Table uploads plug in through ``uploads``: a sequence of
uploaded-table objects that the ADQL catalogue learns about
(``Catalog.of(PUBLISHED, uploads=...)``) and that are loaded into temporary
tables on the query's connection before the query runs (``setup(conn)``, or each
upload's ``load(conn)``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from ..errors import UsageFault
from ..params import Params, parse_int
from ..db import PUBLISHED
from ..query import execute
from ..result import QueryResult
from .upload_limits import check_table_name

__all__ = ["LANGUAGES", "TapRequest", "UploadSpec", "parse_request", "parse_uploads",
           "run_query", "effective_maxrec"]

#: LANG values accepted (compared case-insensitively) and what they mean.
LANGUAGES = {"ADQL": "2.1", "ADQL-2.0": "2.0", "ADQL-2.1": "2.1"}

_RUNID_MAX = 64


@dataclass(frozen=True)
class UploadSpec:
    """One ``UPLOAD=name,uri`` item: the table name and where its content is."""

    name: str
    uri: str

    @property
    def part(self) -> str | None:
        """The multipart part name for ``param:<part>`` URIs, else None."""
        return self.uri[len("param:"):] if self.uri.startswith("param:") else None


@dataclass
class TapRequest:
    """The checked parameters of one TAP query."""

    lang: str
    query: str
    maxrec: int | None            # as given by the client (None: not given)
    format: Any                   # archive.formats.Format
    format_requested: str | None  # the RESPONSEFORMAT/FORMAT value as given
    runid: str | None = None
    uploads: list[UploadSpec] = field(default_factory=list)
    params: Params | None = None


def parse_uploads(params: Params) -> list[UploadSpec]:
    """The UPLOAD items (repeated parameters and ``;``-joined lists both count)."""
    specs: list[UploadSpec] = []
    for value in params.getlist("UPLOAD"):
        for item in value.split(";"):
            item = item.strip()
            if not item:
                continue
            name, sep, uri = item.partition(",")
            name, uri = name.strip(), uri.strip()
            if not sep or not uri:
                raise UsageFault(f"UPLOAD item {item!r} must be 'name,URI' "
                                 "(for example UPLOAD=mytable,param:mypart)")
            check_table_name(name)
            if not (uri.startswith("param:") or uri.startswith("http://")
                    or uri.startswith("https://")):
                raise UsageFault(f"UPLOAD URI {uri!r} for table {name} is not supported: "
                                 "use param:<part name> or an http(s) URL")
            if any(s.name.lower() == name.lower() for s in specs):
                raise UsageFault(f"UPLOAD names table {name} twice")
            specs.append(UploadSpec(name, uri))
    return specs


def parse_request(params: Params, config: dict) -> TapRequest:
    """Check the TAP parameters; raises UsageFault naming the first problem."""
    from ..formats import get_format
    lang = params.get("LANG")
    if lang is None or not lang.strip():
        raise UsageFault("parameter LANG is missing; use LANG=ADQL")
    if lang.strip().upper() not in LANGUAGES:
        raise UsageFault(f"unknown query language LANG={lang!r}; this service supports "
                         + ", ".join(LANGUAGES))
    query = params.get("QUERY")
    if query is None or not query.strip():
        raise UsageFault("parameter QUERY is missing or empty; give the ADQL query to run")
    request = params.get("REQUEST")
    if request is not None and request.strip().lower() not in ("doquery", ""):
        raise UsageFault(f"REQUEST={request!r} is not supported; TAP 1.1 needs no REQUEST "
                         "parameter (doQuery is accepted)")
    maxrec = params.get("MAXREC")
    if maxrec is not None and maxrec.strip() != "":
        maxrec = parse_int("MAXREC", maxrec, minimum=0)
    else:
        maxrec = None
    requested = params.first("RESPONSEFORMAT", "FORMAT")
    if requested is not None and not requested.strip():
        requested = None
    fmt = get_format(requested or "votable")
    runid = params.get("RUNID")
    if runid is not None and len(runid) > _RUNID_MAX:
        raise UsageFault(f"RUNID is {len(runid)} characters long; at most {_RUNID_MAX} "
                         "are kept")
    return TapRequest(lang=lang.strip().upper(), query=query, maxrec=maxrec, format=fmt,
                      format_requested=requested, runid=runid,
                      uploads=parse_uploads(params), params=params)


def effective_maxrec(request_maxrec: int | None, top: int | None, config: dict) -> int:
    """The row limit that applies to a query.

    MAXREC given: min(MAXREC, hard limit). Not given: the query's TOP if it has one
    (the user asked for that many rows explicitly), else the default limit; never
    more than the hard limit.
    """
    hard = int(config["TAP_HARD_MAXREC"])
    if request_maxrec is not None:
        return min(request_maxrec, hard)
    if top is not None:
        return min(top, hard)
    return min(int(config["TAP_DEFAULT_MAXREC"]), hard)


def run_query(request: TapRequest | Params, db, config: dict,
              uploads: Sequence[Any] | None = None,
              setup: Callable[[Any], None] | None = None) -> QueryResult:
    """Translate and run one TAP query; returns a streaming QueryResult.

    ``request`` is a checked TapRequest or the raw Params. ``db`` is an
    ``archive.db.Database``. ``uploads`` are uploaded-table objects
    (``archive.tap.adql.catalog.Upload``); UPLOAD parameters without them are
    refused. ``setup(conn)`` runs on the query's connection before the query
    (loading the temporary tables); if it is not given, each upload's ``load(conn)``
    method is called, for uploads that have one. Errors are
    ArchiveFaults (UsageFault for the client's mistakes, QueryTimeout, FatalFault).
    """
    from .adql import Catalog, translate
    if isinstance(request, Params):
        request = parse_request(request, config)
    if request.uploads and uploads is None:
        raise UsageFault("table uploads (UPLOAD) are not available on this endpoint")
    catalog = Catalog.of(PUBLISHED, uploads=list(uploads) if uploads else None)
    # ADQL errors are UsageFaults naming the problem and its line and column
    translation = translate(request.query, catalog, db.dialect)
    maxrec = effective_maxrec(request.maxrec, translation.top, config)
    infos = [("QUERY", request.query, "The ADQL query as received"),
             ("LANG", request.lang, "Query language"),
             ("SERVICE_PROTOCOL", "1.1", "ivo://ivoa.net/std/TAP"),
             ("request_date", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
              "When the query was run (UTC)"),
             ("MAXREC", str(maxrec), "The row limit that applied to this query")]
    if request.runid:
        infos.append(("RUNID", request.runid, "Run identifier given by the client"))
    if setup is None and uploads and any(hasattr(u, "load") for u in uploads):
        def setup(conn):
            for table in uploads:
                if hasattr(table, "load"):
                    table.load(conn)
    if maxrec == 0:
        # DALI: MAXREC=0 asks for the metadata only; the query is not run
        result = QueryResult.empty(translation.columns, maxrec=0, overflow=True)
    else:
        engine = db.readonly
        if uploads:
            # a hot standby cannot create the uploads' temporary tables: the primary's
            # read-only engine, named here because the option engine below does not
            # carry the replica engine's ``archive_primary`` to the executor
            engine = db.readonly_primary
            # each upload is a new sa.Table, so its statements never hit SQLAlchemy's
            # compiled cache, and every entry kept the statement, the catalogue's column
            # proxies and the upload alive (about 0.2 MB per upload, until the cache's
            # 500-entry LRU: a worker grew by 37 MB per 160 uploads in benchmarks/soak.py)
            engine = engine.execution_options(compiled_cache=None)
        result = execute(engine, translation.statement, translation.columns,
                         maxrec=maxrec, timeout=float(config["QUERY_TIMEOUT"]), setup=setup,
                         top=translation.top, offset=translation.offset,
                         plain_scan=translation.plain_scan)
    result.infos[:0] = infos
    return result

"""The HTTP edge every blueprint shares: parameters, base URLs, responses, faults.

* ``request_params()``: the DALI parameters of the request (names case-insensitive,
  query string, form and multipart), read once, here.
* ``base_url(path)``: absolute URLs from BASE_URL, else from the request's host.
* ``xml_response``, ``text_response``, ``availability_response``: the documents
  the services answer with (templates, right MIME types).
* Faults: ``install(app)`` puts one set of error handlers on the application. A
  fault raised anywhere is answered in the form the asker reads: a VO client gets
  the error document of the protocol it spoke to (each VO blueprint declares its
  renderer with ``vo_errors(bp, render)``: a DALI error VOTable for TAP, the SCS
  form for cone search); a browser (``RESPONSEFORMAT=html``, or a browser's
  navigation without a VO format asked for) and every page for people get an HTML
  page in the site's layout with the message, the status and a way back.
* Every answer names the server (``Server``) and says how long the application took
  (``Server-Timing: app;dur=<ms>``, W3C Server Timing): from the request reaching
  the application to the response object being returned, so a streamed body's
  streaming is not included.

Only this module and the blueprints' view modules import Flask.
"""
from __future__ import annotations

import logging
import re
import time
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import urlencode, urlsplit

import sqlalchemy as sa
from flask import Blueprint, Flask, Request, Response, current_app, render_template, request
from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.formparser import FormDataParser

from werkzeug.middleware.proxy_fix import ProxyFix

from .errors import (ArchiveFault, FatalFault, NotFoundFault, TransientFault, UsageFault,
                     describe)
from .ops.instrument import ROUTE_KEY, STARTED_KEY, Instrumented
from .params import Params

__all__ = ["SERVER_TOKEN", "Routes", "request_params", "base_url", "query_form_link",
           "xml_response", "text_response", "availability_response", "wants_html",
           "vo_errors", "html_error", "install"]

log = logging.getLogger(__name__)

#: The Server header of every answer (taplint W_SVR0/W_SVRV want the software named).
SERVER_TOKEN = "extras-archive/0.1.0"
XML_MIME = "text/xml"
TEXT_MIME = "text/plain"
_STARTED = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
#: RESPONSEFORMAT/FORMAT values that ask for a page for people
_HTML_FORMATS = ("html", "text/html")
_VO_ERRORS = "archive_vo_errors"


# -- routes -------------------------------------------------------------------------

class Routes:
    """The routes of one view module, collected with ``@routes.route(rule, ...)``
    and added to a blueprint by the package that builds it (``routes.add_to(bp)``):
    a blueprint is assembled explicitly, not by importing modules for their side
    effects."""

    def __init__(self):
        self._rules: list[tuple[str, Callable, dict]] = []
        self._filters: list[tuple[str, Callable]] = []

    def route(self, rule: str, **options):
        def decorate(view):
            self._rules.append((rule, view, options))
            return view
        return decorate

    def template_filter(self, name: str):
        def decorate(function):
            self._filters.append((name, function))
            return function
        return decorate

    def add_to(self, bp: Blueprint) -> None:
        for rule, view, options in self._rules:
            bp.add_url_rule(rule, view_func=view, **options)
        for name, function in self._filters:
            bp.add_app_template_filter(function, name)


# -- requests -----------------------------------------------------------------------

#: the boundary parameter of a multipart Content-Type, quoted or not
_BOUNDARY = re.compile(r';\s*boundary\s*=\s*(?:"([^"]*)"|([^;]*))', re.IGNORECASE)


class _FormParser(FormDataParser):
    """Werkzeug's form parser, except that a body it cannot read is a 400 saying why
    (werkzeug's default is to answer with an empty form: a TAP job created from it
    would have none of the parameters sent, not even PHASE=RUN)."""

    def parse(self, stream, mimetype, content_length, options=None):
        self.silent = False
        try:
            return super().parse(stream, mimetype, content_length, options)
        except ValueError as exc:
            boundary = (options or {}).get("boundary")
            if mimetype == "multipart/form-data" and not boundary:
                why = "the Content-Type header gives no boundary"
            elif boundary:
                why = (f"its parts must start with --{boundary} and it must end with "
                       f"--{boundary}-- (werkzeug: {exc})")
            else:
                why = str(exc)
            raise BadRequest(f"the {mimetype} request body cannot be read: {why}") from None


class ArchiveRequest(Request):
    """Flask's request, liberal in the multipart boundary it accepts.

    RFC 2045 (with RFC 2046 §5.1.1 and RFC 7578) makes a boundary containing ``=``
    or another tspecial legal only when quoted; astroquery's TapPlus sends
    ``boundary====1733220000000===`` unquoted. Werkzeug's ``parse_options_header``
    skips such a parameter, so the body would be read as having no parts. The
    boundary is taken here from the raw header instead (up to the next ``;``);
    the parsing of the body stays werkzeug's.
    """

    form_data_parser_class = _FormParser

    @property
    def mimetype_params(self) -> dict[str, str]:
        params = super().mimetype_params
        if self.mimetype.startswith("multipart/") and "boundary" not in params:
            match = _BOUNDARY.search(self.headers.get("Content-Type", ""))
            boundary = match and (match.group(1) or match.group(2) or "").strip()
            if boundary:
                params = {**params, "boundary": boundary}
        return params


#: the bodies a POST may carry its parameters in (DALI 1.1 §3)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def request_params() -> Params:
    """The DALI parameters of the current request (query string, form, multipart).

    A POST body in another form (``text/plain``, ``multipart/mixed``...) is a 400:
    werkzeug would ignore it, and a job created from it would lack every parameter
    sent."""
    post = request.method == "POST"
    if post and request.mimetype not in FORM_TYPES and (
            (request.content_length or 0) > 0
            or "chunked" in request.headers.get("Transfer-Encoding", "").lower()):
        raise BadRequest(f"the POST body ({request.mimetype or 'without a Content-Type'}) "
                         "cannot be read: send the parameters as "
                         "application/x-www-form-urlencoded or multipart/form-data")
    return Params(request.args, request.form if post else None,
                  files=request.files if post else None)


def base_url(path: str = "") -> str:
    """The absolute URL of ``path`` (starting with /): BASE_URL from the
    configuration, else the request's scheme and host (what the client used)."""
    root = current_app.config.get("BASE_URL") or request.url_root
    return root.rstrip("/") + path


# -- responses ----------------------------------------------------------------------

def xml_response(template: str, status: int = 200, **context) -> Response:
    return Response(render_template(template, **context), status=status,
                    content_type=XML_MIME)


def text_response(value) -> Response:
    return Response("" if value is None else str(value), content_type=TEXT_MIME)


def availability_response(db) -> Response:
    """VOSI availability of the Database ``db``: available if its primary answers a
    read-only query; one note more for each read replica that is skipped."""
    started = time.monotonic()
    try:
        with db.readonly_primary.connect() as conn:
            conn.execute(sa.text("SELECT 1")).scalar_one()
        available = True
        note = f"the archive database answered in {1000 * (time.monotonic() - started):.1f} ms"
    except Exception as exc:            # any failure means: not available
        available, note = False, f"the archive database does not answer: {exc}"
    notes = [note]
    replicas = db.replica_status()
    if replicas:
        used = sum(r["state"] == "ok" for r in replicas)
        notes.append(f"{used} of {len(replicas)} read replicas answer queries"
                     + ("" if used else "; the primary answers them"))
        notes += [f"read replica {r['url']} is skipped ({r['state']}): {r['detail']}"
                  for r in replicas if r["state"] != "ok"]
    return xml_response("vosi/availability.xml", available=available, up_since=_STARTED,
                        notes=notes)


# -- faults -------------------------------------------------------------------------

def wants_html() -> bool:
    """Whether the asker reads HTML: it asked for RESPONSEFORMAT=html, or it is a
    browser navigating (not a script) and asked for no other format.

    A browser is told by ``Sec-Fetch-Mode: navigate`` (every current browser sends
    it on page loads and form submissions), or by an Accept header preferring HTML
    together with a ``Mozilla/`` User-Agent: Java's default Accept header (TOPCAT,
    STILTS) also lists text/html first, and must keep getting VOTables.
    """
    asked = None
    try:
        sent = request.values
    except HTTPException:           # the body is what failed (too large): the URL's values
        sent = request.args
    for name, value in sent.items(multi=True):
        if name.upper() in ("RESPONSEFORMAT", "FORMAT") and value.strip():
            asked = value.strip().lower()
    if asked is not None:
        return asked in _HTML_FORMATS
    if request.headers.get("Sec-Fetch-Mode") == "navigate":
        return True
    accept = request.accept_mimetypes
    prefers_html = accept.best_match(["text/html", "application/x-votable+xml",
                                      "text/xml"]) == "text/html" and accept["text/html"]
    return bool(prefers_html) and \
        request.headers.get("User-Agent", "").startswith("Mozilla/")


def vo_errors(bp: Blueprint, render: Callable[[ArchiveFault], Response]) -> None:
    """Declare how ``bp`` answers faults to VO clients (its protocol's error document)."""
    def record(state):
        state.app.extensions.setdefault(_VO_ERRORS, {})[bp.name] = render
    bp.record_once(record)


def _back_link() -> tuple[str, str]:
    """(URL, label) of the way back: the page the request came from if it is ours,
    else the service's own page, else the home page."""
    referrer = request.referrer
    if referrer and urlsplit(referrer).netloc == request.host:
        return referrer, "Back to the previous page"
    if _blueprint() == "tap":
        return base_url("/tap"), "Back to the TAP query form"
    return base_url("/"), "Home page"


#: Longest ADQL query the error page puts in its link back to the form (a URL).
FORM_LINK_MAX = 3000


def query_form_link() -> str | None:
    """For a TAP query (failed, or shown as an HTML table): the ADQL form at /tap
    filled with the query, its MAXREC and RESPONSEFORMAT (None for other requests,
    or a query too long for a URL)."""
    if _blueprint() != "tap":
        return None
    try:
        params = request_params()
        query = params.getlist("QUERY")
    except HTTPException:           # the body is what failed: no query to give back
        return None
    if len(query) != 1 or not query[0].strip() or len(query[0]) > FORM_LINK_MAX:
        return None
    kept = {"QUERY": query[0]}
    for name in ("MAXREC", "RESPONSEFORMAT"):
        values = params.getlist(name)
        if len(values) == 1:
            kept[name] = values[0]
    return base_url("/tap") + "?" + urlencode(kept)


def html_error(fault: ArchiveFault) -> Response:
    """The error page for people, in the site's layout."""
    url, label = _back_link()
    body = render_template("errors/error.html", fault=fault, back_url=url, back_label=label,
                           form_url=query_form_link())
    return Response(body, status=fault.status, content_type="text/html; charset=utf-8")


def _blueprint() -> str | None:
    """The blueprint the request was for: the matched one, else (a URL or method no
    route matched) the one whose URL prefix the path is under."""
    if request.blueprint is not None:
        return request.blueprint
    for name, bp in current_app.blueprints.items():
        prefix = (bp.url_prefix or "").rstrip("/")
        if prefix and (request.path == prefix or request.path.startswith(prefix + "/")):
            return name
    return None


def _answer(fault: ArchiveFault) -> Response:
    if not wants_html():
        render = current_app.extensions.get(_VO_ERRORS, {}).get(_blueprint())
        if render is not None:
            return render(fault)
    return html_error(fault)


def _http_fault(exc: HTTPException) -> ArchiveFault:
    if exc.code == 404:
        fault = NotFoundFault(f"there is nothing at {request.path}")
    else:
        fault = UsageFault(exc.description or exc.name)
    fault.status = exc.code or 400
    return fault


def _database_unavailable(exc: Exception) -> bool:
    """Whether ``exc`` says the database cannot be reached (rather than a bug): a
    connection lost or refused, the server shutting down or starting (PostgreSQL
    SQLSTATE classes 08 and 57P), an SQLite file that cannot be opened or stays locked."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if type(exc.orig).__module__.startswith("psycopg"):
        return sqlstate is None or sqlstate.startswith(("08", "57P"))
    text = str(exc.orig)
    return "unable to open database" in text or "database is locked" in text


def _unexpected(exc: Exception) -> Response:
    if _database_unavailable(exc):
        # the database is unreachable (restarting, failing over): the client may retry
        log.warning("database unavailable: %s %s: %s", request.method, request.url,
                    str(exc).splitlines()[0])
        return _answer(TransientFault("the archive database is unavailable at the moment; "
                                      "try again in a few seconds"))
    log.exception("request failed: %s %s", request.method, request.url)
    return _answer(FatalFault(f"internal error while handling the request: {describe(exc)}"))


def _edge_headers(response: Response) -> Response:
    response.headers["Server"] = SERVER_TOKEN
    started = request.environ.get(STARTED_KEY)
    if started is not None:
        elapsed = 1000 * (time.perf_counter() - started)
        response.headers["Server-Timing"] = f"app;dur={elapsed:.2f}"
    return response


def _note_route() -> None:
    """Tell the instrumentation (metrics, access log) which URL rule answers."""
    request.environ[ROUTE_KEY] = request.url_rule.rule if request.url_rule else None


def install(app: Flask) -> None:
    """Put the request class, the fault handlers and the Server and Server-Timing
    headers on ``app`` (once, for every blueprint and for URLs no blueprint knows);
    wrap it in the instrumentation (``archive.ops.instrument``: metrics, access log)
    and, with TRUSTED_PROXIES = n, in werkzeug's ProxyFix trusting the
    X-Forwarded-For/-Proto/-Host/-Port/-Prefix headers of the n proxies in front (the
    load balancer), so that the job and capability URLs the archive writes are the
    balancer's and the client address logged and counted is the real one. Never trust
    them without a proxy in front: any client could then choose the URLs the archive
    writes."""
    app.request_class = ArchiveRequest
    app.wsgi_app = Instrumented(app.wsgi_app, log_requests=bool(app.config.get("ACCESS_LOG")))
    hops = int(app.config.get("TRUSTED_PROXIES") or 0)
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops,
                                x_port=hops, x_prefix=hops)
    app.before_request(_note_route)
    app.register_error_handler(ArchiveFault, _answer)
    app.register_error_handler(HTTPException, lambda exc: _answer(_http_fault(exc)))
    app.register_error_handler(Exception, _unexpected)
    app.after_request(_edge_headers)

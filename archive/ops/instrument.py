"""The WSGI middleware that times, counts and logs every request.

It wraps the Flask application (``archive.http.install``), so it sees what Flask
cannot: the end of a streamed answer (a TAP result is sent as it is encoded, long
after the view returned) and the bytes actually sent. When the answer's last byte
has gone (the server closes the iterable) it records the Prometheus metrics and
writes one access-log line, JSON, to the logger ``archive.access``::

    {"method": "GET", "route": "/tap/async/<job_id>", "path": "/tap/async/3f...",
     "status": 200, "bytes": 1234, "duration_ms": 5.1, "client": "192.0.2.7"}

``route`` is the URL rule Flask matched (put in the WSGI environ by a
``before_request`` hook of the edge), ``client`` the requester's address (the
forwarded one when TRUSTED_PROXIES trusts the balancer). Answers of 200 to the
health check are not logged: load balancers poll it every second or two.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Callable, Iterable

from . import metrics

__all__ = ["ROUTE_KEY", "STARTED_KEY", "Instrumented"]

access_log = logging.getLogger("archive.access")

#: the WSGI environ key holding the URL rule of the request (set by the edge)
ROUTE_KEY = "archive.route"
#: the WSGI environ key holding when the request reached the application
#: (``time.perf_counter()``, set here before Flask matches the URL; the edge's
#: Server-Timing header is measured from it)
STARTED_KEY = "archive.started"
UNMATCHED = "unmatched"
QUIET_ROUTES = ("/health",)


class _Body:
    """The answer's iterable, counting bytes, calling ``done`` when closed."""

    def __init__(self, body: Iterable[bytes], done: Callable[[int, bool], None]):
        self.body = body
        self.done = done
        self.size = 0

    def __iter__(self):
        for block in self.body:
            self.size += len(block)
            yield block

    def close(self):
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.done(self.size, False)


class Instrumented:
    """``Instrumented(wsgi_app, access_log=True)``: metrics and access log around it."""

    def __init__(self, app, *, log_requests: bool = True):
        self.app = app
        self.log_requests = log_requests

    def __call__(self, environ, start_response):
        started = environ[STARTED_KEY] = time.perf_counter()
        status_box = [0]
        length_box = [None]

        def recording_start_response(status, headers, exc_info=None):
            status_box[0] = int(status.split(" ", 1)[0])
            for name, value in headers:
                if name.lower() == "content-length":
                    length_box[0] = value
            return start_response(status, headers, exc_info)

        def done(size: int, _failed: bool) -> None:
            self._record(environ, status_box[0], size, time.perf_counter() - started)

        try:
            body = self.app(environ, recording_start_response)
        except BaseException:
            done(0, True)
            raise
        wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(wrapper, type) and isinstance(body, wrapper):
            # a file sent with the server's file wrapper (sendfile): keep the wrapper,
            # so the server can still use sendfile, and record when it is closed
            original = body.close if hasattr(body, "close") else (lambda: None)
            size = int(length_box[0] or 0)

            def close():
                try:
                    original()
                finally:
                    done(size, False)
            body.close = close
            return body
        return _Body(body, done)

    def _record(self, environ, status: int, size: int, seconds: float) -> None:
        route = environ.get(ROUTE_KEY) or UNMATCHED
        status = status or 500          # the application raised before answering
        method = environ.get("REQUEST_METHOD", "")
        try:
            metrics.observe_request(route, method, status, seconds)
        except Exception:           # metrics must never break an answer
            logging.getLogger(__name__).exception("recording the metrics failed")
        if not self.log_requests or (route in QUIET_ROUTES and status == 200):
            return
        access_log.info(json.dumps({
            "method": method, "route": route, "path": environ.get("PATH_INFO", ""),
            "status": status, "bytes": size, "duration_ms": round(1000 * seconds, 2),
            "client": environ.get("REMOTE_ADDR", "")}))

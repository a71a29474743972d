"""A request body that stops arriving ends its request with 400 instead of a hung thread.

gunicorn reads a request body with blocking ``recv`` calls and no time limit: a
client that announces ``Content-Length: 1000`` and sends ten bytes, then keeps the
connection open, holds a worker thread for ever (four such connections stop a
worker with four threads). :class:`BodyTimeout` wraps the WSGI application: while
the application reads the request (until it calls ``start_response``) the
connection's socket (``environ["gunicorn.socket"]``) has a timeout of
``REQUEST_BODY_IDLE_TIMEOUT`` seconds per read, and a read that times out or finds
the connection closed becomes werkzeug's ``ClientDisconnected`` (400, rendered by the
HTTP edge like every client error). The answer is sent without a time limit, so a
slow client still gets a long streamed result; gunicorn then closes the connection,
whose remaining body never came.

Without gunicorn (the Flask test client, another server) there is no
``gunicorn.socket`` and nothing changes.
"""
from __future__ import annotations

from werkzeug.exceptions import ClientDisconnected

__all__ = ["BodyTimeout"]


class _Input:
    """``wsgi.input`` whose reads turn a timeout or a reset into ClientDisconnected."""

    def __init__(self, stream, seconds: float):
        self.stream = stream
        self.seconds = seconds

    def _guard(self, method, *args):
        try:
            return method(*args)
        except (TimeoutError, ConnectionError) as exc:
            raise ClientDisconnected(
                f"the request body stopped arriving: nothing for {self.seconds:g} s "
                f"(REQUEST_BODY_IDLE_TIMEOUT) or the connection closed ({exc or 'timeout'})"
            ) from None

    def read(self, *args):
        return self._guard(self.stream.read, *args)

    def readline(self, *args):
        return self._guard(self.stream.readline, *args)

    def readlines(self, *args):
        return self._guard(self.stream.readlines, *args)

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line


class BodyTimeout:
    """WSGI middleware: a time limit on each read of the request (see the module)."""

    def __init__(self, app, seconds: float):
        self.app = app
        self.seconds = float(seconds)

    def __call__(self, environ, start_response):
        sock = environ.get("gunicorn.socket")
        if sock is None or self.seconds <= 0:
            return self.app(environ, start_response)
        sock.settimeout(self.seconds)
        environ["wsgi.input"] = _Input(environ["wsgi.input"], self.seconds)

        def start(status, headers, exc_info=None):
            sock.settimeout(None)          # the answer: as long as the client reads
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, start)
        finally:
            if sock.gettimeout() is not None and not _closed(sock):
                sock.settimeout(None)


def _closed(sock) -> bool:
    return sock.fileno() < 0

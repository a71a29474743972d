"""Time limits that agree: gunicorn, run as documented (``-c python:archive.gunicorn_conf``),
never cuts a request before the archive's own limits do.

gunicorn's worker timeout is shrunk to 2 s here (the command line overrides the
configuration module), far below what each request takes: a blocking UWS WAIT, a
long synchronous query, a large result read slowly by the client. Each must arrive
whole, and gunicorn must log no WORKER TIMEOUT. A request whose Content-Length
promises more than its body brings ends with 400 once REQUEST_BODY_IDLE_TIMEOUT
passes, and the threads it held serve the next requests.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import pytest
import requests

from conftest import BACKENDS, ROOT, new_database_url
from helpers import free_port
from ingest_helpers import count

pytestmark = pytest.mark.e2e

GUNICORN_TIMEOUT = 2          # seconds: gunicorn's worker timeout in these tests
WAIT_CAP = 5                  # ASYNC_WAIT_CAP
BODY_IDLE = 1                 # REQUEST_BODY_IDLE_TIMEOUT
THREADS = 3
ROWS = 300
# ~10^8 combinations: 3-4 s on PostgreSQL, ~9 s on SQLite on a quiet machine
LONG_QUERY = ("SELECT COUNT(*) AS n FROM extras.aperiodic AS a, extras.aperiodic AS b, "
              "extras.periodic AS p, extras.transients AS t "
              "WHERE a.ra + b.ra + p.ra + t.ra >= 0")


@pytest.fixture(scope="module", params=BACKENDS)
def small_archive(request, tmp_path_factory):
    from archive.config import load_config
    from ingest.demo import build_demo
    data_dir = tmp_path_factory.mktemp(f"timeouts-{request.param}")
    config = load_config({"DATA_DIR": str(data_dir),
                          "DATABASE_URL": new_database_url(request.param, data_dir)},
                         environ={})
    build_demo(config, rows=ROWS, seed=11, workers=1, products=False)
    return config


@pytest.fixture(scope="module")
def server(small_archive, tmp_path_factory):
    """gunicorn with the archive's configuration module, its worker timeout shrunk."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    env = dict(os.environ, EXTRAS_ARCHIVE_DATA_DIR=small_archive["DATA_DIR"],
               EXTRAS_ARCHIVE_DATABASE_URL=small_archive["DATABASE_URL"],
               EXTRAS_ARCHIVE_ASYNC_WAIT_CAP=str(WAIT_CAP),
               EXTRAS_ARCHIVE_QUERY_TIMEOUT="120",
               EXTRAS_ARCHIVE_REQUEST_BODY_IDLE_TIMEOUT=str(BODY_IDLE),
               EXTRAS_ARCHIVE_ASYNC_WORKER_IN_PROCESS="false")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:archive.gunicorn_conf",
             "--workers", "1", "--threads", str(THREADS), "--timeout", str(GUNICORN_TIMEOUT),
             "--bind", f"127.0.0.1:{port}", "wsgi:app"],
            cwd=ROOT, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, log_path.read_text()[-3000:]
        try:
            if requests.get(base + "/tap/availability", timeout=5).status_code == 200:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "gunicorn did not start"
        time.sleep(0.3)
    yield base, port, log_path
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _no_worker_timeout(log_path):
    text = log_path.read_text()
    assert "WORKER TIMEOUT" not in text, text[-3000:]
    assert f"worker timeout {GUNICORN_TIMEOUT} s" in text     # the settings applied


def test_gunicorn_runs_gthread_workers(server):
    _base, _port, log_path = server
    text = log_path.read_text()
    assert "Using worker: gthread" in text
    assert f"QUERY_TIMEOUT 120 s, ASYNC_WAIT_CAP {WAIT_CAP} s" in text


def test_wait_outlasts_the_worker_timeout(server):
    base, _port, log_path = server
    r = requests.post(base + "/tap/async", data={"LANG": "ADQL", "QUERY": "SELECT TOP 1 ra "
                                                  "FROM extras.aperiodic"},
                      allow_redirects=False, timeout=10)
    assert r.status_code == 303
    job = r.headers["Location"]
    started = time.monotonic()
    r = requests.get(job, params={"WAIT": "4"}, timeout=30)       # PENDING: blocks 4 s
    took = time.monotonic() - started
    assert r.status_code == 200 and "PENDING" in r.text
    assert 4 - 0.2 <= took < 4 + 3 and took > 1.5 * GUNICORN_TIMEOUT
    # a WAIT longer than ASYNC_WAIT_CAP lasts the cap: the archive's limit applies
    started = time.monotonic()
    r = requests.get(job, params={"WAIT": "60"}, timeout=60)
    took = time.monotonic() - started
    assert r.status_code == 200 and "PENDING" in r.text
    assert WAIT_CAP - 0.2 <= took < WAIT_CAP + 3
    _no_worker_timeout(log_path)


def test_long_sync_query_is_not_cut(server, small_archive):
    base, _port, log_path = server
    started = time.monotonic()
    r = requests.get(base + "/tap/sync", params={"LANG": "ADQL", "QUERY": LONG_QUERY,
                                                 "FORMAT": "csv"}, timeout=200)
    took = time.monotonic() - started
    assert r.status_code == 200, r.text[:500]
    expected = ROWS * ROWS * count(small_archive, "periodic") * count(small_archive,
                                                                     "transients")
    assert r.text.split() == ["n", str(expected)]
    assert took > GUNICORN_TIMEOUT, f"the query took only {took:.1f} s: it proves nothing"
    _no_worker_timeout(log_path)


def test_slow_reader_gets_the_whole_result(server):
    base, _port, log_path = server
    # about 40 MB: far more than the socket buffers hold, so the worker streams for as
    # long as the client reads
    query = "SELECT a.*, b.ra FROM extras.aperiodic AS a, extras.aperiodic AS b"
    started = time.monotonic()
    lines = size = 0
    with requests.get(base + "/tap/sync", params={"LANG": "ADQL", "QUERY": query,
                                                  "FORMAT": "csv", "MAXREC": "1000000"},
                      stream=True, timeout=60) as r:
        assert r.status_code == 200
        for chunk in r.iter_content(1024 * 1024):
            size += len(chunk)
            lines += chunk.count(b"\n")
            time.sleep(0.15)                      # a slow client: ~4 MB/s
    took = time.monotonic() - started
    assert lines == 1 + ROWS * ROWS                # header and every row: nothing cut
    assert size > 20e6 and took > 2 * GUNICORN_TIMEOUT, f"{size} bytes read in {took:.1f} s"
    _no_worker_timeout(log_path)


def _stalled_post(port: int) -> socket.socket:
    """A POST announcing 1000 bytes of body and sending 24, the connection kept open."""
    sock = socket.create_connection(("127.0.0.1", port))
    body = b"LANG=ADQL&QUERY=SELECT+1"
    sock.sendall(b"POST /tap/sync HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/x-www-form-urlencoded\r\n"
                 b"Content-Length: 1000\r\n\r\n" + body)
    return sock


def _read_answer(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while b"</VOTABLE>" not in data:
            part = sock.recv(65536)
            if not part:
                break
            data += part
    except TimeoutError:
        pass
    return data


def test_short_body_is_dropped_cleanly(server):
    base, port, log_path = server
    # as many stalled requests as the worker has threads: without a limit on the body
    # they would hold every thread for ever
    socks = [_stalled_post(port) for _ in range(THREADS)]
    started = time.monotonic()
    try:
        answers = [_read_answer(s, 20) for s in socks]
    finally:
        for s in socks:
            s.close()
    took = time.monotonic() - started
    for answer in answers:
        status = answer.split(b"\r\n", 1)[0]
        assert re.match(rb"HTTP/1\.1 400 ", status), answer[:300]
        assert b"REQUEST_BODY_IDLE_TIMEOUT" in answer and b"500" not in status
    assert took < 15
    # the threads are free again: the next requests are served at once
    for _ in range(THREADS + 1):
        r = requests.get(base + "/tap/sync", params={
            "LANG": "ADQL", "QUERY": "SELECT COUNT(*) AS n FROM extras.aperiodic",
            "FORMAT": "csv"}, timeout=10)
        assert r.status_code == 200 and r.text.split() == ["n", str(ROWS)]
    assert "Traceback" not in log_path.read_text()


def test_query_stopped_at_the_limit_names_the_setting(small_archive):
    from archive import create_app
    from archive.db import get_db
    app = create_app({**small_archive, "QUERY_TIMEOUT": 0.3, "ASYNC_WORKER_IN_PROCESS": False,
                      "TESTING": True})
    try:
        r = app.test_client().get("/tap/sync", query_string={
            "LANG": "ADQL", "QUERY": LONG_QUERY, "FORMAT": "csv"})
    finally:
        get_db(app).dispose()
    assert r.status_code == 400
    assert "limit of 0.3 s (QUERY_TIMEOUT)" in r.get_data(as_text=True)


def test_sync_worker_is_refused(small_archive):
    """The sync worker (`-k sync` with one thread; with more gunicorn runs gthread anyway)
    would cut every long request: the configuration module refuses it."""
    env = dict(os.environ, EXTRAS_ARCHIVE_DATA_DIR=small_archive["DATA_DIR"],
               EXTRAS_ARCHIVE_DATABASE_URL=small_archive["DATABASE_URL"])
    proc = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "python:archive.gunicorn_conf", "-k", "sync",
         "--threads", "1",
         "--bind", f"127.0.0.1:{free_port()}", "wsgi:app"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "needs gunicorn's gthread worker (got 'sync')" in proc.stdout + proc.stderr


def test_worker_timeout_is_derived_from_the_limits():
    from archive.config import load_config
    from archive.gunicorn_conf import WORKER_TIMEOUT_MARGIN, worker_timeout
    config = load_config({"DATA_DIR": "/nonexistent", "QUERY_TIMEOUT": 200.5,
                          "ASYNC_WAIT_CAP": 50}, environ={})
    assert worker_timeout(config) == 201 + WORKER_TIMEOUT_MARGIN
    config.update(QUERY_TIMEOUT=10, ASYNC_WAIT_CAP=75)
    assert worker_timeout(config) == 75 + WORKER_TIMEOUT_MARGIN

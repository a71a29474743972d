"""Progress of long commands (archive.progress): one line per step on stderr when it is
not a terminal, bars on a terminal; ``serve`` says what it does and refuses a busy port."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import pytest
import requests

from archive.progress import Progress
from conftest import ROOT
from helpers import free_port
from helpers import ArchiveRunner
from ingest_helpers import count, file_table, synthetic, write

SECONDS = r"\d+\.\d s"


def _run(config, *args):
    return ArchiveRunner().invoke(["--data-dir", config["DATA_DIR"],
                                   "--database-url", config["DATABASE_URL"], *args])


def _steps(stderr: str, prefix: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(prefix + ": ")]


def _assert_in_order(lines: list[str], patterns: list[str]) -> None:
    """Each pattern matches a whole line, in this order (other lines may come between)."""
    at = 0
    for pattern in patterns:
        for i in range(at, len(lines)):
            if re.fullmatch(pattern, lines[i]):
                at = i + 1
                break
        else:
            raise AssertionError(f"no line {pattern!r} after line {at} in:\n" + "\n".join(lines))


def test_ingest_catalogue_steps(empty_config, tmp_path):
    synth = synthetic(500)
    path = write(file_table("aperiodic", synth.aperiodic), tmp_path / "a.fits", "fits")
    result = _run(empty_config, "ingest", "catalogue", str(path), "--catalogue", "aperiodic")
    assert result.exit_code == 0, result.output
    lines = _steps(result.stderr, "ingest")
    _assert_in_order(lines, [
        rf"ingest: reading a\.fits: {SECONDS}",
        rf"ingest: validating 500 rows for aperiodic: {SECONDS}",
        rf"ingest: loading aperiodic: 500/500 rows, {SECONDS}",
        rf"ingest: indexing aperiodic: {SECONDS}",
        rf"ingest: committing aperiodic: {SECONDS}"])
    assert len(lines) == 5                      # one line per step, no bar
    assert "500 rows ingested into aperiodic" in result.stdout


def test_failed_step_says_so(empty_config, tmp_path):
    synth = synthetic(200)
    table = file_table("aperiodic", synth.aperiodic)
    table["DEC"][3] = 95.0
    path = write(table, tmp_path / "bad.fits", "fits")
    result = _run(empty_config, "ingest", "catalogue", str(path), "--catalogue", "aperiodic")
    assert result.exit_code == 1
    lines = _steps(result.stderr, "ingest")
    assert re.fullmatch(rf"ingest: reading bad\.fits: {SECONDS}", lines[0])
    assert re.fullmatch(rf"ingest: validating 200 rows for aperiodic failed after {SECONDS}",
                        lines[1])
    assert len(lines) == 2


def test_demo_and_ingest_products_steps(empty_config):
    result = _run(empty_config, "demo", "--rows", "100", "--workers", "2")
    assert result.exit_code == 0, result.output
    lines = _steps(result.stderr, "demo")
    products = empty_config["PRODUCTS_DIR"]
    patterns = [
        r"demo: building the demo archive in .* \(100 rows\)",
        rf"demo: opening the database: {SECONDS}",
        rf"demo: removing the previous catalogue and product rows: {SECONDS}",
        rf"demo: generating 100 synthetic detections \(seed 42\): {SECONDS}",
        rf"demo: writing the catalogue files: 6/6 files, {SECONDS}"]
    for name, file in [("aperiodic", "extras_aperiodic.fits"), ("periodic", "extras_periodic.fits"),
                       ("longterm", "extras_longterm.fits"),
                       ("longterm_points", "extras_longterm_points.fits"),
                       ("classification", "extras_classification.vot"),
                       ("transients", "extras_transients.csv")]:
        patterns += [rf"demo: reading {re.escape(file)}: {SECONDS}",
                     rf"demo: validating (\d+) rows for {name}: {SECONDS}",
                     rf"demo: loading {name}: (\d+)/\1 rows, {SECONDS}",
                     rf"demo: indexing {name}: {SECONDS}",
                     rf"demo: committing {name}: {SECONDS}"]
    patterns += [rf"demo: writing the product files: [1-9]\d* files, {SECONDS}",
                 rf"demo: scanning {re.escape(products)}: [1-9]\d* files, {SECONDS}",
                 rf"demo: reading new and changed files: (\d+)/\1 files, {SECONDS}",
                 rf"demo: drawing quick-looks: ([1-9]\d*)/\1 files, {SECONDS}",
                 rf"demo: registering products and ObsCore rows: (\d+)/\1 rows, {SECONDS}"]
    _assert_in_order(lines, patterns)
    assert len(lines) == len(patterns)
    assert re.search(r"^done in \d+\.\d s$", result.stdout, re.M)

    # a second run of the product ingest: everything is known, nothing read or drawn
    result = _run(empty_config, "ingest", "products")
    assert result.exit_code == 0, result.output
    files = count(empty_config, "products")
    _assert_in_order(_steps(result.stderr, "ingest"), [
        rf"ingest: scanning {re.escape(products)}: {files} files, {SECONDS}",
        rf"ingest: reading new and changed files: 0/0 files, {SECONDS}",
        rf"ingest: registering products and ObsCore rows: 0/0 rows, {SECONDS}"])


def test_bars_on_a_terminal():
    """On a terminal a counted step is a click progress bar, then its line."""
    master, slave = os.openpty()
    with open(slave, "w", closefd=True) as tty:
        progress = Progress("ingest", stream=tty)
        assert progress._is_tty()
        with progress.step("loading aperiodic", total=4, unit="rows"):
            for _ in range(4):
                progress.advance()
        with progress.step("committing aperiodic"):
            pass
    out = b""
    while True:
        try:
            part = os.read(master, 65536)
        except OSError:
            break
        if not part:
            break
        out += part
    os.close(master)
    text = out.decode()
    assert re.search(r"ingest: loading aperiodic +\[-+\] +0/4", text)      # the bar ...
    assert re.search(r"#\] +4/4", text)                                    # ... filled
    assert re.search(rf"ingest: loading aperiodic: 4/4 rows, {SECONDS}", text)
    assert re.search(rf"ingest: committing aperiodic: {SECONDS}", text)


def test_progress_across_processes():
    """A step reported from a forked process (the SQLite load) arrives as if local."""
    import io
    import multiprocessing
    from archive.progress import Forwarder

    def child(conn):
        forward = Forwarder(conn)
        with forward.step("loading t", total=3, unit="rows"):
            forward.advance(2)
            forward(1, 3)
        conn.close()

    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=child, args=(child_end,))
    proc.start()
    child_end.close()
    out = io.StringIO()
    progress = Progress("x", stream=out, tty=False)
    while True:
        try:
            message = parent_end.recv()
        except EOFError:
            break
        assert message[0] == "progress"
        progress.replay(message[1:])
    proc.join()
    assert re.fullmatch(rf"x: loading t: 3/3 rows, {SECONDS}\n", out.getvalue())


# -- serve ------------------------------------------------------------------------------

def test_serve_on_a_busy_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = ArchiveRunner().invoke(["--data-dir", str(tmp_path), "serve",
                                         "--bind", f"127.0.0.1:{port}"])
    assert result.exit_code == 1
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1
    assert f"port {port} on 127.0.0.1 is already in use" in error[0]
    suggested = int(re.search(r"e\.g\. --bind 127\.0\.0\.1:(\d+), free now", error[0]).group(1))
    assert suggested > port
    lines = _steps(result.stderr, "serve")
    _assert_in_order(lines, [rf"serve: checking the archive in .*: {SECONDS}",
                             rf"serve: opening the database: {SECONDS}",
                             rf"serve: checking that 127\.0\.0\.1:{port} is free: {SECONDS}"])


def test_serve_bad_bind(tmp_path):
    result = ArchiveRunner().invoke(["--data-dir", str(tmp_path), "serve", "--bind", "localhost"])
    assert result.exit_code == 1
    assert "--bind 'localhost': expected HOST:PORT" in result.output


def test_serve_says_what_it_does(tmp_path):
    from archive.config import load_config
    from archive.gunicorn_conf import worker_timeout
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXTRAS_ARCHIVE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "archive.cli", "--data-dir", str(data), "serve", "--bind",
         f"127.0.0.1:{port}", "--workers", "1", "--threads", "2"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                if requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.3)
        time.sleep(0.5)
    finally:
        proc.terminate()
        try:
            _, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
    timeout = worker_timeout(load_config({"DATA_DIR": str(data)}, environ={}))
    lines = stderr.splitlines()
    _assert_in_order(lines, [
        rf"serve: checking the archive in {re.escape(str(data))}: {SECONDS}",
        rf"serve: opening the database: {SECONDS}",
        rf"serve: checking that 127\.0\.0\.1:{port} is free: {SECONDS}",
        rf"serve: starting gunicorn on http://127\.0\.0\.1:{port}/ \(1 workers x 2 threads, "
        rf"worker timeout {timeout} s from QUERY_TIMEOUT and ASYNC_WAIT_CAP\).*",
        r".*Using worker: gthread",
        rf".*extras-archive: 1 workers x 2 threads, worker timeout {timeout} s .*",
        r".*extras-archive: worker \d+ ready, \d+\.\d s after the start"])

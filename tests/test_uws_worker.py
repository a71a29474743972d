"""`extras-archive worker` processes: killed mid-query, several side by side (both backends).

The archive here has no in-process worker (ASYNC_WORKER_IN_PROCESS is false), so
only the worker processes started by the tests run jobs.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archive.db import Database
from archive.tap import uws

ROOT = Path(__file__).resolve().parent.parent
SMALL = "SELECT TOP 3 extras_id FROM extras.aperiodic ORDER BY extras_id"
SLOW = ("SELECT COUNT(*) AS n FROM extras.aperiodic AS a, extras.aperiodic AS b, "
        "extras.longterm AS c WHERE a.ra * b.dec + c.ra > 100000")


@pytest.fixture
def archive(empty_config):
    """A small archive of its own: no web server or in-process worker knows it."""
    from ingest.demo import build_demo
    config = dict(empty_config, ASYNC_WORKER_IN_PROCESS=False)
    build_demo(config, rows=400, seed=3, workers=1, products=False, previews=False)
    db = Database(config["DATABASE_URL"])
    yield db, config
    db.dispose()


def start_worker(config, **settings) -> subprocess.Popen:
    env = dict(os.environ, EXTRAS_ARCHIVE_DATA_DIR=config["DATA_DIR"],
               EXTRAS_ARCHIVE_DATABASE_URL=config["DATABASE_URL"],
               EXTRAS_ARCHIVE_ASYNC_POLL_INTERVAL="0.1",
               EXTRAS_ARCHIVE_ASYNC_HEARTBEAT_INTERVAL="0.5",
               EXTRAS_ARCHIVE_ASYNC_SWEEP_INTERVAL="1.0",
               **{f"EXTRAS_ARCHIVE_{k}": v for k, v in settings.items()})
    return subprocess.Popen([sys.executable, "-m", "archive.cli", "worker"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.stdout.read().decode(errors="replace")


def wait_for(db, job_id, phases, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = uws.get_job(db, job_id)
        if job.phase in phases:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} stayed {uws.get_job(db, job_id).phase}")


def test_killed_worker_job_is_rerun_or_failed_never_stuck(archive):
    db, config = archive
    job = uws.create_job(db, config, [("LANG", "ADQL"), ("QUERY", SLOW), ("PHASE", "RUN")])
    first = start_worker(config)
    try:
        running = wait_for(db, job.job_id, {"EXECUTING", "COMPLETED", "ERROR"}, 60)
        assert running.phase == "EXECUTING", running.error
        assert running.worker.split(":")[1] == str(first.pid)
        time.sleep(0.3)
        first.send_signal(signal.SIGKILL)         # mid-query
        first.wait()
        assert uws.get_job(db, job.job_id).phase == "EXECUTING"
        second = start_worker(config)
        try:
            # the new worker notices at once that the old one is gone, re-queues the job
            # (first attempt) and runs it again
            final = wait_for(db, job.job_id, {"COMPLETED", "ERROR"}, 300)
        finally:
            log = stop(second)
        assert final.phase in ("COMPLETED", "ERROR"), log
        assert final.attempts == 2
        assert str(second.pid) in final.worker or final.phase == "ERROR"
        if final.phase == "COMPLETED":
            assert (uws.job_dir(config, job.job_id) / final.result_file).is_file()
    finally:
        stop(first)


def test_two_workers_never_run_the_same_job(archive):
    db, config = archive
    jobs = [uws.create_job(db, config, [("LANG", "ADQL"), ("QUERY", SMALL), ("PHASE", "RUN")])
            for _ in range(16)]
    workers = [start_worker(config), start_worker(config)]
    try:
        done = [wait_for(db, j.job_id, {"COMPLETED", "ERROR"}, 180) for j in jobs]
    finally:
        logs = [stop(w) for w in workers]
    assert all(j.phase == "COMPLETED" for j in done), [j.error for j in done]
    assert all(j.attempts == 1 for j in done)          # each claimed exactly once
    pids = {j.worker.split(":")[1] for j in done}
    assert pids <= {str(w.pid) for w in workers}, logs


def test_worker_once_reports_an_empty_queue(archive):
    db, config = archive
    env = dict(os.environ, EXTRAS_ARCHIVE_DATA_DIR=config["DATA_DIR"],
               EXTRAS_ARCHIVE_DATABASE_URL=config["DATABASE_URL"])
    out = subprocess.run([sys.executable, "-m", "archive.cli", "worker", "--once"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "no job queued" in out.stdout


def test_silent_worker_loses_its_job_after_the_heartbeat_timeout(archive):
    """A worker that stops answering without dying (SIGSTOP: a frozen host, a network
    partition) holds its job only until ASYNC_HEARTBEAT_TIMEOUT: another worker then
    re-queues and runs it; when the silent one comes back, its result is refused."""
    db, config = archive
    job = uws.create_job(db, config, [("LANG", "ADQL"), ("QUERY", SLOW), ("PHASE", "RUN"),
                                      ("RESPONSEFORMAT", "csv")])
    first = start_worker(config, ASYNC_HEARTBEAT_TIMEOUT="3")
    second = None
    try:
        running = wait_for(db, job.job_id, {"EXECUTING", "COMPLETED", "ERROR"}, 60)
        assert running.phase == "EXECUTING" and str(first.pid) in running.worker
        first.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        second = start_worker(config, ASYNC_HEARTBEAT_TIMEOUT="3")
        again = wait_for(db, job.job_id, {"COMPLETED", "ERROR"}, 300)
        # re-queued once the heartbeat was older than 3 s (plus a 1 s sweep interval
        # and the second worker's start-up), not left EXECUTING
        assert again.phase == "COMPLETED", again.error
        assert again.attempts == 2 and str(second.pid) in again.worker
        first.send_signal(signal.SIGCONT)
        time.sleep(3)                     # the first worker wakes up, tries to finish
        after = uws.get_job(db, job.job_id)
        assert (after.phase, after.worker, after.end_time) == \
            ("COMPLETED", again.worker, again.end_time)
        assert time.monotonic() - stopped < 300
    finally:
        first.send_signal(signal.SIGCONT)
        log = stop(first)
        if second is not None:
            stop(second)
    assert "job %s claimed" % job.job_id in log

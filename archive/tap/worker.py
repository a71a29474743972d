"""The UWS worker: claims queued TAP jobs and executes them (no Flask).

``Worker.serve(stop)`` loops: it first sweeps (jobs whose worker died are
re-queued or ended in ERROR, jobs past their destruction time are deleted), then
claims the oldest QUEUED job, runs it and writes its result file, and repeats; with
nothing to do it sleeps ASYNC_POLL_INTERVAL or until ``notify()`` wakes it. While
a job runs, a heartbeat thread records that the worker is alive and notices when
the job was aborted, deleted or taken from it, or ran out of execution time.

It runs as ``extras-archive worker`` (any number of them, on any host sharing
the database) and, when ASYNC_WORKER_IN_PROCESS is true, as one daemon thread in
each web-server process (``start_in_process``). Claims are atomic
(``claims.claim_job``), so they never run the same job twice at once.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Mapping

from ..errors import ArchiveFault, QueryTimeout, TransientFault, describe
from ..params import Params
from . import claims, uws

__all__ = ["Worker", "execute_job", "notify", "start_in_process", "JobCancelled"]

log = logging.getLogger(__name__)

#: wakes the in-process workers when a job is queued by this process
_wake = threading.Event()
#: notified whenever a job this process runs changes phase (for blocking WAIT)
phase_changed = threading.Condition()


def notify() -> None:
    """Tell the workers of this process that a job was queued."""
    _wake.set()


def _announce() -> None:
    with phase_changed:
        phase_changed.notify_all()


class JobCancelled(Exception):
    """The job was aborted, deleted or taken over while it ran."""


class _Heartbeat(threading.Thread):
    """Beats while a job runs; sets ``reason`` when the job must stop."""

    def __init__(self, db, job: uws.Job, worker: str, interval: float):
        super().__init__(daemon=True, name=f"uws-heartbeat-{job.job_id}")
        self.db, self.job, self.worker, self.interval = db, job, worker, interval
        self.deadline = time.monotonic() + job.execution_duration
        self.done = threading.Event()
        self.reason: str | None = None
        self.runner = threading.get_ident()     # the thread running the job's query

    def stop(self, reason: str) -> None:
        """Mark the job as to be stopped and interrupt its running query."""
        from ..query import interrupt
        self.reason = reason
        interrupt(self.runner)

    def run(self):
        while not self.done.wait(self.interval):
            try:
                phase = claims.heartbeat(self.db, self.job.job_id, self.worker)
            except Exception:      # the database is unreachable for a moment: try again
                log.exception("heartbeat of job %s failed", self.job.job_id)
                continue
            if phase != uws.EXECUTING:
                self.stop("gone" if phase is None else phase)
                return
            if time.monotonic() > self.deadline:
                self.stop("overdue")
                return

    def check(self) -> None:
        if self.reason is not None:
            raise JobCancelled(self.reason)
        if time.monotonic() > self.deadline:
            self.reason = "overdue"
            raise JobCancelled("overdue")


def _job_files(config: Mapping, job: uws.Job) -> dict[str, Path]:
    return {name: uws.part_path(config, job.job_id, name) for name in job.files}


def execute_job(db, config: Mapping, job: uws.Job, worker: str,
                beat: _Heartbeat | None = None) -> str:
    """Run one claimed job to its end; returns the phase it ended in.

    Query errors end the job in ERROR with the message a client sees at /error;
    the job's execution duration is the query's time limit.
    """
    from .run import parse_request, run_query
    from .uploads import load_uploads
    check = beat.check if beat is not None else (lambda: None)
    folder = uws.job_dir(config, job.job_id)
    try:
        params = Params(job.parameters)
        request = parse_request(params, config)
        uploads = load_uploads(request.uploads, _job_files(config, job), config)
        check()
        remaining = max(1.0, job.execution_duration - (time.time() - _epoch(job.start_time)))
        job_config = dict(config, QUERY_TIMEOUT=remaining)
        result = run_query(request, db, job_config, uploads=uploads or None)
        if config.get("BASE_URL"):      # a worker has no request to take the host from
            from ..datalink.descriptor import add_descriptors
            add_descriptors(result, str(config["BASE_URL"]).rstrip("/") + "/datalink/links")
        fmt = request.format
        folder.mkdir(parents=True, exist_ok=True)
        name = "result" + (fmt.extension if fmt.extension.startswith(".") or not fmt.extension
                           else "." + fmt.extension)
        partial = folder / (name + ".part")
        size = 0
        # errors="raise": a failure mid-stream closes the document and is re-raised, so
        # the job ends in ERROR instead of COMPLETED with a truncated result
        stream = fmt.render(result, errors="raise")
        try:
            with open(partial, "wb") as out:
                for block in stream:
                    out.write(block)
                    size += len(block)
                    check()
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        check()
        os.replace(partial, folder / name)
        done = claims.complete_job(db, job.job_id, worker, result_file=name,
                                result_type=fmt.mime, rows=result.row_count,
                                overflow=bool(result.overflow), size=size)
        return uws.COMPLETED if done else _phase_now(db, job.job_id)
    except JobCancelled as exc:
        reason = str(exc)
        if reason == "overdue":
            claims.fail_job(db, job.job_id, worker,
                         f"the job ran longer than its execution duration of "
                         f"{job.execution_duration} s and was stopped; narrow the query "
                         "down or ask for a longer EXECUTIONDURATION")
        return _phase_now(db, job.job_id)
    except QueryTimeout:
        if beat is not None and beat.reason not in (None, "overdue"):
            return _phase_now(db, job.job_id)        # aborted or deleted meanwhile
        claims.fail_job(db, job.job_id, worker,
                     f"the query ran longer than the job's execution duration of "
                     f"{job.execution_duration} s and was stopped; narrow it down")
        return _phase_now(db, job.job_id)
    except TransientFault as exc:
        # a passing failure (the database restarted): run the job again, up to
        # ASYNC_MAX_ATTEMPTS times; if the database is still away this raises, and
        # the job comes back through the heartbeat timeout instead
        log.warning("job %s: %s; giving it back to the queue", job.job_id, exc.message)
        return claims.release_job(db, job.job_id, worker, config, exc.message)
    except ArchiveFault as exc:
        claims.fail_job(db, job.job_id, worker, exc.message, error_type="fatal")
        return _phase_now(db, job.job_id)
    except Exception as exc:       # a bug or a database failure: the job says so
        log.exception("job %s failed", job.job_id)
        claims.fail_job(db, job.job_id, worker,
                     f"the service failed while running the query: {describe(exc)}")
        return _phase_now(db, job.job_id)
    finally:
        for leftover in folder.glob("*.part") if folder.is_dir() else ():
            leftover.unlink(missing_ok=True)


def _epoch(when) -> float:
    from datetime import timezone
    return when.replace(tzinfo=timezone.utc).timestamp() if when is not None else time.time()


def _phase_now(db, job_id: str) -> str:
    try:
        return uws.get_job(db, job_id).phase
    except ArchiveFault:
        return "DELETED"


class Worker:
    """One worker: claims and runs jobs one at a time."""

    def __init__(self, db, config: Mapping, identity: str | None = None):
        self.db = db
        self.config = config
        self.identity = identity or claims.worker_identity()
        self._last_sweep = float("-inf")

    def sweep(self) -> None:
        """Recover jobs of dead workers and destroy expired jobs."""
        for job_id, phase in claims.recover_orphans(self.db, self.config):
            log.warning("job %s of a dead worker is now %s", job_id, phase)
        claims.destroy_expired(self.db, self.config)
        self._last_sweep = time.monotonic()

    def run_once(self) -> str | None:
        """Claim one job and run it; its final phase, or None if none was queued."""
        job = claims.claim_job(self.db, self.identity)
        if job is None:
            return None
        _announce()
        log.info("job %s claimed by %s (attempt %d)", job.job_id, self.identity, job.attempts)
        beat = _Heartbeat(self.db, job, self.identity,
                          float(self.config["ASYNC_HEARTBEAT_INTERVAL"]))
        beat.start()
        try:
            phase = execute_job(self.db, self.config, job, self.identity, beat)
            log.info("job %s ended %s", job.job_id, phase)
            return phase
        finally:
            beat.done.set()
            _announce()

    def serve(self, stop: threading.Event | None = None) -> None:
        """Work until ``stop`` is set (forever if None)."""
        stop = stop or threading.Event()
        poll = float(self.config["ASYNC_POLL_INTERVAL"])
        every = float(self.config["ASYNC_SWEEP_INTERVAL"])
        log.info("UWS worker %s started", self.identity)
        while not stop.is_set():
            try:
                if time.monotonic() - self._last_sweep >= every:
                    self.sweep()
                if self.run_once() is not None:
                    continue
            except Exception:      # keep serving: a database hiccup must not end the loop
                log.exception("UWS worker %s: error in the work loop", self.identity)
                stop.wait(min(5.0, every))
                continue
            _wake.wait(poll)
            _wake.clear()


_in_process_lock = threading.Lock()
_in_process: dict[tuple[int, str], tuple[threading.Thread, threading.Event]] = {}


def start_in_process(db, config: Mapping) -> threading.Thread | None:
    """Start this process's worker thread for the archive ``config`` names, once
    per process and database (safe after a fork, e.g. in each gunicorn worker);
    None if ASYNC_WORKER_IN_PROCESS is false."""
    if not config.get("ASYNC_WORKER_IN_PROCESS"):
        return None
    key = (os.getpid(), str(config["DATABASE_URL"]))
    with _in_process_lock:
        running = _in_process.get(key)
        if running is not None and running[0].is_alive():
            return running[0]
        stop = threading.Event()
        worker = Worker(db, config)
        thread = threading.Thread(target=worker.serve, args=(stop,), daemon=True,
                                  name=f"uws-worker-{key[0]}")
        thread.start()
        _in_process[key] = (thread, stop)
        return thread

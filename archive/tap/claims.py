"""The workers' side of the UWS job store: claiming, heartbeats, ending, recovery.

A claim is one UPDATE that only one process can win (with ``FOR UPDATE SKIP LOCKED``
on PostgreSQL), and every later change a worker makes is conditioned on its own id
still being the job's worker, so a job aborted, deleted or taken over meanwhile is
never overwritten. Workers send heartbeats; ``recover_orphans`` gives jobs whose
worker died back to the queue once, then ends them in ERROR, so no job stays
EXECUTING forever. No Flask.
"""
from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime
from typing import Mapping

import sqlalchemy as sa

from ..db import uws_jobs
from . import uws

__all__ = ["worker_identity", "pid_alive", "claim_job", "heartbeat", "complete_job",
           "fail_job", "release_job", "recover_orphans", "destroy_expired"]


def worker_identity() -> str:
    """A worker id: ``host:pid:token`` (the token tells apart threads and restarts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def pid_alive(pid: int) -> bool:
    """True if a process ``pid`` exists on this machine (zombies count as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def claim_job(db, worker: str) -> uws.Job | None:
    """Take the oldest uws.QUEUED job for ``worker``; None if there is none.

    One UPDATE whose WHERE clause requires the job to be still uws.QUEUED: if two
    workers pick the same job, the database lets only one of them change it. On
    PostgreSQL the candidate is chosen with FOR UPDATE SKIP LOCKED, so concurrent
    workers take different jobs instead of queueing on one row lock.
    """
    queued = sa.select(uws_jobs.c.job_id).where(uws_jobs.c.phase == uws.QUEUED)
    for _ in range(5):
        # a plain read first: an idle worker polling the queue never takes a write lock
        with db.engine.connect() as conn:
            if conn.execute(queued.limit(1)).first() is None:
                return None
        candidate = (queued.order_by(uws_jobs.c.creation_time, uws_jobs.c.job_id).limit(1)
                     .with_for_update(skip_locked=True).scalar_subquery())
        now = uws.utcnow()
        stmt = (uws_jobs.update()
                .where(uws_jobs.c.job_id == candidate, uws_jobs.c.phase == uws.QUEUED)
                .values(phase=uws.EXECUTING, worker=worker, start_time=now, heartbeat=now,
                        attempts=uws_jobs.c.attempts + 1)
                .returning(uws_jobs.c.job_id))
        with db.engine.begin() as conn:
            job_id = conn.execute(stmt).scalar()
        if job_id is not None:
            return uws.get_job(db, job_id)
        # another worker won the race for that job: look again
    return None


def heartbeat(db, job_id: str, worker: str) -> str | None:
    """Record that ``worker`` is alive; the job's phase now, None if the job is gone
    (or was taken from this worker)."""
    with db.engine.begin() as conn:
        uws.update_row(conn, job_id, sa.and_(uws_jobs.c.worker == worker,
                                      uws_jobs.c.phase == uws.EXECUTING), heartbeat=uws.utcnow())
        row = conn.execute(sa.select(uws_jobs.c.phase, uws_jobs.c.worker)
                           .where(uws_jobs.c.job_id == job_id)).first()
    if row is None or row.worker != worker:
        return None
    return row.phase


def complete_job(db, job_id: str, worker: str, *, result_file: str, result_type: str,
                 rows: int, overflow: bool, size: int) -> bool:
    """EXECUTING -> uws.COMPLETED, if ``worker`` still holds the job; False otherwise."""
    with db.engine.begin() as conn:
        return bool(uws.update_row(conn, job_id, sa.and_(uws_jobs.c.worker == worker,
                                                  uws_jobs.c.phase == uws.EXECUTING),
                            phase=uws.COMPLETED, end_time=uws.utcnow(), result_file=result_file,
                            result_type=result_type, result_rows=rows, overflow=overflow,
                            result_size=size))


def fail_job(db, job_id: str, worker: str | None, message: str, *,
             error_type: str = "fatal", phase: str = uws.ERROR) -> bool:
    """EXECUTING -> uws.ERROR (or uws.ABORTED) with ``message``, if ``worker`` still holds it."""
    cond = uws_jobs.c.phase == uws.EXECUTING
    if worker is not None:
        cond = sa.and_(cond, uws_jobs.c.worker == worker)
    with db.engine.begin() as conn:
        return bool(uws.update_row(conn, job_id, cond, phase=phase, end_time=uws.utcnow(),
                            error=message, error_type=error_type))


def release_job(db, job_id: str, worker: str, config: Mapping, message: str) -> str:
    """Give back a job whose run failed for a passing reason (the database connection
    was lost): QUEUED again if it has run fewer than ASYNC_MAX_ATTEMPTS times, else
    ERROR with ``message``; only while ``worker`` still holds it. The new phase."""
    held = sa.and_(uws_jobs.c.phase == uws.EXECUTING, uws_jobs.c.worker == worker)
    with db.engine.begin() as conn:
        if uws.update_row(conn, job_id, sa.and_(held, uws_jobs.c.attempts
                                                < int(config["ASYNC_MAX_ATTEMPTS"])),
                          phase=uws.QUEUED, worker=None, heartbeat=None, start_time=None):
            return uws.QUEUED
        uws.update_row(conn, job_id, held, phase=uws.ERROR, end_time=uws.utcnow(),
                       error=message, error_type="transient")
    return uws.get_job(db, job_id).phase


def _worker_dead(worker: str | None, beat: datetime | None, now: datetime,
                 timeout: float) -> bool:
    if beat is None or (now - beat).total_seconds() > timeout:
        return True
    host, _, rest = (worker or "").partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


def recover_orphans(db, config: Mapping) -> list[tuple[str, str]]:
    """Deal with uws.EXECUTING jobs whose worker died or that ran out of time.

    A worker is dead when its heartbeat is older than ASYNC_HEARTBEAT_TIMEOUT or,
    on this machine, when its process no longer exists. Its job goes back to the
    queue if it has been tried fewer than ASYNC_MAX_ATTEMPTS times, else it ends
    in uws.ERROR. A job running longer than its execution duration (plus a grace of
    one heartbeat timeout) ends in uws.ERROR even if its worker lives: the worker's
    later attempts to finish it are refused. Returns (job_id, new phase) pairs.
    """
    now = uws.utcnow()
    timeout = float(config["ASYNC_HEARTBEAT_TIMEOUT"])
    max_attempts = int(config["ASYNC_MAX_ATTEMPTS"])
    with db.engine.connect() as conn:
        rows = conn.execute(sa.select(uws_jobs.c.job_id, uws_jobs.c.worker,
                                      uws_jobs.c.heartbeat, uws_jobs.c.start_time,
                                      uws_jobs.c.execution_duration, uws_jobs.c.attempts)
                            .where(uws_jobs.c.phase == uws.EXECUTING)).all()
    changed = []
    for r in rows:
        held = sa.and_(uws_jobs.c.phase == uws.EXECUTING, uws_jobs.c.worker == r.worker)
        overdue = (r.start_time is not None and (now - r.start_time).total_seconds()
                   > r.execution_duration + timeout)
        if overdue:
            message = (f"the job ran longer than its execution duration of "
                       f"{r.execution_duration} s and was stopped")
            with db.engine.begin() as conn:
                if uws.update_row(conn, r.job_id, held, phase=uws.ERROR, end_time=now, error=message,
                           error_type="fatal"):
                    changed.append((r.job_id, uws.ERROR))
            continue
        if not _worker_dead(r.worker, r.heartbeat, now, timeout):
            continue
        with db.engine.begin() as conn:
            if (r.attempts or 0) < max_attempts:
                n = uws.update_row(conn, r.job_id, held, phase=uws.QUEUED, worker=None, heartbeat=None,
                            start_time=None)
                new = uws.QUEUED
            else:
                n = uws.update_row(conn, r.job_id, held, phase=uws.ERROR, end_time=now,
                            error_type="transient",
                            error=f"the worker executing this job stopped unexpectedly "
                                  f"({r.attempts} attempts); submit the job again, and "
                                  "if it fails again, simplify the query")
                new = uws.ERROR
        if n:
            changed.append((r.job_id, new))
    return changed


def destroy_expired(db, config: Mapping) -> list[str]:
    """Delete the jobs whose destruction time has passed, with their files."""
    now = uws.utcnow()
    with db.engine.connect() as conn:
        ids = conn.execute(sa.select(uws_jobs.c.job_id)
                           .where(uws_jobs.c.destruction <= now)).scalars().all()
    gone = []
    for job_id in ids:
        with db.engine.begin() as conn:
            n = conn.execute(uws_jobs.delete().where(uws_jobs.c.job_id == job_id,
                                                     uws_jobs.c.destruction <= now)).rowcount
        if n:
            uws.remove_files(config, job_id)
            gone.append(job_id)
    return gone

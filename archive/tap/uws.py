"""UWS 1.1 job store: jobs and their phases in the database, results in files.

No Flask. Every function takes the archive's ``Database`` (its read-write engine)
and the configuration dict. Jobs live in the ``uws_jobs`` table; the files of a
job (uploaded tables, the result) live in ``DATA_DIR/jobs/<job_id>/`` and go
away with the job.

Phases: PENDING -> (RUN) QUEUED -> (a worker claims it) EXECUTING -> COMPLETED |
ERROR | ABORTED. A claim is one UPDATE that only one process can win (with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL), and every later change a worker makes
is conditioned on its own id still being the job's worker, so a job aborted,
deleted or taken over meanwhile is never overwritten: the workers' side of the store
is ``archive.tap.claims``.
"""
from __future__ import annotations

import re
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO, Iterable, Mapping, Sequence

import sqlalchemy as sa

from ..db import uws_jobs
from ..errors import NotFoundFault, TooManyRequestsFault, TransientFault, UsageFault

__all__ = ["PENDING", "QUEUED", "EXECUTING", "COMPLETED", "ERROR", "ABORTED", "ACTIVE",
           "Job", "utcnow", "isoformat", "parse_datetime", "job_dir",
           "create_job", "get_job", "list_jobs", "update_parameters", "run_job",
           "abort_job", "delete_job", "set_execution_duration", "set_destruction",
           "update_row", "remove_files", "part_path", "check_queue",
           "JOB_ID_RE"]

PENDING, QUEUED, EXECUTING = "PENDING", "QUEUED", "EXECUTING"
COMPLETED, ERROR, ABORTED = "COMPLETED", "ERROR", "ABORTED"
HELD, SUSPENDED = "HELD", "SUSPENDED"
#: phases in which a job may still change by itself (WAIT blocks in these)
ACTIVE = frozenset({PENDING, QUEUED, EXECUTING, HELD, SUSPENDED})
ALL_PHASES = ("PENDING", "QUEUED", "EXECUTING", "COMPLETED", "ERROR", "ABORTED", "UNKNOWN",
              "HELD", "SUSPENDED", "ARCHIVED")

#: the ids this store hands out: 20 hex digits (also keeps paths safe)
JOB_ID_RE = re.compile(r"^[0-9a-f]{20}$")
#: parameters that steer UWS itself rather than the query
_CONTROL = {"phase", "executionduration", "destruction", "action"}
_MAX_RUNID = 64
#: longest multipart part name (in UTF-8 bytes) a job keeps: its file name is twice as long
_MAX_PART_NAME = 100


@dataclass
class Job:
    """One job as stored; ``parameters`` are (lower-case name, value) pairs in order."""

    job_id: str
    phase: str
    parameters: list[tuple[str, str]]
    creation_time: datetime
    execution_duration: int
    destruction: datetime
    run_id: str | None = None
    owner: str | None = None
    client: str | None = None
    files: list[str] = field(default_factory=list)
    start_time: datetime | None = None
    end_time: datetime | None = None
    quote: datetime | None = None
    error: str | None = None
    error_type: str | None = None
    worker: str | None = None
    heartbeat: datetime | None = None
    attempts: int = 0
    result_rows: int | None = None
    result_type: str | None = None
    result_file: str | None = None
    result_size: int | None = None
    overflow: bool | None = None

    @classmethod
    def from_row(cls, row) -> "Job":
        data = dict(row._mapping)
        data["parameters"] = [(str(k), str(v)) for k, v in data["parameters"] or []]
        data["files"] = list(data["files"] or [])
        data["attempts"] = data["attempts"] or 0
        return cls(**data)

    def values(self, name: str) -> list[str]:
        """All values of parameter ``name`` (case-insensitive), in order."""
        low = name.lower()
        return [v for k, v in self.parameters if k == low]

    def param(self, name: str, default: str | None = None) -> str | None:
        """The last value of parameter ``name`` (case-insensitive), or ``default``."""
        vals = self.values(name)
        return vals[-1] if vals else default

    def param_dict(self) -> dict[str, list[str]]:
        """Parameters as name -> list of values (names lower case)."""
        out: dict[str, list[str]] = {}
        for k, v in self.parameters:
            out.setdefault(k, []).append(v)
        return out


# -- time -----------------------------------------------------------------------------

def utcnow() -> datetime:
    """Now, as a naive UTC datetime at millisecond precision (what the table stores)."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def isoformat(value: datetime | None) -> str:
    """ISO 8601 with a Z, as UWS documents spell times ('' for None)."""
    if value is None:
        return ""
    return value.strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{value.microsecond // 1000:03d}Z" if value.microsecond else "Z")


def parse_datetime(text: str, what: str) -> datetime:
    """Parse an ISO 8601 date-time (naive means UTC) into naive UTC; UsageFault if bad."""
    raw = (text or "").strip()
    try:
        value = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
    except ValueError:
        raise UsageFault(f"{what}={text!r} is not an ISO 8601 date-time such as "
                         "2030-01-31T12:00:00Z") from None
    if value.tzinfo is not None:
        try:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:       # 0001-01-01T00:00:00+14:00 is before year 1 in UTC
            raise UsageFault(f"{what}={text!r} is outside the dates this service handles "
                             "(years 1 to 9999 in UTC)") from None
    return value


# -- files ----------------------------------------------------------------------------

def job_dir(config: Mapping, job_id: str) -> Path:
    """The directory of a job's files (not created here)."""
    if not JOB_ID_RE.match(job_id):
        raise NotFoundFault(f"there is no job {job_id!r}")
    jobs = config.get("JOBS_DIR") or Path(config["DATA_DIR"]) / "jobs"
    return Path(jobs) / job_id


def remove_files(config: Mapping, job_id: str) -> None:
    shutil.rmtree(job_dir(config, job_id), ignore_errors=True)


def _save_file(stream: BinaryIO, target: Path, limit: int, part: str) -> int:
    """Copy ``stream`` to ``target`` refusing more than ``limit`` bytes."""
    size = 0
    with open(target, "wb") as out:
        while True:
            block = stream.read(1 << 20)
            if not block:
                return size
            size += len(block)
            if size > limit:
                out.close()
                target.unlink(missing_ok=True)
                raise UsageFault(f"the uploaded part {part!r} is larger than the limit of "
                                 f"{limit} bytes (UPLOAD_MAX_BYTES)")
            out.write(block)


def part_path(config: Mapping, job_id: str, part: str) -> Path:
    """Where the uploaded multipart part ``part`` of a job is kept. The file is named
    from the part name's bytes in hex, so any part name (``..``, ``/``, ``CON``) is
    stored safely, under its own name in the job's parameters."""
    return job_dir(config, job_id) / "uploads" / ("part-" + part.encode("utf-8").hex())


def _save_files(config: Mapping, job_id: str, files: Mapping[str, BinaryIO]) -> list[str]:
    """Save the uploaded parts; if one fails, the ones saved by this call go again."""
    for name in files:
        if len(name.encode("utf-8")) > _MAX_PART_NAME:
            raise UsageFault(f"a multipart part name is {len(name.encode('utf-8'))} bytes "
                             f"long; at most {_MAX_PART_NAME} are allowed")
    saved: list[str] = []
    try:
        for name, stream in files.items():
            target = part_path(config, job_id, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            _save_file(stream, target, int(config["UPLOAD_MAX_BYTES"]), name)
            saved.append(name)
    except BaseException:
        for name in saved:
            part_path(config, job_id, name).unlink(missing_ok=True)
        raise
    return saved


# -- parameters -----------------------------------------------------------------------

def _normalise(params: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(str(k).lower(), str(v)) for k, v in params]


def _execution_duration(config: Mapping, raw: str | None) -> int:
    limit = int(config["ASYNC_EXECUTION_DURATION"])
    if raw is None or str(raw).strip() == "":
        return limit
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise UsageFault(f"EXECUTIONDURATION={raw!r} is not a whole number of seconds") from None
    if value < 0:
        raise UsageFault(f"EXECUTIONDURATION={raw!r} is negative")
    # 0 means "unlimited" in UWS; this service grants at most its configured limit
    return limit if value == 0 else min(value, limit)


def _destruction(config: Mapping, created: datetime, raw: str | None) -> datetime:
    latest = created + timedelta(days=float(config["ASYNC_DESTRUCTION_DAYS"]))
    if raw is None or str(raw).strip() == "":
        return latest
    return min(parse_datetime(raw, "DESTRUCTION"), latest)


def _run_id(params: Sequence[tuple[str, str]]) -> str | None:
    values = [v for k, v in params if k == "runid"]
    if not values:
        return None
    if len(values[-1]) > _MAX_RUNID:
        raise UsageFault(f"RUNID is {len(values[-1])} characters long; at most "
                         f"{_MAX_RUNID} are allowed")
    return values[-1]


# -- the store ------------------------------------------------------------------------

def check_queue(conn, config: Mapping, client: str | None) -> None:
    """Refuse one more QUEUED job when the queue is full: ASYNC_QUEUE_MAX jobs QUEUED
    or EXECUTING in the whole service (every app server and worker shares the table),
    or ASYNC_QUEUE_MAX_PER_CLIENT of them from ``client``; 0 means no limit.

    A count, not a lock: app servers creating jobs at the same instant may overshoot
    a limit by the number of requests in flight, which is harmless for its purpose
    (keeping one client from filling the queue)."""
    active = uws_jobs.c.phase.in_([QUEUED, EXECUTING])
    total_max = int(config.get("ASYNC_QUEUE_MAX") or 0)
    client_max = int(config.get("ASYNC_QUEUE_MAX_PER_CLIENT") or 0)
    if client is not None and client_max > 0:
        n = conn.execute(sa.select(sa.func.count()).select_from(uws_jobs)
                         .where(active, uws_jobs.c.client == client)).scalar_one()
        if n >= client_max:
            raise TooManyRequestsFault(
                f"you ({client}) already have {n} jobs queued or executing, the most one "
                f"client may have (ASYNC_QUEUE_MAX_PER_CLIENT={client_max}); wait until "
                "one finishes, then run this job")
    if total_max > 0:
        n = conn.execute(sa.select(sa.func.count()).select_from(uws_jobs)
                         .where(active)).scalar_one()
        if n >= total_max:
            raise TransientFault(
                f"the job queue is full: {n} jobs are queued or executing, the most this "
                f"service accepts (ASYNC_QUEUE_MAX={total_max}); try again later")


def create_job(db, config: Mapping, params: Iterable[tuple[str, str]], *,
               files: Mapping[str, BinaryIO] | None = None, owner: str | None = None,
               client: str | None = None) -> Job:
    """Create a PENDING job (QUEUED at once if the parameters say PHASE=RUN).

    Only what concerns UWS itself is checked here (RUNID, EXECUTIONDURATION,
    DESTRUCTION, PHASE, the size of uploaded parts, the queue limits for PHASE=RUN);
    problems of the query are reported when the job runs, as TAP asks. ``client``
    (the requester's address) counts the job against ASYNC_QUEUE_MAX_PER_CLIENT.
    """
    params = _normalise(params)
    control = {k: v for k, v in params if k in _CONTROL}
    phase_req = control.get("phase", "").strip().upper()
    if phase_req not in ("", "RUN"):
        raise UsageFault(f"PHASE={control['phase']!r} cannot be given when creating a job "
                         "(only PHASE=RUN)")
    query_params = [(k, v) for k, v in params if k not in _CONTROL]
    now = utcnow()
    job_id = secrets.token_hex(10)
    row = {
        "job_id": job_id,
        "run_id": _run_id(query_params),
        "owner": owner,
        "client": client,
        "phase": QUEUED if phase_req == "RUN" else PENDING,
        "parameters": [list(p) for p in query_params],
        "files": [],
        "creation_time": now,
        "execution_duration": _execution_duration(config, control.get("executionduration")),
        "destruction": _destruction(config, now, control.get("destruction")),
        "attempts": 0,
    }
    try:
        row["files"] = _save_files(config, job_id, files or {})
        with db.engine.begin() as conn:
            if row["phase"] == QUEUED:
                check_queue(conn, config, client)
            conn.execute(uws_jobs.insert().values(**row))
    except BaseException:
        remove_files(config, job_id)
        raise
    return get_job(db, job_id)


def get_job(db, job_id: str) -> Job:
    """The job ``job_id``; NotFoundFault if there is none (or it was deleted)."""
    if not JOB_ID_RE.match(job_id or ""):
        raise NotFoundFault(f"there is no job {job_id!r}")
    with db.engine.connect() as conn:
        row = conn.execute(sa.select(uws_jobs).where(uws_jobs.c.job_id == job_id)).first()
    if row is None:
        raise NotFoundFault(f"there is no job {job_id!r}; it may have been deleted or "
                            "destroyed")
    return Job.from_row(row)


def list_jobs(db, *, phases: Sequence[str] = (), after: datetime | None = None,
              last: int | None = None, limit: int = 1000) -> list[Job]:
    """Jobs for the job list, most recent first (UWS 1.1 PHASE, AFTER and LAST filters).

    ``limit`` caps an unfiltered list so that it stays cheap to produce.
    """
    for p in phases:
        if p not in ALL_PHASES:
            raise UsageFault(f"PHASE={p!r} is not a UWS phase; use one of "
                             + ", ".join(ALL_PHASES))
    cols = [uws_jobs.c[n] for n in ("job_id", "run_id", "owner", "phase", "creation_time")]
    stmt = sa.select(*cols).order_by(uws_jobs.c.creation_time.desc(), uws_jobs.c.job_id)
    if phases:
        stmt = stmt.where(uws_jobs.c.phase.in_(list(phases)))
    if after is not None:
        stmt = stmt.where(uws_jobs.c.creation_time > after)
    n = limit if last is None else min(last, limit)
    stmt = stmt.limit(n)
    with db.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [Job(job_id=r.job_id, phase=r.phase, parameters=[], run_id=r.run_id,
                owner=r.owner, creation_time=r.creation_time, execution_duration=0,
                destruction=r.creation_time) for r in rows]


def update_row(conn, job_id: str, where=None, **values) -> int:
    stmt = uws_jobs.update().where(uws_jobs.c.job_id == job_id)
    if where is not None:
        stmt = stmt.where(where)
    return conn.execute(stmt.values(**values)).rowcount


def update_parameters(db, config: Mapping, job_id: str, params: Iterable[tuple[str, str]],
                      files: Mapping[str, BinaryIO] | None = None) -> Job:
    """Set parameters of a PENDING job: a name given replaces its earlier values,
    except UPLOAD, whose values are added."""
    params = _normalise(params)
    job = get_job(db, job_id)
    if job.phase != PENDING:
        raise UsageFault(f"the parameters of job {job_id} cannot change: it is {job.phase}, "
                         "and parameters may change only while a job is PENDING")
    control = {k: v for k, v in params if k in _CONTROL}
    new = [(k, v) for k, v in params if k not in _CONTROL]
    replaced = {k for k, _ in new if k != "upload"}
    merged = [(k, v) for k, v in job.parameters if k not in replaced] + new
    values = {"parameters": [list(p) for p in merged], "run_id": _run_id(merged)}
    if "executionduration" in control:
        values["execution_duration"] = _execution_duration(config, control["executionduration"])
    if "destruction" in control:
        values["destruction"] = _destruction(config, job.creation_time, control["destruction"])
    saved = _save_files(config, job_id, files or {})
    if saved:
        values["files"] = sorted(set(job.files) | set(saved))
    try:
        with db.engine.begin() as conn:
            if not update_row(conn, job_id, uws_jobs.c.phase == PENDING, **values):
                raise UsageFault(f"the parameters of job {job_id} cannot change any more: "
                                 "it left the PENDING phase meanwhile")
    except BaseException:
        # parts that replaced a part of the same name stay: the job uses that name
        for name in set(saved) - set(job.files):
            part_path(config, job_id, name).unlink(missing_ok=True)
        raise
    if control.get("phase", "").strip().upper() == "RUN":
        run_job(db, job_id, config)
    return get_job(db, job_id)


def run_job(db, job_id: str, config: Mapping | None = None) -> Job:
    """PHASE=RUN: a PENDING (or HELD) job becomes QUEUED, within the queue limits of
    ``config`` (``check_queue``); other phases are left alone."""
    job = get_job(db, job_id)
    with db.engine.begin() as conn:
        if config is not None and job.phase in (PENDING, HELD):
            check_queue(conn, config, job.client)
        update_row(conn, job_id, uws_jobs.c.phase.in_([PENDING, HELD]), phase=QUEUED)
    return get_job(db, job_id)


def abort_job(db, job_id: str) -> Job:
    """PHASE=ABORT: an active job becomes ABORTED (its worker notices at its next
    heartbeat and stops); finished jobs are left alone."""
    get_job(db, job_id)
    with db.engine.begin() as conn:
        update_row(conn, job_id, uws_jobs.c.phase.in_(sorted(ACTIVE)), phase=ABORTED,
                end_time=utcnow())
    return get_job(db, job_id)


def delete_job(db, config: Mapping, job_id: str) -> None:
    """Delete the job and its files; NotFoundFault if there is no such job."""
    get_job(db, job_id)
    with db.engine.begin() as conn:
        conn.execute(uws_jobs.delete().where(uws_jobs.c.job_id == job_id))
    remove_files(config, job_id)


def set_execution_duration(db, config: Mapping, job_id: str, raw: str) -> Job:
    """POST EXECUTIONDURATION: allowed before the job executes; capped by the config."""
    job = get_job(db, job_id)
    if job.phase not in (PENDING, QUEUED, HELD):
        raise UsageFault(f"the execution duration of job {job_id} cannot change: it is "
                         f"{job.phase}")
    with db.engine.begin() as conn:
        update_row(conn, job_id, execution_duration=_execution_duration(config, raw))
    return get_job(db, job_id)


def set_destruction(db, config: Mapping, job_id: str, raw: str) -> Job:
    """POST DESTRUCTION: any time up to the longest lifetime the service grants."""
    job = get_job(db, job_id)
    with db.engine.begin() as conn:
        update_row(conn, job_id, destruction=_destruction(config, job.creation_time, raw))
    return get_job(db, job_id)

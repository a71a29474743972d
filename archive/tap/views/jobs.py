"""UWS 1.1 endpoints of TAP: /tap/async and its jobs.

Creation, PHASE=RUN/ABORT, parameter, execution-duration and destruction changes
answer 303 to the job; DELETE (and POST ACTION=DELETE) answers 303 to the job
list, which is capped at ASYNC_LIST_MAX jobs so that it stays cheap. Child
resources holding one value are text/plain. Unknown or deleted jobs give 404 (a
DALI error VOTable for VO clients, like every other TAP error). A blocking ``WAIT`` on the job
document lasts at most ASYNC_WAIT_CAP seconds.
"""
from __future__ import annotations

import time

from flask import Response, current_app, redirect, request, send_file

from ...db import get_db
from ...errors import NotFoundFault, UsageFault
from ...formats.votable import error_document
from ...http import Routes, request_params, text_response, xml_response
from ...params import parse_float, parse_int
from .. import uws, worker
from .sync import tap_base_url

__all__ = ["routes"]

VOTABLE_MIME = "application/x-votable+xml"

routes = Routes()


@routes.template_filter("uws_time")
def _uws_time(value):
    return uws.isoformat(value)


def _db():
    return get_db()


def _config():
    return current_app.config


def _started():
    """Make sure this process runs its in-process worker (if configured)."""
    worker.start_in_process(_db(), _config())


def _jobs_url() -> str:
    return tap_base_url() + "/async"


def _job_url(job_id: str) -> str:
    return f"{_jobs_url()}/{job_id}"


def _see_other(url: str) -> Response:
    return redirect(url, code=303)


def _error_message(job: uws.Job) -> str:
    if job.phase == uws.ABORTED:
        return job.error or "the job was aborted before it finished"
    return job.error or "the job failed without a message"


def _job_document(job: uws.Job) -> Response:
    return xml_response("tap/uws/job.xml", job=job, job_url=_job_url(job.job_id),
                error_message=_error_message(job))


def _string_params():
    params = request_params()
    return [(name, value) for name in params.names() for value in params.getlist(name)]


def _files():
    return {name: storage.stream for name, storage in request.files.items(multi=True)}


# -- the job list ----------------------------------------------------------------------

@routes.route("/async", methods=["GET"])
def uws_jobs():
    """The job list, most recent first, with the UWS 1.1 PHASE, AFTER and LAST filters."""
    _started()
    params = request_params()
    phases = [p.strip().upper() for p in params.getlist("PHASE")]
    after = params.get("AFTER")
    after = uws.parse_datetime(after, "AFTER") if after else None
    last = params.get("LAST")
    last = parse_int("LAST", last, minimum=1) if last is not None else None
    jobs = uws.list_jobs(_db(), phases=phases, after=after, last=last,
                         limit=int(_config()["ASYNC_LIST_MAX"]))
    return xml_response("tap/uws/jobs.xml", jobs=jobs, base=_jobs_url())


@routes.route("/async", methods=["POST"])
def uws_create():
    """Create a job (PENDING, or QUEUED with PHASE=RUN) and answer 303 to it."""
    _started()
    job = uws.create_job(_db(), _config(), _string_params(), files=_files(),
                         client=request.remote_addr)
    if job.phase == uws.QUEUED:
        worker.notify()
    return _see_other(_job_url(job.job_id))


# -- one job ------------------------------------------------------------------------------

def _wait_seconds(raw: str) -> float:
    cap = float(_config()["ASYNC_WAIT_CAP"])
    seconds = parse_float("WAIT", raw)
    return cap if seconds < 0 else min(seconds, cap)


def _stage(phase: str) -> str:
    # a job that is QUEUED or EXECUTING is "running" for a WAIT without PHASE: clients
    # (pyvo) sleep a second after each answer that is not final, so answering at the
    # QUEUED -> EXECUTING step would only slow them down
    return "RUNNING" if phase in (uws.QUEUED, uws.EXECUTING) else phase


def _wait(job: uws.Job, seconds: float, phase: str | None) -> uws.Job:
    """Block while the job stays in its phase (or in ``phase``), at most ``seconds``."""
    if phase is not None:
        phase = phase.strip().upper()
        if phase not in uws.ALL_PHASES:
            raise UsageFault(f"PHASE={phase!r} is not a UWS phase")

    def waiting(j: uws.Job) -> bool:
        if j.phase not in uws.ACTIVE:
            return False
        if phase is not None:
            return j.phase == phase
        return _stage(j.phase) == _stage(job.phase)

    deadline = time.monotonic() + seconds
    while waiting(job):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        with worker.phase_changed:
            # woken at once by a worker of this process; other processes' workers
            # are noticed by reading the job again
            worker.phase_changed.wait(min(left, 0.1))
        job = uws.get_job(_db(), job.job_id)
    return job


@routes.route("/async/<job_id>", methods=["GET"])
def uws_job(job_id: str):
    """The job document; ``WAIT=n`` (with ``PHASE``) blocks while nothing changes."""
    _started()
    job = uws.get_job(_db(), job_id)
    params = request_params()
    wait = params.get("WAIT")
    if wait is not None:
        job = _wait(job, _wait_seconds(wait), params.get("PHASE"))
    return _job_document(job)


def _delete(job_id: str) -> Response:
    uws.delete_job(_db(), _config(), job_id)
    return _see_other(_jobs_url())


@routes.route("/async/<job_id>", methods=["DELETE"])
def uws_job_delete(job_id: str):
    _started()
    return _delete(job_id)


@routes.route("/async/<job_id>", methods=["POST"])
def uws_job_post(job_id: str):
    """ACTION=DELETE deletes the job; nothing else may be posted to the job itself."""
    _started()
    params = request_params()
    action = params.get("ACTION")
    if action is not None and action.strip().upper() == "DELETE":
        return _delete(job_id)
    uws.get_job(_db(), job_id)
    raise UsageFault("POST to a job accepts only ACTION=DELETE; change parameters at "
                     f"{_job_url(job_id)}/parameters and the phase at "
                     f"{_job_url(job_id)}/phase")


@routes.route("/async/<job_id>/phase", methods=["GET", "POST"])
def uws_phase(job_id: str):
    _started()
    if request.method == "GET":
        return text_response(uws.get_job(_db(), job_id).phase)
    value = (request_params().get("PHASE") or "").strip().upper()
    if value == "RUN":
        uws.run_job(_db(), job_id, _config())
        worker.notify()
    elif value == "ABORT":
        uws.abort_job(_db(), job_id)
    else:
        uws.get_job(_db(), job_id)
        raise UsageFault(f"PHASE={value!r} cannot be posted; use PHASE=RUN or PHASE=ABORT")
    return _see_other(_job_url(job_id))


@routes.route("/async/<job_id>/parameters", methods=["GET", "POST"])
def uws_parameters(job_id: str):
    _started()
    if request.method == "GET":
        return xml_response("tap/uws/parameters.xml", job=uws.get_job(_db(), job_id))
    job = uws.update_parameters(_db(), _config(), job_id, _string_params(), files=_files())
    if job.phase == uws.QUEUED:
        worker.notify()
    return _see_other(_job_url(job_id))


@routes.route("/async/<job_id>/results", methods=["GET"])
def uws_results(job_id: str):
    _started()
    job = uws.get_job(_db(), job_id)
    return xml_response("tap/uws/results.xml", job=job, job_url=_job_url(job_id))


@routes.route("/async/<job_id>/results/result", methods=["GET"])
def uws_result(job_id: str):
    """The result file of a COMPLETED job (a table, possibly with no rows)."""
    _started()
    job = uws.get_job(_db(), job_id)
    if job.phase != uws.COMPLETED or not job.result_file:
        raise NotFoundFault(f"job {job_id} has no result: it is {job.phase}"
                            + ("; see its /error" if job.phase == uws.ERROR else ""))
    path = uws.job_dir(_config(), job_id) / job.result_file
    if not path.is_file():
        raise NotFoundFault(f"the result of job {job_id} is gone (the job is being "
                            "destroyed)")
    return send_file(path, mimetype=job.result_type or VOTABLE_MIME, conditional=True,
                     etag=True, max_age=0)


@routes.route("/async/<job_id>/error", methods=["GET"])
def uws_error(job_id: str):
    """The error of an ERROR or ABORTED job, as a DALI error VOTable (status 200)."""
    _started()
    job = uws.get_job(_db(), job_id)
    if job.phase not in (uws.ERROR, uws.ABORTED):
        raise NotFoundFault(f"job {job_id} has no error: it is {job.phase}")
    return Response(error_document(_error_message(job)), content_type=VOTABLE_MIME)


@routes.route("/async/<job_id>/quote", methods=["GET"])
def uws_quote(job_id: str):
    _started()
    return text_response(uws.isoformat(uws.get_job(_db(), job_id).quote))


@routes.route("/async/<job_id>/owner", methods=["GET"])
def uws_owner(job_id: str):
    _started()
    return text_response(uws.get_job(_db(), job_id).owner)


@routes.route("/async/<job_id>/executionduration", methods=["GET", "POST"])
def uws_execution_duration(job_id: str):
    _started()
    if request.method == "GET":
        return text_response(uws.get_job(_db(), job_id).execution_duration)
    value = request_params().get("EXECUTIONDURATION")
    if value is None:
        raise UsageFault("POST to /executionduration needs EXECUTIONDURATION=<seconds>")
    uws.set_execution_duration(_db(), _config(), job_id, value)
    return _see_other(_job_url(job_id))


@routes.route("/async/<job_id>/destruction", methods=["GET", "POST"])
def uws_destruction(job_id: str):
    _started()
    if request.method == "GET":
        return text_response(uws.isoformat(uws.get_job(_db(), job_id).destruction))
    value = request_params().get("DESTRUCTION")
    if value is None:
        raise UsageFault("POST to /destruction needs DESTRUCTION=<ISO 8601 date-time>")
    uws.set_destruction(_db(), _config(), job_id, value)
    return _see_other(_job_url(job_id))

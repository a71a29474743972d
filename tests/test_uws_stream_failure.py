"""A job whose result fails half-way through writing ends in ERROR, not COMPLETED."""
from __future__ import annotations

from archive.db import Database
from archive.errors import FatalFault
from archive.result import QueryResult
from archive.tap import run as tap_run
from archive.tap import claims, uws, worker


def test_failure_while_writing_the_result_ends_the_job_in_error(empty_config, monkeypatch):
    from ingest.demo import build_demo
    config = dict(empty_config, ASYNC_WORKER_IN_PROCESS=False)
    build_demo(config, rows=300, seed=5, workers=1, products=False, previews=False)
    db = Database(config["DATABASE_URL"])
    real_run_query = tap_run.run_query

    def failing_run_query(*args, **kwargs):
        result = real_run_query(*args, **kwargs)
        rows = result.chunks()

        def broken():
            yield next(rows)                 # the first rows are written ...
            raise FatalFault("the disk holding the database went away")   # ... then this

        return QueryResult(result.columns, maxrec=result.maxrec, chunks=broken(),
                           infos=result.infos)

    monkeypatch.setattr(tap_run, "run_query", failing_run_query)
    try:
        job = uws.create_job(db, config, [("LANG", "ADQL"), ("PHASE", "RUN"),
                                          ("QUERY", "SELECT * FROM extras.aperiodic")])
        claimed = claims.claim_job(db, "test-worker")
        assert claimed.job_id == job.job_id
        phase = worker.execute_job(db, config, claimed, "test-worker")
        assert phase == uws.ERROR
        done = uws.get_job(db, job.job_id)
        assert done.phase == uws.ERROR
        assert "the disk holding the database went away" in done.error
        assert not list(uws.job_dir(config, job.job_id).glob("result*[!t]"))  # no result file
    finally:
        db.dispose()

"""The kill test: ingests killed with SIGKILL at random moments leave the database
exactly as before them, or as after them when they had finished; never a mix.

Each ingest is a real process running the CLI (``archive.cli.main``: what the
``extras-archive`` script runs), forked from a small "zygote" process that has
imported the archive once: a cold start imports healpy and matplotlib (seconds on a
loaded machine), which would leave little of each run to the ingest itself. The
kill goes to the CLI process, as ``kill -9 <pid>`` would; on SQLite its loading
process dies with it (PR_SET_PDEATHSIG). The database is compared after every
process of the ingest is gone (and, on PostgreSQL, its server backend).
"""
from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from archive.db import Database, catalogue_tables
from ingest_helpers import file_table, synthetic, write

ROOT = Path(__file__).resolve().parent.parent
ROWS = 12_000
ATTEMPTS = 20
KINDS = ("new", "update", "replace", "update")     # cycled: new and replacing loads

ZYGOTE = r"""
import json, os, sys
from archive.cli import main
# what the ingest command imports lazily: imported once here, not in every run
import adbc_driver_postgresql.dbapi, adbc_driver_sqlite.dbapi  # noqa: E401,F401
import ingest.catalogue, ingest.load, pyarrow.compute  # noqa: E401,F401
for line in sys.stdin:
    argv = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.setsid()                       # its own process group: the test finds its children
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        os._exit(code)
    print("pid", pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print("exit", os.waitstatus_to_exitcode(status), flush=True)
"""


class Zygote:
    """The process that forks one CLI process per ingest."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.buffer = b""

    def _line(self, timeout: float | None) -> str | None:
        """The next line of output, or None when ``timeout`` passes first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError("the zygote process ended")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def run(self, argv: list[str], kill_after: float | None = None) -> tuple[int, int, float]:
        """Run the CLI with ``argv``; SIGKILL it after ``kill_after`` s if still running.
        Returns (pid, exit status, seconds)."""
        started = time.monotonic()
        self.proc.stdin.write((json.dumps(argv) + "\n").encode())
        self.proc.stdin.flush()
        word, pid = self._line(60).split()
        assert word == "pid"
        pid = int(pid)
        line = self._line(kill_after)
        if line is None:
            os.kill(pid, signal.SIGKILL)
            line = self._line(60)
        word, status = line.split()
        assert word == "exit"
        return pid, int(status), time.monotonic() - started

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _live_in_group(pgid: int) -> list[int]:
    """Processes of the process group ``pgid`` that are not zombies."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in "ZX":
            found.append(int(entry.name))
    return found


def _wait_until_gone(config: dict, pgid: int) -> None:
    """Every process of the ingest gone, and on PostgreSQL every other session."""
    deadline = time.monotonic() + 60
    while _live_in_group(pgid):
        assert time.monotonic() < deadline, f"processes of group {pgid} still run"
        time.sleep(0.02)
    url = sa.engine.make_url(config["DATABASE_URL"])
    if url.get_backend_name() == "postgresql":
        db = Database(config["DATABASE_URL"])
        try:
            with db.engine.connect() as conn:
                while conn.execute(sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND pid <> pg_backend_pid()")).scalar_one():
                    assert time.monotonic() < deadline, "the ingest's session is still open"
                    conn.rollback()
                    time.sleep(0.05)
        finally:
            db.dispose()


def _state(config: dict) -> dict[str, tuple]:
    """The aperiodic table: extras_id -> every column but the surrogate ``id``."""
    t = catalogue_tables["aperiodic"]
    cols = [c for c in t.c if c.name != "id"]
    db = Database(config["DATABASE_URL"])
    try:
        with db.engine.connect() as conn:
            return {r.extras_id: tuple(r) for r in conn.execute(sa.select(*cols))}
    finally:
        db.dispose()


def _xid(config: dict) -> int:
    """PostgreSQL's next transaction id (this call uses one)."""
    db = Database(config["DATABASE_URL"])
    try:
        with db.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT txid_current()")).scalar_one())
    finally:
        db.dispose()


def _clear(config: dict) -> None:
    db = Database(config["DATABASE_URL"])
    try:
        with db.engine.begin() as conn:
            conn.execute(catalogue_tables["aperiodic"].delete())
    finally:
        db.dispose()


def _keys(table) -> set[str]:
    return {f"{o}_{e}_{c}_{s}" for o, e, c, s in
            zip(table["OBS_ID"], table["EXP_ID"], table["CAMERA"], table["SRC_NUM"])}


def _applied(before: dict, stored: dict) -> dict:
    """``before`` after a replace-mode ingest whose rows, as stored, are ``stored``."""
    return {**before, **stored}


def _difference(state: dict, expected: dict) -> str:
    missing = expected.keys() - state.keys()
    extra = state.keys() - expected.keys()
    changed = [k for k in state.keys() & expected.keys() if state[k] != expected[k]]
    return f"{len(missing)} rows missing, {len(extra)} extra, {len(changed)} changed"


def test_ingests_killed_at_random_moments_leave_before_or_after(empty_config, tmp_path):
    synth = synthetic(ROWS, seed=31)
    full = file_table("aperiodic", synth.aperiodic)
    update = full[: ROWS // 2]
    update["UB_LC500_CO_PVAL"][:] = np.float32(0.125)
    extra = full[ROWS // 2: ROWS // 2 + ROWS // 4]
    extra["SRC_NUM"][:] += 100_000                            # new keys
    from astropy.table import vstack
    update = vstack([update, extra])
    files = {"full": write(full, tmp_path / "full.fits", "fits"),
             "update": write(update, tmp_path / "update.fits", "fits")}
    update_keys = _keys(update)

    def argv(name):
        return ["--data-dir", empty_config["DATA_DIR"], "--database-url",
                empty_config["DATABASE_URL"], "ingest", "catalogue", str(files[name]),
                "--catalogue", "aperiodic"]

    zygote = Zygote()
    try:
        # reference runs, not killed: the rows each file leaves as stored, and how
        # long a run of each kind takes
        seconds = {}
        pid, status, _took = zygote.run(argv("full"))       # warm-up (first-run costs)
        assert status == 0
        _clear(empty_config)
        pid, status, seconds["new"] = zygote.run(argv("full"))
        assert status == 0
        stored_full = _state(empty_config)
        assert len(stored_full) == ROWS
        pid, status, seconds["replace"] = zygote.run(argv("full"))
        assert status == 0 and _state(empty_config) == stored_full
        pid, status, seconds["update"] = zygote.run(argv("update"))
        assert status == 0
        after_update = _state(empty_config)
        stored_update = {k: v for k, v in after_update.items() if k in update_keys}
        assert len(stored_update) == len(update_keys)
        assert after_update == _applied(stored_full, stored_update)
        postgresql = sa.engine.make_url(empty_config["DATABASE_URL"]).get_backend_name() \
            == "postgresql"

        seed = random.randrange(1 << 30)
        rng = random.Random(seed)
        outcomes = []
        state = after_update
        for attempt in range(ATTEMPTS):
            kind = KINDS[attempt % len(KINDS)]
            if kind == "new":
                _clear(empty_config)
                state = {}
            before = state
            stored = stored_update if kind == "update" else stored_full
            after = _applied(before, stored)
            delay = rng.uniform(0.05, 1.0) * seconds[kind]
            xid = _xid(empty_config) if postgresql else None
            pid, status, _took = zygote.run(argv("update" if kind == "update" else "full"),
                                            kill_after=delay)
            _wait_until_gone(empty_config, pid)
            state = _state(empty_config)
            where = f"attempt {attempt} ({kind}, killed after {delay:.2f} s, seed {seed})"
            if status == 0:
                assert state == after, f"{where}: finished, but {_difference(state, after)}"
                outcomes.append("finished")
            else:
                assert status == -signal.SIGKILL, f"{where}: exit status {status}"
                if state == before:
                    outcomes.append("rolled back")
                    # PostgreSQL: did the killed ingest get as far as writing? (a
                    # transaction id is assigned at its first write; _xid takes one)
                    if postgresql and _xid(empty_config) > xid + 1:
                        outcomes.append("rolled back after writing")
                else:
                    assert state == after, (f"{where}: neither before "
                                            f"({_difference(state, before)}) nor after "
                                            f"({_difference(state, after)})")
                    outcomes.append("committed before the kill")
    finally:
        zygote.close()
    print(f"kill test outcomes (seed {seed}, runs of {seconds} s): "
          f"{ {o: outcomes.count(o) for o in set(outcomes)} }")
    assert outcomes.count("rolled back") >= 3, outcomes
    if postgresql:
        assert outcomes.count("rolled back after writing") >= 1, outcomes

    db = Database(empty_config["DATABASE_URL"])
    try:
        if db.engine.dialect.name == "sqlite":
            with db.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
            directory = Path(sa.engine.make_url(empty_config["DATABASE_URL"]).database).parent
            assert not list(directory.glob(".ingest-part-*"))
        names = {ix["name"] for ix in sa.inspect(db.engine).get_indexes("aperiodic")}
    finally:
        db.dispose()
    # indexes dropped by a killed bulk load are back (the DDL was rolled back too)
    assert {ix.name for ix in catalogue_tables["aperiodic"].indexes} <= names

"""Read replicas: PostgreSQL streaming replicas that answer the user queries.

The primary (``DATABASE_URL``) keeps every write and everything a client must see
as soon as it was written (job state, caches, ingest); ``READ_REPLICA_URLS`` name
hot standbys made from it (``pg_basebackup -R``) that run the user queries, taken in
turn (round robin). Replication itself is PostgreSQL's; this module only chooses.

A replica is used while its state is ``ok``: it answers, is in recovery or promoted,
and is at most ``REPLICA_MAX_LAG`` seconds behind. The state is looked at every
``REPLICA_CHECK_INTERVAL`` seconds with one cheap query on a fresh connection
(``pg_is_in_recovery()``, received against replayed WAL position,
``pg_last_xact_replay_timestamp()``), in a background thread after the first look,
so that no request waits for a slow host. A replica is ``down`` when that query or a
connection to it fails (a failed connection marks it at once), ``lagging`` when it is
further behind than the bound. With no replica usable the primary answers.

Lag is ``0`` when the replica has replayed all the WAL it received, else the age of
the last transaction it replayed: after a long idle time on the primary, the first
write makes a replica that cannot replay at once look as old as that idle time,
which errs on the safe side.

Connections of a replica's engine that cannot be opened are opened on the primary
instead (``do_connect``), so a replica that stops between two looks costs no failed
request; such connections are dropped once the replica is back. The executor
(``archive.query``) also retries a query on the primary when its replica's
connection breaks before the first row, and runs queries with temporary tables
(uploads) on the primary, since a hot standby cannot create them: both through the
``archive_primary`` attribute of a replica's engine.
"""
from __future__ import annotations

import math
import threading
import time

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

__all__ = ["Replica", "Replicas", "masked"]

#: seconds to wait for a replica's connection (libpq's connect_timeout; 2 is its least)
CONNECT_TIMEOUT = 2

# a constant statement, no value from a request
_PROBE = sa.text(
    "SELECT CAST(CASE WHEN NOT pg_is_in_recovery() THEN 0"
    " WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
    " ELSE EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())"
    " END AS double precision)")


def masked(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


class Replica:
    """One replica: its read-only engine, and its state as last looked at."""

    def __init__(self, url: str, engine: Engine, max_lag: float, connect_args: dict):
        self.url = masked(url)
        self.engine = engine
        self.max_lag = max_lag
        # a fresh connection for each look: a stopped server shows at once
        self._probe = sa.create_engine(url, poolclass=NullPool,
                                       connect_args={**connect_args,
                                                     "connect_timeout": CONNECT_TIMEOUT})
        self.state: str | None = None
        self.lag: float | None = None
        self.detail = "not looked at yet"
        self.checked = -math.inf

    def check(self) -> None:
        """Look at the replica now and set its state."""
        try:
            with self._probe.connect() as conn:
                lag = conn.execute(_PROBE).scalar_one()
        except Exception as exc:           # any failure: it cannot answer queries
            self.set_down(exc)
            return
        self.checked = time.monotonic()
        self.lag = lag
        if lag is None:
            self.state, self.detail = "lagging", ("behind the primary, and has replayed "
                                                  "no transaction since it started")
        elif lag > self.max_lag:
            self.state, self.detail = "lagging", (
                f"{lag:.1f} s behind the primary, more than REPLICA_MAX_LAG = "
                f"{self.max_lag:g} s")
        else:
            self.state, self.detail = "ok", f"{lag:.1f} s behind the primary"

    def set_down(self, exc: BaseException) -> None:
        self.checked = time.monotonic()
        self.state, self.lag = "down", None
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        self.detail = "does not answer: " + (first[0] if first else type(exc).__name__)

    def status(self) -> dict:
        return {"url": self.url, "state": self.state,
                "lag_seconds": None if self.lag is None else round(self.lag, 3),
                "detail": self.detail}

    def dispose(self) -> None:
        self.engine.dispose()
        self._probe.dispose()


class Replicas:
    """The replicas of one primary, and the choice of the engine for a user query."""

    def __init__(self, primary: Engine, urls, *, make_engine, connect_args: dict,
                 max_lag: float, interval: float):
        self.primary = primary
        self.interval = interval
        self._turn = 0
        self._lock = threading.Lock()          # the turn
        self._checking = threading.Lock()      # one round of looks at a time
        cargs, cparams = primary.dialect.create_connect_args(primary.url)
        self._primary_args = (cargs, {**cparams, **connect_args})
        self.replicas = []
        for url in urls:
            engine = make_engine(url, connect_args={**connect_args,
                                                    "connect_timeout": CONNECT_TIMEOUT})
            replica = Replica(url, engine, max_lag, connect_args)
            engine.archive_primary = primary
            self._fall_back(replica)
            self.replicas.append(replica)

    def _fall_back(self, replica: Replica) -> None:
        """Connections the replica refuses are opened on the primary, and dropped at
        checkout once the replica is back."""
        primary_cargs, primary_cparams = self._primary_args

        @sa.event.listens_for(replica.engine, "do_connect")
        def connect(dialect, record, cargs, cparams):
            try:
                return dialect.connect(*cargs, **cparams)
            except dialect.loaded_dbapi.OperationalError as exc:
                replica.set_down(exc)
                record.info["archive_fallback"] = True
                return dialect.connect(*primary_cargs, **primary_cparams)

        @sa.event.listens_for(replica.engine, "checkout")
        def checkout(_dbapi_conn, record, _proxy):
            if record.info.get("archive_fallback") and replica.state == "ok":
                record.info.pop("archive_fallback")
                raise sa.exc.DisconnectionError("the replica is back: connect to it again")

    def _stale(self) -> list[Replica]:
        now = time.monotonic()
        return [r for r in self.replicas if now - r.checked >= self.interval]

    def refresh(self, wait: bool) -> None:
        """Look at the replicas whose state is older than the interval: in this
        thread if ``wait`` (or on the first look), else in a background thread."""
        stale = self._stale()
        if not stale:
            return
        if wait or any(r.state is None for r in stale):
            with self._checking:
                for replica in self._stale():
                    replica.check()
        elif self._checking.acquire(blocking=False):
            def run():
                try:
                    for replica in self._stale():
                        replica.check()
                finally:
                    self._checking.release()
            threading.Thread(target=run, daemon=True, name="replica-check").start()

    def pick(self) -> Engine:
        """The engine for the next user query: the next usable replica, else the
        primary's read-only engine."""
        self.refresh(wait=False)
        usable = [r for r in self.replicas if r.state == "ok"]
        if not usable:
            return self.primary
        with self._lock:
            self._turn = (self._turn + 1) % len(usable)
            return usable[self._turn].engine

    def status(self) -> list[dict]:
        """Each replica's state, looked at again if older than the interval:
        ``{url (password masked), state: "ok" | "down" | "lagging", lag_seconds
        (None when down or unknown), detail (a sentence)}``."""
        self.refresh(wait=True)
        return [r.status() for r in self.replicas]

    def dispose(self) -> None:
        for replica in self.replicas:
            replica.dispose()

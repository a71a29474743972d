"""Throw-away PostgreSQL servers for the tests: a primary, streaming replicas made
from it with ``pg_basebackup -R``, and a pgbouncer in front of it.

They run from Debian's PostgreSQL 15 binaries and pgbouncer package, on free
loopback ports, in a temporary directory removed at the end. ``initdb``,
``postgres`` and ``pgbouncer`` refuse to run as root: as root (CI, pg_virtualenv)
they run as the ``postgres`` system user (``runuser``), in a directory it owns.
Authentication is ``trust`` on 127.0.0.1 only.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from helpers import free_port

PG_BIN = Path(os.environ.get("EXTRAS_ARCHIVE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PGBOUNCER = "/usr/sbin/pgbouncer"

PRIMARY_CONF = """
listen_addresses = '127.0.0.1'
wal_level = replica
max_wal_senders = 8
hot_standby = on
hot_standby_feedback = on
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 32MB
max_connections = 80
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = top
log_min_messages = warning
"""


def _as_owner(cmd: list[str]) -> list[str]:
    """``cmd`` run as the postgres system user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _run(cmd: list[str], cwd: Path) -> None:
    done = subprocess.run(_as_owner(cmd), cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr[-3000:]}")


def _require(path) -> None:
    if not Path(path).exists():
        pytest.fail(f"these tests need {path}: apt-get install postgresql-15 pgbouncer "
                    "(or run the suite with `bash .ci/test`, which installs them)")


class Server:
    """One PostgreSQL server (primary or replica) in ``directory`` on ``port``."""

    def __init__(self, directory: Path, port: int):
        self.directory = directory
        self.port = port

    def url(self, database: str = "postgres", password: str = "") -> str:
        secret = f":{password}" if password else ""
        return f"postgresql+psycopg://postgres{secret}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        _run([str(PG_BIN / "pg_ctl"), "-D", str(self.directory), "-w", "-t", "60",
              "-l", str(self.directory.parent / f"{self.directory.name}.log"),
              "-o", f"-p {self.port} -k {self.directory.parent}", "start"],
             self.directory.parent)

    def stop(self, mode: str = "fast") -> None:
        _run([str(PG_BIN / "pg_ctl"), "-D", str(self.directory), "-w", "-m", mode, "stop"],
             self.directory.parent)

    def restart(self, down: float = 0.0) -> None:
        """Stop (fast: every session is ended), stay down ``down`` seconds, start."""
        self.stop("fast")
        time.sleep(down)
        self.start()

    def running(self) -> bool:
        return (self.directory / "postmaster.pid").exists()

    def query(self, sql: str, **params):
        """The first column of the first row of ``sql`` (a test's own constant SQL)."""
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT",
                                  poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                result = conn.execute(sa.text(sql), params)
                return result.scalar() if result.returns_rows else None
        finally:
            engine.dispose()


class Cluster:
    """A primary and ``replicas`` streaming replicas, started in a temporary directory."""

    def __init__(self, replicas: int = 0):
        for binary in ("initdb", "pg_ctl", "pg_basebackup", "postgres"):
            _require(PG_BIN / binary)
        self.base = Path(tempfile.mkdtemp(prefix="extras-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        self.primary = Server(self.base / "primary", free_port())
        self.replicas: list[Server] = []
        self.pgbouncer: Pgbouncer | None = None
        try:
            _run([str(PG_BIN / "initdb"), "-D", str(self.primary.directory), "-U",
                  "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
                 self.base)
            with open(self.primary.directory / "postgresql.conf", "a") as conf:
                conf.write(PRIMARY_CONF)
            self.primary.start()
            self.primary.query("CREATE EXTENSION pg_stat_statements")
            for n in range(replicas):
                self.add_replica(n)
        except BaseException:
            self.close()
            raise

    def add_replica(self, n: int) -> Server:
        replica = Server(self.base / f"replica{n}", free_port())
        _run([str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary.port),
              "-U", "postgres", "-D", str(replica.directory), "-R", "-X", "stream",
              "-c", "fast", "--no-sync"], self.base)
        replica.start()
        self.replicas.append(replica)
        return replica

    def create_database(self, name: str) -> None:
        self.primary.query(f'CREATE DATABASE "{name}"')

    def primary_lsn(self) -> str:
        return self.primary.query("SELECT pg_current_wal_lsn()::text")

    def wait_replayed(self, replica: Server, timeout: float = 30) -> None:
        """Wait until ``replica`` has replayed everything the primary wrote so far."""
        target = self.primary_lsn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if replica.query("SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), "
                             "CAST(:t AS pg_lsn)) >= 0", t=target):
                return
            time.sleep(0.05)
        raise AssertionError(f"replica on port {replica.port} did not replay up to {target}")

    def close(self) -> None:
        if self.pgbouncer is not None:
            self.pgbouncer.stop()
        for server in (*self.replicas, self.primary):
            if server.running():
                try:
                    server.stop("immediate")
                except RuntimeError:
                    pass
        shutil.rmtree(self.base, ignore_errors=True)

    def start_pgbouncer(self, pool_size: int = 2) -> "Pgbouncer":
        self.pgbouncer = Pgbouncer(self, pool_size)
        return self.pgbouncer


class Pgbouncer:
    """pgbouncer from Debian in transaction mode in front of the cluster's primary."""

    def __init__(self, cluster: Cluster, pool_size: int):
        _require(PGBOUNCER)
        self.port = free_port()
        base = cluster.base
        (base / "userlist.txt").write_text('"postgres" ""\n')
        self.ini = base / "pgbouncer.ini"
        self.ini.write_text(f"""[databases]
* = host=127.0.0.1 port={cluster.primary.port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir = {base}
auth_type = trust
auth_file = {base / 'userlist.txt'}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 200
logfile = {base / 'pgbouncer.log'}
pidfile = {base / 'pgbouncer.pid'}
""")
        if os.geteuid() == 0:
            for path in (base / "userlist.txt", self.ini):
                shutil.chown(path, "postgres", "postgres")
        self.log = base / "pgbouncer.log"
        self.process = subprocess.Popen(_as_owner([PGBOUNCER, str(self.ini)]), cwd=base,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("pgbouncer exited: " + self.process.stderr.read().decode())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("pgbouncer did not listen within 20 s")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()        # runuser passes SIGTERM on to pgbouncer
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()

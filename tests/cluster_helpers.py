"""Real processes for the several-servers tests: gunicorn app servers, HAProxy in front
of them, ``extras-archive worker`` processes; each started on 127.0.0.1 free ports by
the test and stopped by it (process groups, so a server's workers go with it)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
HAPROXY = "/usr/sbin/haproxy"
#: header the test balancer reads to send a request to one named server
ROUTE_HEADER = "X-Test-Server"


def archive_env(config: dict, environ: dict | None = None, **settings) -> dict:
    env = dict(os.environ, EXTRAS_ARCHIVE_DATA_DIR=config["DATA_DIR"],
               EXTRAS_ARCHIVE_DATABASE_URL=config["DATABASE_URL"])
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)       # each server makes its own
    env.update(environ or {})
    env.update({f"EXTRAS_ARCHIVE_{k}": str(v) for k, v in settings.items()})
    return env


class Process:
    """A process started in its own process group, its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict, log: Path):
        self.name, self.log = name, log
        self._out = open(log, "wb")
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._out,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal_group(self, sig) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = 30) -> None:
        if self.proc.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.proc.wait()
        self.signal_group(signal.SIGKILL)           # anything left of the group
        self._out.close()

    def wait_ready(self, timeout: float = 90):
        """Wait until ``self.url`` answers /health with 200 (servers and the balancer
        set ``url``); the process itself, for chaining."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.output()[-3000:]}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer /health within {timeout} s")


class AppServer(Process):
    """``gunicorn -c python:archive.gunicorn_conf wsgi:app`` on a free port."""

    def __init__(self, name: str, config: dict, log_dir: Path, workers: int = 1,
                 environ: dict | None = None, **settings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "gunicorn", "-c", "python:archive.gunicorn_conf",
                "--workers", str(workers), "--threads", "4", "--timeout", "120",
                "--bind", f"127.0.0.1:{self.port}", "wsgi:app"]
        metrics = log_dir / f"{name}-metrics"       # under the test's directory: nothing
        metrics.mkdir(exist_ok=True)                # is left behind by a killed server
        environ = {"PROMETHEUS_MULTIPROC_DIR": str(metrics), **(environ or {})}
        super().__init__(name, args, archive_env(config, environ, **settings),
                         log_dir / f"{name}.log")


def start_workers(config: dict, n: int, log_dir: Path, **settings) -> list[Process]:
    args = [sys.executable, "-m", "archive.cli", "worker"]
    return [Process(f"worker{i}", args, archive_env(config, **settings),
                    log_dir / f"worker{i}.log") for i in range(1, n + 1)]


HAPROXY_CONFIG = """\
global
    maxconn 512
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # a request that finds its server dead (connection refused, or a kept-alive
    # connection closed without an answer) is tried again on another server
    option redispatch 1
    retries 3
    retry-on conn-failure empty-response
frontend archive
    bind 127.0.0.1:{port}
    # what the archive trusts with TRUSTED_PROXIES=1: the client's address, scheme and
    # the host it asked for
    option forwardfor
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend app
backend app
    balance roundrobin
    # like nginx's default, the servers see another Host than the client sent:
    # only the X-Forwarded-* headers give them the balancer's URL
    http-request set-header Host app-pool.invalid
    option httpchk GET /health
    http-check expect status 200
    default-server inter 500ms fall 2 rise 1
{use_servers}
{servers}
"""


class Balancer(Process):
    """HAProxy in the foreground (``-db``) round-robin over the servers; a request
    with the header ``X-Test-Server: <name>`` goes to that server while it is up."""

    def __init__(self, servers: list[AppServer], log_dir: Path):
        if not Path(HAPROXY).exists():
            pytest.fail(f"these tests need {HAPROXY}: apt-get install haproxy "
                        "(or run the suite with `bash .ci/test`, which installs it)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = HAPROXY_CONFIG.format(
            port=self.port,
            use_servers="\n".join(f"    use-server {s.name} if {{ req.hdr({ROUTE_HEADER}) "
                                  f"-m str {s.name} }}" for s in servers),
            servers="\n".join(f"    server {s.name} 127.0.0.1:{s.port} check"
                              for s in servers))
        path = log_dir / "haproxy.cfg"
        path.write_text(config)
        check = subprocess.run([HAPROXY, "-c", "-f", str(path)], capture_output=True,
                               text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        super().__init__("haproxy", [HAPROXY, "-db", "-f", str(path)], dict(os.environ),
                         log_dir / "haproxy.log")

    def wait_ready(self, timeout: float = 30) -> "Balancer":
        return super().wait_ready(timeout)


def via(name: str) -> dict:
    """Headers sending a request through the balancer to the server ``name``."""
    return {ROUTE_HEADER: name}


def terminate_database(admin_url: str, name: str, *, allow: bool) -> None:
    """Refuse (allow=False) or accept again new connections to database ``name`` and
    drop its open ones: what a primary's restart does to the clients, done to one
    database (the test server is shared) through an administrator's connection."""
    import sqlalchemy as sa
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS '
                                 f'{"true" if allow else "false"}')
            if not allow:
                conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                     " WHERE datname = :d AND pid <> pg_backend_pid()"),
                             {"d": name})
    finally:
        admin.dispose()

"""Shared fixtures: a fresh database on each backend, a demo archive, apps, the CLI, a
gunicorn server.

Every fixture that touches the database is parametrized over SQLite and
PostgreSQL. PostgreSQL comes from the environment (``PGHOST`` etc., as set by
Debian's ``pg_virtualenv``, which the README's test command uses) or from
``EXTRAS_ARCHIVE_TEST_PG_URL``; without one the PostgreSQL tests fail with a
message saying how to get one, never skip silently.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("sqlite", "postgresql")
DEMO_ROWS = 3000           # aperiodic rows of the shared test archive


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "postgresql" in item.nodeid:
            item.add_marker(pytest.mark.postgres)


# -- databases ------------------------------------------------------------------------

def _pg_admin_url() -> str:
    url = os.environ.get("EXTRAS_ARCHIVE_TEST_PG_URL")
    if url:
        return url
    if os.environ.get("PGHOST"):
        return "postgresql+psycopg:///" + os.environ.get("PGDATABASE", "postgres")
    pytest.fail("the PostgreSQL tests need a server: run the suite with `bash .ci/test` "
                "(it starts a throw-away cluster with pg_virtualenv from Debian's "
                "postgresql package: apt-get install postgresql), or set "
                "EXTRAS_ARCHIVE_TEST_PG_URL to an SQLAlchemy URL of a server where the "
                "user may create databases")


def new_database_url(backend: str, directory: Path) -> str:
    """The URL of a new, empty database on ``backend``."""
    if backend == "sqlite":
        return f"sqlite:///{directory / 'archive.sqlite'}"
    admin = sa.engine.make_url(_pg_admin_url())
    name = f"test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return admin.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def empty_config(backend, tmp_path):
    """Configuration of a new, empty archive (function scope) on each backend."""
    from archive.config import load_config
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    return load_config({"DATA_DIR": str(data_dir),
                        "DATABASE_URL": new_database_url(backend, data_dir)}, environ={})


@pytest.fixture(scope="session", params=BACKENDS)
def demo_archive(request, tmp_path_factory):
    """Configuration of a small demo archive, built once per backend by our own ingest."""
    from archive.config import load_config
    from ingest.demo import build_demo
    data_dir = tmp_path_factory.mktemp(f"demo-{request.param}")
    config = load_config({"DATA_DIR": str(data_dir),
                          "DATABASE_URL": new_database_url(request.param, data_dir),
                          "ASYNC_WORKER_IN_PROCESS": True,
                          # nothing reaches the internet: tests/test_resolver.py starts
                          # its own stand-in Simbad; elsewhere Simbad is a closed port
                          "SIMBAD_URL": "http://127.0.0.1:9/simbad/sim-tap"}, environ={})
    build_demo(config, rows=DEMO_ROWS, seed=42, workers=2)
    config["BACKEND"] = request.param
    return config


@pytest.fixture(scope="session")
def app(demo_archive):
    from archive import create_app
    application = create_app({**demo_archive, "TESTING": True})
    yield application
    from archive.db import get_db
    get_db(application).dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner():
    """A click CliRunner whose ``invoke(args)`` runs ``extras-archive ARGS`` in process."""
    from helpers import ArchiveRunner
    return ArchiveRunner()


# -- a real server ----------------------------------------------------------------------

def start_gunicorn(config: dict, workers: int = 2):
    """Start ``gunicorn -c python:archive.gunicorn_conf wsgi:app`` (as docs/deploy.md
    documents it) on a free loopback port; returns (process, base_url)."""
    port = free_port()
    env = dict(os.environ)
    env.update({"EXTRAS_ARCHIVE_DATA_DIR": config["DATA_DIR"],
                "EXTRAS_ARCHIVE_DATABASE_URL": config["DATABASE_URL"]})
    # its log (one access-log line per request) goes to a file: a pipe nobody reads
    # would fill up and block the server
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--threads", "4",
         "--bind", f"127.0.0.1:{port}", "-c", "python:archive.gunicorn_conf", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError("gunicorn exited: " + log.read().decode()[-3000:])
        try:
            if requests.get(base + "/", timeout=2).status_code == 200:
                return proc, base
        except requests.RequestException:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("gunicorn did not answer within 60 s")


@pytest.fixture(scope="session")
def live_server(demo_archive):
    """Base URL of gunicorn serving the demo archive on 127.0.0.1 (one per backend)."""
    proc, base = start_gunicorn(demo_archive)
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def stilts():
    """Path of the ``stilts`` command (Debian package ``stilts``); fails if missing."""
    path = shutil.which("stilts")
    if not path:
        pytest.fail("these tests need STILTS: apt-get install stilts "
                    "(or run the suite with `bash .ci/test`, which installs it)")
    return path


# -- a real browser ---------------------------------------------------------------------

SCREENSHOTS = ROOT / "browser-screenshots"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so fixtures can see a failed test."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="session")
def _chromium():
    """Debian's Chromium, headless, through Debian's chromedriver (nothing downloaded)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("the browser tests need selenium: pip install -e '.[test]'")
    for path in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        if not Path(path).exists():
            pytest.fail(f"the browser tests need {path}: apt-get install chromium "
                        "chromium-driver (or run the suite with `bash .ci/test`)")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


@pytest.fixture
def browser(_chromium, request):
    """The browser, with a screenshot saved in browser-screenshots/ if the test fails."""
    yield _chromium
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        SCREENSHOTS.mkdir(exist_ok=True)
        name = "".join(c if c.isalnum() else "_" for c in request.node.nodeid)
        _chromium.save_screenshot(str(SCREENSHOTS / f"{name}.png"))

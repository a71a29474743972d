"""Configuration: defaults, instance file, environment variables, overrides."""
from pathlib import Path

import pytest

from archive import create_app
from archive.config import ConfigError, load_config


def test_defaults_put_sqlite_in_the_data_dir(tmp_path):
    config = load_config({"DATA_DIR": str(tmp_path)}, environ={})
    assert config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'archive.sqlite'}"
    assert config["PRODUCTS_DIR"] == str(tmp_path / "products")
    assert config["TAP_DEFAULT_MAXREC"] == 20000


def test_environment_overrides_instance_file_which_overrides_defaults(tmp_path):
    (tmp_path / "config.py").write_text("SCS_MAX_SR = 2.5\nQUERY_TIMEOUT = 7.0\nlower = 1\n")
    env = {"EXTRAS_ARCHIVE_DATA_DIR": str(tmp_path), "EXTRAS_ARCHIVE_QUERY_TIMEOUT": "3",
           "EXTRAS_ARCHIVE_ASYNC_WORKER_IN_PROCESS": "off",
           "EXTRAS_ARCHIVE_UPLOAD_URL_ALLOW": "a.example, b.example"}
    config = load_config(environ=env)
    assert config["SCS_MAX_SR"] == 2.5            # instance file
    assert config["QUERY_TIMEOUT"] == 3.0         # environment beats instance file
    assert config["ASYNC_WORKER_IN_PROCESS"] is False
    assert config["UPLOAD_URL_ALLOW"] == ["a.example", "b.example"]
    assert "lower" not in config                  # only upper-case names are settings
    assert config["DATA_DIR"] == str(tmp_path.resolve())


def test_explicit_overrides_win(tmp_path):
    env = {"EXTRAS_ARCHIVE_DATA_DIR": str(tmp_path / "env"), "EXTRAS_ARCHIVE_SCS_MAX_SR": "1"}
    config = load_config({"DATA_DIR": str(tmp_path / "mine"), "SCS_MAX_SR": 4.0}, environ=env)
    assert config["DATA_DIR"] == str((tmp_path / "mine").resolve())
    assert config["SCS_MAX_SR"] == 4.0


def test_named_instance_file(tmp_path):
    path = tmp_path / "site.py"
    path.write_text("ARCHIVE_TITLE = 'Test archive'\n")
    config = load_config({"DATA_DIR": str(tmp_path)},
                         environ={"EXTRAS_ARCHIVE_CONFIG": str(path)})
    assert config["ARCHIVE_TITLE"] == "Test archive"


@pytest.mark.parametrize("name, raw, kind", [
    ("QUERY_TIMEOUT", "soon", "float"),
    ("TAP_HARD_MAXREC", "1e9x", "int"),
    ("ASYNC_WORKER_IN_PROCESS", "maybe", "bool"),
])
def test_bad_environment_value_names_the_variable(tmp_path, name, raw, kind):
    with pytest.raises(ConfigError) as info:
        load_config({"DATA_DIR": str(tmp_path)}, environ={f"EXTRAS_ARCHIVE_{name}": raw})
    assert f"EXTRAS_ARCHIVE_{name}" in str(info.value) and kind in str(info.value)


def test_missing_named_instance_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not a file"):
        load_config(environ={"EXTRAS_ARCHIVE_CONFIG": str(tmp_path / "nope.py")})


def test_app_factory_uses_the_configuration(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path), "ARCHIVE_TITLE": "Factory test"})
    assert app.config["DATABASE_URL"].endswith("archive.sqlite")
    assert Path(app.config["DATABASE_URL"].removeprefix("sqlite:///")).is_file()
    page = app.test_client().get("/")
    assert page.status_code == 200 and b"Factory test" in page.data


def test_a_new_sqlite_archive_uses_wal_and_the_archive_page_size(tmp_path):
    import sqlite3
    from archive.db import SQLITE_PAGE_SIZE, Database
    db = Database(f"sqlite:///{tmp_path / 'new.sqlite'}")
    db.dispose()
    conn = sqlite3.connect(tmp_path / "new.sqlite")
    try:
        assert conn.execute("PRAGMA page_size").fetchone()[0] == SQLITE_PAGE_SIZE != 4096
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()

"""The ``extras-archive`` command line: one click group, sub-commands per job."""
from __future__ import annotations

import sys

import click

from .config import ConfigError, load_config

__all__ = ["main", "cli"]


class Context:
    """What every sub-command gets: the configuration, and the database on demand."""

    def __init__(self, overrides):
        self.overrides = overrides
        self._config = None
        self._db = None

    @property
    def config(self) -> dict:
        if self._config is None:
            try:
                self._config = load_config(self.overrides)
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from exc
        return self._config

    @property
    def db(self):
        if self._db is None:
            from .db import Database
            self._db = Database(self.config["DATABASE_URL"])
        return self._db

    def close(self):
        """Dispose of the database engines, if any were made."""
        if self._db is not None:
            self._db.dispose()
            self._db = None


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Data directory (default: $EXTRAS_ARCHIVE_DATA_DIR or ./archive-data).")
@click.option("--database-url", default=None,
              help="SQLAlchemy database URL (default: SQLite in the data directory).")
@click.pass_context
def cli(ctx, data_dir, database_url):
    """extras-archive: a VO archive for EXTraS-style X-ray variability catalogues."""
    overrides = {}
    if data_dir:
        overrides["DATA_DIR"] = data_dir
    if database_url:
        overrides["DATABASE_URL"] = database_url
    ctx.obj = Context(overrides)
    ctx.call_on_close(ctx.obj.close)


@cli.command("init-db")
@pass_context
def init_db_command(ctx):
    """Create the database tables (idempotent)."""
    ctx.db
    click.echo(f"database ready: {ctx.config['DATABASE_URL']}")


@cli.command("serve")
@click.option("--bind", default="127.0.0.1:8000", show_default=True,
              help="Address and port gunicorn listens on.")
@click.option("--workers", type=int, default=None,
              help="gunicorn worker processes (default: 2 per CPU core).")
@click.option("--threads", type=int, default=4, show_default=True,
              help="Threads per worker.")
@pass_context
def serve_command(ctx, bind, workers, threads):
    """Serve the archive with gunicorn (``gunicorn wsgi:app`` with this configuration)."""
    import os
    from pathlib import Path

    config = ctx.config
    if not Path(config["DATA_DIR"]).is_dir():
        raise click.ClickException(
            f"no archive in {config['DATA_DIR']}: build one with `extras-archive demo` "
            "or ingest catalogues first")
    workers = workers or 2 * (os.cpu_count() or 1)
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, EXTRAS_ARCHIVE_DATA_DIR=config["DATA_DIR"],
               EXTRAS_ARCHIVE_DATABASE_URL=config["DATABASE_URL"])
    click.echo(f"serving {config['DATA_DIR']} on http://{bind}/", err=True)
    args = [sys.executable, "-m", "gunicorn", "--chdir", str(root), "--bind", bind,
            "--workers", str(workers), "--threads", str(threads), "--timeout", "600",
            "wsgi:app"]
    os.execve(sys.executable, args, env)


def _register_commands():
    """Attach the sub-commands that live with their subsystems."""
    from ingest.cli import register as register_ingest
    register_ingest(cli)
    from archive.tap.worker import register as register_worker
    register_worker(cli)
    from .tap.cli import register as register_adql
    register_adql(cli)


def main(argv=None):
    _register_commands()
    return cli.main(args=argv, prog_name="extras-archive")


if __name__ == "__main__":
    # ``python -m archive.cli``: run the imported module's main, not this __main__ copy,
    # so that sub-commands registered from other packages share one Context class
    from archive.cli import main as _main
    sys.exit(_main())

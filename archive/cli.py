"""The ``extras-archive`` command line: one click group, sub-commands per job."""
from __future__ import annotations

import sys

import click

from .cli_context import Context, pass_context

__all__ = ["main", "cli"]


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
    args = [sys.executable, "-m", "gunicorn", "--chdir", str(root),
            "--config", str(root / "gunicorn.conf.py"), "--bind", bind,
            "--workers", str(workers), "--threads", str(threads), "--timeout", "600",
            "wsgi:app"]
    os.execve(sys.executable, args, env)


def _add_commands() -> None:
    """The sub-commands that live with their subsystems, attached as the group is built
    (this module is the top of the import graph: nothing imports it)."""
    from ingest.cli import demo_command, ingest_group
    from .tap.cli import adql_command, worker_command
    for command in (ingest_group, demo_command, worker_command, adql_command):
        cli.add_command(command)


_add_commands()


def main(argv=None):
    """The ``extras-archive`` entry point."""
    return cli.main(args=argv, prog_name="extras-archive")


if __name__ == "__main__":
    sys.exit(main())

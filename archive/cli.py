"""The ``extras-archive`` command line: one click group, sub-commands per job."""
from __future__ import annotations

import sys

import click
import sqlalchemy as sa

from .cli_context import Context, database_problem, masked_url, pass_context

__all__ = ["main", "cli"]


class _Group(click.Group):
    """The top group: errors of the database (an unreachable server, a malformed
    URL, a failing statement) and of the file system end a command with one line,
    or with their traceback under ``--traceback``."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            if ctx.params.get("traceback"):
                raise
            obj = ctx.obj if isinstance(ctx.obj, Context) else None
            url = obj.config["DATABASE_URL"] if obj is not None else ""
            if isinstance(exc, sa.exc.SQLAlchemyError):
                message = database_problem(exc, url)
            else:
                message = (f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename
                           else str(exc))
            raise click.ClickException(message + " (--traceback for details)") from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="extras-archive", prog_name="extras-archive")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Data directory (default: $EXTRAS_ARCHIVE_DATA_DIR or ./archive-data).")
@click.option("--database-url", default=None,
              help="SQLAlchemy database URL (default: SQLite in the data directory).")
@click.option("--traceback", is_flag=True,
              help="Show the traceback of an error instead of a one-line message.")
@click.pass_context
def cli(ctx, data_dir, database_url, traceback):
    """extras-archive: a VO archive for EXTraS-style X-ray variability catalogues."""
    overrides = {}
    if data_dir:
        overrides["DATA_DIR"] = data_dir
    if database_url:
        overrides["DATABASE_URL"] = database_url
    ctx.obj = Context(overrides, traceback=traceback)
    ctx.call_on_close(ctx.obj.close)


@cli.command("init-db")
@pass_context
def init_db_command(ctx):
    """Create the database tables (idempotent)."""
    ctx.db
    click.echo(f"database ready: {masked_url(ctx.config['DATABASE_URL'])}")


@cli.command("serve")
@click.option("--bind", default="127.0.0.1:8000", show_default=True,
              help="Address and port gunicorn listens on (HOST:PORT).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="gunicorn worker processes (default: 2 per CPU core).")
@click.option("--threads", type=click.IntRange(min=1), default=4, show_default=True,
              help="Threads per worker.")
@pass_context
def serve_command(ctx, bind, workers, threads):
    """Serve the archive with gunicorn (``gunicorn -c python:archive.gunicorn_conf wsgi:app``
    with this configuration)."""
    import os
    import time
    from pathlib import Path

    from .gunicorn_conf import worker_timeout
    from .progress import Progress

    started = time.time()
    progress = Progress("serve")
    config = ctx.config
    with progress.step(f"checking the archive in {config['DATA_DIR']}"):
        if not Path(config["DATA_DIR"]).is_dir():
            raise click.ClickException(
                f"no archive in {config['DATA_DIR']}: build one with `extras-archive demo` "
                "or ingest catalogues first")
    with progress.step("opening the database"):
        ctx.db
        ctx.close()
    with progress.step(f"checking that {bind} is free"):
        problem = _bind_problem(bind)
    if problem:
        raise click.ClickException(problem)
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, EXTRAS_ARCHIVE_DATA_DIR=config["DATA_DIR"],
               EXTRAS_ARCHIVE_DATABASE_URL=config["DATABASE_URL"],
               EXTRAS_ARCHIVE_SERVE_STARTED=repr(started))
    args = [sys.executable, "-m", "gunicorn", "-c", "python:archive.gunicorn_conf",
            "--chdir", str(root), "--bind", bind, "--threads", str(threads)]
    if workers:
        args += ["--workers", str(workers)]
    progress.line(
        f"starting gunicorn on http://{bind}/ ({workers or 'default'} workers x {threads} "
        f"threads, worker timeout {worker_timeout(config)} s from QUERY_TIMEOUT and "
        f"ASYNC_WAIT_CAP); it logs when each worker is ready")
    os.execve(sys.executable, args + ["wsgi:app"], env)


def _bind_problem(bind: str) -> str | None:
    """Why gunicorn could not listen on ``bind`` (HOST:PORT), with a free port to
    use instead; None if it can (or for unix: and fd:// addresses)."""
    import errno
    import socket
    if bind.startswith(("unix:", "fd://")):
        return None
    host, _, port = bind.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    if not port.isdigit() or not 0 < int(port) < 65536:
        return f"--bind {bind!r}: expected HOST:PORT, e.g. 127.0.0.1:8000"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    def bind_error(number: int) -> OSError | None:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as gunicorn
            try:
                sock.bind((host, number))
            except OSError as exc:
                return exc
        return None

    error = bind_error(int(port))
    if error is None:
        return None
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    if error.errno != errno.EADDRINUSE:
        return f"cannot listen on {bind}: {error.strerror}"
    free = next((n for n in range(int(port) + 1, min(int(port) + 100, 65536))
                 if bind_error(n) is None), None)
    hint = f" (e.g. --bind {shown}:{free}, free now)" if free else ""
    return (f"port {port} on {host} is already in use (another server is listening "
            f"there): stop it, or choose another port with --bind {shown}:PORT{hint}")


def _add_commands() -> None:
    """The sub-commands that live with their subsystems, attached as the group is built
    (this module is the top of the import graph: nothing imports it)."""
    from ingest.cli import demo_command, ingest_group, validate_command
    from .admin.cli import drop_group, info_command
    from .tap.cli import adql_command, worker_command
    for command in (ingest_group, demo_command, worker_command, adql_command, info_command,
                    drop_group):
        cli.add_command(command)
    # `extras-archive validate FILE` is `extras-archive ingest validate FILE`
    cli.add_command(validate_command, name="validate")


_add_commands()


def main(argv=None):
    """The ``extras-archive`` entry point."""
    return cli.main(args=argv, prog_name="extras-archive")


if __name__ == "__main__":
    sys.exit(main())

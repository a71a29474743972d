"""TAP's commands: ``extras-archive worker`` (run async jobs) and ``extras-archive adql``
(show the SQL an ADQL query becomes, or its error)."""
from __future__ import annotations

import logging
import sys
import threading

import click

from ..cli_context import Context, pass_context

__all__ = ["adql_command", "worker_command"]


@click.command("adql")
@click.argument("query")
@click.option("--dialect", type=click.Choice(["sqlite", "postgresql"]), default=None,
              help="SQL dialect (default: that of the archive's database).")
@click.option("--syntax-only", is_flag=True,
              help="Only check the query against the ADQL 2.1 grammar (no database needed).")
@pass_context
def adql_command(ctx: Context, query, dialect, syntax_only):
    """Translate an ADQL QUERY and print the SQL (exit 1 with the error if invalid)."""
    from ..db import PUBLISHED
    from .adql import ADQLError, Catalog, parse, translate
    try:
        if syntax_only:
            parse(query)
            click.echo("valid ADQL 2.1 syntax")
            return
        if dialect is None:
            import sqlalchemy as sa
            url = ctx.config["DATABASE_URL"]
            dialect = sa.engine.make_url(url).get_backend_name()
        result = translate(query, Catalog.of(PUBLISHED), dialect)
    except ADQLError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    click.echo(result.sql(dialect))


@click.command("worker")
@click.option("--once", is_flag=True, help="Run at most one queued job, then exit.")
@pass_context
def worker_command(ctx: Context, once):
    """Execute queued TAP async jobs (run any number of these, on any host)."""
    import signal

    from .worker import Worker, notify
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    w = Worker(ctx.db, ctx.config)
    if once:
        w.sweep()
        phase = w.run_once()
        click.echo(f"{w.identity}: {phase or 'no job queued'}")
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: (stop.set(), notify()))
    click.echo(f"UWS worker {w.identity} serving {ctx.config['DATABASE_URL']}")
    w.serve(stop)

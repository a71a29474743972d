"""``extras-archive adql QUERY``: show the SQL an ADQL query becomes, or its error."""
from __future__ import annotations

import sys

import click

__all__ = ["register", "adql_command"]


@click.command("adql")
@click.argument("query")
@click.option("--dialect", type=click.Choice(["sqlite", "postgresql"]), default=None,
              help="SQL dialect (default: that of the archive's database).")
@click.option("--syntax-only", is_flag=True,
              help="Only check the query against the ADQL 2.1 grammar (no database needed).")
@click.pass_context
def adql_command(ctx, query, dialect, syntax_only):
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
            url = ctx.obj.config["DATABASE_URL"]
            dialect = sa.engine.make_url(url).get_backend_name()
        result = translate(query, Catalog.of(PUBLISHED), dialect)
    except ADQLError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    click.echo(result.sql(dialect))


def register(cli) -> None:
    """Attach the ``adql`` command to the ``extras-archive`` click group."""
    if "adql" not in cli.commands:
        cli.add_command(adql_command)

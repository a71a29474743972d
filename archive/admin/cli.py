"""``extras-archive info`` and ``extras-archive drop catalogue NAME``."""
from __future__ import annotations

import json

import click

import datamodel
from ..cli_context import Context, pass_context

__all__ = ["info_command", "drop_group"]


@click.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@pass_context
def info_command(ctx: Context, as_json):
    """Show what the archive holds: catalogues, products, jobs, database and disk use."""
    from .info import archive_info, format_info
    info = archive_info(ctx.db, ctx.config)
    click.echo(json.dumps(info, indent=2) if as_json else format_info(info))


@click.group("drop")
def drop_group():
    """Remove data from the archive."""


@drop_group.command("catalogue")
@click.argument("name", type=click.Choice(list(datamodel.TABLES)))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_context
def drop_catalogue_command(ctx: Context, name, yes):
    """Empty catalogue NAME and remove what derives from it (products no longer
    linked, their ObsCore rows, cached searches, MOC files), in one transaction."""
    from .drop import drop_catalogue, plan_drop
    plan = plan_drop(ctx.db, ctx.config, name)
    if not yes:
        click.echo(plan.summary(done=False), err=True)
        click.confirm(f"drop catalogue {name}?", abort=True, err=True)
    click.echo(drop_catalogue(ctx.db, ctx.config, name).summary())

"""The ``extras-archive ingest`` group and the ``extras-archive demo`` command."""
from __future__ import annotations

import click

from archive.cli_context import Context, masked_url, pass_context
from archive.progress import Progress

from .errors import IngestError

__all__ = ["ingest_group", "demo_command"]


@click.group("ingest")
def ingest_group():
    """Load catalogues and product files into the archive."""


def _catalogue_options(command):
    """The options ``ingest catalogue`` and ``ingest validate`` share."""
    options = [
        click.option("--catalogue", "catalogue", required=True,
                     help="Target table: aperiodic, transients, periodic, longterm, "
                          "longterm_points or classification."),
        click.option("--format", "fmt", type=click.Choice(["fits", "votable", "csv"]),
                     default=None,
                     help="Input format (default: from the extension, else the content)."),
        click.option("--mode", type=click.Choice(["replace", "append"]), default="replace",
                     show_default=True,
                     help="replace: rows whose keys are in the table are replaced; "
                          "append: only new rows, a key already in the table refuses "
                          "the load."),
        click.option("--allow-empty-columns", is_flag=True,
                     help="Load a file lacking most of the catalogue's columns, or "
                          "replace rows with empty values where they had values."),
        click.option("--delimiter", default=None,
                     help="CSV delimiter, one character or 'tab' (default: sniffed "
                          "among , ; tab |)."),
        click.option("--encoding", default=None,
                     help="CSV text encoding (default: UTF-8; a byte-order mark is "
                          "skipped)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _run_catalogue(ctx: Context, file, catalogue, fmt, mode, allow_empty_columns,
                   delimiter, encoding, dry_run: bool):
    from .catalogue import ingest_catalogue, resolve_catalogue
    if delimiter in ("tab", "\\t"):
        delimiter = "\t"
    progress = Progress("ingest")
    try:
        resolve_catalogue(catalogue)
        report = ingest_catalogue(ctx.db.engine, file, catalogue, progress=progress, fmt=fmt,
                                  mode=mode, allow_empty=allow_empty_columns,
                                  dry_run=dry_run, delimiter=delimiter, encoding=encoding)
    except IngestError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        ctx.db.dispose()
    click.echo(report.summary())
    if report.problems:                 # a dry run that found why the ingest would fail
        raise click.exceptions.Exit(1)


@ingest_group.command("catalogue")
@click.argument("file", type=click.Path(dir_okay=False))
@_catalogue_options
@click.option("--dry-run", is_flag=True,
              help="Read, check and count (new, replaced, unchanged rows; columns "
                   "missing or ignored; problems); write nothing.")
@pass_context
def catalogue_command(ctx: Context, file, dry_run, **options):
    """Validate FILE (FITS, VOTable or CSV) and load it into a catalogue, all or nothing."""
    _run_catalogue(ctx, file, dry_run=dry_run, **options)


@ingest_group.command("validate")
@click.argument("file", type=click.Path(dir_okay=False))
@_catalogue_options
@pass_context
def validate_command(ctx: Context, file, **options):
    """Check FILE against a catalogue and the archive, writing nothing (= catalogue --dry-run)."""
    _run_catalogue(ctx, file, dry_run=True, **options)


@ingest_group.command("products")
@click.argument("directory", type=click.Path(file_okay=False), required=False)
@click.option("--no-previews", is_flag=True, help="Do not draw PNG quick-looks.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes for checksums and quick-looks (default: all cores).")
@pass_context
def products_command(ctx: Context, directory, no_previews, workers):
    """Register the product files under DIRECTORY (default: PRODUCTS_DIR)."""
    from .products import ingest_products
    try:
        report = ingest_products(ctx.db.engine, ctx.config, directory,
                                 previews=not no_previews, workers=workers,
                                 progress=Progress("ingest"))
    except IngestError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        ctx.db.dispose()
    click.echo(report.summary())


@click.command("demo")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Data directory of the demo archive (same as the group's option).")
@click.option("--rows", type=click.IntRange(min=100), default=20000, show_default=True,
              help="Rows of the aperiodic catalogue.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes for products and quick-looks (default: all cores).")
@click.option("--no-products", is_flag=True, help="Catalogues only.")
@click.option("--no-previews", is_flag=True, help="Products without PNG quick-looks.")
@pass_context
def demo_command(ctx: Context, data_dir, rows, seed, workers, no_products, no_previews):
    """Build the deterministic demo archive (replaces any archive in the data directory)."""
    from .demo import build_demo
    if data_dir:
        overrides = dict(ctx.overrides)
        overrides["DATA_DIR"] = data_dir
        ctx = Context(overrides, traceback=ctx.traceback)
    config = ctx.config
    ctx.db                 # a database that cannot be used stops here, with one line
    ctx.close()
    progress = Progress("demo")
    progress.line(f"building the demo archive in {config['DATA_DIR']} ({rows} rows)")
    try:
        summary = build_demo(config, rows=rows, seed=seed, workers=workers,
                             products=not no_products, previews=not no_previews,
                             progress=progress)
    except IngestError as exc:
        raise click.ClickException(str(exc)) from None
    for name, count in summary["rows"].items():
        click.echo(f"{name}: {count} rows")
    click.echo(f"product files: {summary['product_files']} "
               f"(quick-looks drawn: {summary['previews']})")
    click.echo(f"injected flares: {summary['flares']}, eclipses: {summary['eclipses']}")
    click.echo(f"database: {masked_url(config['DATABASE_URL'])}")
    click.echo(f"done in {summary['seconds']:.1f} s")

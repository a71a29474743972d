"""Catalogue ingest: read a FITS, VOTable or CSV file, validate it, load it.

``ingest_catalogue(engine, path, "aperiodic")`` is what ``extras-archive ingest
catalogue FILE --catalogue NAME`` runs. It reads the whole file (astropy), validates
every row against the data model (:mod:`ingest.validate`) before touching the
database, then loads the rows in one transaction (:mod:`ingest.load`): a failure
anywhere leaves the database exactly as it was, and ingesting the same file twice
gives the same state (rows whose keys the file carries are replaced).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine

import datamodel
from archive.progress import Progress

from .errors import IngestError
from .load import load
from .staging import MODES, Checks
from .readers import read_table
from .validate import prepare

__all__ = ["CatalogueReport", "ingest_catalogue", "resolve_catalogue"]


#: A file must carry at least this fraction of the catalogue's columns (the id built
#: from the keys counts) unless the operator allows empty columns: fewer is the sign
#: of a file meant for another catalogue.
MIN_COLUMN_FRACTION = 0.5


@dataclass
class CatalogueReport:
    """What one catalogue ingest did (or, for a dry run, would do)."""

    path: str
    catalogue: str
    format: str
    rows: int
    replaced: int
    total: int
    seconds: float
    ignored_columns: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def new(self) -> int:
        return self.rows - self.replaced

    def summary(self) -> str:
        if self.dry_run:
            kept = self.total - self.rows
            lines = [f"{self.path}: dry run, nothing written: {self.rows} rows for "
                     f"{self.catalogue} ({self.format}): {self.new} new, {self.replaced} "
                     f"replacing existing rows, {kept} rows of the table unchanged; "
                     f"{self.total} rows in the table after the ingest"]
        else:
            lines = [f"{self.path}: {self.rows} rows ingested into {self.catalogue} "
                     f"({self.format}; {self.new} new; {self.replaced} existing rows "
                     f"replaced; {self.total} rows in the table; {self.seconds:.1f} s)"]
        if self.missing_columns:
            lines.append(f"columns of {self.catalogue} not in the file, left empty: "
                         f"{', '.join(self.missing_columns)}")
        if self.ignored_columns:
            lines.append("columns not in the data model, ignored: "
                         f"{', '.join(self.ignored_columns)}")
        if self.dry_run:
            if self.problems:
                lines.append(f"{len(self.problems)} problem(s): the ingest would be refused")
                lines.extend(self.problems)
            else:
                lines.append("problems: none")
        return "\n".join(lines)


def resolve_catalogue(name: str) -> datamodel.Table:
    """The data-model table called ``name``; IngestError listing the known ones."""
    try:
        return datamodel.get_table(name)
    except KeyError:
        raise IngestError(f"unknown catalogue {name!r}; known: "
                          f"{', '.join(datamodel.TABLES)}") from None


def _too_few_columns(prep, filename: str) -> list[str]:
    """A refusal when the file lacks most of the catalogue's columns."""
    declared = len(prep.table.columns)
    present = declared - len(prep.missing)
    if present >= MIN_COLUMN_FRACTION * declared:
        return []
    return [f"{filename}: the file has only {present} of the {declared} columns of "
            f"{prep.table.name} (is it a file of another catalogue?); missing: "
            f"{', '.join(prep.missing)} (--allow-empty-columns loads it anyway)"]


def ingest_catalogue(engine: Engine, path: Path | str, catalogue: str,
                     progress: Progress | None = None,
                     fmt: str | None = None, mode: str = "replace",
                     allow_empty: bool = False, dry_run: bool = False,
                     delimiter: str | None = None,
                     encoding: str | None = None) -> CatalogueReport:
    """Ingest the file ``path`` into ``catalogue``; IngestError on bad input.

    ``mode``: "replace" (rows whose keys the file carries are replaced) or
    "append" (such rows refuse the load). Unless ``allow_empty``, a file lacking
    most of the catalogue's columns, or replacing rows with empty values where they
    had values, is refused. ``dry_run``: everything but the writing; the report
    lists the counts and the problems (refusals) instead of raising them.
    ``progress`` (:mod:`archive.progress`) gets the steps reading, validating,
    loading, indexing and committing.
    """
    started = time.perf_counter()
    progress = Progress.of(progress)
    table = resolve_catalogue(catalogue)
    if mode not in MODES:
        raise IngestError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    path = Path(path)
    with progress.step(f"reading {path.name}"):
        data, fmt = read_table(path, fmt, delimiter=delimiter, encoding=encoding)
    with progress.step(f"validating {len(data)} rows for {table.name}"):
        prep = prepare(table, data, str(path))
    del data
    problems = [] if allow_empty else _too_few_columns(prep, str(path))
    if problems and not dry_run:
        raise IngestError(problems[0] + "; nothing was ingested")
    checks = Checks(str(path), mode=mode, allow_empty=allow_empty, dry_run=dry_run,
                    absent=tuple(prep.missing))
    result = load(engine, prep, progress=progress, checks=checks)
    return CatalogueReport(str(path), table.name, fmt, result.inserted, result.replaced,
                           result.total, time.perf_counter() - started, prep.ignored,
                           prep.missing, problems + result.refusals, dry_run)

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
from .readers import read_table
from .validate import prepare

__all__ = ["CatalogueReport", "ingest_catalogue", "resolve_catalogue"]


@dataclass
class CatalogueReport:
    """What one catalogue ingest did."""

    path: str
    catalogue: str
    format: str
    rows: int
    replaced: int
    total: int
    seconds: float
    ignored_columns: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"{self.path}: {self.rows} rows ingested into {self.catalogue} "
                f"({self.format}; {self.replaced} existing rows replaced; "
                f"{self.total} rows in the table; {self.seconds:.1f} s)")
        if self.ignored_columns:
            text += f"; columns not in the data model, ignored: {', '.join(self.ignored_columns)}"
        return text


def resolve_catalogue(name: str) -> datamodel.Table:
    """The data-model table called ``name``; IngestError listing the known ones."""
    try:
        return datamodel.get_table(name)
    except KeyError:
        raise IngestError(f"unknown catalogue {name!r}; known: "
                          f"{', '.join(datamodel.TABLES)}") from None


def ingest_catalogue(engine: Engine, path: Path | str, catalogue: str,
                     progress: Progress | None = None,
                     fmt: str | None = None) -> CatalogueReport:
    """Ingest the file ``path`` into ``catalogue``; IngestError on bad input.

    ``progress`` (:mod:`archive.progress`) gets the steps reading, validating,
    loading, indexing and committing.
    """
    started = time.perf_counter()
    progress = Progress.of(progress)
    table = resolve_catalogue(catalogue)
    path = Path(path)
    with progress.step(f"reading {path.name}"):
        data, fmt = read_table(path, fmt)
    with progress.step(f"validating {len(data)} rows for {table.name}"):
        prep = prepare(table, data, str(path))
    del data
    result = load(engine, prep, progress=progress)
    return CatalogueReport(str(path), table.name, fmt, result.inserted, result.replaced,
                           result.total, time.perf_counter() - started, prep.ignored)

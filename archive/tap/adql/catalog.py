"""What ADQL queries may use: the published tables and columns, and uploaded tables.

Built from the published tables the caller passes in (pairs of a data-model table
and its SQLAlchemy table: ``archive.db.PUBLISHED``); uploads (schema ``TAP_UPLOAD``)
are added per query by the uploads code. This package imports no database module. Only what is described here can be named in a query: the
hidden spatial columns (``_hpx``, ``_x``, ``_y``, ``_z``) are not, but the translator
uses them for geometry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import sqlalchemy as sa

from archive.result import ResultColumn, columns_of

__all__ = ["Catalog", "CatalogTable", "Upload", "UPLOAD_SCHEMA"]

UPLOAD_SCHEMA = "TAP_UPLOAD"


@dataclass
class Upload:
    """An uploaded table: its ADQL name (``TAP_UPLOAD.<name>``), its column
    descriptions (ResultColumn-like: name, datatype, arraysize, unit, ucd, utype,
    xtype, description) and the SQLAlchemy Table of its temporary table.

    ``ra``/``dec`` name the position columns if the table has one (the uploads code
    decides, e.g. from UCDs); if the temporary table also has ``_hpx, _x, _y, _z``
    columns they are used like those of the catalogues.
    """

    name: str
    columns: Sequence
    table: sa.Table
    ra: str | None = None
    dec: str | None = None


@dataclass
class CatalogTable:
    """One table as ADQL sees it."""

    schema: str
    name: str
    table: sa.Table                         # SQLAlchemy table (physical)
    columns: list[ResultColumn]             # published columns, in order
    ra: str | None = None                   # principal position columns, if any
    dec: str | None = None
    spatial: bool = False                   # has _hpx, _x, _y, _z
    description: str | None = None
    _by_name: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self._by_name = {c.name: c for c in self.columns}

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"

    def column(self, name: str, delimited: bool) -> ResultColumn | None:
        """The published column called ``name`` (regular identifiers: any case)."""
        if delimited:
            return self._by_name.get(name)
        hits = [c for c in self.columns if c.name.lower() == name.lower()]
        return hits[0] if len(hits) == 1 else self._by_name.get(name)


def _names_match(declared: str, given: str, delimited: bool) -> bool:
    return declared == given if delimited else declared.lower() == given.lower()


class Catalog:
    """The tables a query may name, looked up by (schema, table) as ADQL spells them."""

    def __init__(self, tables: Sequence[CatalogTable]):
        self.tables = list(tables)

    @classmethod
    def of(cls, published: Sequence, uploads: Sequence[Upload] | None = None) -> "Catalog":
        """The ``published`` tables ((data-model table, SQLAlchemy table) pairs: the
        catalogues and TAP_SCHEMA) and the given uploaded tables."""
        tables = list(_published_tables(published))
        for upload in uploads or ():
            tables.append(cls.upload_table(upload))
        return cls(tables)

    @staticmethod
    def upload_table(upload: Upload) -> CatalogTable:
        cols = columns_of(upload.columns)
        spatial = all(n in upload.table.c for n in ("_hpx", "_x", "_y", "_z"))
        return CatalogTable(UPLOAD_SCHEMA, upload.name, upload.table, cols,
                            ra=upload.ra, dec=upload.dec, spatial=spatial)

    def find(self, schema: tuple[str, bool] | None, name: tuple[str, bool]) -> list[CatalogTable]:
        """Tables matching ``name`` (and ``schema`` if given); each a (text, delimited) pair."""
        hits = []
        for t in self.tables:
            if not _names_match(t.name, name[0], name[1]):
                continue
            if schema is not None and not _names_match(t.schema, schema[0], schema[1]):
                continue
            hits.append(t)
        return hits

    def table_names(self) -> list[str]:
        return [t.qualified_name for t in self.tables]


#: CatalogTables of the published tables, built once per ``published`` sequence (the
#: data model does not change while the process runs; translation only reads them).
#: Keyed by identity, with the sequence kept so that its id stays its own.
_PUBLISHED: dict[int, tuple[Sequence, tuple[CatalogTable, ...]]] = {}


def _published_tables(published: Sequence) -> tuple[CatalogTable, ...]:
    found = _PUBLISHED.get(id(published))
    if found is not None and found[0] is published:
        return found[1]
    tables = []
    for model, table in published:
        ra, dec = model.role_column("ra"), model.role_column("dec")
        tables.append(CatalogTable(
            model.schema, model.name, table, columns_of(model.columns),
            ra=ra.name if ra else None, dec=dec.name if dec else None,
            spatial=model.positional, description=model.description))
    built = tuple(tables)
    _PUBLISHED[id(published)] = (published, built)
    return built

"""What the service publishes about its tables, derived from the declarations.

``tap_schema_rows()`` derives the rows of TAP_SCHEMA.schemas, tables, columns,
keys and key_columns from the data model (the catalogues and TAP_SCHEMA itself,
which describes itself, foreign keys included); ``archive.db.fill_tap_schema``
writes them. The VOSI /tables documents use the same records, so /tables and
TAP_SCHEMA cannot disagree (taplint TMC).
"""
from __future__ import annotations

from .catalogues import SCHEMA, TABLES
from .names import adql_name
from .obscore import OBSCORE_TABLES
from .obscore import SCHEMA as OBSCORE_SCHEMA
from .tap_schema import TAP_SCHEMA_TABLES
from .types import Column, Table

__all__ = ["SCHEMA_DESCRIPTIONS", "published_tables", "indexed_columns", "column_record",
           "table_record", "key_records", "tap_schema_rows"]

SCHEMA_DESCRIPTIONS = {
    SCHEMA: "EXTraS-style catalogues of the variability of XMM-Newton EPIC sources: "
            "aperiodic short-term variability, transients, periodicity, long-term "
            "variability and multiwavelength classification",
    OBSCORE_SCHEMA: "IVOA standard tables: ivoa.obscore describes the products for discovery "
                    "(ObsCore 1.1, ObsTAP)",
    "TAP_SCHEMA": "Description of the schemas, tables, columns and foreign keys of this "
                  "TAP service (TAP 1.1 section 4)",
}


def published_tables() -> list[Table]:
    """Every table published in TAP_SCHEMA, in publication order."""
    return [*TABLES.values(), *OBSCORE_TABLES.values(), *TAP_SCHEMA_TABLES.values()]


def indexed_columns(table: Table) -> set[str]:
    """Columns a query can constrain through an index.

    Declared indexed columns, the leading key column, and on positional tables
    RA and Dec (CONTAINS/DISTANCE on them uses the HEALPix index).
    """
    names = {c.name for c in table.columns if c.indexed}
    if table.key:
        names.add(table.key[0])
    if table.positional:
        names.update(c.name for c in table.columns if c.role in ("ra", "dec"))
    return names


def _size(arraysize: str | None) -> int | None:
    if not arraysize:
        return None
    digits = arraysize.rstrip("*")
    return int(digits) if digits.isdigit() else None


def column_record(table: Table, column: Column, index: int,
                  indexed: set[str] | None = None) -> dict:
    """The TAP_SCHEMA.columns row of ``column`` (keys are the physical column names)."""
    indexed = indexed_columns(table) if indexed is None else indexed
    return {
        "table_name": table.qualified_name,
        "column_name": adql_name(column.name),
        "datatype": column.datatype,
        "arraysize": column.arraysize,
        "xtype": column.xtype,
        "size": _size(column.arraysize),
        "description": column.description,
        "utype": column.utype,
        "unit": column.unit,
        "ucd": column.ucd,
        "indexed": int(column.name in indexed),
        "principal": int(column.principal),
        "std": int(column.std),
        "column_index": index,
    }


def table_record(table: Table, index: int) -> dict:
    """The TAP_SCHEMA.tables row of ``table``."""
    return {"schema_name": table.schema, "table_name": table.qualified_name,
            "table_type": "table", "utype": table.utype,
            "description": table.description, "table_index": index}


def key_records(table: Table) -> list[tuple[dict, list[dict]]]:
    """(TAP_SCHEMA.keys row, [key_columns rows]) for each foreign key of ``table``."""
    out = []
    by_name = {t.name: t for t in published_tables() if t.schema == table.schema}
    for number, fk in enumerate(table.foreign_keys, start=1):
        target = by_name[fk.target]
        key_id = f"{table.qualified_name}.fk{number}"
        key = {"key_id": key_id, "from_table": table.qualified_name,
               "target_table": target.qualified_name, "description": fk.description or None,
               "utype": None}
        cols = [{"key_id": key_id, "from_column": adql_name(f),
                 "target_column": adql_name(t)}
                for f, t in zip(fk.columns, fk.target_columns)]
        out.append((key, cols))
    return out


def tap_schema_rows() -> dict[str, list[dict]]:
    """All rows of TAP_SCHEMA, by TAP_SCHEMA table short name."""
    tables = published_tables()
    schemas = list(dict.fromkeys(t.schema for t in tables))
    rows: dict[str, list[dict]] = {name: [] for name in TAP_SCHEMA_TABLES}
    rows["schemas"] = [{"schema_name": s, "utype": None,
                        "description": SCHEMA_DESCRIPTIONS.get(s), "schema_index": i}
                       for i, s in enumerate(schemas)]
    for ti, table in enumerate(tables):
        rows["tables"].append(table_record(table, ti))
        indexed = indexed_columns(table)
        rows["columns"] += [column_record(table, c, ci, indexed)
                            for ci, c in enumerate(table.columns)]
        for key, cols in key_records(table):
            rows["keys"].append(key)
            rows["key_columns"] += cols
    return rows

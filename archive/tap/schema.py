"""TAP_SCHEMA, filled from the data model (no Flask).

``tap_schema_rows()`` derives the rows of TAP_SCHEMA.schemas, tables, columns,
keys and key_columns from ``datamodel`` (the catalogues and TAP_SCHEMA itself,
which describes itself, foreign keys included). ``fill_tap_schema(engine)``
writes them to the database when they differ from what is there; it is called by
``archive.db.init_db``, so every new database gets TAP_SCHEMA and every start
after a data-model change refreshes it. The VOSI /tables documents use the same
records, so /tables and TAP_SCHEMA cannot disagree.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

import datamodel
from datamodel.tap_schema import TAP_SCHEMA_TABLES

__all__ = ["SCHEMA_DESCRIPTIONS", "RESERVED_WORDS", "published_tables", "adql_name",
           "column_record", "table_record", "key_records", "tap_schema_rows",
           "fill_tap_schema", "indexed_columns"]

SCHEMA_DESCRIPTIONS = {
    datamodel.SCHEMA: "EXTraS-style catalogues of the variability of XMM-Newton EPIC "
                      "sources: aperiodic short-term variability, transients, periodicity, "
                      "long-term variability and multiwavelength classification",
    "TAP_SCHEMA": "Description of the schemas, tables, columns and foreign keys of this "
                  "TAP service (TAP 1.1 section 4)",
}

#: SQL-92 and ADQL 2.1 reserved words (ADQL 2.1 section 2.1.2); a column whose name
#: is one of these is published delimited (TAP 1.1 section 4.3), as taplint checks
#: (E_CRSV). Written out here because it is a publishing rule, not a parsing one.
#: DEC is left out, as in ADQL's list and taplint's: astronomers write ``dec``.
RESERVED_WORDS = frozenset("""
ABSOLUTE ACTION ADD ALL ALLOCATE ALTER AND ANY ARE AS ASC ASSERTION AT AUTHORIZATION AVG
BEGIN BETWEEN BIT BIT_LENGTH BOTH BY CASCADE CASCADED CASE CAST CATALOG CHAR CHARACTER
CHAR_LENGTH CHARACTER_LENGTH CHECK CLOSE COALESCE COLLATE COLLATION COLUMN COMMIT CONNECT
CONNECTION CONSTRAINT CONSTRAINTS CONTINUE CONVERT CORRESPONDING COUNT CREATE CROSS
CURRENT CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER CURSOR DATE DAY
DEALLOCATE DECIMAL DECLARE DEFAULT DEFERRABLE DEFERRED DELETE DESC DESCRIBE
DESCRIPTOR DIAGNOSTICS DISCONNECT DISTINCT DOMAIN DOUBLE DROP ELSE END END-EXEC ESCAPE
EXCEPT EXCEPTION EXEC EXECUTE EXISTS EXTERNAL EXTRACT FALSE FETCH FIRST FLOAT FOR
FOREIGN FOUND FROM FULL GET GLOBAL GO GOTO GRANT GROUP HAVING HOUR IDENTITY IMMEDIATE IN
INDICATOR INITIALLY INNER INPUT INSENSITIVE INSERT INT INTEGER INTERSECT INTERVAL INTO
IS ISOLATION JOIN KEY LANGUAGE LAST LEADING LEFT LEVEL LIKE LOCAL LOWER MATCH MAX MIN
MINUTE MODULE MONTH NAMES NATIONAL NATURAL NCHAR NEXT NO NOT NULL NULLIF NUMERIC
OCTET_LENGTH OF ON ONLY OPEN OPTION OR ORDER OUTER OUTPUT OVERLAPS PAD PARTIAL POSITION
PRECISION PREPARE PRESERVE PRIMARY PRIOR PRIVILEGES PROCEDURE PUBLIC READ REAL REFERENCES
RELATIVE RESTRICT REVOKE RIGHT ROLLBACK ROWS SCHEMA SCROLL SECOND SECTION SELECT SESSION
SESSION_USER SET SIZE SMALLINT SOME SPACE SQL SQLCODE SQLERROR SQLSTATE SUBSTRING SUM
SYSTEM_USER TABLE TEMPORARY THEN TIME TIMESTAMP TIMEZONE_HOUR TIMEZONE_MINUTE TO
TRAILING TRANSACTION TRANSLATE TRANSLATION TRIM TRUE UNION UNIQUE UNKNOWN UPDATE UPPER
USAGE USER USING VALUE VALUES VARCHAR VARYING VIEW WHEN WHENEVER WHERE WITH WORK WRITE
YEAR ZONE
ABS ACOS ASIN ATAN ATAN2 CEILING COS COT DEGREES EXP FLOOR LOG LOG10 MOD PI POWER
RADIANS RAND ROUND SIN SQRT TAN TOP TRUNCATE
AREA BOX CENTROID CIRCLE CONTAINS COORD1 COORD2 COORDSYS DISTANCE INTERSECTS POINT
POLYGON REGION
BIGINT BOOLEAN ILIKE IN_UNIT OFFSET
""".split())


def published_tables() -> list[datamodel.Table]:
    """Every table published in TAP_SCHEMA, in publication order."""
    return [*datamodel.TABLES.values(), *TAP_SCHEMA_TABLES.values()]


def adql_name(name: str) -> str:
    """``name`` as it is written in ADQL: delimited if it is a reserved word."""
    return f'"{name}"' if name.upper() in RESERVED_WORDS else name


def indexed_columns(table: datamodel.Table) -> set[str]:
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


def column_record(table: datamodel.Table, column: datamodel.Column, index: int,
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


def table_record(table: datamodel.Table, index: int) -> dict:
    """The TAP_SCHEMA.tables row of ``table``."""
    return {"schema_name": table.schema, "table_name": table.qualified_name,
            "table_type": "table", "utype": table.utype,
            "description": table.description, "table_index": index}


def key_records(table: datamodel.Table) -> list[tuple[dict, list[dict]]]:
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


def _normalised(rows: list[dict], table: sa.Table) -> list[tuple]:
    names = [c.name for c in table.columns]
    return sorted((tuple(r.get(n) for n in names) for r in rows), key=repr)


def _lock(conn, dialect: str, tables: dict[str, sa.Table]) -> None:
    """Serialise concurrent fillers (several gunicorn workers start at once)."""
    if dialect == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(742315001)")
    else:
        # a write statement first thing in the transaction takes SQLite's write lock
        # (waiting under busy_timeout), so the read below sees the latest state
        conn.execute(sa.delete(tables["key_columns"]).where(sa.false()))


def fill_tap_schema(engine: Engine) -> bool:
    """Make TAP_SCHEMA match the data model; returns True if it was rewritten."""
    from ..db import tap_schema_tables
    wanted = tap_schema_rows()
    with engine.begin() as conn:
        _lock(conn, engine.dialect.name, tap_schema_tables)
        same = all(
            _normalised([dict(r._mapping) for r in conn.execute(sa.select(tbl))], tbl)
            == _normalised(wanted[name], tbl)
            for name, tbl in tap_schema_tables.items())
        if same:
            return False
        for name in ("key_columns", "keys", "columns", "tables", "schemas"):
            conn.execute(sa.delete(tap_schema_tables[name]))
        for name in ("schemas", "tables", "columns", "keys", "key_columns"):
            if wanted[name]:
                conn.execute(sa.insert(tap_schema_tables[name]), wanted[name])
    return True

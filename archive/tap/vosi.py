"""Data for the VOSI documents of the TAP service (no Flask).

The /tables documents are built from the same records as TAP_SCHEMA
(``datamodel.publish``), so the two cannot disagree (taplint TMC).
"""
from __future__ import annotations

from datamodel.names import adql_name
from datamodel.obscore import OBSCORE_DATA_MODEL, OBSCORE_DATA_MODEL_NAME
from datamodel.publish import (SCHEMA_DESCRIPTIONS, indexed_columns, key_records,
                               published_tables)

__all__ = ["DATA_MODELS", "DETAILS", "tableset", "find_table", "table_entry", "TAPREGEXT",
           "ADQL_FEATURES", "output_formats"]

DETAILS = ("min", "max")

TAPREGEXT = "ivo://ivoa.net/std/TAPRegExt"

#: Data models the service implements (TAPRegExt dataModel: ivo-id, name).
DATA_MODELS = [(OBSCORE_DATA_MODEL, OBSCORE_DATA_MODEL_NAME)]

#: Optional ADQL features the translator implements, by TAPRegExt feature type.
#: Geometry goes under TAPRegExt 1.0's ``features-adqlgeo``: that is the key TOPCAT,
#: pyvo and taplint look for (ADQL 2.1's ``features-adql-geo`` is unknown to them;
#: see docs/tap.md). The ADQL 2.1 keys below are the ones taplint 3.4.7 knows.
ADQL_FEATURES = {
    TAPREGEXT + "#features-adqlgeo": [
        ("POINT", "A position on the sky: POINT(ra, dec) in degrees (ICRS)"),
        ("CIRCLE", "A cone: CIRCLE(ra, dec, radius) in degrees"),
        ("BOX", "A box: BOX(ra, dec, width, height) in degrees"),
        ("POLYGON", "A spherical polygon: POLYGON(ra1, dec1, ra2, dec2, ...)"),
        ("CONTAINS", "1 if a point lies in a shape; uses the HEALPix index for constant "
                     "shapes"),
        ("INTERSECTS", "1 if two shapes overlap"),
        ("DISTANCE", "Great-circle distance between two points, in degrees"),
        ("COORD1", "The first coordinate (RA) of a point"),
        ("COORD2", "The second coordinate (Dec) of a point"),
        ("AREA", "The area of a shape, in square degrees"),
    ],
    TAPREGEXT + "#features-adql-string": [
        ("LOWER", "Lower-case a string"),
        ("UPPER", "Upper-case a string"),
        ("ILIKE", "Case-insensitive LIKE"),
    ],
    TAPREGEXT + "#features-adql-offset": [("OFFSET", "Skip rows of the result")],
    TAPREGEXT + "#features-adql-sets": [
        ("UNION", "Union of two query results"),
        ("EXCEPT", "Rows of one result that are not in another"),
        ("INTERSECT", "Rows common to two results"),
    ],
    TAPREGEXT + "#features-adql-common-table": [("WITH", "Common table expressions")],
    TAPREGEXT + "#features-adql-type": [("CAST", "Convert a value to another type")],
}


def _flags(table, column, indexed: set[str]) -> list[str]:
    flags = []
    if column.name in indexed:
        flags.append("indexed")
    if column.principal:
        flags.append("primary")
    if not column.required:
        flags.append("nullable")
    return flags


def table_entry(table, detail: str = "max") -> dict:
    """What the VODataService ``table`` element of ``table`` says."""
    indexed = indexed_columns(table)
    entry = {"name": table.qualified_name, "title": table.title,
             "description": table.description, "utype": table.utype,
             "columns": [], "foreign_keys": []}
    if detail == "min":
        return entry
    entry["columns"] = [
        {"name": adql_name(c.name), "description": c.description, "unit": c.unit,
         "ucd": c.ucd, "utype": c.utype, "datatype": c.datatype,
         "arraysize": c.arraysize, "xtype": c.xtype, "std": c.std,
         "flags": _flags(table, c, indexed)}
        for c in table.columns]
    entry["foreign_keys"] = [
        {"target": key["target_table"], "description": key["description"],
         "utype": key["utype"],
         "columns": [(kc["from_column"], kc["target_column"]) for kc in cols]}
        for key, cols in key_records(table)]
    return entry


def tableset(detail: str = "max") -> list[dict]:
    """The schemas of the /tables document, each with its table entries."""
    schemas: dict[str, dict] = {}
    for table in published_tables():
        schema = schemas.setdefault(table.schema, {
            "name": table.schema, "description": SCHEMA_DESCRIPTIONS.get(table.schema),
            "tables": []})
        schema["tables"].append(table_entry(table, detail))
    return list(schemas.values())


def find_table(name: str):
    """The published table called ``name`` (qualified, case-insensitive), or None."""
    for table in published_tables():
        if table.qualified_name.lower() == name.strip().lower():
            return table
    return None


def output_formats(formats) -> list[dict]:
    """The outputFormat entries of the capabilities for the registered formats."""
    ids = {"votable": TAPREGEXT + "#output-votable-binary2",
           "votable/td": TAPREGEXT + "#output-votable-td",
           "votable/b2": TAPREGEXT + "#output-votable-binary2",
           "votable/binary2": TAPREGEXT + "#output-votable-binary2"}
    out = []
    for fmt in formats:
        aliases = [a for a in dict.fromkeys((fmt.key, *fmt.aliases)) if a != fmt.mime]
        out.append({"mime": fmt.mime, "aliases": aliases, "ivo_id": ids.get(fmt.key)})
    return out

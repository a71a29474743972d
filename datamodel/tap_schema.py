"""TAP_SCHEMA, declared like any other table so that it describes itself.

The physical tables are ``tap_schema_<name>``; in ADQL they are ``TAP_SCHEMA.<name>``.
Column names that are ADQL/SQL reserved words (``size``) are published delimited.
"""
from __future__ import annotations

from .types import VERB_MINIMAL as MIN
from .types import Column, ForeignKey, Table

SCHEMA = "TAP_SCHEMA"


def _c(name, datatype, description, arraysize=None, ucd=None, std=True, required=False):
    return Column(name, datatype, description, arraysize=arraysize, ucd=ucd,
                  verbosity=MIN, required=required, std=std)


SCHEMAS = Table(
    name="schemas", schema=SCHEMA, title="Schemas", key=("schema_name",),
    description="Description of the schemas published in this service",
    columns=(
        _c("schema_name", "char", "Fully qualified schema name", "64*", "meta.id",
           required=True),
        _c("utype", "char", "Lists the utypes of schemas", "512*"),
        _c("description", "char", "Describes schemas", "512*", "meta.note"),
        _c("schema_index", "int", "Recommended sort order when listing schemas"),
    ))

TABLES_ = Table(
    name="tables", schema=SCHEMA, title="Tables", key=("table_name",),
    description="Description of the tables published in this service",
    columns=(
        _c("schema_name", "char", "The schema this table belongs to", "64*", "meta.id",
           required=True),
        _c("table_name", "char", "The fully qualified table name", "64*", "meta.id;meta.main",
           required=True),
        _c("table_type", "char", "One of: table or view", "8*", required=True),
        _c("utype", "char", "Lists the utype of tables", "512*"),
        _c("description", "char", "Describes tables", "512*", "meta.note"),
        _c("table_index", "int", "Recommended sort order when listing tables"),
    ),
    foreign_keys=(ForeignKey(("schema_name",), "schemas", ("schema_name",),
                             "The schema of a table"),))

COLUMNS = Table(
    name="columns", schema=SCHEMA, title="Columns", key=("table_name", "column_name"),
    description="Description of the columns of the tables published in this service",
    columns=(
        _c("table_name", "char", "The table this column belongs to", "64*", "meta.id",
           required=True),
        _c("column_name", "char", "The column name", "64*", "meta.id", required=True),
        _c("datatype", "char", "ADQL datatype (VOTable datatype)", "64*", required=True),
        _c("arraysize", "char", "VOTable arraysize", "16*"),
        _c("xtype", "char", "VOTable xtype", "64*"),
        _c("size", "int", "Length of variable-length datatypes (deprecated, see arraysize)"),
        _c("description", "char", "A description of the column", "512*", "meta.note"),
        _c("utype", "char", "The utype of the column", "512*"),
        _c("unit", "char", "The unit in VOUnit format", "64*"),
        _c("ucd", "char", "The UCD of the column", "64*"),
        _c("indexed", "int", "Is the column indexed? (0 or 1)", required=True),
        _c("principal", "int", "Is the column principal? (0 or 1)", required=True),
        _c("std", "int", "Is the column defined by a standard? (0 or 1)", required=True),
        _c("column_index", "int", "Recommended sort order when listing columns"),
    ),
    foreign_keys=(ForeignKey(("table_name",), "tables", ("table_name",),
                             "The table of a column"),))

KEYS = Table(
    name="keys", schema=SCHEMA, title="Foreign keys", key=("key_id",),
    description="Description of the foreign keys between tables of this service",
    columns=(
        _c("key_id", "char", "Unique key identifier", "64*", "meta.id", required=True),
        _c("from_table", "char", "The table with the foreign key", "64*", required=True),
        _c("target_table", "char", "The table with the primary key", "64*", required=True),
        _c("description", "char", "Description of this key", "512*", "meta.note"),
        _c("utype", "char", "The utype of this key", "512*"),
    ),
    foreign_keys=(
        ForeignKey(("from_table",), "tables", ("table_name",), "The table with the foreign key"),
        ForeignKey(("target_table",), "tables", ("table_name",), "The table with the primary key"),
    ))

KEY_COLUMNS = Table(
    name="key_columns", schema=SCHEMA, title="Foreign key columns",
    key=("key_id", "from_column"),
    description="The columns of the foreign keys",
    columns=(
        _c("key_id", "char", "Key identifier from TAP_SCHEMA.keys", "64*", "meta.id",
           required=True),
        _c("from_column", "char", "Key column name in the from_table", "64*", required=True),
        _c("target_column", "char", "Key column name in the target_table", "64*",
           required=True),
    ),
    foreign_keys=(ForeignKey(("key_id",), "keys", ("key_id",), "The key of a column"),))

#: TAP_SCHEMA tables by ADQL short name; physical name is ``tap_schema_<name>``.
TAP_SCHEMA_TABLES: dict[str, Table] = {t.name: t for t in (
    SCHEMAS, TABLES_, COLUMNS, KEYS, KEY_COLUMNS)}


def physical_name(table: Table) -> str:
    """The database table name of a published table."""
    return f"tap_schema_{table.name}" if table.schema == SCHEMA else table.name

"""ADQL 2.1: parsing (Lark grammar) and translation to SQLAlchemy for SQLite and PostgreSQL.

Public API::

    parse(text) -> lark.Tree                    # or ADQLSyntaxError(line, column)
    translate(text, catalog, dialect) -> Translation(statement, columns, tables,
                                                     top, offset, plain_scan)
    Catalog.of(published, uploads=None)         # what queries may name
    Upload(name, columns, table, ra=None, dec=None)

Pure Python: no Flask, no executor, no database module (the published tables
are passed in). See docs/adql.md.
"""
from .catalog import UPLOAD_SCHEMA, Catalog, CatalogTable, Upload
from .errors import (ADQLError, ADQLSyntaxError, ADQLValidationError, AmbiguousColumnError,
                     ArgumentCountError, QueryTooComplexError, UnknownColumnError,
                     UnknownFunctionError, UnknownTableError, UnsupportedError)
from .parser import parse
from .translate import DIALECTS, Translation, compile_sql, translate

__all__ = ["parse", "translate", "Translation", "compile_sql", "Catalog", "CatalogTable",
           "Upload", "UPLOAD_SCHEMA", "DIALECTS", "ADQLError", "ADQLSyntaxError",
           "ADQLValidationError", "UnknownTableError", "UnknownColumnError",
           "AmbiguousColumnError", "UnknownFunctionError", "ArgumentCountError",
           "UnsupportedError", "QueryTooComplexError"]

"""The single source of truth for catalogues, columns and product types.

Everything that lists columns (SQL tables, TAP_SCHEMA, VOTable FIELDs, the web form,
cone search, ingest validation) derives the list from here.
"""
from .catalogues import SCHEMA, TABLES
from .products import BANDS, PREVIEW, PRODUCT_KEYS, PRODUCT_TYPES, ProductType, match_product
from .types import (VERB_FULL, VERB_MINIMAL, VERB_STANDARD, Column, ForeignKey, Table)

__all__ = ["TABLES", "SCHEMA", "Column", "Table", "ForeignKey",
           "ProductType", "PRODUCT_TYPES", "PRODUCT_KEYS", "PREVIEW", "BANDS",
           "match_product", "VERB_MINIMAL", "VERB_STANDARD", "VERB_FULL", "get_table",
           "positional_tables"]


def get_table(name: str) -> Table:
    """The table called ``name`` (short or qualified, case-insensitive) or KeyError."""
    key = name.lower()
    if key.startswith(SCHEMA + "."):
        key = key[len(SCHEMA) + 1:]
    try:
        return TABLES[key]
    except KeyError:
        raise KeyError(f"unknown catalogue {name!r}; known: {', '.join(TABLES)}") from None


def positional_tables() -> list[Table]:
    """The tables with a principal position (those cone search serves)."""
    return [t for t in TABLES.values() if t.positional]

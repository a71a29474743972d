"""DataLink service descriptors on query results (no Flask).

A TAP or cone-search result whose columns include a catalogue's principal id column
gets, per such column, a ``<RESOURCE type="meta" utype="adhoc:service">`` naming
the {links} service (standardID ``ivo://ivoa.net/std/DataLink#links-1.1``, its
accessURL, and an ``ID`` input parameter that ``ref``\\ s the id FIELD). TOPCAT's
activation actions and pyvo's ``iter_datalinks()`` use it to fetch the links of the
rows of a plain query result.

The FIELD a descriptor points at needs a VOTable ``ID``. astropy (and so pyvo's
``to_table()``) names a table column by its FIELD ID when there is one, so the ID is
the column's own name: readers keep the column names they asked for. A column is an
id column when it carries the UCD, datatype and description of a catalogue's
``role="id"`` column (the translator keeps those for a column selected as it is,
aliased or not, and drops them for expressions); TAP_SCHEMA and uploaded tables have
none. Columns whose name is not a valid XML ID, or is not unique in the result, get
no descriptor.
"""
from __future__ import annotations

import re
from functools import lru_cache

import datamodel
from ..formats.templating import environment
from ..result import QueryResult, ResultColumn
from .links import STANDARD_ID

__all__ = ["is_id_column", "mark_id_columns", "service_descriptor", "add_descriptors"]

_NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")


@lru_cache(maxsize=1)
def _id_signatures() -> frozenset:
    return frozenset((c.datatype, c.ucd, c.description) for t in datamodel.TABLES.values()
                     if (c := t.role_column("id")) is not None)


def is_id_column(column) -> bool:
    """Whether ``column`` is a catalogue's principal id column (selected as it is)."""
    return (column.datatype, column.ucd, column.description) in _id_signatures()


def mark_id_columns(columns) -> tuple[list[ResultColumn], list[str]]:
    """(``columns`` with ``field_id`` = name on the id columns, the IDs given)."""
    names = [c.name for c in columns]
    marked, refs = [], []
    for c in columns:
        if is_id_column(c) and names.count(c.name) == 1 and _NCNAME.match(c.name):
            c = ResultColumn.of(c, field_id=c.name)
            refs.append(c.name)
        marked.append(c)
    return marked, refs


@lru_cache(maxsize=256)
def service_descriptor(access_url: str, ref: str) -> str:
    """The service descriptor RESOURCE for the FIELD with ID ``ref``."""
    template = environment().get_template("datalink/descriptor.xml")
    return template.render(standard_id=STANDARD_ID, access_url=access_url, ref=ref).strip()


def add_descriptors(result: QueryResult, access_url: str) -> QueryResult:
    """Mark the id columns of ``result`` and add a descriptor for each (before the
    result is rendered)."""
    columns, refs = mark_id_columns(result.columns)
    if refs:
        result.columns[:] = columns
        result.resources.extend(service_descriptor(access_url, ref) for ref in refs)
    return result

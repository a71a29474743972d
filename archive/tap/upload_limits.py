"""Bounds an uploaded table must respect, checked before it is read (no Flask).

A reader allocates what a table declares: astropy makes a numpy array of
``rows x declared width`` for a VOTable, so a 264-byte document declaring a
``char`` field of ``arraysize="100000000"`` grew a worker by over 1 GB, and a
table of 3,000 columns made SQLite fail ("too many columns") after the whole
table had been read. ``check_votable`` reads only the declarations (the document
without its comments and DATA elements, through the standard library's expat
parser) and
refuses, naming the field and the setting:

* an element count (``arraysize``, all dimensions multiplied) above
  ``UPLOAD_MAX_ARRAYSIZE``;
* more than ``UPLOAD_MAX_COLUMNS`` fields in a table, or a ``nrows`` attribute above
  ``UPLOAD_MAX_ROWS``;
* TABLEDATA whose rows times the declared width of a row exceed ``UPLOAD_MAX_BYTES``
  (a BINARY stream carries every byte of its rows, so it is bounded by its size);
* a ``STREAM`` with ``href``: astropy would read the URL it names, a server file
  (``file:///...``) or any host, and return what it read as the table.

``check_name`` bounds the names that become SQL identifiers (PostgreSQL keeps 63
bytes of an identifier).
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Mapping

from ..errors import UsageFault

__all__ = ["check_votable", "check_columns", "check_table_name", "check_column_name",
           "MAX_TABLE_NAME", "MAX_COLUMN_NAME"]

#: longest UPLOAD table name: its temporary table ``tap_upload_<name>`` must fit in
#: PostgreSQL's 63-byte identifiers
MAX_TABLE_NAME = 52
#: longest column name of an uploaded table (PostgreSQL identifiers: 63 bytes)
MAX_COLUMN_NAME = 63
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_COMMENT = re.compile(rb"<!--.*?-->", re.DOTALL)
_DATA = re.compile(rb"<DATA[\s>].*?</DATA\s*>", re.DOTALL)
_HREF = re.compile(rb"<(?:\w+:)?STREAM\s[^>]*\bhref\s*=")
#: bytes one element of a datatype takes in the arrays astropy builds
_ELEMENT = {"boolean": 1, "bit": 1, "unsignedByte": 1, "short": 2, "int": 4, "long": 8,
            "float": 4, "double": 8, "floatComplex": 8, "doubleComplex": 16, "char": 1,
            "unicodeChar": 4}


def _shown(name: str, limit: int = 40) -> str:
    return repr(name if len(name) <= limit else name[:limit] + "...")


def check_table_name(name: str) -> None:
    """UsageFault unless ``name`` is a usable UPLOAD table name."""
    if not _TABLE_NAME.match(name):
        raise UsageFault(f"UPLOAD table name {_shown(name)} is not valid: it must start "
                         "with a letter and contain only letters, digits and _")
    if len(name) > MAX_TABLE_NAME:
        raise UsageFault(f"UPLOAD table name {_shown(name)} is {len(name)} characters "
                         f"long; at most {MAX_TABLE_NAME} are allowed")


def check_column_name(table: str, name: str) -> None:
    size = len(name.encode("utf-8"))
    if size > MAX_COLUMN_NAME:
        raise UsageFault(f"UPLOAD table {table}: the column name {_shown(name)} is {size} "
                         f"bytes long; at most {MAX_COLUMN_NAME} are allowed")


def check_columns(table: str, count: int, config: Mapping) -> None:
    limit = int(config["UPLOAD_MAX_COLUMNS"])
    if count > limit:
        raise UsageFault(f"UPLOAD table {table} has {count} columns; at most {limit} are "
                         "accepted (UPLOAD_MAX_COLUMNS)")


def _elements(table: str, field: str, arraysize: str | None, config: Mapping) -> int:
    """The fixed number of elements a field declares (a variable ``*`` dimension
    counts as 1: such cells are allocated as they come)."""
    if arraysize is None or not arraysize.strip():
        return 1
    count = 1
    for dim in arraysize.strip().split("x"):
        dim = dim.strip().rstrip("*")
        if not dim:
            continue
        if not dim.isdigit():
            raise UsageFault(f"UPLOAD table {table}: field {_shown(field)} has "
                             f"arraysize={_shown(arraysize)}, which is not a VOTable "
                             "array size (such as 8, 8*, * or 3x4)")
        count *= int(dim)
    limit = int(config["UPLOAD_MAX_ARRAYSIZE"])
    if count > limit:
        raise UsageFault(f"UPLOAD table {table}: field {_shown(field)} declares "
                         f"arraysize={_shown(arraysize)} ({count} elements); at most "
                         f"{limit} are accepted (UPLOAD_MAX_ARRAYSIZE); use arraysize=\"*\" "
                         "for strings of any length")
    return count


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def check_votable(content: bytes, table: str, config: Mapping) -> None:
    """Refuse a VOTable whose declarations exceed the limits, before it is read."""
    content = _COMMENT.sub(b"", content)
    if _HREF.search(content):
        # astropy would open the URL (file:///etc/..., or any host: UPLOAD_URL_ALLOW
        # bypassed) and put what it reads in the table
        raise UsageFault(f"UPLOAD table {table}: a STREAM with href (data kept outside "
                         "the document) is not accepted; put the data in the VOTable")
    header = _DATA.sub(b"", content)
    try:
        root = ET.fromstring(header)
    except ET.ParseError as exc:
        raise UsageFault(f"UPLOAD table {table}: the VOTable cannot be read: {exc}") from None
    max_rows = int(config["UPLOAD_MAX_ROWS"])
    for element in root.iter():
        if _local(element.tag) != "TABLE":
            continue
        fields = [f for f in element if _local(f.tag) == "FIELD"]
        check_columns(table, len(fields), config)
        declared = (element.get("nrows") or "").strip()
        if declared.isdigit() and int(declared) > max_rows:
            raise UsageFault(f"UPLOAD table {table} declares nrows={declared}; at most "
                             f"{max_rows} rows are accepted (UPLOAD_MAX_ROWS)")
    width = 0
    for element in root.iter():
        if _local(element.tag) in ("FIELD", "PARAM"):
            name = element.get("name") or element.get("ID") or "?"
            count = _elements(table, name, element.get("arraysize"), config)
            if _local(element.tag) == "FIELD":
                width += count * _ELEMENT.get(element.get("datatype") or "", 8)
    if b"<TABLEDATA" in content:
        rows = content.count(b"<TR>") + content.count(b"<TR ")
        limit = int(config["UPLOAD_MAX_BYTES"])
        if rows * width > limit:
            raise UsageFault(f"UPLOAD table {table}: {rows} rows of {width} bytes as declared "
                             f"by the FIELDs' datatype and arraysize would take "
                             f"{rows * width} bytes in memory, more than UPLOAD_MAX_BYTES "
                             f"({limit}); declare shorter arraysizes or arraysize=\"*\"")

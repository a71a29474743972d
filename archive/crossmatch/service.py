"""The web cross-match (no Flask): a list of positions against one positional catalogue.

The list is an uploaded file (CSV, VOTable or FITS, read by ``archive.tap.uploads``
exactly as a TAP upload) or pasted text (one position per line, resolved by
``archive.resolver``). It becomes an ``UploadedTable`` (temporary table with the
spatial index columns) and the match is one ADQL query run by
``archive.tap.run.run_query``, so through the one executor and the same indexed
cross-match as ``TAP_UPLOAD`` joins::

    SELECT u.*, c.<standard columns>, DISTANCE(...) * 3600 AS sep_arcsec
    FROM TAP_UPLOAD.upload AS u LEFT OUTER JOIN extras.<catalogue> AS c
      ON DISTANCE(POINT('ICRS', u.ra, u.dec), POINT('ICRS', c.ra, c.dec)) <= radius
    ORDER BY u.input_row, sep_arcsec

Left join: every input row appears, once per match (nearest first), or once with
nulls in the catalogue columns when nothing lies within the radius.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Mapping

import sqlalchemy as sa

import datamodel
from ..errors import ArchiveFault, UsageFault
from ..formats import get_format
from ..result import ResultColumn
from ..resolver.service import resolve
from ..tap.run import TapRequest, run_query
from ..tap.uploads import build_upload, read_table, _read_limited

__all__ = ["CrossmatchRequest", "Unresolved", "UNITS", "catalogues", "parse_request",
           "input_table", "pasted_table", "run_crossmatch", "catalogue_names"]

#: radius units accepted, in arcsec
UNITS = {"arcsec": 1.0, "arcmin": 60.0}
UPLOAD_NAME = "upload"
ROW_COLUMN = "input_row"
SEPARATION = "sep_arcsec"
_VERB_STANDARD = 2


def catalogues() -> list:
    """The catalogues one can match against (the positional published tables)."""
    return datamodel.positional_tables()


@dataclass
class Unresolved:
    """A pasted line that gave no position, and why."""

    line: int
    text: str
    message: str


@dataclass
class CrossmatchRequest:
    catalogue: object              # datamodel Table
    radius_arcsec: float
    unit: str
    radius_value: float
    format: object                 # archive.formats.Format, or None for the HTML page
    format_key: str


def parse_request(form: Mapping, config: Mapping) -> CrossmatchRequest:
    """Check the catalogue, radius, unit and format fields (UsageFault naming the field)."""
    names = {t.name: t for t in catalogues()}
    name = (form.get("catalogue") or "").strip().lower()
    if not name:
        raise UsageFault("choose a catalogue to match against (field catalogue: "
                         + ", ".join(names) + ")")
    if name not in names:
        raise UsageFault(f"catalogue {name!r} is not a positional catalogue of this archive; "
                         "choose one of " + ", ".join(names))
    unit = (form.get("unit") or "arcsec").strip().lower()
    if unit not in UNITS:
        raise UsageFault(f"radius unit {unit!r} is not known; use arcsec or arcmin")
    text = (form.get("radius") or "").strip()
    if not text:
        raise UsageFault("give a match radius (field radius, with unit arcsec or arcmin)")
    try:
        value = float(text)
    except ValueError:
        raise UsageFault(f"radius {text!r} is not a number") from None
    limit = float(config["CROSSMATCH_MAX_RADIUS_ARCSEC"])
    arcsec = value * UNITS[unit]
    if not math.isfinite(value) or value <= 0:
        raise UsageFault(f"radius {text} {unit} must be a positive number")
    if arcsec > limit:
        raise UsageFault(f"radius {text} {unit} is larger than the limit of {limit:g} arcsec "
                         "(CROSSMATCH_MAX_RADIUS_ARCSEC)")
    key = (form.get("format") or "html").strip().lower()
    fmt = None
    if key != "html":
        fmt = get_format(key)     # UsageFault listing the formats for an unknown one
    return CrossmatchRequest(names[name], arcsec, unit, value, fmt, key)


def _file_message(message: str) -> str:
    return message.replace(f"UPLOAD table {UPLOAD_NAME}", "the uploaded file")


def _check_kind(content: bytes) -> None:
    """Refuse what is neither a VOTable, a FITS file nor text (images, archives...)."""
    head = content.lstrip()[:80]
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if not head or head.startswith((b"<", b"SIMPLE  =")):
        return
    try:
        content[:65536].decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < 65530:          # not a character cut at the end of the sample
            raise UsageFault("the uploaded file is not a table this service reads: it is "
                             "neither a VOTable, nor FITS, nor CSV text (byte "
                             f"{exc.start + 1} is not UTF-8 text); upload CSV, VOTable or "
                             "FITS") from None


def _with_row_numbers(upload):
    """Add the column ``input_row`` (1, 2, ...) that keeps the input's order."""
    if any(c.name.lower() == ROW_COLUMN for c in upload.columns):
        raise UsageFault(f"the uploaded file has a column called {ROW_COLUMN!r}, a name this "
                         "service uses for the input row number; rename the column")
    upload.columns.append(ResultColumn(ROW_COLUMN, "long", "Row of the input list (1 = first)",
                                       ucd="meta.number"))
    upload.values.append(list(range(1, upload.nrows + 1)))
    upload.table.append_column(sa.Column(ROW_COLUMN, sa.BigInteger, quote=True))
    return upload


def input_table(stream, config: Mapping):
    """The uploaded file (a file-like object) as an UploadedTable with positions."""
    content = _read_limited(stream, int(config["UPLOAD_MAX_BYTES"]), "the uploaded file")
    if not content.strip():
        raise UsageFault("the uploaded file is empty")
    _check_kind(content)
    try:
        upload = build_upload(UPLOAD_NAME, content, config)
    except UsageFault as fault:
        raise UsageFault(_file_message(fault.message)) from None
    if upload.nrows == 0:
        raise UsageFault("the uploaded file has a header but no rows")
    if upload.ra is None:
        found = ", ".join(c.name for c in upload.columns) or "none"
        raise UsageFault("the uploaded file has no position columns this service recognises "
                         f"(columns found: {found}); name them ra and dec (degrees), or give "
                         "them the UCDs pos.eq.ra and pos.eq.dec")
    return _with_row_numbers(upload)


def pasted_table(text: str, db, config: Mapping):
    """Pasted lines (``ra dec`` in degrees or sexagesimal, or a name) as an UploadedTable
    and the list of lines that could not be resolved. Blank lines and lines starting
    with # are skipped. UsageFault if no line gives a position."""
    from astropy.table import Table
    lines = [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.strip().startswith("#")]
    if not lines:
        raise UsageFault("the pasted list is empty: give one position or name per line")
    limit = int(config["CROSSMATCH_MAX_LINES"])
    if len(lines) > limit:
        raise UsageFault(f"the pasted list has {len(lines)} lines; at most {limit} are "
                         "accepted (CROSSMATCH_MAX_LINES); upload a file for longer lists")
    rows, unresolved = [], []
    for number, line in lines:
        try:
            found = resolve(db.engine, db.readonly, line, config)
        except ArchiveFault as fault:
            unresolved.append(Unresolved(number, line, fault.message))
            continue
        rows.append((number, line, found.ra, found.dec, found.resolver))
    if not rows:
        raise UsageFault("no line of the pasted list gives a position: " + "; ".join(
            f"line {u.line}: {u.message}" for u in unresolved))
    table = Table(rows=rows, names=("line", "input", "ra", "dec", "resolver"),
                  dtype=("i4", "U", "f8", "f8", "U"))
    table["ra"].unit = table["dec"].unit = "deg"
    buf = io.BytesIO()
    table.write(buf, format="votable")
    upload = build_upload(UPLOAD_NAME, buf.getvalue(), config)
    return _with_row_numbers(upload), unresolved


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Match:
    """The query's result and how to show it."""

    result: object                     # archive.result.QueryResult
    input_columns: int                 # the first columns come from the input
    catalogue_names: list = field(default_factory=list)   # original names of the others


def adql(upload, catalogue, radius_arcsec: float) -> tuple[str, list[str]]:
    """The ADQL of the match and the catalogue columns it selects (original names)."""
    taken = {c.name.lower() for c in upload.columns}
    cols = catalogue.columns_for_verbosity(_VERB_STANDARD)
    selected = []
    for c in cols:
        alias = c.name if c.name.lower() not in taken else f"{catalogue.name}_{c.name}"
        taken.add(alias.lower())
        selected.append(f"c.{_ident(c.name)} AS {_ident(alias)}")
    sep = SEPARATION if SEPARATION not in taken else f"{catalogue.name}_{SEPARATION}"
    ra, dec = catalogue.role_column("ra").name, catalogue.role_column("dec").name
    u_point = f"POINT('ICRS', u.{_ident(upload.ra)}, u.{_ident(upload.dec)})"
    c_point = f"POINT('ICRS', c.{_ident(ra)}, c.{_ident(dec)})"
    inputs = ", ".join(f"u.{_ident(c.name)}" for c in upload.columns)
    query = (f"SELECT {inputs}, {', '.join(selected)}, "
             f"DISTANCE({u_point}, {c_point}) * 3600.0 AS {_ident(sep)} "
             f"FROM TAP_UPLOAD.{UPLOAD_NAME} AS u LEFT OUTER JOIN {catalogue.qualified_name} "
             f"AS c ON DISTANCE({u_point}, {c_point}) <= {radius_arcsec / 3600.0!r} "
             f"ORDER BY u.{_ident(ROW_COLUMN)}, {_ident(sep)}")
    return query, [c.name for c in cols]


def run_crossmatch(upload, request: CrossmatchRequest, db, config: Mapping,
                   maxrec: int) -> Match:
    """Run the match (one query through ``run_query``); a streaming result."""
    query, names = adql(upload, request.catalogue, request.radius_arcsec)
    tap = TapRequest(lang="ADQL", query=query, maxrec=maxrec,
                     format=request.format or get_format("votable"), format_requested=None)
    result = run_query(tap, db, config, uploads=[upload])
    result.infos.append(("CATALOGUE", request.catalogue.qualified_name, "Matched against"))
    result.infos.append(("RADIUS", f"{request.radius_arcsec:g}", "Match radius in arcsec"))
    result.columns[-1] = ResultColumn.of(
        result.columns[-1], unit="arcsec", ucd="pos.angDistance",
        description="Angular separation between the input position and the catalogue one")
    return Match(result, len(upload.columns), names)


def catalogue_names() -> list[str]:
    return [t.name for t in catalogues()]

"""Reading catalogue files (FITS, VOTable, CSV) into astropy Tables.

The format comes from the file extension, else from the first bytes. CSV is read
with every column as text, so identifiers keep their leading zeros (OBS_ID
``0123456789``); :mod:`ingest.validate` converts the text to the data-model types.
"""
from __future__ import annotations

import csv
import gzip
import io
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from .errors import IngestError
from .threads import column_map

__all__ = ["FORMATS", "detect_format", "read_table"]

#: Accepted formats and the file-name endings that select them.
FORMATS = {
    "fits": (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fz"),
    "votable": (".xml", ".vot", ".votable", ".vot.xml"),
    "csv": (".csv", ".csv.gz"),
}


def detect_format(path: Path) -> str:
    """``fits``, ``votable`` or ``csv`` from the name, else from the content."""
    name = path.name.lower()
    for fmt, endings in FORMATS.items():
        if name.endswith(endings):
            return fmt
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        raise IngestError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    if head.startswith(b"SIMPLE  ="):
        return "fits"
    text = head.lstrip().lower()
    if text.startswith(b"<?xml") or text.startswith(b"<votable"):
        return "votable"
    if b"," in head:
        return "csv"
    raise IngestError(f"{path}: unrecognised file format: expected FITS, VOTable or CSV "
                      f"(by extension: {', '.join(e for es in FORMATS.values() for e in es)})")


def _fits_column(data, raw, col):
    """One FITS table column as a native-endian ndarray (masked where TNULL matches).

    Plain columns are taken straight from the record bytes (one byte-swapping copy,
    strings kept as bytes): astropy's ``Table.read``/``FITS_rec.field`` decode every
    string to unicode, which costs more than the rest of the ingest together.
    Scaled (TSCAL/TZERO), logical, bit and variable-length columns go through astropy.
    """
    name = col.name
    fmt = str(col.format).upper()
    plain = (col.bscale in (None, 1) and col.bzero in (None, 0)
             and not any(code in fmt for code in "LXPQ"))
    if plain:
        arr = raw[name]
        if arr.dtype.kind == "S":
            values = np.array(arr, copy=True)
        else:
            values = arr.astype(arr.dtype.newbyteorder("="))
    else:
        values = np.array(data.field(name))
    if col.null is not None and values.dtype.kind in "iu":
        return np.ma.MaskedArray(values, mask=(values == col.null))
    return values


def _read_fits(path: Path) -> Table:
    source, size = path, path.stat().st_size
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    if gzipped:
        # decompressed whole (gzip raises EOFError for a truncated stream, where
        # astropy would stop quietly at the last complete HDU); the table's offsets
        # are then compared with the uncompressed size
        raw = gzip.decompress(path.read_bytes())
        source, size = io.BytesIO(raw), len(raw)
    with warnings.catch_warnings():
        # astropy only warns about a truncated file; a truncated catalogue is an error
        warnings.simplefilter("error")
        with fits.open(source, memmap=not gzipped) as hdul:
            for hdu in hdul:
                if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU)):
                    info = hdu.fileinfo()
                    needed = info["datLoc"] + hdu.size
                    if needed > size:
                        raise ValueError(f"the file is truncated: the table needs {needed} "
                                         f"bytes, the file has {size}")
                    data = hdu.data
                    if data is None:
                        return Table()
                    raw = data.view(np.ndarray)
                    # copies (native byte order): nothing refers to the memory map after
                    cols = list(hdu.columns)
                    columns = dict(zip([c.name for c in cols],
                                       column_map(lambda c: _fits_column(data, raw, c), cols)))
                    # astropy keeps each Column's array pointing into the memory map
                    # and, when the file closes, copies every one of them (0.7 s for
                    # 200 MB) so that they outlive the map; we have our own copies
                    for c in data.columns:
                        del c.array
                    del data, raw
                    return Table(columns, copy=False)
    raise IngestError(f"{path}: the FITS file has no table extension")


#: Delimiters a CSV file may use when ``--delimiter`` does not say.
CSV_DELIMITERS = ",;\t|"


def _csv_text(path: Path, encoding: str | None) -> str:
    """The file decoded (gunzipped first for ``.gz``), without a UTF-8 byte-order mark."""
    raw = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        raw = gzip.decompress(raw)
    name = encoding or "utf-8"
    try:
        text = raw.decode(name)
    except LookupError:
        raise IngestError(f"{path}: unknown encoding {name!r}") from None
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise IngestError(f"{path}: line {line}: byte {raw[exc.start]:#04x} is not {name} "
                          "text (choose the file's encoding with --encoding)") from None
    return text[1:] if text.startswith("\ufeff") else text


def _sniff(sample: str) -> str:
    """The delimiter of a CSV text among CSV_DELIMITERS (csv.Sniffer), else a comma."""
    try:
        return csv.Sniffer().sniff(sample, delimiters=CSV_DELIMITERS).delimiter
    except csv.Error:
        return ","


def _read_csv(path: Path, delimiter: str | None = None, encoding: str | None = None) -> Table:
    """Every column as text; an empty cell is a null (:mod:`ingest.validate`).

    Read with the csv module rather than astropy's CSV reader: astropy neither strips
    a byte-order mark nor reports a ragged line by its 1-based row.
    """
    text = _csv_text(path, encoding)
    lines = text.splitlines(keepends=True)
    skip = 0                                     # comment lines before the header
    while skip < len(lines) and (lines[skip].startswith("#") or not lines[skip].strip()):
        skip += 1
    body = "".join(lines[skip:])
    if not body.strip():
        raise IngestError(f"{path}: the file has no header line (the column names)")
    delimiter = delimiter or _sniff("".join(lines[skip:skip + 50]))
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=delimiter)
    header = [name.strip() for name in next(reader)]
    rows = []
    for fields in reader:
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue                             # a blank line
        if len(fields) != len(header):
            raise IngestError(f"{path}: row {len(rows) + 1} (line {reader.line_num + skip}): "
                              f"{len(fields)} values, the header names {len(header)} "
                              f"columns (delimiter {delimiter!r})")
        rows.append(fields)
    columns = list(zip(*rows)) if rows else [()] * len(header)
    return Table([np.array(col, dtype=str) for col in columns], names=header, copy=False)


def read_table(path: Path | str, fmt: str | None = None, delimiter: str | None = None,
               encoding: str | None = None) -> tuple[Table, str]:
    """Read the first table of ``path``; returns (table, format).

    ``delimiter`` (default: sniffed) and ``encoding`` (default UTF-8) apply to CSV.

    Raises :class:`IngestError` naming the file for a missing, unreadable,
    truncated or malformed file.
    """
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: no such file")
    fmt = fmt or detect_format(path)
    if fmt != "csv" and (delimiter or encoding):
        raise IngestError(f"{path}: --delimiter and --encoding apply to CSV files only, "
                          f"this is {fmt.upper()}")
    if delimiter is not None and len(delimiter) != 1:
        raise IngestError(f"{path}: the delimiter must be one character, not {delimiter!r}")
    try:
        if fmt == "fits":
            table = _read_fits(path)
        elif fmt == "votable":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                table = Table.read(path, format="votable")
        elif fmt == "csv":
            table = _read_csv(path, delimiter, encoding)
        else:
            raise IngestError(f"{path}: unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    except IngestError:
        raise
    except Exception as exc:  # astropy raises many kinds for damaged files
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IngestError(f"{path}: cannot read the file as {fmt.upper()} "
                          f"(unreadable, truncated or malformed): {detail}") from None
    if len(table.colnames) == 0:
        raise IngestError(f"{path}: the table has no columns")
    return table, fmt

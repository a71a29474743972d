"""Reading catalogue files (FITS, VOTable, CSV) into astropy Tables.

The format comes from the file extension, else from the first bytes. CSV is read
with every column as text, so identifiers keep their leading zeros (OBS_ID
``0123456789``); :mod:`ingest.validate` converts the text to the data-model types.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from astropy.io import ascii as astropy_ascii
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
    with warnings.catch_warnings():
        # astropy only warns about a truncated file; a truncated catalogue is an error
        warnings.simplefilter("error")
        with fits.open(path, memmap=True) as hdul:
            for hdu in hdul:
                if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU)):
                    info = hdu.fileinfo()
                    needed = info["datLoc"] + hdu.size
                    if needed > path.stat().st_size:
                        raise ValueError(f"the file is truncated: the table needs {needed} "
                                         f"bytes, the file has {path.stat().st_size}")
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


def _read_csv(path: Path) -> Table:
    return Table.read(path, format="ascii.csv", fast_reader=False,
                      converters={"*": [astropy_ascii.convert_numpy(str)]})


def read_table(path: Path | str, fmt: str | None = None) -> tuple[Table, str]:
    """Read the first table of ``path``; returns (table, format).

    Raises :class:`IngestError` naming the file for a missing, unreadable,
    truncated or malformed file.
    """
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: no such file")
    fmt = fmt or detect_format(path)
    try:
        if fmt == "fits":
            table = _read_fits(path)
        elif fmt == "votable":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                table = Table.read(path, format="votable")
        elif fmt == "csv":
            table = _read_csv(path)
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

"""Reading catalogue files (FITS, VOTable, CSV) into astropy Tables.

The format comes from the file extension, else from the first bytes. CSV is read
with every column as text, so identifiers keep their leading zeros (OBS_ID
``0123456789``); :mod:`ingest.validate` converts the text to the data-model types.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from astropy.io import ascii as astropy_ascii
from astropy.io import fits
from astropy.table import Table

from .errors import IngestError

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


def _read_fits(path: Path) -> Table:
    with warnings.catch_warnings():
        # astropy only warns about a truncated file; a truncated catalogue is an error
        warnings.simplefilter("error")
        with fits.open(path, memmap=False) as hdul:
            for index, hdu in enumerate(hdul):
                if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU)):
                    # mask_invalid=False: NaN stays NaN, so validation can name it
                    table = Table.read(hdu, character_as_bytes=False, mask_invalid=False)
                    # touch the data now, inside the try, so truncation shows here
                    len(table)
                    return table
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

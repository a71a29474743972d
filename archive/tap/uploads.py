"""TAP table uploads (TAP_UPLOAD): read, check and load uploaded tables (no Flask).

``load_uploads(specs, files, config)`` turns the UPLOAD items of a request
(``archive.tap.run.UploadSpec``: ``name,param:<part>`` or ``name,http(s)://...``)
into ``UploadedTable`` objects: the ADQL catalogue learns their columns
(``TAP_UPLOAD.<name>``), and ``load(conn)`` puts their rows into a temporary table on
the query's own connection just before the query runs.

Input: VOTable (TABLEDATA, BINARY, BINARY2; the first table), CSV with a header
line, or FITS (the first table HDU), all read by astropy; the data stream of a
BINARY/BINARY2 VOTable is decoded with numpy (``archive.tap.upload_votable``:
astropy's binary reader loops in Python per row and cell). Column types are kept
as they came (short stays short, xtype timestamp stays), so a table round-trips.

Positional uploads (RA/Dec found by UCD ``pos.eq.ra``/``pos.eq.dec`` or by name)
get the hidden spatial columns of the catalogues (``_hpx, _x, _y, _z``) plus, for
cross-matches, the HEALPix cells around each row: ``_lo0.._hi8`` hold the index
ranges (at the archive's storage order) of the row's cell and its 8 neighbours at
an order whose cells are at least twice the match radius, cells that follow each
other in the NESTED numbering merged into one range (about 4.5 ranges per row;
unused slots hold the empty range [0, 0)). The ADQL
translator asks for them through ``crossmatch_ranges`` (in the temporary table's
``info``) and joins ``catalogue._hpx`` against those ranges, so each uploaded row
costs a few B-tree probes instead of a scan of the catalogue.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

import healpy as hp
import numpy as np
import sqlalchemy as sa

from ..db import SQL_TYPES, sql_type
from ..errors import UsageFault
from ..result import ResultColumn
from ..sky import ORDER, healpix_index, unit_vectors
from .adql import Upload
from .upload_limits import check_column_name, check_columns, check_table_name, check_votable

__all__ = ["UploadedTable", "load_uploads", "read_table", "sync_uploads", "crossmatch_order",
           "NEIGHBOURS", "HIDDEN_COLUMNS"]

NEIGHBOURS = 9                   # a cell and its 8 neighbours
_RANGE_COLUMNS = tuple(f"_{k}{i}" for i in range(NEIGHBOURS) for k in ("lo", "hi"))
HIDDEN_COLUMNS = ("_hpx", "_x", "_y", "_z") + _RANGE_COLUMNS

#: VOTable datatypes read as another (the output has no such type)
_WIDENED = {"unsignedByte": "short", "bit": "boolean"}
_RA_NAMES = ("ra", "ra_icrs", "raj2000", "ra_j2000", "radeg", "ra_deg", "alpha")
_DEC_NAMES = ("dec", "de", "dec_icrs", "de_icrs", "dej2000", "decj2000", "dec_j2000", "decdeg",
              "dec_deg", "delta")


def crossmatch_order(radius_deg: float) -> int | None:
    """The finest HEALPix order whose cells are at least twice ``radius_deg`` wide,
    so that a cell and its 8 neighbours hold every position within the radius of
    any point of the cell; None if even order 0 is too fine."""
    for order in range(ORDER, -1, -1):
        if np.degrees(hp.nside2resol(1 << order)) >= 2.0 * radius_deg:
            return order
    return None


@dataclass
class UploadedTable(Upload):
    """An uploaded table, checked, with its rows in memory until ``load``."""

    values: list = field(default_factory=list)      # one list of Python values per column
    nrows: int = 0
    ra_values: Any = None                             # float arrays (NaN where null)
    dec_values: Any = None
    xmatch_radius: float | None = None               # largest match radius asked for

    def use_positions(self, ra: str, dec: str) -> bool:
        """Make columns ``ra``, ``dec`` the table's position (hidden columns, index
        ranges), unless it already has another one; True if they are its position.
        The ADQL translator calls this for the columns a cross-match names, so any
        two numeric columns can be matched through the index."""
        if self.ra is not None:
            return (self.ra, self.dec) == (ra, dec)
        names = [c.name for c in self.columns]
        kinds = {c.name: c.datatype for c in self.columns}
        numeric = ("float", "double", "int", "long", "short")
        if ra not in kinds or dec not in kinds or kinds[ra] not in numeric \
                or kinds[dec] not in numeric:
            return False
        ra_values = _floats(self.values[names.index(ra)])
        dec_values = _floats(self.values[names.index(dec)])
        bad = np.flatnonzero(np.isfinite(dec_values) & (np.abs(dec_values) > 90))
        if bad.size:
            i = int(bad[0])
            raise UsageFault(f"UPLOAD table {self.name}, row {i + 1}: {dec}={dec_values[i]} "
                             "is outside [-90, 90] degrees")
        self.ra, self.dec = ra, dec
        self.ra_values, self.dec_values = np.mod(ra_values, 360.0), dec_values
        self.table.info["crossmatch_ranges"] = self.crossmatch_ranges
        return True

    def crossmatch_ranges(self, selectable, hpx, radius_deg: float):
        """The index-using part of a cross-match with a table whose HEALPix column is
        ``hpx``: ``hpx`` lies in one of this row's neighbour-cell ranges. None if the
        radius is too large for the scheme (the caller then tests every pair)."""
        if crossmatch_order(radius_deg) is None:
            return None
        self.xmatch_radius = max(self.xmatch_radius or 0.0, radius_deg)
        c = selectable.c
        return sa.or_(*[sa.and_(hpx >= c[f"_lo{i}"], hpx < c[f"_hi{i}"])
                        for i in range(NEIGHBOURS)])

    # -- loading ----------------------------------------------------------------------

    def _spatial(self) -> dict[str, list]:
        """The hidden columns as Python lists (None for nulls), ready to bind."""
        ra, dec = self.ra_values, self.dec_values
        good = np.isfinite(ra) & np.isfinite(dec)
        everywhere = bool(good.all())
        hpx = np.full(self.nrows, -1, dtype=np.int64)
        x = np.full(self.nrows, np.nan)
        y, z = x.copy(), x.copy()
        if good.any():
            hpx[good] = healpix_index(ra[good], dec[good])
            x[good], y[good], z[good] = unit_vectors(ra[good], dec[good])
        out = {"_hpx": hpx.tolist()}
        for name, arr in (("_x", x), ("_y", y), ("_z", z)):
            out[name] = arr.tolist() if everywhere else _with_nulls(arr, good)
        order = crossmatch_order(self.xmatch_radius) if self.xmatch_radius else None
        lo = np.zeros((self.nrows, NEIGHBOURS), dtype=np.int64)
        hi = lo.copy()
        used = np.zeros((self.nrows, NEIGHBOURS), dtype=bool)
        if order is not None and good.any():
            lo[good], hi[good], used[good] = _neighbour_ranges(order, ra[good], dec[good])
        # slots beyond a row's own ranges hold the empty range [0, 0), which matches
        # nothing. Not NULL: Python's sqlite3 binds None several times slower than
        # an int, and NULLs set afterwards (UPDATE, or rows inserted in groups)
        # cost more than the empty probes they save (measured with 1,000 and
        # 100,000 rows)
        for i in range(NEIGHBOURS):
            out[f"_lo{i}"], out[f"_hi{i}"] = lo[:, i].tolist(), hi[:, i].tolist()
        return out

    def _columns_and_rows(self):
        names = [c.name for c in self.columns]
        data = list(self.values)
        if self.ra_values is not None:
            spatial = self._spatial()
            names += list(HIDDEN_COLUMNS)
            data += [spatial[name] for name in HIDDEN_COLUMNS]
        return names, data

    def load(self, conn: sa.Connection) -> None:
        """Create the temporary table on ``conn`` and fill it.

        SQLite: the read-only connection's authorizer refuses BEGIN and writes to the
        archive, but allows temporary tables; the rows go in with autocommit so no
        BEGIN is needed. PostgreSQL: the executor runs this before it makes the
        transaction READ ONLY; COPY fills the table.
        """
        names, data = self._columns_and_rows()
        raw = conn.connection.dbapi_connection
        if conn.dialect.name == "sqlite":
            previous = raw.isolation_level
            raw.isolation_level = None
            try:
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS temp."{self.table.name}"')
                self.table.create(conn)
                cur = raw.cursor()
                try:
                    # one statement, row tuples, rows appended in the upload's order
                    quoted = ", ".join('"' + n.replace('"', '""') + '"' for n in names)
                    placeholders = ", ".join("?" * len(names))
                    cur.executemany(f'INSERT INTO temp."{self.table.name}" ({quoted}) '
                                    f"VALUES ({placeholders})", zip(*data))
                finally:
                    cur.close()
            finally:
                raw.isolation_level = previous
            return
        self.table.create(conn)
        quoted = ", ".join('"' + n.replace('"', '""') + '"' for n in names)
        with raw.cursor() as cur:
            with cur.copy(f'COPY "{self.table.name}" ({quoted}) FROM STDIN') as copy:
                for row in zip(*data):
                    copy.write_row(row)


def _with_nulls(values: np.ndarray, present: np.ndarray) -> list:
    """``values`` as a Python list with None where ``present`` is False."""
    out = values.astype(object)
    out[~present] = None
    return out.tolist()


def _neighbour_ranges(order: int, ra: np.ndarray, dec: np.ndarray):
    """(lo, hi, used): per position, the half-open ``_hpx`` ranges at ``ORDER`` of
    its cell at ``order`` and the cell's 8 neighbours, with cells that follow each
    other in the NESTED numbering merged into one range (about 4.5 ranges instead
    of 9 at 5 arcsec, so fewer index probes); ``used`` marks the filled slots."""
    nside = 1 << order
    shift = np.int64(1) << np.int64(2 * (ORDER - order))
    own = hp.ang2pix(nside, ra, dec, nest=True, lonlat=True)
    around = hp.get_all_neighbours(nside, ra, dec, nest=True, lonlat=True)
    cells = np.vstack([own[None, :], around]).T.astype(np.int64)
    missing = np.iinfo(np.int64).max          # some cells have only 7 neighbours
    cells = np.sort(np.where(cells < 0, missing, cells), axis=1)
    valid = cells != missing
    # a range starts at a cell that does not follow the one before it, and ends
    # at a cell that the next one does not follow
    follows = cells[:, 1:] == cells[:, :-1] + 1
    starts = valid.copy()
    starts[:, 1:] &= ~follows
    ends = valid.copy()
    ends[:, :-1] &= ~follows
    # move the starts (and the ends) to the left, keeping their order
    first = np.take_along_axis(cells, np.argsort(~starts, axis=1, kind="stable"), axis=1)
    last = np.take_along_axis(cells, np.argsort(~ends, axis=1, kind="stable"), axis=1)
    used = np.arange(cells.shape[1]) < starts.sum(axis=1)[:, None]
    lo = np.where(used, first * shift, 0)
    hi = np.where(used, (last + 1) * shift, 0)
    return lo, hi, used


# -- reading ----------------------------------------------------------------------------

def _field_type(name: str, datatype: str, arraysize, xtype) -> str:
    datatype = _WIDENED.get(datatype, datatype)
    if datatype not in SQL_TYPES:
        raise UsageFault(f"column {name!r} has datatype {datatype}, which uploaded tables "
                         "cannot have (use boolean, short, int, long, float, double or "
                         "char)")
    if datatype not in ("char", "unicodeChar") and arraysize not in (None, "1"):
        raise UsageFault(f"column {name!r} is an array (arraysize={arraysize}); uploaded "
                         "tables may have scalar columns and strings only")
    return datatype


def _python_column(col, datatype: str) -> list:
    """Column values as Python objects, None for nulls (masked values and NaN)."""
    mask = np.ma.getmaskarray(col)
    data = np.ma.getdata(col)
    if datatype in ("char", "unicodeChar"):
        out = []
        for v, m in zip(data.tolist(), mask.tolist()):
            if m or v is None:
                out.append(None)
            else:
                out.append(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
        return out
    if datatype == "boolean":
        return [None if m else bool(v) for v, m in zip(data.tolist(), mask.tolist())]
    if datatype in ("float", "double"):
        data = np.asarray(data, dtype=np.float64 if datatype == "double" else np.float32)
        mask = mask | np.isnan(data)         # NaN is null too
    if mask.any():
        return _with_nulls(data, ~mask)
    return data.tolist()


def _numpy_datatype(dtype: np.dtype) -> str:
    kind = dtype.kind
    if kind == "b":
        return "boolean"
    if kind in "iu":
        return {1: "short", 2: "short", 4: "int"}.get(dtype.itemsize, "long") \
            if not (kind == "u" and dtype.itemsize >= 4) else "long"
    if kind == "f":
        return "float" if dtype.itemsize <= 4 else "double"
    if kind in "SUO":
        return "char"
    raise UsageFault(f"a column of type {dtype} cannot be uploaded")


def _read_votable(content: bytes, name: str):
    from astropy.io import votable
    from .upload_votable import read_binary_votable
    try:
        # BINARY/BINARY2 streams are decoded with numpy (astropy reads the header);
        # anything else is read by astropy alone
        fast = read_binary_votable(content)
        if fast is not None:
            table, arrays, nrows = fast
        else:
            table = votable.parse(io.BytesIO(content), verify="ignore").get_first_table()
            arrays = [table.array[n] for n in table.array.dtype.names]
            nrows = len(table.array)
    except Exception as exc:
        raise UsageFault(f"UPLOAD table {name}: the VOTable cannot be read: {exc}") from None
    cols = []
    values = []
    for f, array in zip(table.fields, arrays):
        datatype = _field_type(f.name, f.datatype, f.arraysize, f.xtype)
        arraysize = "*" if datatype in ("char", "unicodeChar") else None
        description = f.description if isinstance(f.description, str) else None
        cols.append(ResultColumn(f.name, datatype, description, f.unit and str(f.unit),
                                 f.ucd, f.utype, arraysize, f.xtype))
        values.append(_python_column(array, datatype))
    return cols, values, nrows


def _read_astropy(content: bytes, name: str, fmt: str):
    from astropy.table import Table
    try:
        if fmt == "fits":
            table = Table.read(io.BytesIO(content), format="fits")
        else:
            table = Table.read(content.decode("utf-8-sig"), format="ascii.csv")
    except UnicodeDecodeError:
        raise UsageFault(f"UPLOAD table {name}: the CSV text is not UTF-8") from None
    except Exception as exc:
        raise UsageFault(f"UPLOAD table {name}: the {fmt.upper()} table cannot be read: "
                         f"{exc}") from None
    cols, values = [], []
    for colname in table.colnames:
        col = table[colname]
        if col.ndim > 1:
            raise UsageFault(f"UPLOAD table {name}: column {colname!r} is an array; uploaded "
                             "tables may have scalar columns and strings only")
        datatype = _numpy_datatype(col.dtype)
        unit = str(col.unit) if col.unit is not None else None
        cols.append(ResultColumn(colname, datatype, col.description or None, unit,
                                 arraysize="*" if datatype == "char" else None))
        data = np.ma.MaskedArray(col) if hasattr(col, "mask") else np.asarray(col)
        values.append(_python_column(data, datatype))
    return cols, values, len(table)


def read_table(content: bytes, name: str, config: Mapping):
    """(columns, per-column values, row count) of an uploaded VOTable, CSV or FITS;
    what a VOTable or CSV header declares is bounded before the table is read
    (``archive.tap.upload_limits``)."""
    head = content.lstrip()[:80]
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:].lstrip()
    if not head:
        raise UsageFault(f"UPLOAD table {name} is empty")
    if head.startswith(b"<"):
        check_votable(content, name, config)
        return _read_votable(content, name)
    if head.startswith(b"SIMPLE  ="):
        return _read_astropy(content, name, "fits")
    first_line = content.lstrip().split(b"\n", 1)[0]
    check_columns(name, first_line.count(b",") + 1, config)
    return _read_astropy(content, name, "csv")


def _position_columns(cols: Sequence[ResultColumn]) -> tuple[str | None, str | None]:
    numeric = [c for c in cols if c.datatype in ("float", "double", "int", "long", "short")]

    def by_ucd(prefix):
        hits = [c for c in numeric if c.ucd and prefix in c.ucd.lower().split(";")]
        main = [c for c in hits if "meta.main" in c.ucd.lower()]
        return (main or hits or [None])[0]

    def by_name(names):
        for wanted in names:
            for c in numeric:
                if c.name.lower() == wanted:
                    return c
        return None

    ra = by_ucd("pos.eq.ra") or by_name(_RA_NAMES)
    dec = by_ucd("pos.eq.dec") or by_name(_DEC_NAMES)
    if ra is None or dec is None:
        return None, None
    return ra.name, dec.name


def _floats(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def build_upload(name: str, content: bytes, config: Mapping) -> UploadedTable:
    """Check one uploaded table and describe it (rows stay in memory until load)."""
    cols, values, nrows = read_table(content, name, config)
    check_columns(name, len(cols), config)
    limit = int(config["UPLOAD_MAX_ROWS"])
    if nrows > limit:
        raise UsageFault(f"UPLOAD table {name} has {nrows} rows; at most {limit} are "
                         "accepted (UPLOAD_MAX_ROWS)")
    if not cols:
        raise UsageFault(f"UPLOAD table {name} has no columns")
    seen = {}
    for c in cols:
        low = c.name.lower()
        if low in seen:
            raise UsageFault(f"UPLOAD table {name} has two columns called {c.name!r} "
                             f"and {seen[low]!r}; column names must differ (ignoring case)")
        if low in HIDDEN_COLUMNS:
            raise UsageFault(f"UPLOAD table {name}: the column name {c.name!r} is reserved "
                             "by this service; rename the column")
        if not c.name:
            raise UsageFault(f"UPLOAD table {name} has a column without a name")
        check_column_name(name, c.name)
        seen[low] = c.name
    ra, dec = _position_columns(cols)
    metadata = sa.MetaData()
    sa_cols = [sa.Column(c.name, sql_type(c), quote=True) for c in cols]
    # the hidden columns always exist (NULL unless positions are known by load time):
    # a query may name the positions of a table that has neither UCDs nor usual names
    sa_cols += [sa.Column("_hpx", sa.BigInteger), sa.Column("_x", sa.Double),
                sa.Column("_y", sa.Double), sa.Column("_z", sa.Double)]
    sa_cols += [sa.Column(n, sa.BigInteger) for n in _RANGE_COLUMNS]
    table = sa.Table(f"tap_upload_{name.lower()}", metadata, *sa_cols,
                     prefixes=["TEMPORARY"])
    upload = UploadedTable(name=name, columns=cols, table=table, values=values, nrows=nrows)
    table.info["positions"] = upload.use_positions
    if ra is not None:
        upload.use_positions(ra, dec)
    return upload


# -- where the bytes come from ----------------------------------------------------------

def _read_limited(stream, limit: int, what: str) -> bytes:
    chunks, size = [], 0
    while True:
        block = stream.read(1 << 20)
        if not block:
            return b"".join(chunks)
        size += len(block)
        if size > limit:
            raise UsageFault(f"{what} is larger than the limit of {limit} bytes "
                             "(UPLOAD_MAX_BYTES)")
        chunks.append(block)


def _part(files: Mapping[str, Any], part: str):
    if part in files:
        return files[part]
    for key, value in files.items():
        if key.lower() == part.lower():
            return value
    return None


def _fetch(url: str, config: Mapping, name: str) -> bytes:
    import requests
    host = (urlsplit(url).hostname or "").lower()
    port = urlsplit(url).port
    allowed = [h.lower() for h in config.get("UPLOAD_URL_ALLOW") or []]
    if host not in allowed and f"{host}:{port}" not in allowed:
        raise UsageFault(f"UPLOAD table {name}: this service does not fetch tables from "
                         f"{host or url!r}; send the table in the request instead "
                         f"(UPLOAD={name},param:<part>)"
                         + (f"; allowed hosts: {', '.join(allowed)}" if allowed else ""))
    limit = int(config["UPLOAD_MAX_BYTES"])
    try:
        with requests.get(url, stream=True, timeout=30) as resp:
            if resp.status_code != 200:
                raise UsageFault(f"UPLOAD table {name}: {url} answered HTTP "
                                 f"{resp.status_code}")
            return _read_limited(resp.raw, limit, f"UPLOAD table {name} at {url}")
    except requests.RequestException as exc:
        raise UsageFault(f"UPLOAD table {name}: {url} could not be read: {exc}") from None


def load_uploads(specs: Sequence, files: Mapping[str, Any], config: Mapping
                 ) -> list[UploadedTable]:
    """The uploaded tables named by UPLOAD items ``specs`` (``.name``, ``.uri``).

    ``files`` maps multipart part names to file-like objects or paths.
    """
    tables = []
    limit = int(config["UPLOAD_MAX_BYTES"])
    for spec in specs:
        check_table_name(spec.name)
        if spec.uri.startswith("param:"):
            part = spec.uri[len("param:"):]
            source = _part(files, part)
            if source is None:
                sent = ", ".join(sorted(files)) or "none"
                raise UsageFault(f"UPLOAD={spec.name},{spec.uri} names the multipart part "
                                 f"{part!r}, but the request has no such part (parts sent: "
                                 f"{sent})")
            what = f"UPLOAD table {spec.name} (part {part!r})"
            if isinstance(source, (str, Path)):
                with open(source, "rb") as fh:
                    content = _read_limited(fh, limit, what)
            else:
                stream = getattr(source, "stream", source)
                content = _read_limited(stream, limit, what)
        elif spec.uri.startswith(("http://", "https://")):
            content = _fetch(spec.uri, config, spec.name)
        else:
            raise UsageFault(f"UPLOAD URI {spec.uri!r} for table {spec.name} is not "
                             "supported: use param:<part name> or an http(s) URL")
        tables.append(build_upload(spec.name, content, config))
    return tables


def sync_uploads(tap_request, config: Mapping) -> list[UploadedTable]:
    """The hook ``archive.tap.views`` calls for UPLOAD on /tap/sync."""
    files = tap_request.params.files if tap_request.params is not None else {}
    return load_uploads(tap_request.uploads, files, config)

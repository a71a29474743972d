"""Read one light-curve product (FITS) into plain data: columns, header, GTIs, time.

No Flask and no database: :func:`read_product` takes a file path and the product
type's key and returns a :class:`Series`, or raises :class:`UnreadableProduct` with a
sentence saying what is wrong with the file. Columns are read through astropy's
memory map and converted to native-endian, contiguous numpy arrays (nulls and
masked values become NaN), ready to be written as JSON in bulk.

Time convention (docs/lightcurves.md): the files keep XMM mission elapsed time
(MET, s, TT); ``TIME`` is where TIMEPIXR says in the bin (0.5: its centre). The
:class:`Series` carries MJDREF, TIMEZERO and the TT-UTC offsets (from astropy.time,
leap seconds included) so that any MET converts to seconds since TSTART, MJD (TT)
and UTC without a per-point table.
"""
from __future__ import annotations

import warnings
from functools import lru_cache
from dataclasses import dataclass, field

import numpy as np

import datamodel

__all__ = ["Series", "UnreadableProduct", "NotALightCurve", "read_product", "KINDS",
           "SECONDS_PER_DAY", "MJD_UNIX_EPOCH"]

SECONDS_PER_DAY = 86400.0
MJD_UNIX_EPOCH = 40587.0

#: What each product prefix holds: (kind, columns read, their error column).
KINDS = {
    "ublc": ("bins", ("TIME", "RATE", "ERROR", "FRACEXP")),
    "bglc": ("bins", ("TIME", "RATE", "ERROR", "FRACEXP")),
    "bblc": ("blocks", ("TSTART", "TSTOP", "RATE", "ERATE", "FRACEXP")),
    "hrlc": ("hardness", ("TIME", "HR", "HR_ERR")),
    "pds": ("power", ("FREQ", "POWER", "POWER_ERR")),
}

#: Header values passed on as they are (when present).
HEADER_KEYS = ("TSTART", "TSTOP", "TIMEZERO", "TIMEPIXR", "MJDREF", "MJDREFI", "MJDREFF",
               "TIMESYS", "TIMEREF", "TIMEUNIT", "TIMEDEL", "E_MIN", "E_MAX", "TELESCOP",
               "INSTRUME", "OBS_ID", "EXP_ID", "EXPIDSTR", "SRC_NUM", "SRCID", "SRC_RA",
               "SRC_DEC", "HDUCLAS2", "EXTNAME")


class UnreadableProduct(Exception):
    """The file exists but is not a readable product of its type (truncated,
    corrupt, a column or keyword missing)."""


class NotALightCurve(Exception):
    """The product is not a time series this module reads (an image, a preview)."""


@dataclass
class Series:
    """One product's data, plain: ``columns`` (name -> float64/float32 array),
    ``units`` (name -> unit string), the header values, the GTIs (MET, s) and the
    time conversion constants."""

    product_type: str
    kind: str                             # bins, blocks, hardness, power
    columns: dict[str, np.ndarray]
    units: dict[str, str]
    header: dict[str, object]
    gti_start: np.ndarray = field(default_factory=lambda: np.zeros(0))
    gti_stop: np.ndarray = field(default_factory=lambda: np.zeros(0))
    gti_source: str = "header"            # "GTI extension" or "header" (TSTART/TSTOP)
    time: dict[str, object] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


def kind_of(product_type: str) -> tuple[str, tuple[str, ...]]:
    """(kind, columns) of a product type key; NotALightCurve for images, previews and
    unknown keys."""
    ptype = datamodel.PRODUCT_TYPES.get(product_type)
    if ptype is None or ptype.prefix not in KINDS:
        if ptype is not None:
            what = f"{ptype.key!r}: {ptype.title}"
        elif product_type == "preview":
            what = "'preview': a quick-look plot (PNG) of a light curve"
        else:
            what = repr(product_type)
        raise NotALightCurve(f"this product is not a light curve (its type is {what})")
    return KINDS[ptype.prefix]


def _native(values, null=None) -> np.ndarray:
    """A contiguous, native-endian float array; masked values and integer nulls (TNULL)
    as NaN."""
    if np.ma.isMaskedArray(values):
        values = values.astype(np.float64).filled(np.nan)
    arr = np.asarray(values)
    if arr.dtype.kind not in "f":
        floats = arr.astype(np.float64)
        if null is not None:
            floats[arr == null] = np.nan
        arr = floats
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))


def _header_value(value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return str(value).strip()


def read_product(path: str, product_type: str) -> Series:
    """The data of the FITS product at ``path`` of type ``product_type``."""
    kind, names = kind_of(product_type)
    extension = datamodel.PRODUCT_TYPES[product_type].extension
    from astropy.io import fits
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")       # "file may have been truncated" is fatal
            with fits.open(path, memmap=True, lazy_load_hdus=False) as hdul:
                series = _read_open(hdul, kind, names, extension, product_type)
    except UnreadableProduct:
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError, EOFError, Warning) as exc:
        raise UnreadableProduct(f"the product file cannot be read as FITS: "
                                f"{type(exc).__name__}: {exc}") from None
    return series


def _read_open(hdul, kind, names, extension, product_type) -> Series:
    from astropy.io import fits
    tables = [h for h in hdul if isinstance(h, fits.BinTableHDU)]
    named = [h for h in tables if h.name.upper() == (extension or "").upper()]
    if not (named or tables):
        raise UnreadableProduct("the product file has no table extension")
    hdu = named[0] if named else tables[0]
    data, header = hdu.data, hdu.header
    if data is None:
        raise UnreadableProduct(f"the {hdu.name} extension holds no rows")
    present = {n.upper(): n for n in data.columns.names}
    missing = [n for n in names if n not in present]
    if missing:
        raise UnreadableProduct(f"the {hdu.name} extension lacks the column(s) "
                                + ", ".join(missing))
    columns, units = {}, {}
    for name in names:
        col = data.columns[present[name]]
        columns[name] = _native(data.field(present[name]), col.null)
        units[name] = str(col.unit or "")
    head = {k: _header_value(header[k]) for k in HEADER_KEYS if k in header}
    series = Series(product_type, kind, columns, units, head)
    if kind != "power":
        _gtis(series, hdul, header)
        series.time = time_conversion(head)
    return series


def _gtis(series: Series, hdul, header) -> None:
    gti = [h for h in hdul if h.name.upper().startswith(("GTI", "STDGTI"))
           and getattr(h, "data", None) is not None]
    if gti:
        data = gti[0].data
        series.gti_start = _native(data.field("START")).astype(np.float64)
        series.gti_stop = _native(data.field("STOP")).astype(np.float64)
        series.gti_source = f"{gti[0].name} extension"
    elif "TSTART" in header and "TSTOP" in header:
        series.gti_start = np.array([float(header["TSTART"])])
        series.gti_stop = np.array([float(header["TSTOP"])])
        series.gti_source = "header (TSTART-TSTOP)"
    else:
        series.gti_source = "none"


def mjdref(header: dict) -> float:
    if "MJDREF" in header:
        return float(header["MJDREF"])
    return float(header.get("MJDREFI", 0.0)) + float(header.get("MJDREFF", 0.0))


def time_conversion(header: dict) -> dict[str, object]:
    """See :func:`_conversion` (cached: the files of one observation share it)."""
    missing = [k for k in ("TSTART", "TSTOP") if k not in header]
    if missing:
        raise UnreadableProduct("the light curve header lacks " + " and ".join(missing))
    return dict(_conversion(float(header["TSTART"]), float(header["TSTOP"]),
                            float(header.get("TIMEZERO", 0.0)), mjdref(header),
                            str(header.get("TIMESYS", "TT")).upper(),
                            float(header.get("TIMEPIXR", 0.5))))


@lru_cache(maxsize=4096)
def _conversion(tstart: float, tstop: float, zero: float, ref: float, timesys: str,
                timepixr: float) -> dict[str, object]:
    """The constants that turn a MET value into the three time axes.

    ``t_since_start = MET + TIMEZERO - TSTART``; ``mjd = MJDREF + (MET + TIMEZERO) /
    86400`` (in TIMESYS, TT for XMM); UTC: ``unix = (MJDREF - 40587) * 86400 + MET +
    TIMEZERO - timesys_minus_utc``, where ``timesys_minus_utc`` (s, TT-UTC for XMM)
    comes from astropy/ERFA's leap-second table and is constant over the file unless a
    leap second falls inside it, in which case ``leap`` gives the MET from which the
    second value holds.
    """
    from astropy.time import Time
    if ref == 0.0:
        raise UnreadableProduct("the light curve header has no MJDREF (or MJDREFI/MJDREFF)")
    if timesys not in ("TT", "TDB", "TAI", "UTC"):
        raise UnreadableProduct(f"TIMESYS {timesys!r} is not one this archive converts")
    scale = timesys.lower()
    times = Time(ref + (np.array([tstart, tstop]) + zero) / SECONDS_PER_DAY, format="mjd",
                 scale=scale)
    utc = times.utc
    first, last = (_minus_utc(t, scale) for t in times)
    conversion = {
        "timesys": timesys, "mjdref": ref, "timezero": zero, "timepixr": timepixr,
        "tstart": tstart, "tstop": tstop,
        "mjd_start": float(times[0].mjd), "mjd_stop": float(times[1].mjd),
        "utc_start": utc[0].isot, "utc_stop": utc[1].isot,
        "timesys_minus_utc": first, "leap": None,
    }
    if last != first:
        conversion["leap"] = {"met": _leap_met(ref, zero, scale, tstart, tstop, first),
                              "timesys_minus_utc": last}
    return conversion


def _minus_utc(time, scale: str) -> float:
    """TIMESYS - UTC (s) at ``time``: 32.184 s + TAI-UTC (the leap seconds, from ERFA's
    table) for TT and TDB (TDB's periodic terms, < 2 ms, are left out), TAI-UTC for
    TAI, 0 for UTC."""
    import erfa
    if scale == "utc":
        return 0.0
    utc = time.utc
    year, month, day, hmsf = erfa.d2dtf("UTC", 3, utc.jd1, utc.jd2)
    fraction = (hmsf["h"] * 3600 + hmsf["m"] * 60 + hmsf["s"] + hmsf["f"] / 1000) / 86400
    tai_utc = float(erfa.dat(year, month, day, min(fraction, 1.0)))
    return round(tai_utc + (0.0 if scale == "tai" else 32.184), 3)


def _leap_met(ref: float, zero: float, scale: str, lo: float, hi: float,
              first: float) -> float:
    """The MET (to 1 ms) from which the later offset holds (bisection)."""
    from astropy.time import Time

    def offset(met):
        return _minus_utc(Time(ref + (met + zero) / SECONDS_PER_DAY, format="mjd",
                               scale=scale), scale)
    while hi - lo > 1e-3:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if offset(mid) == first else (lo, mid)
    return hi

"""FITS light-curve products of the demo archive, following the XMM conventions.

Each file has a primary HDU and one binary-table extension (``RATE`` for light
curves, ``HR`` for hardness ratios, ``POWER`` for power spectra) with the OGIP
timing keywords: TSTART/TSTOP (XMM mission elapsed time, s), TIMEDEL, TIMEZERO,
TIMEPIXR, MJDREF = 50814 (1998-01-01), TIMESYS = 'TT', TIMEUNIT = 's', and the
XMM keys TELESCOP, INSTRUME, OBS_ID, EXP_ID, EXPIDSTR, SRC_NUM, SRCID, SRC_RA,
SRC_DEC, E_MIN, E_MAX. ``TIME`` is the bin centre in mission elapsed time.

The light curves are drawn (Poisson noise) from the same model as the catalogue
statistics of :mod:`ingest.synthetic`, so an injected flare or eclipse shows in
the file as in the catalogue (low ``*_co_pval``, ``bb_lc_nblocks`` > 1).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from datamodel import BANDS, PRODUCT_TYPES

from .synthetic import MJDREF

__all__ = ["DetectionModel", "write_products", "products_for"]

INSTRUME = {"PN": "EPN", "M1": "EMOS1", "M2": "EMOS2"}
BAND_SHARE = {"b1": 0.45, "b2": 0.35, "b3": 0.20}
PIPELINE = "extras-archive demo 1"


class DetectionModel:
    """The true count rate of one detection as a function of time (s after TSTART)."""

    def __init__(self, row: dict, event: dict, tstart: float, tstop: float):
        self.row, self.event = row, event
        self.tstart, self.tstop = tstart, tstop
        self.duration = tstop - tstart
        self.kind = int(event["kind"])

    def rate(self, t: np.ndarray, share: float = 1.0) -> np.ndarray:
        e = self.event
        base = float(e["base_rate"]) * share
        if self.kind == 1:                       # flare: fast rise, exponential decay
            t0, tau, amp = float(e["t0"]), float(e["tau"]), float(e["amp"])
            rise = 0.15 * tau
            shape = np.where(t < t0 - rise, 0.0,
                             np.where(t < t0, (t - (t0 - rise)) / rise,
                                      np.exp(-(t - t0) / tau)))
            return base * (1.0 + amp * shape)
        if self.kind == 2:                       # periodic eclipses
            t0, period, length = float(e["t0"]), float(e["period"]), float(e["ecl_len"])
            phase = np.mod(t - t0, period)
            inside = (t >= t0) & (phase < length)
            return base * np.where(inside, 1.0 - float(e["depth"]), 1.0)
        if self.kind == 3:                       # intrinsic variability, smooth
            return base * (1.0 + 0.6 * np.sin(2 * np.pi * t / (0.8 * self.duration)
                                              + float(e["phase"])))
        return np.full(np.shape(t), base)

    def block_edges(self) -> np.ndarray:
        """Block boundaries (s after TSTART) of the Bayesian-block light curve."""
        e, dur = self.event, self.duration
        nblocks = int(e["nblocks"])
        if self.kind == 1:
            t0, tau = float(e["t0"]), float(e["tau"])
            edges = [0.0, t0, t0 + tau, t0 + 2.5 * tau, dur]
        elif self.kind == 2:
            t0, period, length = float(e["t0"]), float(e["period"]), float(e["ecl_len"])
            starts = t0 + period * np.arange(max(1, (nblocks - 1) // 2))
            edges = [0.0, *sorted(np.concatenate([starts, starts + length]).tolist()), dur]
        else:
            edges = np.linspace(0.0, dur, nblocks + 1).tolist()
        return np.array(edges)


def _header(hdr, row, model, band, timedel, extname, hduclas):
    e_min, e_max = BANDS[band] if band else BANDS["full"]
    cards = [
        ("EXTNAME", extname), ("TELESCOP", "XMM"), ("INSTRUME", INSTRUME[row["camera"]]),
        ("OBS_ID", row["obs_id"]), ("EXP_ID", f"{row['obs_id']}{row['exp_id']}"),
        ("EXPIDSTR", row["exp_id"]), ("SRC_NUM", int(row["src_num"])),
        ("SRCID", int(row["srcid"])), ("SRC_RA", float(row["ra"]), "[deg] source RA (ICRS)"),
        ("SRC_DEC", float(row["dec"]), "[deg] source Dec (ICRS)"),
        ("RADECSYS", "ICRS"), ("EQUINOX", 2000.0),
        ("E_MIN", e_min * 1000.0, "[eV] low energy bound"),
        ("E_MAX", e_max * 1000.0, "[eV] high energy bound"),
        ("TSTART", model.tstart, "[s] start, XMM mission elapsed time"),
        ("TSTOP", model.tstop, "[s] stop, XMM mission elapsed time"),
        ("TIMEZERO", 0.0, "[s] zero-point offset of TIME"),
        ("TIMEPIXR", 0.5, "TIME is the bin centre"),
        ("MJDREF", MJDREF, "[d] 1998-01-01T00:00:00 TT"), ("TIMESYS", "TT"),
        ("TIMEREF", "LOCAL"), ("TIMEUNIT", "s"), ("CLOCKAPP", True),
        ("HDUCLASS", "OGIP"), ("HDUCLAS1", "LIGHTCURVE"), ("HDUCLAS2", hduclas),
        ("HDUCLAS3", "RATE"), ("CREATOR", PIPELINE, "producing pipeline"),
    ]
    if timedel is not None:
        cards.append(("TIMEDEL", float(timedel), "[s] bin size"))
    for card in cards:
        hdr[card[0]] = card[1] if len(card) == 2 else (card[1], card[2])


def _write(path: Path, columns, header_args):
    hdu = fits.BinTableHDU.from_columns(columns)
    _header(hdu.header, *header_args)
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)


def _uniform(rng, model, timedel, share, fracexp_floor=0.85):
    nbins = max(1, int(model.duration // timedel))
    t = (np.arange(nbins) + 0.5) * timedel
    frac = np.clip(rng.normal(0.97, 0.03, nbins), fracexp_floor, 1.0)
    mu = model.rate(t, share) * timedel * frac
    counts = rng.poisson(mu)
    rate = counts / (timedel * frac)
    err = np.sqrt(np.maximum(counts, 1)) / (timedel * frac)
    return t, rate, err, frac


def products_for(row: dict) -> list[str]:
    """Keys of the product types the demo writes for an aperiodic row."""
    keys = ["bblc", "ublc_500s", "ublc_opt"]
    if row["camera"] == "PN":
        keys += ["ublc_500s_b1", "ublc_500s_b2", "ublc_500s_b3", "bglc_500s", "hrlc_500s",
                 "pds", "qlimg"]
    return keys


def write_products(directory: Path, row: dict, event: dict, tstart: float, tstop: float,
                   seed: int) -> list[Path]:
    """Write the product files of one detection into ``directory``; their paths."""
    rng = np.random.default_rng(seed)
    model = DetectionModel(row, event, tstart, tstop)
    keys = (row["obs_id"], row["camera"], row["exp_id"], int(row["src_num"]))
    out = []
    bkg = float(rng.uniform(0.002, 0.02))
    for key in products_for(row):
        ptype = PRODUCT_TYPES[key]
        path = directory / ptype.filename(*keys)
        if key == "qlimg":
            _quicklook_image(path, rng, model)
        elif key == "bblc":
            edges = model.block_edges()
            fine = np.linspace(0, model.duration, 4000)
            r = model.rate(fine)
            rates = [float(np.mean(r[(fine >= a) & (fine <= b)] if np.any((fine >= a) & (fine <= b))
                                   else model.rate(np.array([(a + b) / 2]))))
                     for a, b in zip(edges[:-1], edges[1:])]
            rates = np.array(rates) * rng.normal(1, 0.02, len(rates))
            widths = np.diff(edges)
            erate = np.sqrt(np.maximum(rates, 1e-6) / np.maximum(widths, 1.0))
            cols = [fits.Column("TSTART", "D", "s", array=model.tstart + edges[:-1]),
                    fits.Column("TSTOP", "D", "s", array=model.tstart + edges[1:]),
                    fits.Column("RATE", "E", "count/s", array=rates),
                    fits.Column("ERATE", "E", "count/s", array=erate),
                    fits.Column("FRACEXP", "E", array=np.full(len(rates), 0.97))]
            _write(path, cols, (row, model, "full", None, "RATE", "NET"))
        elif key.startswith(("ublc", "bglc")):
            timedel = 500.0 if ptype.binning == "500s" else float(row["ub_lcopt_tbin"])
            share = BAND_SHARE.get(ptype.band, 1.0)
            if key.startswith("bglc"):
                bmodel = DetectionModel(row, {**event, "kind": 0, "base_rate": bkg * 8},
                                        tstart, tstop)
                t, rate, err, frac = _uniform(rng, bmodel, timedel, 1.0)
                back = np.zeros_like(rate)
                hduclas = "TOTAL"
            else:
                t, rate, err, frac = _uniform(rng, model, timedel, share)
                back = np.clip(rng.normal(bkg * share, bkg * share * 0.1, len(t)), 0, None)
                hduclas = "NET"
            cols = [fits.Column("TIME", "D", "s", array=model.tstart + t),
                    fits.Column("RATE", "E", "count/s", array=rate),
                    fits.Column("ERROR", "E", "count/s", array=err),
                    fits.Column("FRACEXP", "E", array=frac),
                    fits.Column("BACKV", "E", "count/s", array=back),
                    fits.Column("BACKE", "E", "count/s", array=np.sqrt(back * 0.01))]
            _write(path, cols, (row, model, ptype.band, timedel, "RATE", hduclas))
        elif key == "hrlc_500s":
            t, soft, serr, _ = _uniform(rng, model, 500.0, BAND_SHARE["b1"])
            _, hard, herr, _ = _uniform(rng, model, 500.0, BAND_SHARE["b3"])
            tot = np.maximum(soft + hard, 1e-9)
            hr = np.clip((hard - soft) / tot, -1, 1)
            hr_err = np.clip(2 * np.hypot(hard * serr, soft * herr) / tot ** 2, 0, 2)
            cols = [fits.Column("TIME", "D", "s", array=model.tstart + t),
                    fits.Column("HR", "E", array=hr), fits.Column("HR_ERR", "E", array=hr_err)]
            _write(path, cols, (row, model, None, 500.0, "HR", "NET"))
        elif key == "pds":
            nbins = max(4, int(model.duration // 500.0))
            freq = np.arange(1, nbins // 2 + 1) / model.duration
            power = rng.exponential(2.0, len(freq))
            cols = [fits.Column("FREQ", "D", "Hz", array=freq),
                    fits.Column("POWER", "E", array=power),
                    fits.Column("POWER_ERR", "E", array=power)]
            _write(path, cols, (row, model, "full", 500.0, "POWER", "NET"))
        out.append(path)
    return out


def _quicklook_image(path: Path, rng, model):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    size = 48
    y, x = np.mgrid[:size, :size] - size / 2
    rate = float(model.event["base_rate"])
    img = rng.poisson(0.3 + 40 * min(rate, 2) * np.exp(-(x ** 2 + y ** 2) / 8.0))
    plt.imsave(path, np.log1p(img), cmap="magma", origin="lower")

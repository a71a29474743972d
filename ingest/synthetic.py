"""Synthetic EXTraS-like catalogues for the demo archive (numpy, deterministic).

The sky holds XMM-like pointings: sources in discs of 15 arcmin radius, some
pointings observed several times (their sources get long-term light curves).
Every observation has the three EPIC cameras (PN, M1, M2; a MOS camera is
sometimes off), every detected source one aperiodic row per camera. A few fields
sit on the hard cases of spatial queries: both poles and RA 0/360.

Value distributions follow the real catalogues (shared/EXTRAS_DATAMODEL.md):
count rates log-normal (median about 0.02 ct/s in PN, MOS about a third),
constant-model p-values uniform except for the variables (about 1 % of sources,
plus the injected flares and eclipses) which sit far below 1e-5, one Bayesian
block for constant sources and several for variables, 3XMM SUM_FLAG mostly 0.

Injected events are chosen per (source, observation) so that all cameras see
them; :func:`generate` returns them with their parameters so that the light
curves drawn by :mod:`ingest.lightcurves` show the same events.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.coordinates import SkyCoord
import astropy.units as u

__all__ = ["Synthetic", "generate", "CAMERAS", "EXP_IDS", "MJDREF", "ECF"]

CAMERAS = ("PN", "M1", "M2")
#: Exposure ids per camera (3XMM style: S = scheduled).
EXP_IDS = {"PN": "S003", "M1": "S001", "M2": "S002"}
#: MJD of XMM mission elapsed time zero (1998-01-01T00:00 TT).
MJDREF = 50814.0
#: Energy conversion factor, erg/cm2/s per PN ct/s in 0.2-12 keV (order of magnitude).
ECF = 1.0e-11
CAMERA_EFFICIENCY = {"PN": 1.0, "M1": 0.35, "M2": 0.35}
FIELD_RADIUS_DEG = 0.25
SOURCES_PER_POINTING = 22
#: Pointings placed on the hard cases: both poles, across RA 0/360, the equator.
SPECIAL_POINTINGS = ((0.02, 0.1), (359.97, -0.15), (123.0, 89.9), (300.0, -89.85),
                     (0.1, 45.0), (359.9, -60.0))


@dataclass
class Synthetic:
    """The generated catalogues: dicts of numpy columns named as in the data model,
    plus what the light-curve products need."""

    aperiodic: dict
    periodic: dict
    transients: dict
    longterm: dict
    longterm_points: dict
    classification: dict
    observations: dict       # obs_id, mjd_start, mjd_stop, tstart, tstop (MET s)
    events: dict             # per aperiodic row: kind (0 none, 1 flare, 2 eclipse), params


def _sky_points(rng, n):
    ra = rng.uniform(0.0, 360.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    return ra, dec


def _offset(ra0, dec0, rho_deg, theta):
    """Positions at angular distance rho and position angle theta from (ra0, dec0)."""
    ra0r, dec0r, rho = np.radians(ra0), np.radians(dec0), np.radians(rho_deg)
    sin_dec = np.sin(dec0r) * np.cos(rho) + np.cos(dec0r) * np.sin(rho) * np.cos(theta)
    dec = np.arcsin(np.clip(sin_dec, -1, 1))
    y = np.sin(theta) * np.sin(rho) * np.cos(dec0r)
    x = np.cos(rho) - np.sin(dec0r) * sin_dec
    ra = np.degrees(ra0r + np.arctan2(y, x)) % 360.0
    ra = np.where(ra >= 360.0, 0.0, ra)
    return ra, np.degrees(dec)


def _iau_names(prefix, ra, dec):
    c = SkyCoord(ra * u.deg, dec * u.deg)
    hms = c.ra.hms
    sign = np.where(dec < 0, "-", "+")
    adec = np.abs(dec)
    d = np.floor(adec).astype(int)
    m = np.floor((adec - d) * 60).astype(int)
    s = np.floor(((adec - d) * 60 - m) * 60).astype(int)
    rs = np.floor(hms.s * 10) / 10
    return np.array([f"{prefix} J{int(h):02d}{int(mi):02d}{r:04.1f}{sg}{dd:02d}{mm:02d}{ss:02d}"
                     for h, mi, r, sg, dd, mm, ss in zip(hms.h, hms.m, rs, sign, d, m, s)])


def _pointings(rng, n):
    ra, dec = _sky_points(rng, n)
    k = min(len(SPECIAL_POINTINGS), n)
    ra[:k] = [p[0] for p in SPECIAL_POINTINGS[:k]]
    dec[:k] = [p[1] for p in SPECIAL_POINTINGS[:k]]
    n_obs = rng.choice([1, 2, 3, 4, 6], size=n, p=[0.55, 0.25, 0.1, 0.06, 0.04])
    n_obs[:k] = np.maximum(n_obs[:k], 2)
    n_src = np.maximum(3, rng.poisson(SOURCES_PER_POINTING, n))
    return ra, dec, n_obs, n_src


def generate(rows: int, seed: int) -> Synthetic:
    """Generate catalogues with exactly ``rows`` aperiodic rows."""
    n_point = max(8, int(rows / (SOURCES_PER_POINTING * 0.8 * 2.9 * 1.8)) + 4)
    while True:
        sub = np.random.default_rng([seed, n_point])
        built = _build(sub, n_point, rows)
        if built is not None:
            return built
        n_point = int(n_point * 1.4) + 2


def _build(rng, n_point, rows):
    p_ra, p_dec, p_nobs, p_nsrc = _pointings(rng, n_point)
    # -- sources --------------------------------------------------------------------------
    n_src = int(p_nsrc.sum())
    s_point = np.repeat(np.arange(n_point), p_nsrc)
    rho = FIELD_RADIUS_DEG * np.sqrt(rng.uniform(0, 1, n_src))
    theta = rng.uniform(0, 2 * np.pi, n_src)
    s_ra, s_dec = _offset(p_ra[s_point], p_dec[s_point], rho, theta)
    s_rate = np.exp(rng.normal(np.log(0.02), 1.1, n_src))          # PN ct/s
    s_var = rng.uniform(0, 1, n_src) < 0.01                        # intrinsic variables
    s_srcid = 200_000_001 + np.arange(n_src, dtype=np.int64) * 7
    # -- observations -----------------------------------------------------------------
    n_obs = int(p_nobs.sum())
    o_point = np.repeat(np.arange(n_point), p_nobs)
    o_mjd = np.sort(rng.uniform(51580.0, 56650.0, n_obs))
    o_mjd = o_mjd[rng.permutation(n_obs)]
    o_dur = rng.uniform(12_000, 120_000, n_obs)                    # s
    o_obs_id = np.array([f"{(100_000_000 + 1_000 * i + rng.integers(1, 99)):010d}"
                         for i in range(n_obs)])
    cams_on = np.ones((n_obs, 3), dtype=bool)
    cams_on[:, 1] = rng.uniform(0, 1, n_obs) > 0.04
    cams_on[:, 2] = rng.uniform(0, 1, n_obs) > 0.04
    # -- (source, observation) pairs --------------------------------------------------
    src_start = np.concatenate([[0], np.cumsum(p_nsrc)[:-1]])
    per_obs = p_nsrc[o_point]
    pair_obs = np.repeat(np.arange(n_obs), per_obs)
    offs = np.arange(per_obs.sum()) - np.repeat(np.cumsum(per_obs) - per_obs, per_obs)
    pair_src = src_start[o_point][pair_obs] + offs
    epoch_factor = np.exp(rng.normal(0, 0.35, len(pair_obs)))
    pair_rate = s_rate[pair_src] * epoch_factor
    detected = rng.uniform(0, 1, len(pair_obs)) < np.clip(0.55 + 8 * pair_rate, 0, 0.97)
    # -- detections (aperiodic rows) ------------------------------------------------------
    det_pair = np.repeat(np.flatnonzero(detected), 3)
    det_cam = np.tile(np.arange(3), int(detected.sum()))
    keep = cams_on[pair_obs[det_pair], det_cam]
    det_pair, det_cam = det_pair[keep], det_cam[keep]
    if len(det_pair) < rows:
        return None
    det_pair, det_cam = det_pair[:rows], det_cam[:rows]
    used_pairs = np.unique(det_pair)
    # source numbers: per observation, by decreasing rate of the detected sources
    obs_of = pair_obs[used_pairs]
    order = np.lexsort((-pair_rate[used_pairs], obs_of))
    ranks = np.empty(len(used_pairs), dtype=np.int64)
    sorted_obs = obs_of[order]
    first = np.concatenate([[0], np.flatnonzero(np.diff(sorted_obs)) + 1])
    starts = np.repeat(first, np.diff(np.concatenate([first, [len(order)]])))
    ranks[order] = np.arange(len(order)) - starts + 1
    pair_srcnum = np.zeros(len(pair_obs), dtype=np.int64)
    pair_srcnum[used_pairs] = ranks

    # -- injected events: per pair, seen by every camera ------------------------------------
    n_events = int(np.clip(round(rows * 0.015), 40, 3000))
    n_events = min(n_events, len(used_pairs) // 3)
    ev_pairs = rng.choice(used_pairs, size=n_events, replace=False)
    pair_kind = np.zeros(len(pair_obs), dtype=np.int8)
    pair_kind[ev_pairs] = np.where(rng.uniform(0, 1, n_events) < 0.65, 1, 2)
    dur = o_dur[pair_obs]
    pair_t0 = rng.uniform(0.2, 0.6, len(pair_obs)) * dur          # s after TSTART
    pair_amp = np.exp(rng.uniform(np.log(3), np.log(30), len(pair_obs)))  # flare peak / base
    pair_tau = np.minimum(rng.uniform(600, 4000, len(pair_obs)), 0.12 * dur)  # decay, s
    pair_depth = rng.uniform(0.6, 0.98, len(pair_obs))             # eclipse depth
    pair_period = rng.uniform(0.15, 0.45, len(pair_obs)) * dur     # eclipse period, s
    pair_ecl_len = pair_period * rng.uniform(0.08, 0.18, len(pair_obs))
    ev_rate_floor = 0.05 + rng.uniform(0, 0.3, len(pair_obs))      # events are bright
    pair_rate = np.where(pair_kind > 0, np.maximum(pair_rate, ev_rate_floor), pair_rate)

    n = rows
    src = pair_src[det_pair]
    obs = pair_obs[det_pair]
    cam = np.array(CAMERAS)[det_cam]
    eff = np.array([CAMERA_EFFICIENCY[c] for c in CAMERAS])[det_cam]
    kind = pair_kind[det_pair]
    ontime = o_dur[obs] * np.where(det_cam == 0, rng.uniform(0.85, 0.95, n),
                                   rng.uniform(0.95, 1.0, n))
    mean_rate = pair_rate[det_pair] * eff
    # the mean rate of an event light curve includes the event
    flare_gain = pair_amp * pair_tau / o_dur[pair_obs]
    eclipse_loss = pair_depth * pair_ecl_len / pair_period
    boost = np.where(kind == 1, 1 + flare_gain[det_pair],
                     np.where(kind == 2, 1 - eclipse_loss[det_pair], 1.0))
    ave = mean_rate * boost
    ave_err = np.sqrt(ave / ontime + (0.002 * eff) ** 2)
    variable = (kind > 0) | s_var[src]

    def pvals(sensitivity):
        p = rng.uniform(0, 1, n)
        strong = 10.0 ** -rng.uniform(6, 30, n)
        return np.where(variable & (rng.uniform(0, 1, n) < sensitivity), strong, p)

    nbins500 = np.maximum(1, (ontime / 500).astype(np.int64))
    tbin_opt = np.clip(np.round(20.0 / np.maximum(ave, 1e-4), -1), 10.0, 5000.0)
    tbin_opt = np.where(kind > 0, np.minimum(tbin_opt, 500.0), tbin_opt)
    nbinsopt = np.maximum(1, (ontime / tbin_opt).astype(np.int64))
    n_ecl = np.floor((o_dur[obs] - pair_t0[det_pair] - pair_ecl_len[det_pair])
                     / pair_period[det_pair]).astype(int) + 1
    nblocks = np.where(kind == 1, 4, np.where(kind == 2, 1 + 2 * n_ecl, 1))
    nblocks = np.where((kind == 0) & s_var[src], rng.integers(2, 6, n), nblocks)
    nblocks = np.where((kind == 0) & ~s_var[src] & (rng.uniform(0, 1, n) < 0.01), 2, nblocks)
    skew = rng.normal(0, 0.25, n)
    skew = np.where(kind == 1, rng.uniform(1.5, 6, n), np.where(kind == 2, rng.uniform(-3, -0.8, n),
                                                               skew))
    fvar = np.where(variable, rng.uniform(0.3, 1.5, n), np.abs(rng.normal(0, 0.03, n)))
    flux = s_rate[src] * ECF * np.exp(rng.normal(0, 0.05, n)) * boost
    mjd_start = o_mjd[obs] + np.where(det_cam == 0, 0.004, 0.0)
    mjd_stop = mjd_start + ontime / 86400.0
    iau = _iau_names("3XMM", s_ra, s_dec)
    gal = SkyCoord(s_ra * u.deg, s_dec * u.deg).galactic
    s_l, s_b = gal.l.deg, gal.b.deg
    pos_err = np.exp(rng.normal(np.log(1.2), 0.4, n_src))
    sum_flag = rng.choice([0, 1, 2, 3, 4], size=n, p=[0.8, 0.1, 0.05, 0.03, 0.02])
    jitter = rng.normal(0, 0.3 / 3600, (2, n))
    det_ra = (s_ra[src] + jitter[0] / np.maximum(np.cos(np.radians(s_dec[src])), 1e-3)) % 360.0
    det_dec = np.clip(s_dec[src] + jitter[1], -90.0, 90.0)

    aperiodic = {
        "obs_id": o_obs_id[obs], "exp_id": np.array([EXP_IDS[c] for c in CAMERAS])[det_cam],
        "camera": cam, "src_num": pair_srcnum[det_pair].astype(np.int32),
        "srcid": s_srcid[src], "iauname": iau[src],
        "ra": det_ra, "dec": det_dec,
        "radec_err": (pos_err[src] * np.sqrt(1 + det_cam)).astype(np.float32),
        "lii": s_l[src], "bii": s_b[src],
        "sum_flag": sum_flag.astype(np.int16),
        "ep_8_flux": flux.astype(np.float32),
        "ep_8_flux_err": (flux * rng.uniform(0.05, 0.3, n)).astype(np.float32),
        "mjd_start": mjd_start, "mjd_stop": mjd_stop, "ontime": ontime.astype(np.float32),
        "ub_lc500_ave": ave.astype(np.float32), "ub_lc500_ave_err": ave_err.astype(np.float32),
        "ub_lc500_co_pval": pvals(0.97).astype(np.float32),
        "ub_lc500_nbins": nbins500.astype(np.int32),
        "ub_lc500_skew": skew.astype(np.float32),
        "ub_lc500_median": (ave * np.where(kind == 1, 0.7, rng.uniform(0.95, 1.0, n))
                            ).astype(np.float32),
        "ub_lcopt_ave": (ave * rng.uniform(0.99, 1.01, n)).astype(np.float32),
        "ub_lcopt_ave_err": (ave_err * 1.02).astype(np.float32),
        "ub_lcopt_co_pval": pvals(0.95).astype(np.float32),
        "ub_lcopt_nbins": nbinsopt.astype(np.int32),
        "ub_lcopt_skew": (skew * rng.uniform(0.9, 1.1, n)).astype(np.float32),
        "ub_lcopt_median": (ave * rng.uniform(0.9, 1.0, n)).astype(np.float32),
        "ub_lcopt_tbin": tbin_opt.astype(np.float32),
        "bb_lc_ave": (ave * rng.uniform(0.99, 1.01, n)).astype(np.float32),
        "bb_lc_ave_err": (ave_err * 0.98).astype(np.float32),
        "bb_lc_co_pval": np.where(nblocks > 1, 10.0 ** -rng.uniform(6, 30, n),
                                  rng.uniform(1e-4, 1, n)).astype(np.float32),
        "bb_lc_nblocks": nblocks.astype(np.int32),
        "bb_lc_skew": (skew * rng.uniform(0.9, 1.1, n)).astype(np.float32),
        "fvar": fvar.astype(np.float32),
        "fvar_err": (fvar * rng.uniform(0.05, 0.3, n) + 0.01).astype(np.float32),
        "quality_flag": rng.choice([0, 1, 2], size=n, p=[0.9, 0.07, 0.03]).astype(np.int16),
    }
    events = {"kind": np.where((kind == 0) & (nblocks > 1), 3, kind), "nblocks": nblocks,
              "phase": rng.uniform(0, 2 * np.pi, n), "hardness": rng.uniform(0.1, 0.5, n), "t0": pair_t0[det_pair], "amp": pair_amp[det_pair],
              "tau": pair_tau[det_pair], "depth": pair_depth[det_pair],
              "period": pair_period[det_pair], "ecl_len": pair_ecl_len[det_pair],
              "base_rate": mean_rate, "pair": det_pair, "obs": obs}
    observations = {"obs_id": o_obs_id, "mjd_start": o_mjd, "mjd_stop": o_mjd + o_dur / 86400,
                    "tstart": (o_mjd - MJDREF) * 86400.0,
                    "tstop": (o_mjd - MJDREF) * 86400.0 + o_dur, "duration": o_dur}

    periodic = _periodic(rng, aperiodic, eff, ave, ontime)
    longterm, points = _longterm(rng, pair_src, pair_obs, detected, pair_rate, s_srcid, iau,
                                 s_ra, s_dec, s_l, s_b, pos_err, o_obs_id, o_mjd, o_dur,
                                 used_src=np.unique(src))
    classification = _classification(rng, np.unique(src), s_srcid, iau, s_ra, s_dec, pos_err,
                                      s_var)
    transients = _transients(rng, max(10, rows // 150), p_ra, p_dec, o_point, o_obs_id,
                             o_mjd, o_dur)
    return Synthetic(aperiodic, periodic, transients, longterm, points, classification,
                     observations, events)


def _periodic(rng, ap, eff, ave, ontime):
    """Periodicity search on the brighter detections (subset of aperiodic rows)."""
    n_events = ave * ontime
    sel = np.flatnonzero(n_events > 2500)
    m = len(sel)
    detected = rng.uniform(0, 1, m) < 0.03
    period = np.where(detected, np.exp(rng.uniform(np.log(0.5), np.log(20000), m)), np.nan)
    tbin = np.where(ap["camera"][sel] == "PN", 0.0734, 2.6)
    pf = np.where(detected, rng.uniform(0.1, 0.9, m), np.nan)
    pf_ul = np.clip(3.0 / np.sqrt(n_events[sel]) * rng.uniform(0.8, 1.2, m), 0.01, 1.0)
    return {
        **{k: ap[k][sel] for k in ("obs_id", "exp_id", "camera", "src_num", "srcid",
                                   "ra", "dec", "radec_err")},
        "n_events": np.round(n_events[sel]).astype(np.int32),
        "tbin": tbin.astype(np.float32),
        "p_min": 2 * tbin, "p_max": ontime[sel].astype(np.float64) / 3,
        "period": period, "period_err": period * rng.uniform(1e-6, 1e-3, m),
        "pdot": np.where(detected, rng.normal(0, 1e-10, m), np.nan),
        "power_max": np.where(detected, rng.uniform(40, 400, m),
                              rng.uniform(15, 35, m)).astype(np.float32),
        "signif": np.where(detected, rng.uniform(4.5, 20, m),
                           rng.uniform(0, 3.5, m)).astype(np.float32),
        "pf": pf.astype(np.float32),
        "pf_err": (pf * rng.uniform(0.05, 0.2, m)).astype(np.float32),
        "pf_ul": np.where(detected, np.nan, pf_ul).astype(np.float32),
        "detected": detected,
    }


def _longterm(rng, pair_src, pair_obs, detected, pair_rate, s_srcid, iau, s_ra, s_dec,
              s_l, s_b, pos_err, o_obs_id, o_mjd, o_dur, used_src):
    """Sources covered by several observations: summary rows and flux points."""
    cover = np.bincount(pair_src, minlength=len(s_srcid))
    in_cat = np.zeros(len(s_srcid), dtype=bool)
    in_cat[used_src] = True
    multi = (cover >= 2) & in_cat
    sel = multi[pair_src]
    p_src, p_obs, p_det = pair_src[sel], pair_obs[sel], detected[sel]
    flux = pair_rate[sel] * ECF
    ferr = flux * rng.uniform(0.05, 0.25, len(flux))
    ul = ~p_det
    flux = np.where(ul, np.minimum(flux, 2e-15 + flux * 0.3) * 3, flux)
    points = {"srcid": s_srcid[p_src], "obs_id": o_obs_id[p_obs],
              "mjd_start": o_mjd[p_obs], "mjd_stop": o_mjd[p_obs] + o_dur[p_obs] / 86400,
              "flux": flux.astype(np.float32),
              "flux_err": np.where(ul, np.nan, ferr).astype(np.float32), "ul_flag": ul}
    srcs = np.flatnonzero(multi)
    idx = np.searchsorted(srcs, p_src)
    k = len(srcs)
    n_obs = np.bincount(idx, minlength=k)
    n_det = np.bincount(idx, weights=p_det, minlength=k).astype(np.int32)
    fmax = np.full(k, -np.inf)
    np.maximum.at(fmax, idx, flux)
    fmin = np.full(k, np.inf)
    np.minimum.at(fmin, idx, flux)
    mean = np.bincount(idx, weights=flux, minlength=k) / n_obs
    dev = np.bincount(idx, weights=((flux - mean[idx]) / np.maximum(ferr, 1e-18)) ** 2,
                      minlength=k)
    ratio = fmax / fmin
    var_prob = np.where(ratio > 5, 10.0 ** -rng.uniform(6, 20, k), rng.uniform(0, 1, k))
    fvar = np.sqrt(np.maximum(0, np.bincount(idx, weights=(flux - mean[idx]) ** 2,
                                             minlength=k) / n_obs)) / mean
    longterm = {"iauname": iau[srcs], "srcid": s_srcid[srcs], "ra": s_ra[srcs],
                "dec": s_dec[srcs], "radec_err": pos_err[srcs].astype(np.float32),
                "lii": s_l[srcs], "bii": s_b[srcs], "n_obs": n_obs.astype(np.int32),
                "n_det": n_det, "flux_max": fmax.astype(np.float32),
                "flux_min": fmin.astype(np.float32), "var_ratio": ratio.astype(np.float32),
                "var_chi2": dev.astype(np.float32), "var_prob": var_prob.astype(np.float32),
                "fvar": fvar.astype(np.float32),
                "fvar_err": (fvar * 0.2 + 0.01).astype(np.float32),
                "var_flag": var_prob < 1e-5}
    return longterm, points


_CLASSES = ("AGN", "STAR", "GAL", "XRB", "CV", "ULX", "UNKNOWN")


def _classification(rng, srcs, s_srcid, iau, s_ra, s_dec, pos_err, s_var):
    k = len(srcs)
    cls = rng.choice(_CLASSES, size=k, p=[0.58, 0.2, 0.1, 0.03, 0.03, 0.01, 0.05])
    cls = np.where(s_var[srcs] & (rng.uniform(0, 1, k) < 0.5), "STAR", cls)
    return {"iauname": iau[srcs], "srcid": s_srcid[srcs], "ra": s_ra[srcs],
            "dec": s_dec[srcs], "radec_err": pos_err[srcs].astype(np.float32),
            "src_class": cls, "class_prob": rng.uniform(0.35, 1.0, k).astype(np.float32),
            "method": np.full(k, "RF-3XMM-DR6"),
            "n_xmatch": rng.integers(0, 9, k).astype(np.int16)}


def _transients(rng, n, p_ra, p_dec, o_point, o_obs_id, o_mjd, o_dur):
    obs = rng.integers(0, len(o_obs_id), n)
    rho = FIELD_RADIUS_DEG * np.sqrt(rng.uniform(0, 1, n))
    ra, dec = _offset(p_ra[o_point[obs]], p_dec[o_point[obs]], rho,
                      rng.uniform(0, 2 * np.pi, n))
    names = _iau_names("EXMM", ra, dec)
    names, first = np.unique(names, return_index=True)
    first = np.sort(first)
    names = _iau_names("EXMM", ra[first], dec[first])
    obs, ra, dec = obs[first], ra[first], dec[first]
    m = len(first)
    gal = SkyCoord(ra * u.deg, dec * u.deg).galactic
    duration = np.exp(rng.uniform(np.log(20), np.log(4000), m))
    start = (o_mjd[obs] - MJDREF) * 86400 + rng.uniform(0, 1, m) * np.maximum(
        o_dur[obs] - duration, 0)
    counts = np.exp(rng.uniform(np.log(8), np.log(400), m))
    return {"name": names, "obs_id": o_obs_id[obs], "ra": ra, "dec": dec,
            "radec_err": rng.uniform(0.8, 4, m).astype(np.float32),
            "lii": gal.l.deg, "bii": gal.b.deg,
            "detection_prob": rng.uniform(0.3, 1.0, m).astype(np.float32),
            "n_cameras": rng.integers(1, 4, m).astype(np.int16),
            "ep_0_scts": counts.astype(np.float32),
            "ep_0_scts_err": np.sqrt(counts).astype(np.float32),
            "t_start": start, "t_stop": start + duration,
            "duration": duration.astype(np.float32),
            "mjd_peak": MJDREF + (start + duration * 0.3) / 86400}

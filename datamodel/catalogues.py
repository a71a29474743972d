"""The EXTraS-style catalogues, declared once.

Column names follow the EXTraS files where they are known (see
shared/EXTRAS_DATAMODEL.md), lower-cased; 3XMM conventions elsewhere. Names that
are not valid regular ADQL identifiers in the originals (``3XMM_SUM_FLAG``) are
renamed and the original is kept in ``source_names`` so ingest still finds it.
"""
from __future__ import annotations

from .products import PRODUCT_KEYS
from .types import VERB_FULL as FULL
from .types import VERB_MINIMAL as MIN
from .types import VERB_STANDARD as STD
from .types import Column, ForeignKey, Table

SCHEMA = "extras"

#: the classes of the random-forest classification (``classification.src_class``)
SOURCE_CLASSES = ("AGN", "STAR", "XRB", "CV", "GAL", "ULX", "UNKNOWN")

FLUX_UNIT = "mW.m**-2"   # = erg/cm2/s; VOUnit deprecates erg
RATE_UNIT = "ct.s**-1"


# -- reusable column groups ---------------------------------------------------------

def _detection_keys(verb_src_num: int = STD) -> tuple[Column, ...]:
    """OBS_ID, EXP_ID, CAMERA, SRC_NUM: the key shared by detections and products."""
    return (
        Column("obs_id", "char", "XMM-Newton observation identifier", arraysize="10",
               ucd="meta.id;obs", verbosity=MIN, required=True, indexed=True),
        Column("exp_id", "char", "Exposure identifier (S or U followed by three digits)",
               arraysize="4", ucd="meta.id;obs", verbosity=STD, required=True),
        Column("camera", "char", "EPIC camera (PN, M1 or M2)", arraysize="2",
               ucd="meta.id;instr", verbosity=MIN, required=True,
               choices=("PN", "M1", "M2")),
        Column("src_num", "int", "3XMM source number within the observation (decimal)",
               ucd="meta.id", verbosity=verb_src_num, required=True, minimum=1),
    )


def _position(err_name: str = "radec_err", galactic: bool = True) -> tuple[Column, ...]:
    cols = [
        Column("ra", "double", "Right ascension (ICRS)", unit="deg",
               ucd="pos.eq.ra;meta.main", verbosity=MIN, required=True, role="ra",
               minimum=0.0, maximum=360.0, maximum_exclusive=True),
        Column("dec", "double", "Declination (ICRS)", unit="deg",
               ucd="pos.eq.dec;meta.main", verbosity=MIN, required=True, role="dec",
               minimum=-90.0, maximum=90.0),
        Column(err_name, "float", "1-sigma statistical position error", unit="arcsec",
               ucd="stat.error;pos.eq", verbosity=STD, minimum=0.0),
    ]
    if galactic:
        cols += [
            Column("lii", "double", "Galactic longitude", unit="deg", ucd="pos.galactic.lon",
                   verbosity=FULL, minimum=0.0, maximum=360.0),
            Column("bii", "double", "Galactic latitude", unit="deg", ucd="pos.galactic.lat",
                   verbosity=FULL, minimum=-90.0, maximum=90.0),
        ]
    return tuple(cols)


def _lc_statistics(prefix: str, label: str, blocks: bool = False,
                   verb: int = STD) -> tuple[Column, ...]:
    """The per-light-curve statistics of the aperiodic catalogue (UB_LC500_AVE, ...)."""
    p = prefix.lower()
    cols = [
        Column(f"{p}_ave", "float", f"Weighted mean count rate of the {label}",
               unit=RATE_UNIT, ucd="phot.count;stat.mean", verbosity=verb,
               source_names=(f"{prefix}_AVE",)),
        Column(f"{p}_ave_err", "float", f"Error on the weighted mean count rate of the {label}",
               unit=RATE_UNIT, ucd="stat.error;phot.count", verbosity=FULL, minimum=0.0),
        Column(f"{p}_co_pval", "float",
               f"Tail probability of a constant-rate fit to the {label} "
               "(variable if below 1e-5)", ucd="stat.probability",
               verbosity=MIN if prefix == "UB_LC500" else verb, minimum=0.0, maximum=1.0),
    ]
    if blocks:
        cols.append(Column(f"{p}_nblocks", "int", f"Number of Bayesian blocks in the {label}",
                           ucd="meta.number", verbosity=MIN, minimum=1))
    else:
        cols.append(Column(f"{p}_nbins", "int", f"Number of bins used in the {label}",
                           ucd="meta.number", verbosity=FULL, minimum=0))
    cols.append(Column(f"{p}_skew", "float",
                       f"Weighted skewness of the count-rate distribution of the {label}",
                       ucd="stat.param", verbosity=FULL))
    if not blocks:
        cols.append(Column(f"{p}_median", "float", f"Median count rate of the {label}",
                           unit=RATE_UNIT, ucd="phot.count;stat.median", verbosity=FULL))
    return tuple(cols)


def _extras_id(verb: int = MIN) -> Column:
    return Column("extras_id", "char",
                  "Identifier of the detection in one exposure of one camera: "
                  "OBSID_EXPID_CAMERA_SRCNUM", arraysize="*", ucd="meta.id;meta.main",
                  verbosity=verb, required=True, role="id", indexed=True)


EXTRAS_ID_TEMPLATE = "{obs_id}_{exp_id}_{camera}_{src_num}"

# -- the catalogues -------------------------------------------------------------------

APERIODIC = Table(
    name="aperiodic", schema=SCHEMA, catalogue="aperiodic",
    title="EXTraS aperiodic short-term variability",
    description="Short-term aperiodic variability of XMM-Newton EPIC sources: one row per "
                "3XMM detection, exposure and camera, with statistics of the 500 s and "
                "optimal-bin uniform light curves and of the Bayesian-block light curve.",
    key=PRODUCT_KEYS,
    id_template=EXTRAS_ID_TEMPLATE,
    columns=(
        _extras_id(),
        *_detection_keys(),
        Column("srcid", "long", "3XMM unique source identifier", ucd="meta.id",
               verbosity=MIN, required=True, indexed=True, minimum=1),
        Column("iauname", "char", "3XMM IAU name of the source", ucd="meta.id",
               verbosity=STD),
        *_position(),
        Column("sum_flag", "short", "3XMM summary quality flag (clean if below 3)",
               ucd="meta.code.qual", verbosity=STD, minimum=0, maximum=4,
               source_names=("3XMM_SUM_FLAG",)),
        Column("ep_8_flux", "float", "3XMM EPIC flux in the 0.2-12 keV band", unit=FLUX_UNIT,
               ucd="phot.flux;em.X-ray", verbosity=STD),
        Column("ep_8_flux_err", "float", "Error on the 3XMM EPIC 0.2-12 keV flux",
               unit=FLUX_UNIT, ucd="stat.error;phot.flux;em.X-ray", verbosity=FULL,
               minimum=0.0),
        Column("mjd_start", "double", "Start of the exposure", unit="d",
               ucd="time.start;obs.exposure", verbosity=STD),
        Column("mjd_stop", "double", "End of the exposure", unit="d",
               ucd="time.end;obs.exposure", verbosity=STD),
        Column("ontime", "float", "Exposure time on source", unit="s",
               ucd="time.duration;obs.exposure", verbosity=FULL, minimum=0.0),
        *_lc_statistics("UB_LC500", "500 s uniform-bin light curve"),
        *_lc_statistics("UB_LCOPT", "optimal-bin uniform light curve"),
        Column("ub_lcopt_tbin", "float", "Bin size of the optimal-bin uniform light curve",
               unit="s", ucd="time.interval", verbosity=FULL, minimum=0.0),
        *_lc_statistics("BB_LC", "Bayesian-block light curve", blocks=True),
        Column("fvar", "float", "Fractional variability amplitude of the 500 s light curve",
               ucd="src.var.amplitude;arith.ratio", verbosity=STD, minimum=0.0),
        Column("fvar_err", "float", "Error on the fractional variability amplitude",
               ucd="stat.error;src.var.amplitude", verbosity=FULL, minimum=0.0),
        Column("quality_flag", "short", "EXTraS quality flag: 0 = OK, otherwise caution",
               ucd="meta.code.qual", verbosity=STD, minimum=0),
    ),
    foreign_keys=(
        ForeignKey(("srcid",), "classification", ("srcid",),
                   "Classification of the 3XMM source of this detection"),
    ),
)

TRANSIENTS = Table(
    name="transients", schema=SCHEMA, catalogue="transients",
    title="EXTraS new transients",
    description="New X-ray transients found by the EXTraS divide-and-conquer search in "
                "XMM-Newton EPIC observations; they are absent from 3XMM by construction.",
    key=("name",),
    columns=(
        Column("name", "char", "Transient name, EXMM Jhhmmss.s+ddmmss", arraysize="*",
               ucd="meta.id;meta.main", verbosity=MIN, required=True, role="id",
               indexed=True),
        Column("obs_id", "char", "XMM-Newton observation identifier", arraysize="10",
               ucd="meta.id;obs", verbosity=MIN, required=True, indexed=True),
        *_position(),
        Column("detection_prob", "float",
               "Probability that the candidate is a real transient", ucd="stat.probability",
               verbosity=STD, minimum=0.0, maximum=1.0),
        Column("n_cameras", "short", "Number of EPIC cameras in which the transient is seen",
               ucd="meta.number;instr", verbosity=STD, minimum=0, maximum=3),
        Column("ep_0_scts", "float", "Source counts of the transient", unit="ct",
               ucd="phot.count", verbosity=STD, minimum=0.0),
        Column("ep_0_scts_err", "float", "Error on the source counts", unit="ct",
               ucd="stat.error;phot.count", verbosity=FULL, minimum=0.0),
        Column("t_start", "double", "Start of the transient, XMM mission elapsed time",
               unit="s", ucd="time.start", verbosity=STD),
        Column("t_stop", "double", "End of the transient, XMM mission elapsed time",
               unit="s", ucd="time.end", verbosity=STD),
        Column("duration", "float", "Duration of the transient", unit="s",
               ucd="time.duration", verbosity=MIN, minimum=0.0),
        Column("mjd_peak", "double", "Time of the peak rate", unit="d", ucd="time.epoch",
               verbosity=STD),
    ),
)

PERIODIC = Table(
    name="periodic", schema=SCHEMA, catalogue="periodic",
    title="EXTraS periodicity search",
    description="FFT search for periodic signals in the light curves of 3XMM detections, "
                "accounting for aperiodic variability, with pulsed-fraction upper limits "
                "for non-detections.",
    key=PRODUCT_KEYS,
    id_template=EXTRAS_ID_TEMPLATE,
    columns=(
        _extras_id(),
        *_detection_keys(),
        Column("srcid", "long", "3XMM unique source identifier", ucd="meta.id",
               verbosity=STD, required=True, indexed=True, minimum=1),
        *_position(galactic=False),
        Column("n_events", "int", "Number of events in the source region",
               ucd="meta.number", verbosity=STD, minimum=0),
        Column("tbin", "float", "Time resolution of the searched time series", unit="s",
               ucd="time.resolution", verbosity=FULL, minimum=0.0),
        Column("p_min", "double", "Shortest period searched", unit="s",
               ucd="time.period;stat.min", verbosity=FULL, minimum=0.0),
        Column("p_max", "double", "Longest period searched", unit="s",
               ucd="time.period;stat.max", verbosity=FULL, minimum=0.0),
        Column("period", "double", "Best period", unit="s", ucd="time.period",
               verbosity=MIN, minimum=0.0),
        Column("period_err", "double", "Error on the best period", unit="s",
               ucd="stat.error;time.period", verbosity=STD, minimum=0.0),
        Column("pdot", "double", "Period derivative", unit="s.s**-1",
               ucd="src.var.pulse;stat.fit.param", verbosity=FULL),
        Column("power_max", "float", "Highest Leahy-normalised power in the spectrum",
               ucd="stat.value;stat.max", verbosity=FULL, minimum=0.0),
        Column("signif", "float", "Significance of the detection in Gaussian sigmas",
               ucd="stat.snr", verbosity=MIN, minimum=0.0),
        Column("pf", "float", "Pulsed fraction", ucd="src.var.pulse;arith.ratio",
               verbosity=STD, minimum=0.0, maximum=1.0),
        Column("pf_err", "float", "Error on the pulsed fraction",
               ucd="stat.error;src.var.pulse", verbosity=FULL, minimum=0.0),
        Column("pf_ul", "float", "3-sigma upper limit on the pulsed fraction",
               ucd="src.var.pulse;stat.max", verbosity=STD, minimum=0.0, maximum=1.0),
        Column("detected", "boolean", "True if a significant periodic signal is detected",
               ucd="meta.code", verbosity=MIN, required=True),
    ),
    foreign_keys=(
        ForeignKey(PRODUCT_KEYS, "aperiodic",
                   PRODUCT_KEYS,
                   "The aperiodic-variability row of the same detection"),
    ),
)

LONGTERM = Table(
    name="longterm", schema=SCHEMA, catalogue="longterm",
    title="EXTraS long-term variability: sources",
    description="Long-term variability of 3XMM sources observed more than once: "
                "one row per source with summary statistics of its flux history.",
    key=("srcid",),
    columns=(
        Column("iauname", "char", "3XMM IAU name of the source", ucd="meta.id;meta.main",
               verbosity=MIN, required=True, role="id", indexed=True),
        Column("srcid", "long", "3XMM unique source identifier", ucd="meta.id",
               verbosity=MIN, required=True, indexed=True, minimum=1),
        *_position(),
        Column("n_obs", "int", "Number of observations covering the source",
               ucd="meta.number;obs", verbosity=STD, minimum=1),
        Column("n_det", "int", "Number of detections of the source", ucd="meta.number",
               verbosity=STD, minimum=0),
        Column("flux_max", "float", "Highest 0.2-12 keV flux", unit=FLUX_UNIT,
               ucd="phot.flux;em.X-ray;stat.max", verbosity=STD),
        Column("flux_min", "float", "Lowest 0.2-12 keV flux or upper limit", unit=FLUX_UNIT,
               ucd="phot.flux;em.X-ray;stat.min", verbosity=STD),
        Column("var_ratio", "float", "Ratio of the highest to the lowest flux",
               ucd="src.var.amplitude;arith.ratio", verbosity=MIN, minimum=0.0),
        Column("var_chi2", "float", "Chi-squared of a constant-flux fit", ucd="stat.fit.chi2",
               verbosity=FULL, minimum=0.0),
        Column("var_prob", "float", "Probability of the constant-flux hypothesis",
               ucd="stat.probability", verbosity=MIN, minimum=0.0, maximum=1.0),
        Column("fvar", "float", "Fractional variability amplitude of the flux history",
               ucd="src.var.amplitude;arith.ratio", verbosity=STD, minimum=0.0),
        Column("fvar_err", "float", "Error on the fractional variability amplitude",
               ucd="stat.error;src.var.amplitude", verbosity=FULL, minimum=0.0),
        Column("var_flag", "boolean", "True if the source is variable at p < 1e-5",
               ucd="meta.code", verbosity=STD),
    ),
    foreign_keys=(
        ForeignKey(("srcid",), "classification", ("srcid",),
                   "Classification of the source"),
    ),
)

LONGTERM_POINTS = Table(
    name="longterm_points", schema=SCHEMA, catalogue="longterm",
    title="EXTraS long-term variability: flux points",
    description="The long-term light curves: one row per source and observation.",
    key=("srcid", "obs_id"),
    columns=(
        Column("srcid", "long", "3XMM unique source identifier", ucd="meta.id",
               verbosity=MIN, required=True, indexed=True, minimum=1),
        Column("obs_id", "char", "XMM-Newton observation identifier", arraysize="10",
               ucd="meta.id;obs", verbosity=MIN, required=True),
        Column("mjd_start", "double", "Start of the observation", unit="d",
               ucd="time.start;obs", verbosity=MIN, required=True),
        Column("mjd_stop", "double", "End of the observation", unit="d", ucd="time.end;obs",
               verbosity=STD, required=True),
        Column("flux", "float", "0.2-12 keV flux, or its upper limit if ul_flag is set",
               unit=FLUX_UNIT, ucd="phot.flux;em.X-ray", verbosity=MIN),
        Column("flux_err", "float", "Error on the flux", unit=FLUX_UNIT,
               ucd="stat.error;phot.flux;em.X-ray", verbosity=STD, minimum=0.0),
        Column("ul_flag", "boolean", "True if flux is a 3-sigma upper limit",
               ucd="meta.code", verbosity=STD, required=True),
    ),
    foreign_keys=(
        ForeignKey(("srcid",), "longterm", ("srcid",), "The source of this flux point"),
    ),
)

CLASSIFICATION = Table(
    name="classification", schema=SCHEMA, catalogue="classification",
    title="EXTraS multiwavelength classification",
    description="Phenomenological classification of 3XMM sources by a random forest "
                "trained on X-ray and multiwavelength properties.",
    key=("srcid",),
    columns=(
        Column("iauname", "char", "3XMM IAU name of the source", ucd="meta.id;meta.main",
               verbosity=MIN, required=True, role="id", indexed=True),
        Column("srcid", "long", "3XMM unique source identifier", ucd="meta.id",
               verbosity=MIN, required=True, indexed=True, minimum=1),
        *_position(galactic=False),
        Column("src_class", "char", "Most probable class (AGN, STAR, XRB, CV, GAL, ULX "
               "or UNKNOWN)", arraysize="*", ucd="src.class", verbosity=MIN, required=True,
               source_names=("CLASS",), choices=SOURCE_CLASSES),
        Column("class_prob", "float", "Probability of the most probable class",
               ucd="stat.probability", verbosity=MIN, minimum=0.0, maximum=1.0),
        Column("method", "char", "Classification method", arraysize="*", ucd="meta.code",
               verbosity=FULL),
        Column("n_xmatch", "short", "Number of multiwavelength counterparts used",
               ucd="meta.number", verbosity=STD, minimum=0),
    ),
)

#: Every published catalogue table, in publication order.
TABLES: dict[str, Table] = {t.name: t for t in (
    APERIODIC, TRANSIENTS, PERIODIC, LONGTERM, LONGTERM_POINTS, CLASSIFICATION)}

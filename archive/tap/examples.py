"""Curated example queries for /tap/examples (DALI examples), no Flask.

Each example has an id (the XHTML anchor), a name, an explanation, the ADQL and
the tables it reads. ``uploads`` names the TAP_UPLOAD tables an example expects
(the test suite runs every example, uploading a table of positions for these).
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Example", "EXAMPLES"]


@dataclass(frozen=True)
class Example:
    id: str
    name: str
    description: str
    query: str
    tables: tuple[str, ...]
    uploads: tuple[str, ...] = field(default_factory=tuple)


EXAMPLES: tuple[Example, ...] = (
    Example(
        "flare-candidates", "Flare candidates",
        "Detections whose 500 s light curve is inconsistent with a constant rate "
        "(p < 1e-5) and whose Bayesian-block light curve has at least three blocks, most "
        "variable first: the usual starting point for flares.",
        "SELECT TOP 100 extras_id, ra, dec, camera, bb_lc_nblocks, ub_lc500_co_pval, fvar\n"
        "FROM extras.aperiodic\n"
        "WHERE ub_lc500_co_pval < 1e-5 AND bb_lc_nblocks >= 3\n"
        "ORDER BY fvar DESC",
        ("extras.aperiodic",)),
    Example(
        "variable-clean", "Variable detections with clean quality",
        "Variability selected by both the constant-rate test on the 500 s and the "
        "optimal-bin light curves and by more than one Bayesian block, keeping only "
        "detections with a clean 3XMM summary flag and EXTraS quality flag 0.",
        "SELECT extras_id, ra, dec, ub_lc500_co_pval, ub_lcopt_co_pval, bb_lc_nblocks\n"
        "FROM extras.aperiodic\n"
        "WHERE ub_lc500_co_pval < 1e-5 AND ub_lcopt_co_pval < 1e-5\n"
        "  AND bb_lc_nblocks > 1 AND sum_flag < 3 AND quality_flag = 0\n"
        "ORDER BY ub_lc500_co_pval",
        ("extras.aperiodic",)),
    Example(
        "upload-crossmatch", "Cross-match your source list",
        "Upload a table with RA/Dec columns as TAP_UPLOAD.mysources (in TOPCAT: a "
        "loaded table, referred to as TAP_UPLOAD.t1 etc.) and find every EXTraS detection "
        "within 5 arcsec, with the separation in arcsec. The join uses the spatial index.",
        "SELECT u.*, a.extras_id, a.ub_lc500_co_pval, a.fvar,\n"
        "       DISTANCE(POINT('ICRS', u.ra, u.dec), POINT('ICRS', a.ra, a.dec)) * 3600\n"
        "         AS sep_arcsec\n"
        "FROM TAP_UPLOAD.mysources AS u\n"
        "JOIN extras.aperiodic AS a\n"
        "  ON 1 = CONTAINS(POINT('ICRS', a.ra, a.dec),\n"
        "                  CIRCLE('ICRS', u.ra, u.dec, 5.0 / 3600))",
        ("extras.aperiodic",), uploads=("mysources",)),
    Example(
        "longterm-lightcurve", "Long-term light curve of one source",
        "The flux history of the source with the largest long-term variability ratio, "
        "one point per XMM-Newton observation (flux points with ul_flag set are "
        "upper limits).",
        "SELECT p.srcid, p.obs_id, p.mjd_start, p.flux, p.flux_err, p.ul_flag\n"
        "FROM extras.longterm_points AS p\n"
        "JOIN extras.longterm AS l ON p.srcid = l.srcid\n"
        "WHERE l.srcid IN (SELECT TOP 1 srcid FROM extras.longterm\n"
        "                  ORDER BY var_ratio DESC)\n"
        "ORDER BY mjd_start",
        ("extras.longterm_points", "extras.longterm")),
    Example(
        "longterm-variables", "Sources variable over years",
        "Sources whose flux history rejects a constant flux (p < 1e-5), ordered by the "
        "ratio of highest to lowest flux.",
        "SELECT TOP 100 iauname, ra, dec, n_obs, var_ratio, var_prob\n"
        "FROM extras.longterm\n"
        "WHERE var_prob < 1e-5\n"
        "ORDER BY var_ratio DESC",
        ("extras.longterm",)),
    Example(
        "periodic-high-pf", "Periodic candidates with a high pulsed fraction",
        "Significant periodic signals (above 4 sigma) with a pulsed fraction above 30 %, "
        "with the variability statistics of the same detection from the aperiodic "
        "catalogue.",
        "SELECT p.extras_id, p.ra, p.dec, p.period, p.pf, p.signif, a.fvar\n"
        "FROM extras.periodic AS p\n"
        "JOIN extras.aperiodic AS a\n"
        "  ON p.obs_id = a.obs_id AND p.exp_id = a.exp_id\n"
        "  AND p.camera = a.camera AND p.src_num = a.src_num\n"
        "WHERE p.signif > 4 AND p.pf > 0.3\n"
        "ORDER BY signif DESC",
        ("extras.periodic", "extras.aperiodic")),
    Example(
        "transients-region", "Transients in a region",
        "New transients within 30 arcmin of RA = 0.1, Dec = +45 deg, nearest first, "
        "with their duration and detection probability.",
        "SELECT name, ra, dec, duration, detection_prob,\n"
        "       DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 0.1, 45.0)) * 60\n"
        "         AS dist_arcmin\n"
        "FROM extras.transients\n"
        "WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 0.1, 45.0, 0.5))\n"
        "ORDER BY dist_arcmin",
        ("extras.transients",)),
    Example(
        "class-variables", "Classified variable X-ray binaries and CVs",
        "Variable detections whose source is classified as an X-ray binary or a "
        "cataclysmic variable with a class probability above 0.7.",
        "SELECT a.extras_id, a.ra, a.dec, c.src_class, c.class_prob, a.fvar\n"
        "FROM extras.aperiodic AS a\n"
        "JOIN extras.classification AS c ON a.srcid = c.srcid\n"
        "WHERE a.ub_lc500_co_pval < 1e-5 AND c.src_class IN ('XRB', 'CV')\n"
        "  AND c.class_prob > 0.7\n"
        "ORDER BY fvar DESC",
        ("extras.aperiodic", "extras.classification")),
    Example(
        "class-statistics", "Variability by source class",
        "For each source class: the number of detections, their mean and largest "
        "fractional variability, and the smallest constant-rate p-value.",
        "SELECT c.src_class, COUNT(*) AS n_det, AVG(a.fvar) AS mean_fvar,\n"
        "       MAX(a.fvar) AS max_fvar, MIN(a.ub_lc500_co_pval) AS min_pval\n"
        "FROM extras.aperiodic AS a\n"
        "JOIN extras.classification AS c ON a.srcid = c.srcid\n"
        "GROUP BY c.src_class\n"
        "ORDER BY n_det DESC",
        ("extras.aperiodic", "extras.classification")),
    Example(
        "observation-detections", "All detections of one observation",
        "Every detection in the observation of the most significant variable detection, "
        "camera by camera; DataLink lists their light-curve products.",
        "SELECT extras_id, camera, src_num, ra, dec, ub_lc500_co_pval, bb_lc_nblocks\n"
        "FROM extras.aperiodic\n"
        "WHERE obs_id IN (SELECT TOP 1 obs_id FROM extras.aperiodic\n"
        "                 ORDER BY ub_lc500_co_pval)\n"
        "ORDER BY camera, src_num",
        ("extras.aperiodic",)),
)

"""Bulk product types: light curves, spectra, power spectra, quick-look images.

A product file is recognised by its name; the name carries the keys
(OBS_ID, EXP_ID, CAMERA, SRC_NUM) that link it to a row of the aperiodic and
periodic catalogues (``extras_id``). File names follow the EXTraS v1 convention
``<kind>_<OBSID>_<CAM>_<EXPID>_<SRCNUM>[_<binning>][_<band>].<ext>`` with SRC_NUM
in decimal without padding.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ProductType", "PRODUCT_TYPES", "BANDS", "PRODUCT_KEYS", "match_product",
           "preview_name"]

#: Energy bands of the band-resolved light curves, keV.
BANDS = {
    "full": (0.2, 12.0),
    "b1": (0.2, 1.0),
    "b2": (1.0, 2.0),
    "b3": (2.0, 12.0),
}

#: The keys every product carries; they link it to catalogue rows.
PRODUCT_KEYS = ("obs_id", "exp_id", "camera", "src_num")

_KEYS_RE = r"(?P<obs_id>\d{10})_(?P<camera>PN|M1|M2)_(?P<exp_id>[SU]\d{3})_(?P<src_num>[1-9]\d*)"


@dataclass(frozen=True)
class ProductType:
    """One kind of product file."""

    key: str                  # short name, e.g. "ublc_500s_b1"
    title: str
    category: str             # "lightcurve", "spectrum", "power-spectrum", "image", "preview"
    mime: str
    prefix: str               # file-name prefix: bblc, ublc, bglc, hrlc, pds, qlimg
    suffix: str               # what follows the keys, extension included: "_500s_b1.fit"
    semantics: str            # DataLink semantics for a catalogue row's link to it
    content_qualifier: str    # DataLink product-type vocabulary term
    band: str | None = None
    binning: str | None = None   # "500s", "opt" or None (Bayesian blocks, images)
    columns: tuple[str, ...] = ()  # FITS columns required in the first table extension
    extension: str | None = None   # FITS extension holding them (None: the first table)
    previewable: bool = False      # ingest draws a PNG quick-look for it

    @property
    def pattern(self) -> re.Pattern:
        return re.compile(rf"^{self.prefix}_{_KEYS_RE}{re.escape(self.suffix)}$")

    def filename(self, obs_id: str, camera: str, exp_id: str, src_num: int) -> str:
        return f"{self.prefix}_{obs_id}_{camera}_{exp_id}_{int(src_num)}{self.suffix}"


def _uniform_lcs():
    for binning, label in (("500s", "500 s"), ("opt", "optimal")):
        for band, (e_lo, e_hi) in BANDS.items():
            band_suffix = "" if band == "full" else f"_{band}"
            yield ProductType(
                key=f"ublc_{binning}{band_suffix}",
                title=f"Uniform-bin light curve, {label} bins, {e_lo}-{e_hi} keV",
                category="lightcurve", mime="application/fits", prefix="ublc",
                suffix=f"_{binning}{band_suffix}.fit", semantics="#coderived",
                content_qualifier="timeseries", band=band, binning=binning,
                columns=("TIME", "RATE", "ERROR", "FRACEXP"), extension="RATE",
                previewable=True)


PRODUCT_TYPES: dict[str, ProductType] = {p.key: p for p in (
    ProductType("bblc", "Bayesian-block light curve, 0.2-12 keV", "lightcurve",
                "application/fits", "bblc", ".fit", "#coderived", "timeseries",
                band="full", columns=("TSTART", "TSTOP", "RATE", "ERATE", "FRACEXP"),
                extension="RATE", previewable=True),
    *_uniform_lcs(),
    ProductType("bglc_500s", "Background light curve, 500 s bins, 0.2-12 keV", "lightcurve",
                "application/fits", "bglc", "_500s.fit", "#auxiliary", "timeseries",
                band="full", binning="500s", columns=("TIME", "RATE", "ERROR", "FRACEXP"),
                extension="RATE", previewable=True),
    ProductType("hrlc_500s", "Hardness-ratio curve (b3-b1)/(b3+b1), 500 s bins", "lightcurve",
                "application/fits", "hrlc", "_500s.fit", "#coderived", "timeseries",
                binning="500s", columns=("TIME", "HR", "HR_ERR"), extension="HR"),
    ProductType("pds", "Power density spectrum (Leahy normalisation), 0.2-12 keV",
                "power-spectrum", "application/fits", "pds", ".fit", "#coderived",
                "timeseries", band="full", columns=("FREQ", "POWER", "POWER_ERR"),
                extension="POWER"),
    ProductType("qlimg", "Quick-look image of the source region", "image", "image/png",
                "qlimg", ".png", "#preview-image", "image"),
)}

#: Generated quick-look of a light curve: the light curve's file name with ``.png``.
PREVIEW = ProductType("preview", "Quick-look plot of a light curve", "preview", "image/png",
                      "", ".png", "#preview-plot", "timeseries")


def preview_name(lc_filename: str) -> str:
    """File name of the PNG quick-look drawn for a light curve."""
    return re.sub(r"\.fits?$", "", lc_filename) + ".png"


def match_product(filename: str) -> tuple[ProductType, dict] | None:
    """Recognise a product file by name: (type, keys) or None.

    A ``.png`` whose stem is a previewable light curve's name is a ``PREVIEW`` of it.
    """
    for ptype in PRODUCT_TYPES.values():
        m = ptype.pattern.match(filename)
        if m:
            keys = m.groupdict()
            keys["src_num"] = int(keys["src_num"])
            return ptype, keys
    if filename.endswith(".png"):
        for ptype in PRODUCT_TYPES.values():
            if ptype.previewable:
                for ext in (".fit", ".fits"):
                    m = ptype.pattern.match(filename[:-4] + ext)
                    if m:
                        keys = m.groupdict()
                        keys["src_num"] = int(keys["src_num"])
                        return PREVIEW, keys
    return None

"""Light-curve data as JSON documents, written in bulk (orjson serialises numpy
arrays whole: no per-point Python objects). NaN and infinities become ``null``."""
from __future__ import annotations

import orjson

import datamodel
from datamodel.catalogues import FLUX_UNIT

from .lookup import CAMERAS, Product
from .read import Series

__all__ = ["FORMAT", "series_document", "longterm_document", "dumps", "etag"]

#: Name and version of the document layout (part of the ETag: a new layout is a new ETag).
FORMAT = "extras-archive lightcurve 1"
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def dumps(document: dict) -> bytes:
    return orjson.dumps(document, option=_OPTIONS)


def etag(product: Product) -> str:
    """The entity tag of a product's JSON: its checksum and the layout version."""
    return product.checksum.removeprefix("sha256:")[:32] + "-" + FORMAT.rsplit(" ", 1)[1]


def series_document(product: Product, series: Series, links: dict[str, str]) -> dict:
    """The JSON document of one product (see docs/lightcurves.md for the layout)."""
    ptype = datamodel.PRODUCT_TYPES[product.product_type]
    band = product.band
    return {
        "format": FORMAT,
        "path": product.path,
        "product_type": product.product_type,
        "title": ptype.title,
        "kind": series.kind,
        "obs_id": product.obs_id, "exp_id": product.exp_id, "src_num": product.src_num,
        "camera": product.camera, "instrument": CAMERAS.get(product.camera, product.camera),
        "extras_id": product.extras_id,
        "band": band, "energy_kev": list(datamodel.BANDS[band]) if band else None,
        "binning": product.binning,
        "background": ptype.prefix == "bglc",
        "length": series.length,
        "columns": series.columns,
        "units": series.units,
        "header": series.header,
        "gti": {"start": series.gti_start, "stop": series.gti_stop,
                "source": series.gti_source},
        "time": series.time or None,
        "links": links,
    }


def longterm_document(points: dict, links: dict[str, str]) -> dict:
    """The long-term light curve of one source: flux points against MJD."""
    return {
        "format": "extras-archive longterm 1",
        "source": points["source"],
        "length": len(points["obs_id"]),
        "columns": {k: points[k] for k in ("obs_id", "mjd_start", "mjd_stop", "flux",
                                           "flux_err", "ul_flag")},
        "units": {"mjd_start": "d", "mjd_stop": "d", "flux": FLUX_UNIT, "flux_err": FLUX_UNIT},
        "notes": "flux (0.2-12 keV; mW/m2 = erg/cm2/s) is a 3-sigma upper limit where "
                 "ul_flag is true; mjd_start/mjd_stop: the observation, MJD",
        "links": links,
    }

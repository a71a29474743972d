"""ivoa.obscore: the products described for VO discovery (ObsCore 1.1, ObsTAP).

One row per science time series among the products (light curves, background and
hardness-ratio curves: ``dataproduct_type='timeseries'``). Power spectra and
quick-look images are not described (docs/obscore.md says why). Column names,
datatypes, units, UCDs and utypes are those of ObsCore 1.1 (REC-ObsCore-v1.1 with its
errata, tables 5 and 6), which taplint's OBS stage checks; ``s_ra``/``s_dec`` are the
table's ra/dec roles, so it gets the HEALPix spatial index like the catalogues and
CONTAINS/DISTANCE on them use it. The rows are written by product ingest
(``ingest.obscore``) in the transaction that records the products.
"""
from __future__ import annotations

from .products import PRODUCT_TYPES
from .types import VERB_FULL as FULL
from .types import VERB_MINIMAL as MIN
from .types import VERB_STANDARD as STD
from .types import Column, Table

__all__ = ["SCHEMA", "OBSCORE", "OBSCORE_TABLES", "OBSCORE_DATA_MODEL", "OBSCORE_DATA_MODEL_NAME",
           "COLLECTION", "FACILITY", "INSTRUMENTS", "CALIB_LEVEL", "OBSERVABLES",
           "DESCRIBED_CATEGORIES", "described"]

SCHEMA = "ivoa"

#: The data model the TAP capabilities declare (taplint looks for this id).
OBSCORE_DATA_MODEL = "ivo://ivoa.net/std/ObsCore#core-1.1"
OBSCORE_DATA_MODEL_NAME = "ObsCore-1.1"

COLLECTION = "EXTraS"
FACILITY = "XMM"
INSTRUMENTS = {"PN": "EPIC-pn", "M1": "EPIC-MOS1", "M2": "EPIC-MOS2"}
#: ObsCore 1.1 section 4.5: level 3, "enhanced data products": the light curves are
#: made by the EXTraS pipeline from the calibrated event lists (source extraction,
#: background subtraction, exposure correction, optimal binning, Bayesian blocks).
CALIB_LEVEL = 3
#: Product categories described in ivoa.obscore.
DESCRIBED_CATEGORIES = ("lightcurve",)
#: The UCD of what each described product type measures (ObsCore o_ucd).
OBSERVABLES = {key: "phot.count" for key, p in PRODUCT_TYPES.items()
               if p.category in DESCRIBED_CATEGORIES}
OBSERVABLES["hrlc_500s"] = "phot.count;arith.ratio"
OBSERVABLES["bglc_500s"] = "phot.count;instr.background"


def described(product_type: str) -> bool:
    """Whether products of this type get an ivoa.obscore row."""
    return product_type in OBSERVABLES


def _c(name, datatype, utype, ucd, description, unit=None, arraysize=None, verbosity=STD,
       required=False, role=None, indexed=False):
    return Column(name, datatype, description, unit=unit, ucd=ucd,
                  utype=f"obscore:{utype}", arraysize=arraysize, verbosity=verbosity,
                  required=required, role=role, indexed=indexed, std=True)


OBSCORE = Table(
    name="obscore", schema=SCHEMA, title="ObsCore 1.1 description of the products",
    description="The EXTraS light curves (source, background and hardness-ratio time "
                "series of every detection, camera and band) described by the IVOA "
                "ObsCore 1.1 data model, for discovery with ObsTAP: one row per product "
                "file, access_url downloads it.",
    utype="ivo://ivoa.net/std/ObsCore#table-1.1",
    key=("obs_publisher_did",),
    columns=(
        _c("dataproduct_type", "char", "ObsDataset.dataProductType", "meta.code.class",
           "Data product type: timeseries", verbosity=MIN),
        _c("dataproduct_subtype", "char", "ObsDataset.dataProductSubtype", "meta.code.class",
           "Product type of this archive (bblc, ublc_500s, ublc_opt_b1, bglc_500s, ...)",
           verbosity=STD, indexed=True),
        _c("calib_level", "int", "ObsDataset.calibLevel", "meta.code;obs.calib",
           "Calibration level (ObsCore): 3, enhanced data products", verbosity=MIN,
           required=True),
        _c("obs_collection", "char", "DataID.Collection", "meta.id",
           "Name of the data collection", verbosity=MIN, required=True),
        _c("obs_id", "char", "DataID.observationID", "meta.id",
           "XMM-Newton observation identifier", verbosity=MIN, required=True, indexed=True),
        _c("obs_title", "char", "DataID.Title", "meta.title;obs",
           "What the product is, for people", verbosity=FULL),
        _c("obs_publisher_did", "char", "Curation.PublisherDID", "meta.ref.ivoid",
           "IVOA dataset identifier of the product, assigned by this archive",
           verbosity=MIN, required=True),
        _c("access_url", "char", "Access.Reference", "meta.ref.url",
           "URL of the product file", verbosity=MIN),
        _c("access_format", "char", "Access.Format", "meta.code.mime",
           "MIME type of the product file", verbosity=MIN),
        _c("access_estsize", "long", "Access.Size", "phys.size;meta.file",
           "Size of the product file", unit="kbyte", verbosity=MIN),
        _c("target_name", "char", "Target.Name", "meta.id;src",
           "3XMM IAU name of the source (else its 3XMM SRCID)", verbosity=MIN, indexed=True),
        _c("s_ra", "double", "Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C1",
           "pos.eq.ra", "Right ascension of the source (ICRS)", unit="deg", verbosity=MIN,
           required=True, role="ra"),
        _c("s_dec", "double",
           "Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C2", "pos.eq.dec",
           "Declination of the source (ICRS)", unit="deg", verbosity=MIN, required=True,
           role="dec"),
        _c("s_fov", "double", "Char.SpatialAxis.Coverage.Bounds.Extent.diameter",
           "phys.angSize;instr.fov",
           "Diameter of the covered region (NULL: the products do not record their "
           "extraction region)", unit="deg"),
        _c("s_region", "char", "Char.SpatialAxis.Coverage.Support.Area",
           "pos.outline;obs.field",
           "Sky region covered (NULL: the products do not record their extraction region)"),
        _c("s_resolution", "double", "Char.SpatialAxis.Resolution.Refval.value",
           "pos.angResolution", "Spatial resolution (NULL: a time series of one source)",
           unit="arcsec"),
        _c("s_xel1", "long", "Char.SpatialAxis.numBins1", "meta.number",
           "Number of elements along the first spatial axis (NULL: no spatial axis)"),
        _c("s_xel2", "long", "Char.SpatialAxis.numBins2", "meta.number",
           "Number of elements along the second spatial axis (NULL: no spatial axis)"),
        _c("t_min", "double", "Char.TimeAxis.Coverage.Bounds.Limits.StartTime",
           "time.start;obs.exposure", "Start of the time series (MJD, TT)", unit="d",
           verbosity=MIN, indexed=True),
        _c("t_max", "double", "Char.TimeAxis.Coverage.Bounds.Limits.StopTime",
           "time.end;obs.exposure", "End of the time series (MJD, TT)", unit="d",
           verbosity=MIN),
        _c("t_exptime", "double", "Char.TimeAxis.Coverage.Support.Extent",
           "time.duration;obs.exposure", "Time span of the series (t_max - t_min)", unit="s"),
        _c("t_resolution", "double", "Char.TimeAxis.Resolution.Refval.value",
           "time.resolution",
           "Bin size (FITS TIMEDEL; NULL for Bayesian blocks, whose blocks vary)", unit="s"),
        _c("t_xel", "long", "Char.TimeAxis.numBins", "meta.number",
           "Number of time bins (blocks for Bayesian blocks)"),
        _c("em_min", "double", "Char.SpectralAxis.Coverage.Bounds.Limits.LoLimit",
           "em.wl;stat.min", "Shortest wavelength of the energy band (hc/E_max)", unit="m",
           verbosity=MIN),
        _c("em_max", "double", "Char.SpectralAxis.Coverage.Bounds.Limits.HiLimit",
           "em.wl;stat.max", "Longest wavelength of the energy band (hc/E_min)", unit="m",
           verbosity=MIN),
        _c("em_res_power", "double", "Char.SpectralAxis.Resolution.ResolPower.refVal",
           "spect.resolution", "Spectral resolving power (NULL: band-integrated)"),
        _c("em_xel", "long", "Char.SpectralAxis.numBins", "meta.number",
           "Number of elements along the spectral axis (1: one band)"),
        _c("o_ucd", "char", "Char.ObservableAxis.ucd", "meta.ucd",
           "UCD of the observable (phot.count: count rate)"),
        _c("pol_states", "char", "Char.PolarizationAxis.stateList",
           "meta.code;phys.polarization", "Polarization states (NULL: not measured)"),
        _c("pol_xel", "long", "Char.PolarizationAxis.numBins", "meta.number",
           "Number of polarization states (NULL: not measured)"),
        _c("facility_name", "char", "Provenance.ObsConfig.Facility.name", "meta.id;instr.tel",
           "Observatory: XMM", verbosity=MIN),
        _c("instrument_name", "char", "Provenance.ObsConfig.Instrument.name", "meta.id;instr",
           "EPIC camera: EPIC-pn, EPIC-MOS1 or EPIC-MOS2", verbosity=MIN),
    ))

#: The ivoa tables by ADQL short name.
OBSCORE_TABLES: dict[str, Table] = {OBSCORE.name: OBSCORE}

"""Sky geometry: the HEALPix index and unit vectors every positional table stores.

Pure numpy/healpy, no Flask, no database. Positions are indexed with HEALPix NESTED
at ``ORDER`` = 29 in an int64, so every coarser cell of order k is the contiguous
integer range ``[p << 2(29-k), (p+1) << 2(29-k))``; each row also stores its unit
vector (x, y, z), so an exact cone test is plain arithmetic.
"""
from __future__ import annotations

import healpy as hp
import numpy as np

__all__ = ["ORDER", "NSIDE", "unit_vectors", "healpix_index"]

ORDER = 29
NSIDE = 1 << ORDER


def unit_vectors(ra, dec):
    """Unit vectors (x, y, z) of positions given in degrees, as float64 arrays."""
    ra_r = np.radians(np.asarray(ra, dtype=np.float64))
    dec_r = np.radians(np.asarray(dec, dtype=np.float64))
    cos_dec = np.cos(dec_r)
    return cos_dec * np.cos(ra_r), cos_dec * np.sin(ra_r), np.sin(dec_r)


def healpix_index(ra, dec):
    """HEALPix NESTED index at ``ORDER`` of positions in degrees (int64 array)."""
    return hp.ang2pix(NSIDE, np.asarray(ra, dtype=np.float64),
                      np.asarray(dec, dtype=np.float64), nest=True, lonlat=True).astype(np.int64)

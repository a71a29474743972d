"""Simple Cone Search 1.03 request parameters, read and checked in one place.

Names are case-insensitive (``ra``, ``Ra`` and ``RA`` are the same parameter,
handled by ``archive.params.Params``); unknown parameters are ignored, as SCS
1.03 requires. Every bad value raises a UsageFault whose message names the
parameter and what was wrong with it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import UsageFault
from ..params import Params, parse_float, parse_int

__all__ = ["ConeRequest", "parse_cone", "VERB_DEFAULT"]

#: SCS 1.03: "if VERB is not given, the service should assume 2".
VERB_DEFAULT = 2


@dataclass(frozen=True)
class ConeRequest:
    """A checked cone search: centre and radius in degrees, RA reduced to [0, 360)."""

    ra: float
    dec: float
    sr: float
    verb: int = VERB_DEFAULT
    maxrec: int | None = None
    response_format: str | None = None   # as given by the client (None: VOTable)


def _required(params: Params, name: str) -> float:
    raw = params.get(name)
    if raw is None or not str(raw).strip():
        raise UsageFault(f"the cone search needs the parameter {name} (decimal degrees); "
                         "for example RA=180.5&DEC=-30.2&SR=0.1")
    return parse_float(name, raw)


def parse_cone(params: Params, config: Mapping[str, Any]) -> ConeRequest:
    """Check RA, DEC, SR, VERB, MAXREC and RESPONSEFORMAT of a cone search.

    RA is normalised into [0, 360) (it is an angle: RA=-10 is RA=350); DEC must lie
    in [-90, 90]; SR in [0, SCS_MAX_SR]. VERB is 1, 2 or 3 (default 2). MAXREC is a
    non-negative integer, capped at SCS_HARD_MAXREC; absent, SCS_DEFAULT_MAXREC.
    """
    ra = _required(params, "RA")
    dec = _required(params, "DEC")
    sr = _required(params, "SR")
    if not -90.0 <= dec <= 90.0:
        raise UsageFault(f"DEC={dec:g} is outside the range [-90, 90] degrees")
    if sr < 0:
        raise UsageFault(f"SR={sr:g} is negative; the search radius is in degrees, "
                         "0 or more")
    max_sr = float(config.get("SCS_MAX_SR", 10.0))
    if sr > max_sr:
        raise UsageFault(f"SR={sr:g} is larger than this service's maximum search "
                         f"radius of {max_sr:g} degrees; use TAP for larger regions")
    ra = math.fmod(ra, 360.0)
    if ra < 0:
        ra += 360.0
    if ra >= 360.0:       # fmod of a tiny negative number + 360 rounds to 360
        ra = 0.0
    raw_verb = params.get("VERB")
    if raw_verb is None or not str(raw_verb).strip():
        verb = VERB_DEFAULT
    else:
        try:
            verb = int(str(raw_verb).strip())
        except ValueError:
            verb = 0
        if verb not in (1, 2, 3):
            raise UsageFault(f"VERB must be 1, 2 or 3 (fewer or more columns), "
                             f"not {raw_verb!r}")
    raw_maxrec = params.get("MAXREC")
    default = int(config.get("SCS_DEFAULT_MAXREC", 20000))
    hard = int(config.get("SCS_HARD_MAXREC", default))
    if raw_maxrec is None or not str(raw_maxrec).strip():
        maxrec = default
    else:
        maxrec = min(parse_int("MAXREC", raw_maxrec, minimum=0), hard)
    fmt = params.get("RESPONSEFORMAT")
    return ConeRequest(ra, dec, sr, verb, maxrec, fmt if fmt and fmt.strip() else None)

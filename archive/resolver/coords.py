"""Coordinate strings and IAU J-names to an ICRS position (no Flask, no database).

Notations understood (conventions in docs/resolver.md):

- decimal degrees: ``150.1 2.2``, ``150.1, +2.2``, ``150.1d +2.2d``;
- sexagesimal RA in hours and Dec in degrees, with spaces or colons:
  ``10 00 24.0 +02 12 00``, ``10:00:24 +02:12:00``, ``10h00m24s +02d12m00s``;
- IAU-style J-names: ``J100024.0+021200``, ``3XMM J100024.0+021200``,
  ``EXMM J100024.0+021200`` (the position the name encodes, truncated as the name is);
- galactic ``l b`` in decimal degrees, marked: ``gal 120.5 -3.2``, ``galactic 120.5 -3.2``
  or ``l=120.5 b=-3.2``.

The angles themselves are parsed by astropy (``Angle``, ``Latitude``, ``SkyCoord``,
``jparser``); only the split of the string into RA and Dec and the choice of units
is done here, because ``SkyCoord(string, unit=(hourangle, deg))`` silently reads
``150.1 2.2`` as 150.1 hours and ``10 20`` as 10 h +20 deg, and does not accept a
comma between the two halves. A string that looks like coordinates but cannot be
read raises :class:`CoordinateError` (a clear message); a string that does not look
like coordinates at all gives ``None`` (it may be a name).
"""
from __future__ import annotations

import math
import re

__all__ = ["CoordinateError", "parse_position", "looks_like_coordinates"]


class CoordinateError(ValueError):
    """The string is meant as coordinates but cannot be read unambiguously."""


_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)"
_PLAIN = re.compile(rf"^{_NUMBER}$")
#: only digits, signs, separators and unit marks after digits: meant as coordinates
_COORDINATE_LIKE = re.compile(r"^[+\-.\d][\d\s.,:+\-hmsd°'\"′″]*$")
_GALACTIC = re.compile(
    rf"^(?:gal(?:actic)?\s*[:,]?\s*(?P<l1>{_NUMBER})\s*[,\s]\s*(?P<b1>{_NUMBER})"
    rf"|l\s*=\s*(?P<l2>{_NUMBER})\s*[,\s]\s*b\s*=\s*(?P<b2>{_NUMBER}))$", re.IGNORECASE)
#: where the declination starts: a sign after a space, a comma or a unit mark
_DEC_SIGN = re.compile(r"(?<=[\s,hms'\"″])\s*(?=[+-]\d|[+-]\.\d)")
_UNITS = ("ICRS right ascension and declination: decimal degrees (150.1 +2.2), "
          "or RA in hours and Dec in degrees (10 00 24.0 +02 12 00, 10:00:24 +02:12:00, "
          "10h00m24s +02d12m00s)")


def looks_like_coordinates(text: str) -> bool:
    return bool(_COORDINATE_LIKE.match(text)) or bool(_GALACTIC.match(text))


def _checked(ra: float, dec: float, text: str) -> tuple[float, float]:
    if not (math.isfinite(ra) and math.isfinite(dec)):
        raise CoordinateError(f"{text!r}: the coordinates are not finite numbers")
    if not -90.0 <= dec <= 90.0:
        raise CoordinateError(f"{text!r}: the declination (latitude) {dec:g} deg is "
                              f"outside -90..+90")
    if not 0.0 <= ra < 360.0:
        raise CoordinateError(f"{text!r}: the right ascension {ra:g} deg is outside 0..360")
    return ra, dec


def _galactic(match, text: str) -> tuple[float, float]:
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    lon = float(match.group("l1") or match.group("l2"))
    lat = float(match.group("b1") or match.group("b2"))
    if not (math.isfinite(lon) and 0.0 <= lon < 360.0):
        raise CoordinateError(f"{text!r}: the galactic longitude l must be in 0..360 deg")
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise CoordinateError(f"{text!r}: the galactic latitude b must be in -90..+90 deg")
    icrs = SkyCoord(lon * u.deg, lat * u.deg, frame="galactic").icrs
    return _checked(float(icrs.ra.deg) % 360.0, float(icrs.dec.deg), text)


def _jname(text: str) -> tuple[float, float] | None:
    from astropy.coordinates import jparser
    match = jparser.search(text)
    # the whole string must be the name (an optional catalogue prefix, then J...)
    if match is None or match.end() != len(text) or \
            not re.match(r"^(?:[A-Za-z0-9]+\s*)?J\d", text):
        return None
    position = jparser.to_skycoord(text)
    return _checked(float(position.ra.deg) % 360.0, float(position.dec.deg), text)


def _split(text: str) -> tuple[str, str]:
    """(RA part, Dec part): at the Dec's sign, else at a comma, else half the tokens."""
    signs = [m.start() for m in _DEC_SIGN.finditer(text) if m.start() > 0]
    if signs:
        return text[:signs[0]].strip(" ,"), text[signs[0]:].strip(" ,")
    if text.count(",") == 1:
        ra, dec = text.split(",")
        return ra.strip(), dec.strip()
    tokens = text.replace(",", " ").split()
    if len(tokens) in (2, 4, 6) and not (len(tokens) == 4 and all(
            _PLAIN.match(t) for t in tokens)):
        half = len(tokens) // 2
        return " ".join(tokens[:half]), " ".join(tokens[half:])
    raise CoordinateError(f"{text!r}: cannot tell where the right ascension ends and the "
                          f"declination begins; give the declination its sign (+ or -) "
                          f"or use colons. Accepted: {_UNITS}")


def _equatorial(text: str) -> tuple[float, float]:
    import astropy.units as u
    from astropy.coordinates import Angle, Latitude
    ra_text, dec_text = _split(text)
    if not ra_text or not dec_text:
        raise CoordinateError(f"{text!r}: give both the right ascension and the "
                              f"declination. Accepted: {_UNITS}")
    if _PLAIN.match(ra_text) and _PLAIN.match(dec_text):
        # decimal degrees (documented convention); two bare integers with RA <= 24
        # could as well be hours, so those are refused rather than guessed
        if "." not in ra_text + dec_text and float(ra_text) <= 24:
            raise CoordinateError(
                f"{text!r} is ambiguous: degrees or hours? Write {ra_text}.0 {dec_text}.0 "
                f"(or {ra_text}d {dec_text}d) for degrees, {ra_text}h {dec_text}d for "
                f"hours. Accepted: {_UNITS}")
        ra, dec = float(ra_text), float(dec_text)
        return _checked(ra, dec, text)
    try:
        # sexagesimal or with unit marks: RA in hours unless the string says otherwise
        ra = Angle(ra_text.replace(" ", ":") if " " in ra_text else ra_text,
                   unit=u.hourangle)
        dec = Latitude(Angle(dec_text.replace(" ", ":") if " " in dec_text else dec_text,
                             unit=u.deg))
    except (ValueError, u.UnitsError, TypeError) as exc:
        raise CoordinateError(f"{text!r} cannot be read as coordinates ({exc}). "
                              f"Accepted: {_UNITS}") from None
    return _checked(float(ra.deg), float(dec.deg), text)


def parse_position(text: str) -> tuple[float, float, str] | None:
    """(ra, dec, kind) in ICRS degrees for a coordinate string or a J-name; ``kind`` is
    "galactic", "jname" or "equatorial". ``None`` if ``text`` does not look like
    coordinates; CoordinateError if it does but cannot be read."""
    text = text.strip()
    galactic = _GALACTIC.match(text)
    if galactic:
        return (*_galactic(galactic, text), "galactic")
    found = _jname(text)
    if found is not None:
        return (*found, "jname")
    if not _COORDINATE_LIKE.match(text):
        return None
    return (*_equatorial(text), "equatorial")

"""Resolve one string to a position: the archive's own names, then coordinate strings
and J-names, then Simbad (answers cached in the ``name_cache`` table). No Flask.

Order (docs/resolver.md):

1. the archive's names, by indexed lookups on the catalogue tables (read-only engine):
   a 3XMM srcid (an integer; longterm, classification, aperiodic), a 3XMM IAU name
   (``iauname`` of longterm and classification), an EXTraS detection id (``extras_id``
   of aperiodic and periodic), a transient name (``name`` of transients);
2. coordinates and IAU J-names (:mod:`.coords`);
3. the cache of Simbad's answers (``name_cache``, read-write engine): hits are kept,
   misses only for ``RESOLVER_MISS_TTL`` seconds;
4. Simbad (:mod:`.simbad`), whose answer (hit or miss) is then cached. An unreachable
   Simbad is not cached: the next request asks again.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from ..db import catalogue_tables, name_cache
from ..errors import NotFoundFault, UsageFault
from .coords import CoordinateError, parse_position
from .simbad import query_simbad

__all__ = ["Resolution", "resolve", "normalise", "MAX_LENGTH"]

#: longest string accepted (the longest real names are a few tens of characters)
MAX_LENGTH = 200
_SRCID = re.compile(r"^\d{1,18}$")
#: (table, id column) looked up for a name, in this order
_NAMED = (("longterm", "iauname"), ("classification", "iauname"),
          ("aperiodic", "extras_id"), ("periodic", "extras_id"), ("transients", "name"))
_SRCID_TABLES = ("longterm", "classification", "aperiodic")
#: what each kind of archive name looks like; a string of another shape is not looked
#: up there (no query at all for "M 31"): IAU names of 3XMM sources and EXTraS
#: transients contain "J" and a digit, detection ids are OBSID_EXPID_CAMERA_SRCNUM
_IAU_SHAPE = re.compile(r"J\d", re.IGNORECASE)
_SHAPES = {"iauname": _IAU_SHAPE, "name": _IAU_SHAPE, "extras_id": re.compile(r"_.*_.*_")}


@dataclass(frozen=True)
class Resolution:
    """The answer: ``resolver`` is "archive", "coordinates" or "simbad"."""

    name: str
    ra: float
    dec: float
    resolver: str
    resolved_name: str | None
    cached: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def normalise(name: str) -> str:
    """The cache key of a name: whitespace collapsed, case folded."""
    return " ".join(name.split()).casefold()


def _checked(name: str | None) -> str:
    if name is None or not name.strip():
        raise UsageFault("give a name or coordinates to resolve (the name is empty)")
    if len(name) > MAX_LENGTH:
        raise UsageFault(f"the name is {len(name)} characters long; at most {MAX_LENGTH} "
                         f"are accepted")
    bad = [c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn")]
    if bad:
        raise UsageFault(f"the name contains control or invisible characters "
                         f"({', '.join(sorted({f'U+{ord(c):04X}' for c in bad}))}); "
                         f"type it again")
    return " ".join(name.split())


def _lookup(table_name: str, column: str, condition, order: int):
    t = catalogue_tables[table_name]
    label = t.c.iauname if column == "srcid" else t.c[column]
    return sa.select(sa.literal(order).label("priority"), t.c.ra, t.c.dec,
                     sa.cast(label, sa.String).label("label")).where(condition(t)).limit(1)


def _archive(engine, text: str) -> Resolution | None:
    """The position of an archive name, or None: one statement (one round trip to the
    database), a UNION ALL of indexed lookups, the first table in ``_NAMED`` (or
    ``_SRCID_TABLES``) that has the name wins."""
    if _SRCID.match(text):
        srcid = int(text)
        parts = [_lookup(name, "srcid", lambda t: t.c.srcid == srcid, i)
                 for i, name in enumerate(_SRCID_TABLES)]
    else:
        candidates = sorted({text, text.upper()})
        parts = [_lookup(name, column, lambda t, c=column: t.c[c].in_(candidates), i)
                 for i, (name, column) in enumerate(_NAMED) if _SHAPES[column].search(text)]
        if not parts:
            return None
    union = sa.union_all(*(p.subquery().select() for p in parts)).subquery()
    stmt = sa.select(union).order_by(union.c.priority).limit(1)
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None:
        return None
    label = row.label or (f"3XMM srcid {text}" if _SRCID.match(text) else text)
    return Resolution(text, float(row.ra), float(row.dec), "archive", label)


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _cached(engine, key: str, text: str, miss_ttl: float, now: datetime):
    """The cached Simbad answer for ``key`` (a Resolution, or the string "miss"), or None
    when there is none or the miss has expired."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(name_cache).where(name_cache.c.name == key)).first()
    if row is None:
        return None
    if row.source == "miss":
        if now - _as_utc(row.created) > timedelta(seconds=miss_ttl):
            return None
        return "miss"
    return Resolution(text, row.ra, row.dec, row.source, row.resolved_name, cached=True)


def _store(engine, key: str, answer, now: datetime) -> None:
    values = {"name": key, "ra": answer.ra, "dec": answer.dec,
              "source": "simbad" if answer.main_id else "miss",
              "resolved_name": answer.main_id, "created": now}
    try:
        with engine.begin() as conn:
            conn.execute(sa.delete(name_cache).where(name_cache.c.name == key))
            conn.execute(sa.insert(name_cache).values(**values))
    except sa.exc.IntegrityError:
        pass                # another worker stored the same answer at the same moment


def _unknown(text: str) -> NotFoundFault:
    return NotFoundFault(f"{text!r} is not a name known to this archive or to Simbad, and "
                         f"not coordinates; check the spelling or type coordinates "
                         f"(e.g. 150.1 +2.2 or 10:00:24 +02:12:00)")


def resolve(engine, readonly, name: str | None, config, *, now: datetime | None = None
            ) -> Resolution:
    """Resolve ``name`` (see the module docstring). ``engine`` is the read-write engine
    (the cache), ``readonly`` the read-only one (the catalogues); ``config`` gives
    SIMBAD_URL, SIMBAD_TIMEOUT and RESOLVER_MISS_TTL. UsageFault (400) for an empty,
    over-long, ambiguous or malformed string, NotFoundFault (404) for an unknown name,
    TransientFault (503) when Simbad cannot be reached."""
    text = _checked(name)
    found = _archive(readonly, text)
    if found is not None:
        return found
    if _SRCID.match(text):
        raise NotFoundFault(f"no 3XMM source with srcid {text} is in this archive (a bare "
                            f"integer is read as a 3XMM srcid)")
    try:
        position = parse_position(text)
    except CoordinateError as exc:
        raise UsageFault(str(exc)) from None
    if position is not None:
        ra, dec, _kind = position
        return Resolution(text, ra, dec, "coordinates", None)
    now = now or datetime.now(timezone.utc)
    key = normalise(text)
    cached = _cached(engine, key, text, float(config["RESOLVER_MISS_TTL"]), now)
    if cached == "miss":
        raise _unknown(text)
    if cached is not None:
        return cached
    answer = query_simbad(text, config["SIMBAD_URL"], float(config["SIMBAD_TIMEOUT"]))
    _store(engine, key, answer, now)
    if answer.main_id is None:
        raise _unknown(text)
    return Resolution(text, answer.ra, answer.dec, "simbad", answer.main_id)

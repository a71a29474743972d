"""The DataLink {links} request: which IDs, what they name, the ID limit (no Flask).

DataLink 1.1 §3.1: ``ID`` may be repeated (GET query string or POST form; pyvo's
``iter_datalinks()`` POSTs many at once); no ID gives an empty links table; more IDs
than the service answers at once gives the first ``max_ids`` and an OVERFLOW status
(the client sends the rest again). RESPONSEFORMAT may be absent, ``votable`` or
``application/x-votable+xml`` (with or without ``;content=datalink``).

Every ID is classified by its form: an EXTraS detection id
(``OBSID_EXPID_CAMERA_SRCNUM``, the aperiodic and periodic catalogues), a transient
name (``EXMM J...``) or a 3XMM IAU name (``3XMM J...``: the long-term and
classification catalogues). Anything else is answered with a UsageFault error row.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageFault
from ..params import Params

__all__ = ["DETECTION", "TRANSIENT", "SOURCE", "LinksRequest", "parse_links_request",
           "kind_of", "ID_FORMS"]

DETECTION, TRANSIENT, SOURCE = "detection", "transient", "source"

_FORMS = (
    (DETECTION, re.compile(r"\d{10}_[SU]\d{3}_(?:PN|M1|M2)_[1-9]\d{0,8}\Z")),
    (TRANSIENT, re.compile(r"EXMM J\d{6}(?:\.\d+)?[+-]\d{6}(?:\.\d+)?\Z")),
    (SOURCE, re.compile(r"3XMM J\d{6}(?:\.\d+)?[+-]\d{6}(?:\.\d+)?\Z")),
)
#: What the ID forms look like, for error messages and docs.
ID_FORMS = ("an EXTraS detection id OBSID_EXPID_CAMERA_SRCNUM (e.g. 0100000013_S001_M1_4), "
            "a transient name 'EXMM Jhhmmss.s+ddmmss' or a 3XMM IAU name "
            "'3XMM Jhhmmss.s+ddmmss'")
_MAX_ID_LENGTH = 100
_FORMATS = ("votable", "application/x-votable+xml",
            "application/x-votable+xml;content=datalink")


@dataclass(frozen=True)
class LinksRequest:
    """The IDs to answer (in order, each once) and whether some were left for later."""

    ids: list[str]
    overflow: bool


def kind_of(value: str) -> str:
    """DETECTION, TRANSIENT or SOURCE; UsageFault for anything else."""
    if not value:
        raise UsageFault("empty ID: give " + ID_FORMS)
    if len(value) > _MAX_ID_LENGTH:
        raise UsageFault(f"ID {value[:40]!r}... is {len(value)} characters long; the "
                         f"identifiers of this archive are at most {_MAX_ID_LENGTH}")
    for kind, pattern in _FORMS:
        if pattern.match(value):
            return kind
    raise UsageFault(f"ID {value!r} is not an identifier of this archive: use " + ID_FORMS)


def _check_format(params: Params) -> None:
    requested = params.get("RESPONSEFORMAT")
    if requested is None or not requested.strip():
        return
    wanted = re.sub(r"\s*([;=])\s*", r"\1", requested.strip().lower())
    if wanted not in _FORMATS:
        raise UsageFault(f"RESPONSEFORMAT={requested!r} is not supported: the links table "
                         "is a VOTable (RESPONSEFORMAT=votable or "
                         "application/x-votable+xml, or leave it out)")


def parse_links_request(params: Params, max_ids: int) -> LinksRequest:
    """The IDs of a {links} request: each once, in the order given, at most
    ``max_ids`` (``overflow`` tells that more were sent)."""
    _check_format(params)
    seen: dict[str, None] = {}
    for value in params.getlist("ID"):
        seen.setdefault(value, None)      # as sent: clients match rows to IDs exactly
    ids = list(seen)
    return LinksRequest(ids=ids[:max_ids], overflow=len(ids) > max_ids)

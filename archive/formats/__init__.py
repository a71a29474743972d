"""The registry of output formats: streaming writers for query results.

One registry serves TAP (RESPONSEFORMAT/FORMAT), cone search, the web form and
downloads. A :class:`Format` has a short ``key``, the MIME type to send, the
aliases and MIME types that select it (DALI 1.1 §3.4.3), a file extension and
a label, and ``render(result)``, a generator of ``bytes`` that never holds more
than one chunk of rows::

    fmt = get_format("text/csv;header=present")
    response_body = fmt.render(result)          # Iterator[bytes]
    content_type = fmt.content_type(requested)  # echoes the requested MIME type

Formats: ``votable`` (VOTable 1.4 BINARY2, the default), ``votable/td``
(TABLEDATA), ``fits``, ``csv``, ``tsv``, ``fixed`` (fixed-width text), ``json`` and ``html``. See docs/formats.md.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ..errors import UsageFault

__all__ = ["Format", "register", "get_format", "all_formats", "normalize", "DEFAULT_FORMAT"]

DEFAULT_FORMAT = "votable"

_SPACES = re.compile(r"\s*([;=])\s*")


def normalize(name: str) -> str:
    """Lower-case ``name`` and drop whitespace around ``;`` and ``=`` and at the ends."""
    return _SPACES.sub(r"\1", name.strip().lower()).rstrip(";")


@dataclass(frozen=True)
class Format:
    """One output format.

    ``mime`` is the canonical MIME type (the Content-Type sent by default and the
    one listed in TAP capabilities); ``mimes`` are all MIME types that select the
    format, each of which may be echoed as the Content-Type; ``aliases`` are the
    other short names. ``writer(result, **options)`` returns an iterator of bytes.
    """

    key: str
    mime: str
    label: str
    extension: str
    writer: Callable[..., Iterator[bytes]]
    aliases: tuple[str, ...] = ()
    mimes: tuple[str, ...] = ()
    description: str = ""
    names: frozenset = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        mimes = tuple(dict.fromkeys((self.mime, *self.mimes)))
        object.__setattr__(self, "mimes", mimes)
        object.__setattr__(self, "names", frozenset(
            normalize(n) for n in (self.key, *self.aliases, *mimes)))

    def render(self, result, **options) -> Iterator[bytes]:
        """The serialized ``result``, streamed as pieces of bytes."""
        return self.writer(result, **options)

    def content_type(self, requested: str | None = None) -> str:
        """The Content-Type to send: ``requested`` if it is one of our MIME types."""
        if requested and "/" in requested:
            wanted = normalize(requested)
            if any(normalize(m) == wanted for m in self.mimes):
                return requested.strip()
        return self.mime


_REGISTRY: dict[str, Format] = {}
_BY_NAME: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    """Add ``fmt`` to the registry; a name claimed by another format is an error."""
    for name in fmt.names:
        other = _BY_NAME.get(name)
        if other is not None and other.key != fmt.key:
            raise ValueError(f"format name {name!r} of {fmt.key} is taken by {other.key}")
    old = _REGISTRY.pop(fmt.key, None)
    if old is not None:
        for name in old.names:
            _BY_NAME.pop(name, None)
    _REGISTRY[fmt.key] = fmt
    for name in fmt.names:
        _BY_NAME[name] = fmt
    return fmt


def get_format(name_or_mime: str | None) -> Format:
    """The Format named by a key, alias or MIME type (case-insensitive).

    ``None`` or an empty value gives the default (BINARY2 VOTable). Anything
    unknown raises UsageFault listing the supported values.
    """
    if name_or_mime is None or not name_or_mime.strip():
        return _REGISTRY[DEFAULT_FORMAT]
    fmt = _BY_NAME.get(normalize(name_or_mime))
    if fmt is None:
        known = ", ".join(sorted({n for f in _REGISTRY.values()
                                  for n in (f.key, *f.aliases, *f.mimes)}))
        raise UsageFault(f"unsupported output format {name_or_mime!r} "
                         f"(RESPONSEFORMAT); supported values: {known}")
    return fmt


def all_formats() -> list[Format]:
    """Every registered format, default first (for capabilities and documentation)."""
    return list(_REGISTRY.values())


def _register_builtins() -> None:
    from . import fits, fixed, html, json, text, votable
    vot = "application/x-votable+xml"
    register(Format(
        "votable", vot, "VOTable (binary)", "vot", votable.render_binary2,
        aliases=("votable/b2", "binary2", "votable/binary2", "votableb2"),
        mimes=("text/xml", "application/xml", f"{vot};serialization=binary2",
               f"{vot};serialization=BINARY2"),
        description="VOTable 1.4, BINARY2 serialization: compact and exact; "
                    "the default of every VO service"))
    register(Format(
        "votable/td", f"{vot};serialization=TABLEDATA", "VOTable (XML table)", "vot",
        votable.render_tabledata,
        aliases=("votabletd", "tabledata", "votable/tabledata"),
        mimes=(f"{vot};serialization=td",),
        description="VOTable 1.4, TABLEDATA serialization: readable XML"))
    register(Format(
        "fits", "application/fits", "FITS binary table", "fits", fits.render_fits,
        aliases=("fits/bintable", "binfits"), mimes=("image/fits",),
        description="FITS with the result in a BINTABLE extension"))
    register(Format(
        "csv", "text/csv;header=present", "CSV", "csv", text.render_csv,
        mimes=("text/csv",),
        description="comma-separated values (RFC 4180) with a header line"))
    register(Format(
        "tsv", "text/tab-separated-values", "TSV", "tsv", text.render_tsv,
        description="tab-separated values with a header line"))
    register(Format(
        "fixed", "text/plain", "Fixed-width ASCII", "txt", fixed.render_fixed,
        aliases=("ascii", "fixed_width", "ascii.fixed_width", "text"),
        mimes=("text/plain;charset=utf-8",),
        description="aligned columns separated by |, as astropy's ascii.fixed_width "
                    "reads them"))
    register(Format(
        "json", "application/json", "JSON", "json", json.render_json,
        description='{"columns": [...], "data": [[...], ...], "overflow": ...}'))
    register(Format(
        "html", "text/html", "HTML table", "html", html.render_html,
        description="a self-contained HTML page with the table"))


_register_builtins()

"""The Jinja2 environment of the format writers (no Flask: writers also run in workers).

Templates live in ``templates/formats/``; XML and HTML templates are autoescaped.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import re

import jinja2
import markupsafe

__all__ = ["environment", "macros"]

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _finalize(value):
    """Drop characters XML 1.0 cannot carry from every value a template prints."""
    if isinstance(value, str) and _XML_ILLEGAL.search(value):
        cleaned = _XML_ILLEGAL.sub("\ufffd", value)
        return markupsafe.Markup(cleaned) if isinstance(value, markupsafe.Markup) else cleaned
    return value


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["xml", "html"]),
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined, finalize=_finalize)


@lru_cache(maxsize=None)
def macros(name: str):
    """The module of template ``formats/<name>``: its macros as callables."""
    return environment().get_template(f"formats/{name}").module

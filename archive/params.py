"""IVOA/DALI request parameters, read in one place.

DALI 1.1 §3: parameter names are case-insensitive, values are case-sensitive;
parameters come from the query string (GET) or the body (POST, form-urlencoded or
multipart). Single-valued parameters given more than once are an error. Unknown
parameters are ignored by the services, so ``Params`` keeps everything it was
given. This module does not import Flask: the views hand it the request's
multi-dicts (anything with ``items(multi=True)``, or plain pairs).
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

from .errors import UsageFault

__all__ = ["Params", "parse_int", "parse_float"]


def _pairs(source) -> Iterator[tuple[str, Any]]:
    if source is None:
        return
    if hasattr(source, "items"):
        try:
            yield from source.items(multi=True)     # werkzeug MultiDict
            return
        except TypeError:
            items = source.items()
        for key, value in items:
            if isinstance(value, (list, tuple)):
                for v in value:
                    yield key, v
            else:
                yield key, value
        return
    yield from source


class Params:
    """Request parameters with case-insensitive names.

    ``values`` are the string parameters in the order given; ``files`` are the
    uploaded parts of a multipart body (file-like objects with ``.read()``), kept
    under their part names as sent (``UPLOAD=t,param:<part>`` refers to them).
    """

    def __init__(self, *sources, files: Mapping[str, Any] | Iterable | None = None):
        self._values: dict[str, list[str]] = {}
        self._names: dict[str, str] = {}
        for source in sources:
            for name, value in _pairs(source):
                key = name.upper()
                self._names.setdefault(key, name)
                self._values.setdefault(key, []).append(value)
        self.files: dict[str, Any] = {}
        for name, value in _pairs(files):
            self.files.setdefault(name, value)

    def __contains__(self, name: str) -> bool:
        return name.upper() in self._values

    def __repr__(self) -> str:
        return f"Params({self.as_dict()!r})"

    def names(self) -> list[str]:
        """The parameter names as first spelled by the client."""
        return list(self._names.values())

    def getlist(self, name: str) -> list[str]:
        """All values of ``name`` (possibly none)."""
        return list(self._values.get(name.upper(), ()))

    def get(self, name: str, default: Any = None) -> Any:
        """The value of the single-valued parameter ``name``, or ``default``.

        Raises UsageFault if the parameter was given more than once with different
        values; the same value repeated is that value (astroquery's TapPlus sends
        ``FORMAT=votable`` and ``format=votable`` with every table upload).
        """
        values = self._values.get(name.upper())
        if not values:
            return default
        if any(v != values[0] for v in values[1:]):
            raise UsageFault(f"parameter {name.upper()} was given {len(values)} times "
                             f"({', '.join(repr(v) for v in values)}); it takes one value")
        return values[0]

    def first(self, *names: str, default: Any = None) -> Any:
        """The value of the first of ``names`` that is present (synonyms, e.g.
        RESPONSEFORMAT and FORMAT); giving two synonyms at once is an error."""
        present = [n for n in names if n in self]
        if len(present) > 1:
            raise UsageFault(f"parameters {' and '.join(n.upper() for n in present)} "
                             "mean the same thing; give only one of them")
        return self.get(present[0]) if present else default

    def file(self, name: str):
        """The uploaded part called ``name`` (exact, else case-insensitive), or None."""
        if name in self.files:
            return self.files[name]
        for key, value in self.files.items():
            if key.lower() == name.lower():
                return value
        return None

    def as_dict(self) -> dict[str, list[str]]:
        """{name as first spelled: [values]}: for job documents and logs."""
        return {self._names[k]: list(v) for k, v in self._values.items()}


def parse_int(name: str, value: str, *, minimum: int | None = None) -> int:
    """``value`` of parameter ``name`` as an integer, or a UsageFault naming it."""
    try:
        number = int(str(value).strip())
    except ValueError:
        raise UsageFault(f"{name} must be an integer, not {value!r}") from None
    if minimum is not None and number < minimum:
        raise UsageFault(f"{name} must be at least {minimum}, not {number}")
    return number


def parse_float(name: str, value: str) -> float:
    """``value`` of parameter ``name`` as a finite float, or a UsageFault naming it."""
    try:
        number = float(str(value).strip())
    except ValueError:
        raise UsageFault(f"{name} must be a number, not {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise UsageFault(f"{name} must be a finite number, not {value!r}")
    return number

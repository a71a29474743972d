"""The parameters of a catalogue search, read and checked (no Flask, no database).

``parse(table, args, config, resolve)`` reads a multi-valued mapping (``getlist``)
into a ``Search``; every problem is recorded in ``Search.errors`` under the name of
the form field it is about, so the form can show each message next to its field.
``resolve(text)`` turns the ``pos`` box into a position (the resolver service);
its faults become the message of ``pos``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import datamodel
from ..errors import ArchiveFault, UsageFault

__all__ = ["Search", "Constraint", "parse", "UNITS", "SHAPES", "NUMERIC",
           "DEFAULT_PER_PAGE", "MAX_PER_PAGE", "constraint_fields", "DISTANCE"]

#: angular units of the radius and the box size, in degrees
UNITS = {"arcsec": 1 / 3600.0, "arcmin": 1 / 60.0, "deg": 1.0}
SHAPES = ("cone", "box", "range")
NUMERIC = ("short", "int", "long", "float", "double")
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500
#: the name of the distance column of positional searches (arcsec)
DISTANCE = "_r"
_PLAIN = {"pos", "shape", "radius", "unit", "width", "height", "ra_min", "ra_max",
          "dec_min", "dec_max", "verb", "col", "sort", "order", "maxrec", "format",
          "page", "per_page", "resolver"}


@dataclass
class Constraint:
    """One condition on a column: ``op`` is "min", "max", "match" (text contains),
    "eq" (choice or boolean)."""

    column: str
    op: str
    value: object


@dataclass
class Search:
    """A checked search. ``errors`` maps form field names to messages."""

    table: datamodel.Table
    values: dict = field(default_factory=dict)      # what was given, for the form
    errors: dict = field(default_factory=dict)
    pos: str = ""
    ra: float | None = None
    dec: float | None = None
    resolver: str | None = None
    resolved_name: str | None = None
    shape: str = "cone"
    radius_deg: float | None = None
    box: tuple[float, float, float, float] | None = None   # ra_min, ra_max, dec_min, dec_max
    constraints: list[Constraint] = field(default_factory=list)
    verb: int = datamodel.VERB_STANDARD
    columns: list[str] = field(default_factory=list)
    sort: str | None = None
    order: str = "asc"
    maxrec: int = 0
    format: str = "html"
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    @property
    def positional(self) -> bool:
        """Whether a distance ``_r`` is computed (a cone, or a box with a centre)."""
        return self.ra is not None and self.shape in ("cone", "box")

    @property
    def spatial(self) -> bool:
        return self.ra is not None or self.box is not None


def constraint_fields(column: datamodel.Column) -> list[tuple[str, str]]:
    """(form field name, kind) of the constraints on ``column``: ``<name>.min`` and
    ``<name>.max`` for numbers, ``<name>`` ("match", "choice" or "boolean") otherwise:
    a choice list for every column the data model declares an enumeration
    (``Column.choices``)."""
    if column.datatype in NUMERIC:
        return [(f"{column.name}.min", "min"), (f"{column.name}.max", "max")]
    if column.datatype == "boolean":
        return [(column.name, "boolean")]
    if column.choices:
        return [(column.name, "choice")]
    return [(column.name, "match")]


def _number(search: Search, name: str, text: str, what: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        search.errors[name] = f"{what} must be a number, not {text!r}"
        return None
    if not math.isfinite(value):
        search.errors[name] = f"{what} must be a finite number, not {text!r}"
        return None
    return value


def _integer(search: Search, args, name: str, default: int, low: int, high: int,
             what: str) -> int:
    text = (args.get(name) or "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        search.errors[name] = f"{what} must be a whole number, not {text!r}"
        return default
    if not low <= value <= high:
        search.errors[name] = f"{what} must lie between {low:,} and {high:,} (got {value:,})"
        return default
    return value


def _constraints(search: Search, args) -> None:
    table = search.table
    known = {}
    for column in table.columns:
        for name, kind in constraint_fields(column):
            known[name] = (column, kind)
    for name in args:
        if name in _PLAIN or name in known:
            continue
        base = name.rsplit(".", 1)[0]
        if "." in name and base not in {c.name for c in table.columns}:
            search.errors[name] = (f"there is no column {base!r} in {table.name} to "
                                   f"constrain; its columns are "
                                   f"{', '.join(c.name for c in table.columns)}")
        else:
            search.errors[name] = f"unknown parameter {name!r} (see docs/search.md)"
    for name, (column, kind) in known.items():
        text = (args.get(name) or "").strip()
        if not text:
            continue
        search.values[name] = text
        label = f"{column.name} ({kind})" if kind in ("min", "max") else column.name
        if kind in ("min", "max"):
            value = _number(search, name, text, f"the {kind}imum of {column.name}")
            if value is not None:
                if column.datatype in ("short", "int", "long") and value != int(value):
                    value = math.ceil(value) if kind == "min" else math.floor(value)
                search.constraints.append(Constraint(column.name, kind, value))
        elif kind == "boolean":
            if text.lower() not in ("yes", "no", "true", "false", "1", "0"):
                search.errors[name] = f"{label} must be yes or no, not {text!r}"
            else:
                search.constraints.append(Constraint(
                    column.name, "eq", text.lower() in ("yes", "true", "1")))
        elif kind == "choice":
            spelt = {c.upper(): c for c in column.choices}
            if text.upper() not in spelt:
                search.errors[name] = (f"{label} must be one of "
                                       f"{', '.join(column.choices)}, not {text!r}")
            else:
                search.constraints.append(Constraint(column.name, "eq", spelt[text.upper()]))
        else:
            if len(text) > 200:
                search.errors[name] = f"the text to match in {label} is too long (> 200)"
            else:
                search.constraints.append(Constraint(column.name, "match", text))


def _area(search: Search, args, config, resolve) -> None:
    table = search.table
    shape = (args.get("shape") or "cone").strip().lower()
    if shape not in SHAPES:
        search.errors["shape"] = f"the area must be cone, box or range, not {shape!r}"
        return
    search.shape = shape
    pos = (args.get("pos") or "").strip()
    search.pos = pos
    given = [n for n in ("ra_min", "ra_max", "dec_min", "dec_max") if args.get(n, "").strip()]
    if not table.positional:
        if pos or (shape == "range" and given):
            search.errors["pos"] = (f"{table.name} has no positions: search it by its "
                                    f"columns only")
        return
    unit = (args.get("unit") or "arcmin").strip().lower()
    if unit not in UNITS:
        search.errors["unit"] = f"the unit must be arcsec, arcmin or deg, not {unit!r}"
        return
    limit = float(config["SCS_MAX_SR"])
    if shape == "range":
        if not given:
            return                  # no area: constraints alone
        values = {}
        for name in ("ra_min", "ra_max", "dec_min", "dec_max"):
            text = (args.get(name) or "").strip()
            if not text:
                search.errors[name] = f"give {name} (degrees) for an RA/Dec range"
                continue
            value = _number(search, name, text, name)
            if value is not None:
                values[name] = value
        if len(values) < 4:
            return
        for name in ("dec_min", "dec_max"):
            if not -90 <= values[name] <= 90:
                search.errors[name] = f"{name} must lie between -90 and 90 degrees"
        if values["dec_min"] > values["dec_max"]:
            search.errors["dec_max"] = "dec_max must not be below dec_min"
        for name in ("ra_min", "ra_max"):
            if not -360 <= values[name] <= 720:
                search.errors[name] = f"{name} must lie between 0 and 360 degrees"
        if not search.errors:
            search.box = (values["ra_min"], values["ra_max"], values["dec_min"],
                          values["dec_max"])
        return
    if not pos:
        if shape == "box":
            search.errors["pos"] = "give the centre of the box (a name or coordinates)"
        return                      # a cone without a position: constraints alone
    try:
        found = resolve(pos)
    except ArchiveFault as fault:
        search.errors["pos"] = fault.message
        return
    search.ra, search.dec = found.ra, found.dec
    search.resolver, search.resolved_name = found.resolver, found.resolved_name
    names = ("radius",) if shape == "cone" else ("width", "height")
    sizes = []
    for name in names:
        text = (args.get(name) or "").strip()
        if not text:
            search.errors[name] = f"give the {name} of the {shape}"
            continue
        value = _number(search, name, text, f"the {name}")
        if value is None:
            continue
        degrees = value * UNITS[unit]
        if value <= 0:
            search.errors[name] = f"the {name} must be positive (got {text})"
        elif degrees > (limit if shape == "cone" else 2 * limit):
            search.errors[name] = (f"the {name} is too large: {text} {unit}; at most "
                                   f"{limit if shape == 'cone' else 2 * limit:g} deg")
        else:
            sizes.append(degrees)
    if len(sizes) != len(names):
        return
    if shape == "cone":
        search.radius_deg = sizes[0]
    else:
        from ..sky import box_from_centre
        search.box = box_from_centre(search.ra, search.dec, sizes[0], sizes[1])


def _output(search: Search, args, config, formats) -> None:
    table = search.table
    names = [c.name for c in table.columns]
    search.verb = _integer(search, args, "verb", datamodel.VERB_STANDARD, 1, 3,
                           "the column set (verb)")
    chosen = [c for c in args.getlist("col") if c.strip()]
    for name in chosen:
        if name.strip().lower() not in names:
            search.errors["col"] = (f"there is no column {name!r} in {table.name}; its "
                                    f"columns are {', '.join(names)}")
    if chosen and "col" not in search.errors:
        search.columns = list(dict.fromkeys(n.strip().lower() for n in chosen))
    sort = (args.get("sort") or "").strip().lower()
    if sort:
        if sort not in names and not (sort == DISTANCE and table.positional):
            search.errors["sort"] = (f"cannot sort by {sort!r}: there is no such column "
                                     f"in {table.name}")
        else:
            search.sort = sort
    order = (args.get("order") or "asc").strip().lower()
    if order not in ("asc", "desc"):
        search.errors["order"] = f"the order must be asc or desc, not {order!r}"
    else:
        search.order = order
    hard = int(config["SEARCH_HARD_MAXREC"])
    search.maxrec = _integer(search, args, "maxrec", int(config["SEARCH_DEFAULT_MAXREC"]),
                             1, hard, "the row limit (maxrec)")
    search.page = _integer(search, args, "page", 1, 1, 10 ** 9, "the page")
    search.per_page = _integer(search, args, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE,
                               "the rows per page (per_page)")
    fmt = (args.get("format") or "html").strip().lower()
    if fmt != "html":
        try:
            fmt = formats(fmt).key
        except UsageFault as fault:
            search.errors["format"] = fault.message
    search.format = fmt


def parse(table: datamodel.Table, args, config, resolve, formats) -> Search:
    """The checked search of ``args`` on ``table``. ``resolve(text)`` gives a
    position (a ``Resolution``) or raises an ArchiveFault; ``formats(name)`` gives
    the output Format or raises UsageFault."""
    search = Search(table)
    search.values = {k: args.get(k) for k in args if k != "col"}
    search.values["col"] = args.getlist("col")
    _area(search, args, config, resolve)
    if search.positional and search.shape == "cone" and search.radius_deg is None \
            and "radius" not in search.errors:
        search.ra = None
    _constraints(search, args)
    _output(search, args, config, formats)
    if search.sort == DISTANCE and not search.positional and "pos" not in search.errors:
        search.errors["sort"] = "sort by distance (_r) needs a cone or box around a position"
    return search

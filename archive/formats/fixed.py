"""Fixed-width text ("fixed-width ASCII"), as astropy's ``ascii.fixed_width`` reads it.

::

    | extras_id            | camera |           ra |    fvar |
    | 0001730201_U002_PN_9 | PN     | 10.684708... | 0.12345 |

A header line of column names, then one line per row; columns are separated by
``|`` (with a space either side, and at both ends), numbers are right-aligned, text
left-aligned, nulls blank. The digits are those of the CSV writer (shortest
round-trip, floats at float32 precision, booleans ``true``/``false``), so the file
reads back (``astropy.io.ascii.read(text, format="fixed_width")``) to the same rows.
Text is UTF-8; tab, CR, LF and backslash inside values are written ``\\t``, ``\\r``,
``\\n``, ``\\\\`` (as in TSV) and other control characters as ``\\xNN``, so a row is
always one line.

Hand-written, not astropy's writer: ``astropy.io.ascii.write`` needs the whole table
in memory to measure its columns, and the result here is streamed chunk by chunk.
A stream cannot know its widest value beforehand, so each column's width is fixed
before the first row, from the column's metadata:

- numbers and booleans: the longest text the datatype can print (``short`` 6,
  ``int`` 11, ``long`` 20, ``float`` 15, ``double`` 24, ``boolean`` 5): every value
  fits, always;
- text and arrays with a declared size (``char(10)``, ``32*``, a point): that size;
- text and arrays of unbounded size (``*``): the widest value of the first chunk of
  rows (about 10,000 rows, the chunk the writer holds anyway);

and never narrower than the column's name. A later value wider than its column
(only possible for unbounded columns, or text whose escapes lengthen it) is cut to
the width, its last character replaced by ``…``, so the columns stay aligned; the
file then ends with a comment line (``# ...``, which astropy skips) saying how many
values were cut. A failure while streaming, or a result cut at the row limit, is
also said in a last comment line (``# ERROR: ...``, ``# OVERFLOW: ...``).
"""
from __future__ import annotations

from typing import Iterator

from .encode import control_escaped, layouts_for
from .stream import GuardedStream
from .text import column_texts

__all__ = ["render_fixed", "WIDTHS", "CUT"]

#: the longest text each numeric datatype prints (shortest round-trip digits with a
#: sign, a point and an exponent: float32 has at most 9 significant digits and a
#: 2-digit exponent, float64 17 and 3)
WIDTHS = {"boolean": 5, "unsignedByte": 3, "short": 6, "int": 11, "long": 20,
          "float": 15, "double": 24}
#: the last character of a value cut to its column's width
CUT = "…"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _escaped(values: list[str]) -> list[str]:
    joined = "".join(values)
    if "\\" in joined or "\t" in joined or "\n" in joined or "\r" in joined:
        values = [v.translate(_ESCAPES) for v in values]
    return control_escaped(values)


def _declared_width(lay) -> int | None:
    """The width of a column known before any row, or None (unbounded)."""
    if lay.kind == "scalar":
        return WIDTHS[lay.datatype]
    size = lay.count if lay.count is not None else lay.maximum
    if size is None:
        return None
    if lay.kind == "text":
        return size
    return size * (WIDTHS[lay.datatype] + 1) - 1        # elements separated by spaces


def render_fixed(result, *, errors: str = "document", **_options) -> Iterator[bytes]:
    """Stream ``result`` as fixed-width text with a header line."""
    layouts = layouts_for(result.columns)
    return _generate(result, layouts, errors)


def _generate(result, layouts, errors):
    # a "|" in a name would split the header line where astropy looks for columns
    names = [n.replace("|", "\\x7c") for n in _escaped([c.name for c in result.columns])]
    right = [lay.kind == "scalar" and lay.datatype != "boolean" for lay in layouts]
    widths: list[int] | None = None
    cut = 0

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    def encode(_n, cols) -> bytes:
        nonlocal widths, cut
        texts = [_escaped(t) for t in column_texts(cols, layouts)]
        head = ""
        if widths is None:                         # the first chunk fixes the widths
            widths = []
            for name, lay, values in zip(names, layouts, texts):
                width = _declared_width(lay)
                if width is None:
                    width = max(map(len, values), default=0)
                widths.append(max(width, len(name), 1))
            head = _header(names, widths) + "\n"
        cells = []
        for values, width, r in zip(texts, widths, right):
            if max(map(len, values), default=0) > width:
                cut += sum(len(v) > width for v in values)
                values = [v if len(v) <= width else v[:width - 1] + CUT for v in values]
            cells.append([v.rjust(width) if r else v.ljust(width) for v in values])
        return (head + "\n".join(map(line, zip(*cells))) + "\n").encode("utf-8")

    stream = GuardedStream(result, layouts, "fixed-width text")
    yield from stream.encoded(encode)
    if widths is None:                              # no rows: the names alone
        yield (_header(names, [max(len(n), 1) for n in names]) + "\n").encode("utf-8")
    status, message = stream.status()
    notes = []
    if cut:
        notes.append(f"# {cut} value{'s were' if cut > 1 else ' was'} wider than "
                     f"{'their' if cut > 1 else 'its'} column and cut, ending in {CUT}; "
                     f"the CSV, VOTable or FITS output of the same query has "
                     f"{'them' if cut > 1 else 'it'} whole")
    if status == "OVERFLOW":
        notes.append("# OVERFLOW: the result is cut at the row limit (MAXREC)")
    elif status == "ERROR":
        notes.append("# ERROR: " + message)
    if notes:
        yield ("\n".join(notes) + "\n").encode("utf-8")
    stream.raise_failure(errors)


def _header(names: list[str], widths: list[int]) -> str:
    return "| " + " | ".join(n.ljust(w) for n, w in zip(names, widths)) + " |"

"""The numpy decoder of uploaded BINARY/BINARY2 VOTables gives exactly what astropy gives."""
from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest

from archive.config import DEFAULTS
from archive.errors import UsageFault
from archive.tap import upload_votable, uploads
from archive.tap.upload_votable import read_binary_votable


FIELDS = [("b", "boolean", None), ("ub", "unsignedByte", None), ("s", "short", None),
          ("i", "int", None), ("l", "long", None), ("f", "float", None), ("d", "double", None),
          ("ra", "double", None), ("dec", "double", None), ("name", "char", "*"),
          ("code", "char", "3"), ("label", "unicodeChar", "*"), ("tag", "unicodeChar", "4")]


def mixed_rows(n: int = 40) -> list[list[str]]:
    """TABLEDATA cells of ``n`` rows of FIELDS; every fifth row has null numbers."""
    rng = np.random.default_rng(7)
    rows = []
    for k in range(n):
        null = k % 5 == 3
        num = (lambda text: "" if null else text)
        rows.append([
            "?" if null else "TF"[k % 2], num(str(k % 250)), num(str(rng.integers(-30000, 30000))),
            num(str(rng.integers(-2 ** 31 + 1, 2 ** 31 - 1))),
            num(str(rng.integers(-2 ** 62, 2 ** 62))),
            "NaN" if null else repr(float(np.float32(rng.normal()))),
            "NaN" if null else repr(float(rng.normal() * 1e5)),
            repr(float(rng.uniform(0, 360))), repr(float(rng.uniform(-90, 90))),
            f"src {k}" * (k % 4), chr(65 + k % 26) * (1 + k % 3), "\u00e9t\u00e9"[:k % 4],
            "\u2713" * (k % 3)])
    return rows


def to_votable(fmt: str, *, rows=None, fields=FIELDS, nulls=False, nrows=True) -> bytes:
    """The FIELDS table written by astropy as ``fmt`` (read from TABLEDATA first)."""
    from astropy.io import votable as vo
    from xml.sax.saxutils import escape
    rows = mixed_rows() if rows is None else rows
    null_values = {"unsignedByte": 255, "short": -32768, "int": -2147483648,
                   "long": -2 ** 63}

    def field(name, dt, size):
        text = f'<FIELD name="{name}" datatype="{dt}"'
        if size:
            text += f' arraysize="{size}"'
        if (nulls or fmt == "binary") and dt in null_values:
            # BINARY has no null flags: integer nulls need a declared null value
            return text + f'><VALUES null="{null_values[dt]}"/></FIELD>'
        return text + "/>"

    head = "".join(field(*f) for f in fields)
    body = "".join("<TR>" + "".join(f"<TD>{escape(c)}</TD>" for c in row) + "</TR>"
                   for row in rows)
    text = (f'<?xml version="1.0"?><VOTABLE version="1.4" '
            f'xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE>{head}'
            f"<DATA><TABLEDATA>{body}</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>")
    doc = vo.parse(io.BytesIO(text.encode("utf-8")), verify="ignore")
    doc.version = "1.4"
    out = io.BytesIO()
    doc.to_xml(out, tabledata_format=fmt)
    content = out.getvalue()
    if not nrows:               # astropy declares the row count; not every writer does
        content = re.sub(rb' nrows="\d+"', b"", content)
    return content


def by_astropy(content: bytes, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(upload_votable, "read_binary_votable", lambda content: None)
        return uploads.read_table(content, "t", DEFAULTS)


def assert_same(fast, slow):
    cols_f, values_f, n_f = fast
    cols_s, values_s, n_s = slow
    assert n_f == n_s
    assert cols_f == cols_s
    for col, got, want in zip(cols_f, values_f, values_s):
        assert len(got) == len(want) == n_f
        for i, (g, w) in enumerate(zip(got, want)):
            assert type(g) is type(w) and g == w, (col.name, i, g, w)


@pytest.mark.parametrize("fmt", ["binary", "binary2"])
@pytest.mark.parametrize("variant", ["plain", "null values", "no nrows"])
def test_fast_reader_matches_astropy(fmt, variant, monkeypatch):
    options = {"plain": {}, "null values": {"nulls": True}, "no nrows": {"nrows": False}}[variant]
    content = to_votable(fmt, **options)
    assert read_binary_votable(content) is not None, "the fast path should apply"
    assert_same(uploads.read_table(content, "t", DEFAULTS), by_astropy(content, monkeypatch))


def test_fast_reader_keeps_nulls_and_types():
    rows = mixed_rows()
    cols, values, n = uploads.read_table(to_votable("binary2"), "t", DEFAULTS)
    by_name = dict(zip([c.name for c in cols], values))
    assert n == len(rows)
    for name in ("b", "ub", "s", "i", "l", "f", "d"):
        assert [v is None for v in by_name[name]] == [k % 5 == 3 for k in range(n)], name
    assert {c.name: c.datatype for c in cols}["ub"] == "short"
    assert by_name["name"] == [r[9] for r in rows]
    assert by_name["code"] == [r[10] for r in rows]
    assert by_name["label"] == [r[11] for r in rows]
    assert by_name["tag"] == [r[12] for r in rows]


def test_large_upload_decodes_in_one_piece():
    n = 20000
    fields = [("id", "int", None), ("ra", "double", None), ("dec", "double", None)]
    rows = [[str(k), repr(k * 0.01), repr(-89 + k * 0.005)] for k in range(n)]
    cols, values, nrows = uploads.read_table(to_votable("binary2", rows=rows, fields=fields),
                                             "big", DEFAULTS)
    assert nrows == n
    assert values[0] == list(range(n))
    assert values[2] == [-89 + k * 0.005 for k in range(n)]


@pytest.mark.parametrize("case", ["tabledata", "two tables", "truncated", "bit column",
                                  "gzip stream", "comment", "empty"])
def test_other_documents_are_left_to_astropy(case, monkeypatch):
    fields = [("a", "int", None), ("x", "double", None)]
    rows = [[str(k), str(k / 2)] for k in range(5)]
    content = to_votable("binary2", rows=rows, fields=fields)
    if case == "tabledata":
        content = to_votable("tabledata", rows=rows, fields=fields)
    elif case == "two tables":
        start = re.search(rb"<TABLE\b", content).start()
        end = content.index(b"</TABLE>") + len(b"</TABLE>")
        content = content[:end] + content[start:end] + content[end:]
    elif case == "truncated":
        start = content.index(b'base64">') + len(b'base64">')
        end = content.index(b"</STREAM>")
        raw = base64.b64decode(content[start:end])[:-3]
        content = content[:start] + base64.b64encode(raw) + content[end:]
    elif case == "bit column":
        content = content.replace(b'datatype="int"', b'datatype="bit"')
    elif case == "gzip stream":
        content = content.replace(b'encoding="base64"', b'encoding="gzip"')
    elif case == "comment":
        content = content.replace(b"<DATA>", b"<!-- <DATA> --><DATA>")
    elif case == "empty":
        content = content.replace(b"<DATA>", b"<DATA/><!--").replace(b"</DATA>",
                                                                      b"-->")
    assert read_binary_votable(content) is None
    if case in ("tabledata", "two tables", "truncated", "comment", "empty"):
        # astropy still reads these
        cols, values, n = uploads.read_table(content, "t", DEFAULTS)
        assert [c.name for c in cols] == ["a", "x"]


def test_non_ascii_text_gets_astropy_error():
    content = to_votable("binary2", rows=[["abc"], ["dxf"]], fields=[("name", "char", "*")])
    assert b'datatype="char"' in content
    start = content.index(b'base64">') + len(b'base64">')
    end = content.index(b"</STREAM>")
    raw = base64.b64decode(content[start:end]).replace(b"dxf", b"d\xe9f")
    content = content[:start] + base64.b64encode(raw) + content[end:]
    assert read_binary_votable(content) is None
    with pytest.raises(UsageFault, match="UPLOAD table t: the VOTable cannot be read"):
        uploads.read_table(content, "t", DEFAULTS)


def test_merged_neighbour_ranges_cover_the_same_cells():
    import healpy as hp
    from archive.sky import ORDER
    rng = np.random.default_rng(3)
    ra = np.concatenate([rng.uniform(0, 360, 2000), [0.0, 45.0, 359.9999, 10.0]])
    dec = np.concatenate([rng.uniform(-90, 90, 2000), [90.0, 41.8103, -89.9999, 0.0]])
    order = uploads.crossmatch_order(5 / 3600)
    lo, hi, used = uploads._neighbour_ranges(order, ra, dec)
    shift = 1 << (2 * (ORDER - order))
    nside = 1 << order
    cells = np.vstack([hp.ang2pix(nside, ra, dec, nest=True, lonlat=True)[None, :],
                       hp.get_all_neighbours(nside, ra, dec, nest=True, lonlat=True)]).T
    assert used.sum(axis=1).mean() < 6            # merging saves probes
    for row in range(len(ra)):
        want = {int(c) for c in cells[row] if c >= 0}
        got = set()
        for a, b in zip(lo[row][used[row]], hi[row][used[row]]):
            assert a % shift == 0 and b % shift == 0 and b > a
            got |= set(range(a // shift, b // shift))
        assert got == want, row

"""The output-format registry and its streaming writers, read back by real readers."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import tracemalloc
import warnings
import xml.etree.ElementTree as ET
from decimal import Decimal

import numpy as np
import pytest
from astropy.io import fits
from astropy.io.votable import parse as parse_votable

from archive.errors import FatalFault, UsageFault
from archive.formats import Format, all_formats, get_format, register
from archive.formats.votable import error_document
from archive.result import QueryResult, ResultColumn
from helpers import query_result, render, votable_of

VOT_NS = "{http://www.ivoa.net/xml/VOTable/v1.3}"

# -- a result with every datatype, nulls everywhere, non-ASCII text -------------------

COLUMNS = [
    ResultColumn("id", "char", arraysize="*", ucd="meta.id;meta.main", field_id="pubdid",
                 description='identifier with <markup> & "quotes"'),
    ResultColumn("obs", "char", arraysize="10", ucd="meta.id;obs"),
    ResultColumn("flag", "boolean", ucd="meta.code"),
    ResultColumn("byte", "unsignedByte"),
    ResultColumn("s", "short"),
    ResultColumn("i", "int"),
    ResultColumn("l", "long"),
    ResultColumn("f", "float", unit="ct.s**-1", ucd="phot.count"),
    ResultColumn("d", "double", unit="deg", ucd="pos.eq.ra;meta.main"),
    ResultColumn("t", "char", arraysize="*", xtype="timestamp"),
    ResultColumn("p", "double", arraysize="2", unit="deg", xtype="point"),
    ResultColumn("c", "double", arraysize="3", unit="deg", xtype="circle"),
    ResultColumn("u", "unicodeChar", arraysize="*"),
]
POLYGON = ResultColumn("poly", "double", arraysize="*", unit="deg", xtype="polygon")

# rows as SQLite/PostgreSQL return them: 0/1 and True/False booleans, ints in float
# columns, Decimal, datetime, geometry as lists, tuples and text
ROWS = [
    ("a1", "0123456789", 1, 7, 1, 2, 3, 0.1, 10.5, "2020-01-01 12:00:00", [1.0, 2.0],
     (1.0, 2.0, 0.5), "plain"),
    (None, None, None, None, None, None, None, None, None, None, None, None, None),
    ("Zürich ✓ <&> \"q\" 🚀", "x", 0, 255, -32767, -5, 2**40, 1, Decimal("-0.25"),
     dt.datetime(2021, 2, 3, 4, 5, 6), "3 4", "{10, 20, 0.1}", "Zürich ✓"),
    ("comma, quote\" tab\tnewline\nend", "abcdefghijklmn", True, 0, 32767, 2**31 - 1,
     -2**62, float("nan"), float("inf"), "2022-12-31T23:59:59", (0.0, -90.0),
     [359.9, 89.9, 1.0], ""),
    ("", "", False, 1, 0, 0, 0, 1e-30, -1e300, "1999-01-01T00:00:00", [5, 6], [1, 2, 3], "x"),
]
POLYGONS = [[1, 2, 3, 4, 5, 6], None, "10 20 30 40 50 60 70 80", [0, 0, 1, 0, 1, 1], []]

EXPECTED = {   # (values, nulls) as a reader of a VOTable should see them
    "id": ["a1", None, "Z\\xfcrich \\u2713 <&> \"q\" \\U0001f680",
           "comma, quote\" tab\tnewline\nend", ""],
    "obs": ["0123456789", None, "x", "abcdefghij", ""],
    "flag": [True, None, False, True, False],
    "byte": [7, None, 255, 0, 1],
    "s": [1, None, -32767, 32767, 0],
    "i": [2, None, -5, 2**31 - 1, 0],
    "l": [3, None, 2**40, -2**62, 0],
    "f": [np.float32(0.1), None, 1.0, None, np.float32(1e-30)],
    "d": [10.5, None, -0.25, math.inf, -1e300],
    "t": ["2020-01-01T12:00:00", None, "2021-02-03T04:05:06", "2022-12-31T23:59:59",
          "1999-01-01T00:00:00"],
    "p": [[1.0, 2.0], None, [3.0, 4.0], [0.0, -90.0], [5.0, 6.0]],
    "c": [[1.0, 2.0, 0.5], None, [10.0, 20.0, 0.1], [359.9, 89.9, 1.0], [1.0, 2.0, 3.0]],
    "u": ["plain", None, "Zürich ✓", "", "x"],
}


def make_result(rows=ROWS, columns=COLUMNS, **options):
    """A QueryResult over ``rows`` of ``COLUMNS`` (see ``helpers.query_result``)."""
    return query_result(columns, rows, **options)


def votable_table(data: bytes):
    """The first table; any astropy VOTable warning fails."""
    return votable_of(data).get_first_table()


def _cell(value, mask):
    if np.ndim(mask) and np.all(mask):
        return None
    if not np.ndim(mask) and mask:
        return None
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.item() if hasattr(value, "item") else value


def check_expected(table):
    arr = table.array
    names = [f.name for f in table.fields]
    for col, name in zip(COLUMNS, names):
        expected = EXPECTED[col.name]
        got = [_cell(v, m) for v, m in zip(arr[name].data, arr[name].mask)]
        if col.datatype in ("char", "unicodeChar"):
            # VOTable cannot tell an empty string from a null string
            expected = [e if e is not None else "" for e in expected]
            got = [g if g is not None else "" for g in got]
        for e, g in zip(expected, got):
            if e is None:
                assert g is None, (col.name, expected, got)
            elif isinstance(e, float) and math.isinf(e):
                assert g == e
            elif isinstance(e, (float, np.floating)):
                assert g == pytest.approx(float(e), rel=1e-7), (col.name, e, g)
            elif isinstance(e, list):
                assert g == pytest.approx(e), (col.name, e, g)
            else:
                assert g == e, (col.name, expected, got)


# -- the registry ---------------------------------------------------------------------

@pytest.mark.parametrize("name, key", [
    ("votable", "votable"), ("VOTABLE", "votable"), ("application/x-votable+xml", "votable"),
    ("text/xml", "votable"), ("votable/b2", "votable"), ("binary2", "votable"),
    ("application/x-votable+xml;serialization=BINARY2", "votable"),
    ("votable/td", "votable/td"), ("votabletd", "votable/td"), ("VOTableTD", "votable/td"),
    ("application/x-votable+xml;serialization=tabledata", "votable/td"),
    ("application/x-votable+xml ; serialization = TABLEDATA", "votable/td"),
    ("application/fits", "fits"), ("fits", "fits"),
    ("text/csv", "csv"), ("text/csv;header=present", "csv"), ("text/csv; header=present", "csv"),
    ("csv", "csv"), (" CSV ", "csv"),
    ("text/tab-separated-values", "tsv"), ("tsv", "tsv"),
    ("application/json", "json"), ("json", "json"),
    ("text/html", "html"), ("html", "html"),
])
def test_get_format_by_key_alias_and_mime(name, key):
    assert get_format(name).key == key


@pytest.mark.parametrize("name", [None, "", "   "])
def test_missing_format_is_the_default_votable(name):
    assert get_format(name).key == "votable"


@pytest.mark.parametrize("name", ["xml", "text/rtf", "votable/binary", "application/pdf",
                                  "text/csv;header=absent", "fits/image"])
def test_unknown_format_is_a_usage_fault_listing_the_known_ones(name):
    with pytest.raises(UsageFault) as info:
        get_format(name)
    message = str(info.value)
    assert repr(name) in message
    for known in ("votable", "application/x-votable+xml", "text/csv;header=present",
                  "application/fits", "tsv", "json", "html"):
        assert known in message


def test_content_type_echoes_a_requested_mime_of_the_format():
    vot = get_format("text/xml")
    assert vot.content_type("text/xml") == "text/xml"
    assert vot.content_type("application/x-votable+xml") == "application/x-votable+xml"
    assert vot.content_type("votable") == "application/x-votable+xml"
    assert vot.content_type(None) == "application/x-votable+xml"
    assert vot.content_type("text/csv") == "application/x-votable+xml"
    assert get_format("csv").content_type("csv") == "text/csv;header=present"
    assert get_format("csv").content_type("text/csv") == "text/csv"


def test_all_formats_lists_every_format_once_with_metadata():
    formats = all_formats()
    keys = [f.key for f in formats]
    assert keys[0] == "votable"
    assert set(keys) == {"votable", "votable/td", "fits", "csv", "tsv", "fixed", "json",
                         "html"}
    for f in formats:
        assert f.mime and f.label and f.extension and f.mime in f.mimes


def test_register_refuses_a_name_taken_by_another_format():
    with pytest.raises(ValueError, match="taken by csv"):
        register(Format("csv2", "text/csv", "CSV again", "csv", lambda r: iter(())))
    assert get_format("text/csv").key == "csv"


# -- VOTable --------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["votable", "votable/td"])
def test_votable_reads_back_with_astropy(key):
    data = render(key, make_result())
    table = votable_table(data)
    assert len(table.array) == len(ROWS)
    check_expected(table)
    fields = {f.name: f for f in table.fields}
    assert fields["id"].ID == "pubdid"
    assert fields["id"].description == 'identifier with <markup> & "quotes"'
    assert fields["f"].unit == "ct / s"
    assert fields["d"].ucd == "pos.eq.ra;meta.main"
    assert fields["t"].xtype == "timestamp" and fields["p"].xtype == "point"
    assert fields["u"].datatype == "unicodeChar"


def test_binary2_and_tabledata_give_identical_values_and_masks():
    b2 = votable_table(render("votable", make_result(chunk=3))).array
    td = votable_table(render("votable/td", make_result(chunk=1))).array
    for name in b2.dtype.names:
        assert b2[name].mask.tolist() == td[name].mask.tolist(), name
        a = np.asarray(b2[name].data.tolist(), dtype=object)
        b = np.asarray(td[name].data.tolist(), dtype=object)
        assert [repr(x) for x in a[~np.asarray(b2[name].mask).reshape(len(a), -1).all(1)]] \
            == [repr(x) for x in b[~np.asarray(td[name].mask).reshape(len(b), -1).all(1)]], name


@pytest.mark.parametrize("key", ["votable", "votable/td"])
def test_polygon_column_reads_back(key):
    rows = [r[:1] + (p,) for r, p in zip(ROWS, POLYGONS)]
    table = votable_table(render(key, make_result(rows, [COLUMNS[0], POLYGON])))
    got = [None if m is True or (np.ndim(m) == 0 and m) else list(v)
           for v, m in zip(table.array["poly"].data, table.array["poly"].mask)]
    assert got[0] == [1, 2, 3, 4, 5, 6]
    assert got[2] == [10, 20, 30, 40, 50, 60, 70, 80]
    assert got[3] == [0, 0, 1, 0, 1, 1]
    assert not got[1] and not got[4]          # null and empty are both empty arrays


@pytest.mark.parametrize("key", ["votable", "votable/td"])
def test_votable_structure_infos_and_resources(key):
    descriptor = ('<RESOURCE type="meta" utype="adhoc:service">'
                  '<PARAM name="standardID" datatype="char" arraysize="*" '
                  'value="ivo://ivoa.net/std/DataLink#links-1.1"/></RESOURCE>')
    data = render(key, make_result(infos=[("QUERY", "SELECT * FROM t WHERE a < 1", None),
                                          ("request_date", None, "today & <now>")],
                                   resources=[descriptor]))
    root = ET.fromstring(data)
    assert root.tag == VOT_NS + "VOTABLE" and root.get("version") == "1.4"
    resources = root.findall(VOT_NS + "RESOURCE")
    assert [r.get("type") for r in resources] == ["results", "meta"]
    children = [(c.tag.replace(VOT_NS, ""), c.get("name")) for c in resources[0]]
    assert children == [("INFO", "QUERY_STATUS"), ("INFO", "QUERY"), ("INFO", "request_date"),
                        ("TABLE", None)]
    infos = resources[0].findall(VOT_NS + "INFO")
    assert infos[0].get("value") == "OK"
    assert infos[1].get("value") == "SELECT * FROM t WHERE a < 1"
    assert infos[2].get("value") == "" and infos[2].text == "today & <now>"
    assert resources[1].find(VOT_NS + "PARAM").get("value").endswith("links-1.1")


@pytest.mark.parametrize("key", ["votable", "votable/td"])
def test_overflow_info_follows_the_table(key):
    data = render(key, make_result(overflow=True))
    resource = ET.fromstring(data).find(VOT_NS + "RESOURCE")
    tags = [(c.tag.replace(VOT_NS, ""), c.get("value")) for c in resource]
    assert tags == [("INFO", "OK"), ("TABLE", None), ("INFO", "OVERFLOW")]
    assert len(votable_table(data).array) == len(ROWS)


@pytest.mark.parametrize("key", ["votable", "votable/td"])
def test_no_overflow_info_without_overflow(key):
    data = render(key, make_result(overflow=False))
    assert b"OVERFLOW" not in data


@pytest.mark.parametrize("key", ["votable", "votable/td"])
def test_error_mid_stream_keeps_the_document_well_formed(key):
    data = render(key, make_result(chunk=2, fail_after=1))
    resource = ET.fromstring(data).find(VOT_NS + "RESOURCE")
    last = list(resource)[-1]
    assert last.get("name") == "QUERY_STATUS" and last.get("value") == "ERROR"
    assert "after 2 rows" in last.text and "disk on fire" in last.text
    table = votable_table(data)
    assert len(table.array) == 2             # the rows written before the failure


def test_error_mid_stream_reraises_when_asked():
    pieces = []
    with pytest.raises(RuntimeError, match="disk on fire"):
        for piece in get_format("votable").render(make_result(fail_after=1), errors="raise"):
            pieces.append(piece)
    ET.fromstring(b"".join(pieces))          # complete before the exception


def test_a_value_that_does_not_fit_its_column_ends_in_an_error_info():
    rows = [(1,), (2,), ("not a number",)]
    data = render("votable", make_result(rows, [ResultColumn("n", "int")], chunk=2))
    last = list(ET.fromstring(data).find(VOT_NS + "RESOURCE"))[-1]
    assert last.get("value") == "ERROR"
    assert "column n" in last.text and "int" in last.text
    assert len(votable_table(data).array) == 2


def test_short_overflow_is_reported_not_wrapped():
    data = render("votable", make_result([(70000,)], [ResultColumn("s", "short")]))
    last = list(ET.fromstring(data).find(VOT_NS + "RESOURCE"))[-1]
    assert last.get("value") == "ERROR" and "column s" in last.text


@pytest.mark.parametrize("key", [f.key for f in all_formats()])
def test_unsupported_datatype_fails_before_the_first_byte(key):
    result = make_result([(1 + 2j,)], [ResultColumn("z", "doubleComplex")])
    with pytest.raises(FatalFault, match="column z: datatype 'doubleComplex'"):
        get_format(key).render(result)


@pytest.mark.parametrize("key", [f.key for f in all_formats()])
def test_bad_arraysize_fails_before_the_first_byte(key):
    with pytest.raises(FatalFault, match="arraysize 'many'"):
        get_format(key).render(make_result([("x",)], [ResultColumn("a", "char", arraysize="many")]))


def test_row_with_wrong_number_of_values_is_reported():
    data = render("votable/td", make_result([(1, 2)], [ResultColumn("n", "int")]))
    last = list(ET.fromstring(data).find(VOT_NS + "RESOURCE"))[-1]
    assert last.get("value") == "ERROR" and "2 values but 1 columns" in last.text


@pytest.mark.parametrize("key", ["votable", "votable/td"])
def test_empty_result_declares_every_field(key):
    table = votable_table(render(key, make_result([])))
    assert len(table.array) == 0
    assert [f.name for f in table.fields] == [c.name for c in COLUMNS]


def test_control_characters_are_escaped_so_xml_stays_valid():
    rows = [("bell\x07 nul\x00 cr\r esc\x1b",)]
    for key in ("votable", "votable/td"):
        table = votable_table(render(key, make_result(rows, [ResultColumn("s", "char")])))
        assert table.array["s"][0] == "bell\\x07 nul\\x00 cr\\x0d esc\\x1b"


def test_error_document_is_a_dali_error():
    doc = error_document('bad query: "x" < 3 & so on')
    root = ET.fromstring(doc)
    assert root.get("version") == "1.4"
    resource = root.find(VOT_NS + "RESOURCE")
    assert resource.get("type") == "results"
    (info,) = resource.findall(VOT_NS + "INFO")
    assert info.get("name") == "QUERY_STATUS" and info.get("value") == "ERROR"
    assert info.text == 'bad query: "x" < 3 & so on'


def test_error_document_for_cone_search_is_recognised_by_pyvo():
    from pyvo.dal import DALQueryError
    from pyvo.dal.scs import SCSResults
    doc = error_document(UsageFault("DEC must be within [-90, 90], got 95"), scs=True)
    infos = ET.fromstring(doc).find(VOT_NS + "RESOURCE").findall(VOT_NS + "INFO")
    assert [(i.get("name"), i.get("value")) for i in infos] == [
        ("QUERY_STATUS", "ERROR"), ("Error", "DEC must be within [-90, 90], got 95")]
    with pytest.raises(DALQueryError, match="DEC must be within"):
        SCSResults(parse_votable(io.BytesIO(doc)))


def test_tap_error_document_is_recognised_by_pyvo():
    from pyvo.dal import DALQueryError
    from pyvo.dal.tap import TAPResults
    with pytest.raises(DALQueryError, match="no such table"):
        TAPResults(parse_votable(io.BytesIO(error_document("no such table: x"))))


def test_pyvo_reads_overflow_from_the_trailing_info():
    from pyvo.dal.tap import TAPResults
    results = TAPResults(parse_votable(io.BytesIO(render("votable", make_result(overflow=True)))))
    assert results.query_status == "OVERFLOW"
    assert len(results) == len(ROWS)
    results = TAPResults(parse_votable(io.BytesIO(render("votable", make_result()))))
    assert results.query_status == "OK"


# -- FITS -----------------------------------------------------------------------------

def test_fits_reads_back_with_astropy(tmp_path):
    path = tmp_path / "r.fits"
    path.write_bytes(render("fits", make_result(infos=[("QUERY", "SELECT 1", None)])))
    assert path.stat().st_size % 2880 == 0
    with fits.open(path) as hdul:
        hdul.verify("exception")
        assert len(hdul) == 2 and hdul[0].header["NAXIS"] == 0
        hdr = hdul[1].header
        assert hdr["NAXIS2"] == len(ROWS) and hdr["EXTNAME"] == "RESULT"
        assert hdr["TUNIT9"] == "deg" and hdr["TUCD9"] == "pos.eq.ra;meta.main"
        assert hdr["TCOMM1"] == 'identifier with <markup> & "quotes"'
        assert "OVERFLOW" not in hdr
        assert "QUERY = SELECT 1" in str(hdr["COMMENT"])
        data = hdul[1].data
        assert [str(x) for x in data["id"]] == [e or "" for e in EXPECTED["id"]]
        assert [str(x) for x in data["obs"]] == [e or "" for e in EXPECTED["obs"]]
        assert [str(x) for x in data["u"]] == ["plain", "", "Z\\xfcrich \\u2713", "", "x"]
        assert [str(x) for x in data["t"]] == [e or "" for e in EXPECTED["t"]]
        for name in ("byte", "s", "i", "l"):
            tnull = hdr[f"TNULL{COLUMNS.index(next(c for c in COLUMNS if c.name == name)) + 1}"]
            got = [None if v == tnull else int(v) for v in data[name]]
            assert got == EXPECTED[name], name
        f = data["f"]
        assert math.isnan(f[1]) and math.isnan(f[3]) and f[0] == np.float32(0.1)
        assert data["d"][3] == math.inf and math.isnan(data["d"][1])
        assert data["p"][2].tolist() == [3.0, 4.0] and np.isnan(data["p"][1]).all()
        assert data["c"][3].tolist() == [359.9, 89.9, 1.0]
    with fits.open(path) as hdul, warnings.catch_warnings():
        warnings.simplefilter("ignore")        # astropy warns that null logicals are False
        assert hdul[1].data["flag"].tolist() == [True, False, False, True, False]
    raw = fits.open(path, logical_as_bytes=True)[1].data["flag"].tolist()
    assert raw == [b"T", b"", b"F", b"T", b"F"]           # the null is a 0 byte


def test_fits_polygon_as_variable_length_array(tmp_path):
    rows = [r[:1] + (p,) for r, p in zip(ROWS, POLYGONS)]
    path = tmp_path / "p.fits"
    path.write_bytes(render("fits", make_result(rows, [COLUMNS[0], POLYGON])))
    with fits.open(path) as hdul:
        hdul.verify("exception")
        assert hdul[1].header["TFORM2"] == "PD(8)"
        got = [list(v) for v in hdul[1].data["poly"]]
    assert got == [[1, 2, 3, 4, 5, 6], [], [10, 20, 30, 40, 50, 60, 70, 80],
                   [0, 0, 1, 0, 1, 1], []]


def test_fits_overflow_and_empty_result(tmp_path):
    path = tmp_path / "o.fits"
    path.write_bytes(render("fits", make_result(overflow=True)))
    with fits.open(path) as hdul:
        assert hdul[1].header["OVERFLOW"] is True
    path.write_bytes(render("fits", make_result([])))
    with fits.open(path) as hdul:
        hdul.verify("exception")
        assert hdul[1].header["NAXIS2"] == 0
        assert hdul[1].columns.names == [c.name for c in COLUMNS]


def test_fits_error_while_spooling_raises_before_any_byte():
    gen = get_format("fits").render(make_result(fail_after=1))
    with pytest.raises(RuntimeError, match="disk on fire"):
        next(gen)


# -- CSV, TSV, JSON, HTML -------------------------------------------------------------

def test_csv_reads_back_with_the_csv_module():
    text = render("csv", make_result()).decode("utf-8")
    assert text.startswith("id,obs,flag,")
    assert "\r\n" in text
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == [c.name for c in COLUMNS]
    body = rows[1:]
    assert len(body) == len(ROWS)
    assert body[1] == [""] * len(COLUMNS)                      # all nulls
    assert body[2][0] == "Zürich ✓ <&> \"q\" 🚀"                # UTF-8, unescaped
    assert body[3][0] == "comma, quote\" tab\tnewline\nend"    # RFC 4180 quoting
    col = {c.name: i for i, c in enumerate(COLUMNS)}
    assert [r[col["flag"]] for r in body] == ["true", "", "false", "true", "false"]
    assert [r[col["f"]] for r in body] == ["0.1", "", "1.0", "", "1e-30"]
    assert [r[col["d"]] for r in body] == ["10.5", "", "-0.25", "inf", "-1e+300"]
    assert body[0][col["t"]] == "2020-01-01T12:00:00"
    assert body[2][col["p"]] == "3.0 4.0"
    assert body[2][col["l"]] == str(2**40)


def test_tsv_escapes_tabs_and_newlines():
    text = render("tsv", make_result()).decode("utf-8")
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) == len(ROWS) + 2
    assert lines[0].split("\t") == [c.name for c in COLUMNS]
    assert all(len(line.split("\t")) == len(COLUMNS) for line in lines[1:-1])
    assert lines[4].split("\t")[0] == "comma, quote\" tab\\tnewline\\nend"


def test_json_reads_back():
    doc = json.loads(render("json", make_result(infos=[("QUERY", "SELECT 1", None)])))
    assert [c["name"] for c in doc["columns"]] == [c.name for c in COLUMNS]
    assert doc["columns"][8] == {"name": "d", "datatype": "double", "arraysize": None,
                                 "unit": "deg", "ucd": "pos.eq.ra;meta.main",
                                 "utype": None, "xtype": None, "description": None}
    assert doc["overflow"] is False and doc["status"] == "OK"
    assert doc["infos"] == [{"name": "QUERY", "value": "SELECT 1", "text": None}]
    data = doc["data"]
    assert data[1] == [None] * len(COLUMNS)
    col = {c.name: i for i, c in enumerate(COLUMNS)}
    assert [r[col["flag"]] for r in data] == [True, None, False, True, False]
    assert [r[col["f"]] for r in data] == [0.1, None, 1.0, None, 1e-30]
    assert [r[col["d"]] for r in data] == [10.5, None, -0.25, None, -1e300]
    assert [r[col["l"]] for r in data] == EXPECTED["l"]
    assert data[2][0] == "Zürich ✓ <&> \"q\" 🚀"
    assert data[2][col["c"]] == [10.0, 20.0, 0.1]


def test_json_overflow_and_error_mid_stream():
    assert json.loads(render("json", make_result(overflow=True)))["status"] == "OVERFLOW"
    doc = json.loads(render("json", make_result(fail_after=1)))
    assert doc["status"] == "ERROR" and "disk on fire" in doc["error"]
    assert len(doc["data"]) == 2 and doc["overflow"] is False
    assert doc["error"].startswith("the result is incomplete: streaming failed after 2 rows")
    doc = json.loads(render("json", make_result([])))
    assert doc["data"] == [] and len(doc["columns"]) == len(COLUMNS)


def test_html_escapes_everything():
    rows = [("<script>alert(1)</script>", "a&b")]
    columns = [ResultColumn("<b>x</b>", "char", description='"><img src=x>'),
               ResultColumn("y", "char", unit="<u>")]
    page = render("html", make_result(rows, columns, infos=[("QUERY", "<q>", "&")]))
    text = page.decode("utf-8")
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<b>x</b>" not in text and "<img" not in text and "<u>" not in text
    assert "a&amp;b" in text
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "1 rows." in text


def test_html_reports_overflow_and_errors():
    assert "truncated at 5 rows" in render("html", make_result(overflow=True)).decode()
    text = render("html", make_result(fail_after=1)).decode()
    assert "disk on fire" in text and text.rstrip().endswith("</html>")
    assert "The result is incomplete: streaming failed after 2 rows" in text


@pytest.mark.parametrize("key", ["csv", "tsv"])
def test_text_formats_abort_on_error_mid_stream(key):
    with pytest.raises(RuntimeError, match="disk on fire"):
        render(key, make_result(fail_after=1))


# -- memory stays flat ----------------------------------------------------------------

MEMORY_COLUMNS = [ResultColumn("id", "char", arraysize="*"), ResultColumn("n", "long"),
                  ResultColumn("x", "double"), ResultColumn("y", "float"),
                  ResultColumn("ok", "boolean"), ResultColumn("cam", "char", arraysize="2")]


def lazy_result(rows: int, chunk: int = 10000) -> QueryResult:
    """``rows`` rows, never more than one chunk alive (three chunk templates cycled,
    so that generating rows does not dominate the time under tracemalloc)."""
    templates = [[(f"src{k}{i}", k * chunk + i, i * 0.5, None if i % 7 == 0 else 1.5,
                   i % 2, "PN") for i in range(chunk)] for k in range(3)]

    def generate():
        for k, start in enumerate(range(0, rows, chunk)):
            yield list(templates[k % 3][:rows - start])
    return QueryResult(MEMORY_COLUMNS, maxrec=None, chunks=generate())


@pytest.mark.parametrize("key, rows", [("votable", 1_000_000), ("fits", 1_000_000),
                                       ("votable/td", 300_000), ("csv", 300_000),
                                       ("tsv", 300_000), ("json", 300_000),
                                       ("html", 100_000)])
def test_memory_stays_flat(key, rows):
    fmt = get_format(key)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        size = 0
        for piece in fmt.render(lazy_result(rows)):
            size += len(piece)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert size > rows * 20                    # the whole result went through
    # one chunk in flight costs about 12 MB here; holding the output would cost 35+ MB
    assert peak < 25e6, f"{key}: peak traced memory grew by {peak / 1e6:.0f} MB"


# -- rows as the real executor returns them, on both databases -------------------------

def test_executor_rows_on_each_database(backend, tmp_path):
    """Booleans, reals, timestamps and text as SQLite/PostgreSQL return them."""
    import sqlalchemy as sa
    from conftest import new_database_url
    from archive.query import execute
    engine = sa.create_engine(new_database_url(backend, tmp_path))
    meta = sa.MetaData()
    t = sa.Table("t", meta, sa.Column("k", sa.Integer, primary_key=True),
                 sa.Column("ok", sa.Boolean), sa.Column("r", sa.REAL),
                 sa.Column("d", sa.Float(precision=53)), sa.Column("n", sa.BigInteger),
                 sa.Column("name", sa.String), sa.Column("at", sa.DateTime))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), [
            {"k": 1, "ok": True, "r": 0.1, "d": 1.5, "n": 2**40, "name": "Zürich",
             "at": dt.datetime(2020, 1, 2, 3, 4, 5)},
            {"k": 2, "ok": None, "r": None, "d": None, "n": None, "name": None, "at": None},
            {"k": 3, "ok": False, "r": 2, "d": -1, "n": 7, "name": "x", "at": None}])
    columns = [ResultColumn("ok", "boolean"), ResultColumn("r", "float"),
               ResultColumn("d", "double"), ResultColumn("n", "long"),
               ResultColumn("name", "char"), ResultColumn("at", "char", arraysize="*", xtype="timestamp")]
    stmt = sa.select(t.c.ok, t.c.r, t.c.d, t.c.n, t.c.name, t.c.at).order_by(t.c.k)
    try:
        result = execute(engine, stmt, columns, maxrec=2, timeout=30)
        table = votable_table(render("votable", result))
        assert result.overflow is True
        arr = table.array
        assert arr["ok"].tolist() == [True, None]
        assert arr["r"][0] == np.float32(0.1) and arr["r"].mask.tolist() == [False, True]
        assert arr["n"][0] == 2**40 and arr["n"].mask.tolist() == [False, True]
        assert arr["name"][0] == "Z\\xfcrich"
        assert arr["at"][0] == "2020-01-02T03:04:05"
        result = execute(engine, stmt, columns, maxrec=None, timeout=30)
        doc = json.loads(render("json", result))
        assert [r[0] for r in doc["data"]] == [True, None, False]
        assert doc["data"][2][1:4] == [2.0, -1.0, 7]
    finally:
        engine.dispose()

"""Fixed-width text (archive/formats/fixed.py): the search URL's ``format=fixed`` reads
back with astropy's ``fixed_width`` reader to the rows of the CSV of the same URL (SQLite
and PostgreSQL); TAP's RESPONSEFORMAT serves it too; numbers of every datatype fit their
column whatever their value; a text value wider than its column is cut with a marker and
a note, never misaligning the columns; a failure while streaming is said at the end."""
from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from astropy.io import ascii as astropy_ascii

from archive.db import get_db

from archive.formats import get_format
from archive.formats.fixed import CUT, WIDTHS
from archive.result import ResultColumn
from helpers import query_result, render

URL = "/search/aperiodic"


def _read(text: str):
    return astropy_ascii.read(text, format="fixed_width")


def _cells(table) -> list[list[str]]:
    """Every cell as text (masked: ""), for comparing two readings."""
    out = []
    for row in table:
        out.append(["" if np.ma.is_masked(v) else str(v) for v in row])
    return out


def _aligned(text: str) -> None:
    """Every line (comments aside) has its | at the same places as the header."""
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    bars = [i for i, ch in enumerate(lines[0]) if ch == "|"]
    for ln in lines[1:]:
        assert len(ln) == len(lines[0]), ln
        assert all(ln[i] == "|" for i in bars), ln


@pytest.mark.parametrize("params", [
    {"camera": "PN", "verb": "3"},                                   # every column
    {"radius": "10", "unit": "deg", "sort": "fvar", "order": "desc"},
])
def test_search_download_reads_back_to_the_csv_rows(app, client, params):
    if "radius" in params:          # around the first row: a distance column too
        with app.app_context(), get_db().readonly.connect() as conn:
            params = {**params, "pos": conn.execute(sa.text(
                "SELECT extras_id FROM aperiodic ORDER BY extras_id LIMIT 1")).scalar_one()}
    fixed = client.get(URL, query_string={**params, "format": "fixed"})
    assert fixed.status_code == 200
    assert fixed.mimetype == "text/plain"
    assert fixed.headers["Content-Disposition"] == \
        'attachment; filename="extras-aperiodic-search.txt"'
    csv = client.get(URL, query_string={**params, "format": "csv"})
    text = fixed.get_data(as_text=True)
    _aligned(text)
    got = _read(text)
    want = astropy_ascii.read(csv.get_data(as_text=True), format="csv")
    assert len(want) > 10
    assert got.colnames == want.colnames
    assert _cells(got) == _cells(want)


def test_search_page_links_the_fixed_width_download(client):
    page = client.get(URL, query_string={"camera": "M2"}).get_data(as_text=True)
    assert "format=fixed" in page and "Fixed-width ASCII" in page
    form = client.get(URL).get_data(as_text=True)
    assert '<option value="fixed"' in form


def test_tap_responseformat(client):
    query = "SELECT TOP 7 extras_id, camera, fvar, srcid FROM extras.aperiodic ORDER BY extras_id"
    for name in ("fixed", "text/plain", "ascii"):
        response = client.get("/tap/sync", query_string={"LANG": "ADQL", "QUERY": query,
                                                         "RESPONSEFORMAT": name})
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
        assert response.mimetype == "text/plain"
        table = _read(response.get_data(as_text=True))
        assert len(table) == 7 and table.colnames == ["extras_id", "camera", "fvar", "srcid"]
    capabilities = client.get("/tap/capabilities").get_data(as_text=True)
    assert "<mime>text/plain</mime>" in capabilities


def test_crossmatch_offers_and_writes_it(client):
    form = client.get("/crossmatch").get_data(as_text=True)
    assert '<option value="fixed"' in form
    response = client.post("/crossmatch", data={
        "text": "10.0 20.0\n150.1 2.2", "catalogue": "aperiodic", "radius": "600",
        "unit": "arcsec", "format": "fixed"}, content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)[:800]
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    _aligned(text)
    assert len(_read(text)) >= 2


def _extremes(dtype, n=20000, seed=3):
    rng = np.random.default_rng(seed)
    if dtype in (np.float32, np.float64):
        bits = rng.integers(0, 2 ** 63, size=n, dtype=np.int64)
        if dtype == np.float32:
            values = bits.astype(np.uint32).view(np.float32)
        else:
            values = bits.view(np.float64)
            values = np.where(rng.random(n) < 0.5, np.negative(values), values)
        values = values[np.isfinite(values)]
        info = np.finfo(dtype)
        extra = [info.max, info.min, info.tiny, -info.tiny, info.smallest_subnormal,
                 -info.smallest_subnormal, -1.2345678e-5, -0.00012345678, np.inf, -np.inf]
        return [float(v) for v in np.concatenate([values, np.array(extra, dtype=dtype)])]
    info = np.iinfo(dtype)
    return [int(v) for v in rng.integers(info.min, info.max, size=n, dtype=dtype)] + \
        [int(info.min), int(info.max)]


@pytest.mark.parametrize("datatype, dtype", [("short", np.int16), ("int", np.int32),
                                             ("long", np.int64), ("float", np.float32),
                                             ("double", np.float64)])
def test_every_number_fits_its_column(datatype, dtype):
    values = _extremes(dtype)
    columns = [ResultColumn("v", datatype, "a number")]
    result = query_result(columns, [(v,) for v in values], chunk=5000)
    text = render("fixed", result).decode()
    assert CUT not in text and "#" not in text
    _aligned(text)
    assert len(text.splitlines()[0]) == WIDTHS[datatype] + 4
    # the same digits as the CSV writer
    csv = render("csv", query_result(columns, [(v,) for v in values], chunk=5000)).decode()
    got = [ln.strip("| ").strip() for ln in text.splitlines()[1:]]
    assert got == csv.split("\r\n")[1:-1]


def test_a_value_wider_than_its_column_is_cut_visibly():
    columns = [ResultColumn("name", "char", "text", arraysize="*"),
               ResultColumn("code", "char", "fixed text", arraysize="4"),
               ResultColumn("n", "int", "a number")]
    rows = [("short", "ab", 1), ("tiny", "abcd", 2),            # first chunk: width 5
            ("much longer than five", "tab\there", 3), ("ok", None, 4)]
    text = render("fixed", query_result(columns, rows, chunk=2)).decode()
    _aligned(text)
    lines = text.splitlines()
    assert lines[-1].startswith("# 2 values were wider than their column and cut")
    table = _read(text)
    assert list(table["n"]) == [1, 2, 3, 4]
    assert table["name"][2] == "much" + CUT
    assert table["code"][2] == "tab" + CUT              # "tab\\there" escaped: 9 > 4
    assert table["name"][0] == "short" and np.ma.is_masked(table["code"][3])


def test_names_escapes_and_empty_results():
    columns = [ResultColumn("a long column name", "boolean", "b"),
               ResultColumn("t", "char", "text", arraysize="*")]
    rows = [(True, "line\nbreak | bar\\"), (None, "")]
    text = render("fixed", query_result(columns, rows)).decode()
    _aligned(text)
    assert len(text.splitlines()) == 3                  # one line per row
    table = _read(text)
    assert table.colnames == ["a long column name", "t"]
    assert table["t"][0] == "line\\nbreak | bar\\\\"
    empty = render("fixed", query_result(columns, [])).decode()
    assert empty == "| a long column name | t |\n"
    assert len(_read(empty)) == 0


def test_overflow_and_a_failure_are_said_at_the_end():
    columns = [ResultColumn("n", "int", "a number")]
    text = render("fixed", query_result(columns, [(1,), (2,)], overflow=True)).decode()
    assert text.splitlines()[-1].startswith("# OVERFLOW")
    assert len(_read(text)) == 2
    failing = query_result(columns, [(1,), (2,), (3,), (4,)], chunk=2, fail_after=1)
    text = render("fixed", failing).decode()
    assert text.splitlines()[-1].startswith(
        "# ERROR: the result is incomplete: streaming failed after 2 rows")
    with pytest.raises(RuntimeError, match="disk on fire"):
        render("fixed", query_result(columns, [(1,), (2,), (3,)], chunk=2, fail_after=1),
               errors="raise")
    assert get_format("text/plain").key == "fixed"

"""The search form per catalogue (archive/search, GET /search/<catalogue>): cone, box
and RA/Dec ranges (also across RA 0/360) against a brute-force selection of every
row's position, constraints alone, sorting, paging, column sets, every output format,
name resolution through the archive's own names, and every kind of bad input (400,
the message in the form). SQLite and PostgreSQL (the ``client`` fixture)."""
from __future__ import annotations

import io
import json
import re
from html import unescape

import numpy as np
import pytest
import sqlalchemy as sa
from astropy.io import ascii as astropy_ascii
from astropy.io import fits
from astropy.table import Table as AstropyTable

import datamodel
from archive.db import catalogue_tables, get_db, search_cache
from archive.sky import box_from_centre
from tests.helpers import votable_of

URL = "/search/aperiodic"


@pytest.fixture
def rows(app):
    """Every aperiodic row's id, position and a few columns, read from the database."""
    t = catalogue_tables["aperiodic"]
    with app.app_context(), get_db().engine.connect() as conn:
        found = conn.execute(sa.select(t.c.extras_id, t.c.ra, t.c.dec, t.c.camera,
                                       t.c.ontime, t.c.ub_lc500_ave)).all()
    return found


def _separation(ra0, dec0, ra, dec):
    """Angular distance in degrees (haversine, numpy)."""
    ra0, dec0, ra, dec = map(np.radians, (ra0, dec0, np.asarray(ra), np.asarray(dec)))
    h = np.sin((dec - dec0) / 2) ** 2 + np.cos(dec) * np.cos(dec0) * np.sin((ra - ra0) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(h)))


def _csv(client, **params):
    response = client.get(URL, query_string={"format": "csv", "maxrec": "1000000", **params})
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return AstropyTable.read(response.get_data(as_text=True), format="ascii.csv")


def _ids(client, **params) -> list[str]:
    table = _csv(client, **params)
    return [str(v) for v in table["extras_id"]] if len(table) else []


def _error_page(response) -> str:
    assert response.status_code == 400
    assert response.content_type.startswith("text/html")
    text = unescape(response.get_data(as_text=True))
    assert "<form" in text and "The search cannot run as given" in text
    return text


def test_form_without_parameters(client):
    response = client.get(URL)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for field in ('name="pos"', 'name="shape"', 'name="radius"', 'name="unit"',
                  'name="ra_min"', 'name="verb"', 'name="col"', 'name="sort"',
                  'name="order"', 'name="maxrec"', 'name="format"',
                  'name="ub_lc500_ave.min"', 'name="ub_lc500_ave.max"', 'name="obs_id"'):
        assert field in page, field
    # the camera is a choice list, the flux constraint says its unit
    assert re.search(r'<select id="c-camera" name="camera">.*?<option>PN</option>.*?'
                     r'<option>M1</option>.*?<option>M2</option>', page, re.S)
    assert "ep_8_flux min [mW.m**-2]" in page
    assert "resolve.js" in page
    assert client.get("/static/resolve.js").status_code == 200


def test_cone_matches_brute_force(client, rows):
    ra0, dec0 = rows[0].ra, rows[0].dec
    dist = _separation(ra0, dec0, [r.ra for r in rows], [r.dec for r in rows])
    ordered = np.sort(dist)
    radius = (ordered[20] + ordered[21]) / 2          # 21 rows, none near the edge
    expected = {r.extras_id for r, d in zip(rows, dist) if d <= radius}
    assert len(expected) == 21
    table = _csv(client, pos=f"{ra0:.10f} {dec0:+.10f}", radius=f"{radius * 3600:.6f}",
                 unit="arcsec")
    assert set(map(str, table["extras_id"])) == expected
    # _r (arcsec) leads, nearest first, and agrees with the brute force distance
    assert table.colnames[0] == "_r"
    assert list(table["_r"]) == sorted(table["_r"])
    by_id = dict(zip((r.extras_id for r in rows), dist))
    for row in table:
        assert row["_r"] == pytest.approx(by_id[str(row["extras_id"])] * 3600, abs=1e-6)
    # the same search as a page: the count, links to the detection pages
    response = client.get(URL, query_string={"pos": f"{ra0:.10f} {dec0:+.10f}",
                                             "radius": f"{radius * 60:.8f}"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'data-rows="21"' in page
    assert set(re.findall(r'href="/detections/([^"]+)"', page)) == expected
    assert "resolved by <span class=\"resolver\">coordinates</span>" in page


def test_box_matches_brute_force(client, rows):
    ra0, dec0 = rows[5].ra, rows[5].dec
    width, height = 2.0, 1.5
    ra_min, ra_max, dec_min, dec_max = box_from_centre(ra0, dec0, width, height)

    def inside(r):
        in_ra = (r.ra >= ra_min % 360 or r.ra <= ra_max % 360) if ra_min % 360 > ra_max % 360 \
            else ra_min % 360 <= r.ra <= ra_max % 360
        return in_ra and dec_min <= r.dec <= dec_max
    expected = {r.extras_id for r in rows if inside(r)}
    assert expected
    got = _ids(client, pos=f"{ra0} {dec0}", shape="box", width="2", height="1.5", unit="deg")
    assert set(got) == expected


@pytest.mark.parametrize("ra_min, ra_max", [(359.5, 0.5), (100.0, 200.0)])
def test_range_matches_brute_force(client, rows, ra_min, ra_max):
    dec_min, dec_max = -90.0, 90.0
    ras = np.array([r.ra for r in rows])
    if ra_min > ra_max:
        # widen the range around RA 0 until rows on both sides of 0/360 are in it
        half = 0.5
        while not ((ras >= 360 - half).any() and (ras <= half).any()):
            half *= 2
        ra_min, ra_max = 360 - half, half
        expected = {r.extras_id for r in rows if r.ra >= ra_min or r.ra <= ra_max}
    else:
        expected = {r.extras_id for r in rows if ra_min <= r.ra <= ra_max}
    assert expected
    got = _ids(client, shape="range", ra_min=str(ra_min), ra_max=str(ra_max),
               dec_min=str(dec_min), dec_max=str(dec_max))
    assert set(got) == expected and len(got) == len(expected)


def test_constraints_alone(client, rows):
    values = sorted(r.ub_lc500_ave for r in rows if r.ub_lc500_ave is not None)
    low, high = values[len(values) // 4], values[len(values) // 2]
    expected = {r.extras_id for r in rows if r.camera == "M1" and r.ub_lc500_ave is not None
                and low <= r.ub_lc500_ave <= high}
    assert expected
    got = _ids(client, camera="M1", **{"ub_lc500_ave.min": repr(low),
                                       "ub_lc500_ave.max": repr(high)})
    assert set(got) == expected and len(got) == len(expected)
    # text match: a part of an id, case-insensitive
    part = rows[3].extras_id.split("_")[0]
    assert set(_ids(client, extras_id=part.lower())) == {
        r.extras_id for r in rows if part in r.extras_id}


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sorting(client, rows, order):
    table = _csv(client, sort="ontime", order=order, verb="3", **{"ontime.min": "0"})
    got = [float(v) for v in table["ontime"]]
    assert got == sorted(got, reverse=order == "desc")
    assert len(got) == sum(1 for r in rows if r.ontime is not None and r.ontime >= 0)


def test_paging(client, rows):
    ordered = [str(v) for v in _csv(client, sort="ub_lc500_ave", order="desc",
                                    verb="2")["extras_id"]]
    response = client.get(URL, query_string={"sort": "ub_lc500_ave", "order": "desc",
                                             "verb": "2", "page": "2", "per_page": "50"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    shown = re.findall(r'href="/detections/([^"]+)"', page)
    assert shown == ordered[50:100]
    assert f'data-rows="{len(rows)}"' in page
    assert "rows 51&ndash;100 shown" in page
    assert 'rel="next"' in page and 'rel="prev"' in page
    # the sort links of the header flip the order of the active column
    assert 'sort=ub_lc500_ave&amp;order=asc' in page


def test_column_sets(client):
    table = datamodel.TABLES["aperiodic"]
    minimal = [c.name for c in table.columns_for_verbosity(1)]
    assert _csv(client, verb="1", camera="PN").colnames == minimal
    assert _csv(client, verb="3", camera="PN").colnames == [c.name for c in table.columns]
    assert _csv(client, col=["fvar", "extras_id"], camera="PN").colnames == ["fvar",
                                                                             "extras_id"]


@pytest.mark.parametrize("key", ["votable", "votable/td", "fits", "csv", "tsv", "json"])
def test_every_format_parses(client, rows, key):
    response = client.get(URL, query_string={"format": key, "camera": "PN", "verb": "1"})
    assert response.status_code == 200
    body = response.get_data()
    expected = sum(1 for r in rows if r.camera == "PN")
    extension = {"votable": "vot", "votable/td": "vot"}.get(key, key)
    assert response.headers["Content-Disposition"] == \
        f'attachment; filename="extras-aperiodic-search.{extension}"'
    if key.startswith("votable"):
        n = len(votable_of(body).get_first_table().array)
    elif key == "fits":
        with fits.open(io.BytesIO(body)) as hdus:
            n = len(hdus[1].data)
    elif key == "json":
        document = json.loads(body)
        n = len(document["data"] if "data" in document else document["rows"])
    else:
        n = len(astropy_ascii.read(body.decode(), format="csv",
                                   delimiter="," if key == "csv" else "\t"))
    assert n == expected


def test_resolves_archive_names(client, rows):
    target = rows[7]
    response = client.get(URL, query_string={"pos": target.extras_id, "radius": "1",
                                             "unit": "arcsec"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'resolved by <span class="resolver">archive</span>' in page
    assert f'href="/detections/{target.extras_id}"' in page
    ids = _ids(client, pos=target.extras_id, radius="1", unit="arcsec")
    assert target.extras_id in ids


def test_share_and_format_links(client):
    response = client.get(URL, query_string={"camera": "M2", "verb": "1"})
    page = unescape(response.get_data(as_text=True))
    share = re.search(r'<a id="share" href="([^"]+)"', page).group(1)
    assert share.endswith("/search/aperiodic?camera=M2&verb=1")
    for key in ("csv", "fits", "votable"):
        assert f"/search/aperiodic?camera=M2&verb=1&format={key}" in page


@pytest.mark.parametrize("params, field, message", [
    ({"shape": "box", "width": "1", "height": "1"}, "pos", "give the centre of the box"),
    ({"pos": "10.0 20.0", "radius": ""}, "radius", "give the radius of the cone"),
    ({"pos": "12:99:00 +100:00:00"}, "pos", ""),
    ({"pos": "J999999.9+999999"}, "pos", ""),
    ({"pos": "9999_U002_PN_1"}, "pos", "9999_U002_PN_1"),
    ({"pos": "10.0 20.0", "radius": "20", "unit": "deg"}, "radius", "too large"),
    ({"pos": "10.0 20.0", "radius": "-1"}, "radius", "must be positive"),
    ({"pos": "10.0 20.0", "radius": "abc"}, "radius", "must be a number"),
    ({"pos": "10.0 20.0", "unit": "furlong"}, "unit", "arcsec, arcmin or deg"),
    ({"shape": "range", "ra_min": "10"}, "ra_max", "give ra_max"),
    ({"shape": "range", "ra_min": "1", "ra_max": "2", "dec_min": "5", "dec_max": "100"},
     "dec_max", "between -90 and 90"),
    ({"shape": "circle"}, "shape", "cone, box or range"),
    ({"col": "nosuchcolumn"}, "col", "there is no column 'nosuchcolumn'"),
    ({"sort": "nosuchcolumn"}, "sort", "cannot sort by 'nosuchcolumn'"),
    ({"nosuch.min": "1"}, "nosuch.min", "there is no column 'nosuch'"),
    ({"ontime.min": "abc"}, "ontime.min", "must be a number, not 'abc'"),
    ({"camera": "XX"}, "camera", "must be one of PN, M1, M2"),
    ({"format": "pdf"}, "format", "pdf"),
    ({"order": "sideways"}, "order", "asc or desc"),
    ({"maxrec": "0"}, "maxrec", "between 1 and"),
    ({"maxrec": "many"}, "maxrec", "whole number"),
    ({"per_page": "100000"}, "per_page", "between 1 and"),
    ({"verb": "7"}, "verb", "between 1 and 3"),
    ({"sort": "_r"}, "sort", "needs a cone or box"),
    ({"bogus": "1"}, "bogus", "unknown parameter"),
])
def test_bad_input(app, client, params, field, message):
    def cached():
        with app.app_context(), get_db().engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(
                search_cache)).scalar_one()
    before = cached()
    response = client.get(URL, query_string=params)
    page = _error_page(response)
    assert cached() == before           # nothing written
    assert f"{field}</a>: " in page, page[:3000]
    assert message in page
    # the values given are kept in the form
    for key, value in params.items():
        if key in ("pos", "radius", "ra_min") and value:
            assert f'value="{value}"' in page


def test_unknown_catalogue(client):
    response = client.get("/search/nosuch", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "there is no catalogue 'nosuch'" in unescape(response.get_data(as_text=True))


def test_catalogue_without_positions(client):
    response = client.get("/search/longterm_points")
    assert response.status_code == 200 and 'name="pos"' not in response.get_data(as_text=True)
    table = AstropyTable.read(client.get("/search/longterm_points", query_string={
        "format": "csv", "ul_flag": "yes"}).get_data(as_text=True), format="ascii.csv")
    assert all(str(v).lower() in ("true", "1") for v in table["ul_flag"])
    bad = client.get("/search/longterm_points", query_string={"pos": "10.0 20.0"})
    assert "has no positions" in _error_page(bad)


def test_every_enumeration_has_a_choice_list(app, client):
    """Each column the data model declares an enumeration (Column.choices) gets a choice
    list in the form and in the filter row of the results, and only those values."""
    enumerated = [(t, c) for t in datamodel.TABLES.values() for c in t.columns if c.choices]
    assert {c.name for _t, c in enumerated} >= {"camera", "src_class"}
    for table, column in enumerated:
        page = client.get(f"/search/{table.name}").get_data(as_text=True)
        select = re.search(rf'<select id="c-{column.name}" name="{column.name}">(.*?)</select>',
                           page, re.S)
        assert select, (table.name, column.name)
        options = re.findall(r"<option[^>]*>([^<]*)</option>", select.group(1))
        assert options == ["any", *column.choices]
        assert f'<input id="c-{column.name}"' not in page      # no free text box
    # a choice selects exactly the rows holding it (brute force), in any letter case
    t = catalogue_tables["classification"]
    with app.app_context(), get_db().engine.connect() as conn:
        every = conn.execute(sa.select(t.c.iauname, t.c.src_class)).all()
    for value in ("AGN", "star"):
        table = AstropyTable.read(client.get("/search/classification", query_string={
            "format": "csv", "src_class": value, "maxrec": "100000"}).get_data(as_text=True),
            format="ascii.csv")
        want = sorted(r.iauname for r in every if r.src_class == value.upper())
        assert want and sorted(map(str, table["iauname"])) == want
    page = client.get("/search/classification", query_string={"src_class": "AGN"})
    assert re.search(r'<option selected>AGN</option>', page.get_data(as_text=True))
    bad = client.get("/search/classification", query_string={"src_class": "QSO"})
    assert "src_class must be one of AGN, STAR, XRB, CV, GAL, ULX, UNKNOWN, not 'QSO'" in \
        _error_page(bad)

"""The combined search (GET /search, archive/search/combined.py): one position in every
positional catalogue. Counts per catalogue, the nearest rows and the 3XMM sources
of the cone are checked against a brute-force angular distance over every row of
every table; links to the per-catalogue result and the source pages; bad input
(400, the message in the form). SQLite and PostgreSQL (the ``client`` fixture)."""
from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import sqlalchemy as sa

import datamodel
from archive.db import catalogue_tables, get_db

POSITIONAL = [t.name for t in datamodel.positional_tables()]


def _separation(ra0, dec0, ra, dec):
    """Angular distance in degrees (haversine, numpy)."""
    ra0, dec0, ra, dec = map(np.radians, (ra0, dec0, np.asarray(ra, float),
                                          np.asarray(dec, float)))
    h = np.sin((dec - dec0) / 2) ** 2 + np.cos(dec) * np.cos(dec0) * np.sin((ra - ra0) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(h)))


@pytest.fixture
def everything(app):
    """Every positional table's rows: (id, ra, dec, srcid or None), from the database."""
    out = {}
    with app.app_context(), get_db().engine.connect() as conn:
        for name in POSITIONAL:
            table = datamodel.TABLES[name]
            t = catalogue_tables[name]
            srcid = t.c.srcid if "srcid" in t.c else sa.null()
            out[name] = conn.execute(sa.select(
                t.c[table.role_column("id").name], t.c.ra, t.c.dec, srcid)).all()
    return out


def _brute(everything, ra, dec, radius_deg):
    """{catalogue: [(distance arcsec, id, srcid)] nearest first} within the cone."""
    found = {}
    for name, rows in everything.items():
        d = _separation(ra, dec, [r[1] for r in rows], [r[2] for r in rows])
        found[name] = sorted((float(x) * 3600, str(r[0]), r[3])
                             for x, r in zip(d, rows) if x <= radius_deg)
    return found


def _page(response) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)[-3000:]
    return unescape(response.get_data(as_text=True))


def _section(page: str, name: str) -> str:
    return re.search(rf'<section id="cat-{name}".*?</section>', page, re.S).group(0)


def _centre(everything):
    """A position with rows of several catalogues around it: an aperiodic detection
    that has a long-term source."""
    longterm = {r[3] for r in everything["longterm"]}
    return next(r for r in everything["aperiodic"] if r[3] in longterm)


@pytest.mark.parametrize("radius,unit,deg", [("30", "arcsec", 30 / 3600),
                                             ("3", "deg", 3.0)])
def test_counts_rows_and_sources_match_brute_force(client, everything, radius, unit, deg):
    centre = _centre(everything)
    ra, dec = float(centre[1]), float(centre[2])
    pos = f"{ra:.7f} {dec:+.7f}"
    page = _page(client.get("/search", query_string={"pos": pos, "radius": radius,
                                                        "unit": unit}))
    brute = _brute(everything, ra, dec, deg)
    assert sum(len(v) for v in brute.values()) > 1
    if deg > 1:     # the big cone: more rows than shown, several sources
        assert len(brute["aperiodic"]) > 5 and len(brute["longterm"]) > 5
        assert len({r[2] for rows in brute.values() for r in rows}) > 5
    for name in POSITIONAL:
        expected = brute[name]
        count = re.search(rf'class="num count" data-catalogue="{name}">([\d,]+)<', page)
        assert int(count.group(1).replace(",", "")) == len(expected), name
        section = _section(page, name)
        # the first rows are the nearest ones, nearest first, with their distance
        header = re.findall(r'<th scope="col" title="[^"]*">(\w+)', section)
        rows = [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
                for tr in re.findall(r"<tr>(.*?)</tr>", section.split("<tbody>")[-1], re.S)] \
            if "<tbody>" in section else []
        assert len(rows) == min(5, len(expected)), name
        if not rows:
            assert "None in the cone." in section
        else:
            key = header.index(datamodel.TABLES[name].role_column("id").name)
            assert header[0] == "_r"
            assert [float(r[0]) for r in rows] == pytest.approx(
                [e[0] for e in expected[:len(rows)]], abs=2e-3)
            assert [r[key] for r in rows] == [e[1] for e in expected[:len(rows)]], name
        # link to the full result on the per-catalogue page, same position
        full = re.search(rf'<a class="full" href="([^"]*/search/{name}\?[^"]*)"', page).group(1)
        query = parse_qs(urlsplit(full).query)
        assert query == {"pos": [pos], "radius": [radius], "unit": [unit]}
        assert _page(client.get(full))
    # the source-centred view: every srcid of the cone, with its counts per catalogue
    srcids = {}
    for name, rows in brute.items():
        for _r, _i, srcid in rows:
            if srcid is not None:
                srcids.setdefault(int(srcid), {}).setdefault(name, 0)
                srcids[int(srcid)][name] += 1
    shown = dict(re.findall(r'<tr class="source" data-srcid="(\d+)">(.*?)</tr>', page, re.S))
    assert {int(s) for s in shown} == set(srcids)
    assert int(centre[3]) in srcids
    for srcid, counts in srcids.items():
        row = shown[str(srcid)]
        assert f'href="/sources/{srcid}"' in row
        cells = dict(re.findall(r'data-catalogue="(\w+)">(\d*)<', row))
        assert {k: int(v) for k, v in cells.items() if v} == counts


def test_form_and_navigation(client):
    page = _page(client.get("/search"))
    assert '<form method="get" action="/search"' in page
    assert 'id="f-pos"' in page and 'id="f-radius"' in page and 'id="f-unit"' in page
    for name in datamodel.TABLES:
        assert f'href="/search/{name}"' in page
    assert '<a href="/search">Search</a>' in _page(client.get("/"))


def test_resolves_archive_names(client, everything):
    target = everything["longterm"][3]
    page = _page(client.get("/search", query_string={"pos": str(target[0]),
                                                        "radius": "1", "unit": "arcsec"}))
    assert 'resolved by <span class="resolver">archive</span>' in page
    assert f'data-srcid="{int(target[3])}"' in page
    assert f'href="/sources/{int(target[3])}"' in page


@pytest.mark.parametrize("params,field,message", [
    ({"pos": "", "radius": "1"}, "pos", "give a position"),
    ({"radius": "1"}, "pos", "give a position"),
    ({"pos": "no such source anywhere 123", "radius": "1"}, "pos", "Simbad"),
    ({"pos": "10.0 20.0", "radius": "99", "unit": "deg"}, "radius", "too large"),
    ({"pos": "10.0 20.0", "radius": "abc"}, "radius", "must be a number"),
    ({"pos": "10.0 20.0", "radius": "-1"}, "radius", "must be positive"),
    ({"pos": "10.0 20.0", "radius": "1", "unit": "parsec"}, "unit", "arcsec, arcmin or deg"),
    ({"pos": "10.0 20.0", "radius": "1", "shape": "box"}, "shape", "unknown parameter"),
])
def test_bad_input(client, params, field, message):
    response = client.get("/search", query_string=params)
    assert response.status_code == 400
    page = unescape(response.get_data(as_text=True))
    assert "The search cannot run as given" in page and '<form method="get"' in page
    item = re.search(rf'<li><a href="#f-{field}">{field}</a>: ([^<]+)</li>', page)
    assert item, page[-3000:]
    assert message in item.group(1)
    assert 'id="catalogues"' not in page

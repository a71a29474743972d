"""The "API code" panel of the search result pages (archive/search/apicode.py): the
ADQL it shows, run through /tap/sync, returns the page's rows in the page's order;
the pyvo code it shows, executed against gunicorn (``live_server``), returns the
same rows; the curl line downloads the same search as CSV. SQLite and PostgreSQL."""
from __future__ import annotations

import contextlib
import io
import re
import urllib.parse
import urllib.request
import warnings
from html import unescape

import numpy as np
import pytest
import sqlalchemy as sa
from astropy.table import Table as AstropyTable

from archive.db import catalogue_tables, get_db
from tests.helpers import tap_sync

URL = "/search/aperiodic"


@pytest.fixture
def rows(app):
    t = catalogue_tables["aperiodic"]
    with app.app_context(), get_db().engine.connect() as conn:
        return conn.execute(sa.select(t.c.extras_id, t.c.ra, t.c.dec, t.c.ontime)
                            .order_by(t.c.extras_id)).all()


def _panel(page: str, name: str) -> str:
    found = re.search(rf'<pre id="api-{name}">(.*?)</pre>', page, re.S)
    assert found, f"no {name} in the API code panel"
    return unescape(found.group(1))


def _page_ids(page: str) -> list[str]:
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [urllib.parse.unquote(unescape(i))
            for i in re.findall(r'href="/detections/([^"]+)"', body)]


def _page(client, params) -> str:
    response = client.get(URL, query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    page = response.get_data(as_text=True)
    assert '<details class="api-code"' in page and "<summary>API code</summary>" in page
    return page


def _tap_ids(client, query: str) -> list[str]:
    response = tap_sync(client, query, FORMAT="csv", REQUEST="doQuery")
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    table = AstropyTable.read(response.get_data(as_text=True), format="ascii.csv")
    return [str(v) for v in table["extras_id"]] if len(table) else []


def _csv_ids(client, params) -> list[str]:
    response = client.get(URL, query_string={**params, "format": "csv"})
    assert response.status_code == 200
    table = AstropyTable.read(response.get_data(as_text=True), format="ascii.csv")
    return [str(v) for v in table["extras_id"]] if len(table) else []


def _cone(rows, n: int):
    """Centre and radius (arcsec) of a cone holding ``n`` rows, none near its edge."""
    ra0, dec0 = rows[7].ra, rows[7].dec
    ra, dec = np.radians([r.ra for r in rows]), np.radians([r.dec for r in rows])
    h = (np.sin((dec - np.radians(dec0)) / 2) ** 2 + np.cos(dec) * np.cos(np.radians(dec0))
         * np.sin((ra - np.radians(ra0)) / 2) ** 2)
    dist = np.sort(np.degrees(2 * np.arcsin(np.sqrt(h))))
    return ra0, dec0, (dist[n - 1] + dist[n]) / 2 * 3600


def test_cone_with_constraint_and_sort(client, rows):
    ra0, dec0, radius = _cone(rows, 40)
    ontime = float(np.median([r.ontime for r in rows if r.ontime is not None]))
    params = {"pos": f"{ra0:.10f} {dec0:+.10f}", "radius": f"{radius:.6f}",
              "unit": "arcsec", "ontime.min": f"{ontime:.3f}", "sort": "ontime",
              "order": "desc", "per_page": "500"}
    page = _page(client, params)
    adql = _panel(page, "adql")
    assert "CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', " in adql
    assert f"ontime >= {float(f'{ontime:.3f}')!r}" in adql
    assert "ORDER BY CASE WHEN ontime IS NULL THEN 1 ELSE 0 END, ontime DESC" in adql
    assert adql.startswith("SELECT TOP 100000\n  DISTANCE(")
    ids = _page_ids(page)
    assert 5 <= len(ids) < 40                     # the constraint removed some rows
    assert _tap_ids(client, adql) == ids          # the same rows, in the same order
    assert _csv_ids(client, params) == ids
    # a cone with a constraint: no SCS form (SCS cannot constrain columns)
    python = _panel(page, "python")
    assert "TAPService(" in python and "SCSService" not in python


def test_constraints_only(client, rows):
    params = {"camera": "PN", "ontime.max": "1e9", "sort": "ra", "maxrec": "30",
              "per_page": "10", "col": ["extras_id", "ra", "camera"]}
    page = _page(client, params)
    adql = _panel(page, "adql")
    assert adql == ("SELECT TOP 30\n  extras_id,\n  ra,\n  camera\nFROM aperiodic\n"
                    "WHERE camera = 'PN'\n  AND ontime <= 1000000000.0\n"
                    "ORDER BY CASE WHEN ra IS NULL THEN 1 ELSE 0 END, ra, obs_id, exp_id, "
                    "camera, src_num")
    every = _tap_ids(client, adql)
    assert len(every) == 30
    assert _page_ids(page) == every[:10]          # the first page
    page3 = _page(client, {**params, "page": "3"})
    assert _page_ids(page3) == every[20:]          # the last page
    assert _csv_ids(client, params) == every
    assert "SCSService" not in _panel(page, "python")


def test_range_across_ra_zero(client, rows):
    params = {"shape": "range", "ra_min": "300", "ra_max": "60", "dec_min": "-90",
              "dec_max": "90", "sort": "extras_id", "per_page": "500"}
    page = _page(client, params)
    adql = _panel(page, "adql")
    assert "dec BETWEEN -90.0 AND 90.0" in adql and "(ra >= 300.0 OR ra <= 60.0)" in adql
    every = _tap_ids(client, adql)
    assert every == sorted(r.extras_id for r in rows if r.ra >= 300 or r.ra <= 60)
    assert _page_ids(page) == every[:500]
    assert _csv_ids(client, params) == every


def test_box_and_text_match(client, rows):
    ra0, dec0 = rows[3].ra, rows[3].dec
    params = {"shape": "box", "pos": f"{ra0:.8f} {dec0:+.8f}", "width": "20",
              "height": "10", "unit": "deg", "extras_id": "_pn_", "per_page": "500"}
    page = _page(client, params)
    adql = _panel(page, "adql")
    assert "ra BETWEEN" in adql or "(ra >=" in adql
    assert "LOWER(extras_id) LIKE '%_pn_%'" in adql
    ids = _page_ids(page)
    assert ids and _tap_ids(client, adql) == ids


def test_curl_line(client, rows):
    params = {"camera": "M1", "sort": "ontime", "maxrec": "15"}
    page = _page(client, params)
    curl = _panel(page, "curl")
    found = re.fullmatch(r"curl -o extras-aperiodic-search\.csv '([^']+)'\n", curl)
    assert found and "format=csv" in found.group(1)
    url = urllib.parse.urlsplit(found.group(1))
    assert url.path == URL
    response = client.get(f"{url.path}?{url.query}")
    assert response.status_code == 200 and response.content_type.startswith("text/csv")
    table = AstropyTable.read(response.get_data(as_text=True), format="ascii.csv")
    assert [str(v) for v in table["extras_id"]] == _tap_ids(client, _panel(page, "adql"))


def _run_shown_code(code: str) -> dict:
    namespace: dict = {}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        exec(compile(code, "<api code>", "exec"), namespace)     # the code as shown
    return namespace


def test_shown_pyvo_code_runs_against_the_server(live_server, rows):
    ra0, dec0, radius = _cone(rows, 25)
    # a cone without constraints: TAP and SCS
    query = urllib.parse.urlencode({"pos": f"{ra0:.10f} {dec0:+.10f}",
                                    "radius": f"{radius:.6f}", "unit": "arcsec"})
    with urllib.request.urlopen(f"{live_server}{URL}?{query}", timeout=60) as response:
        page = response.read().decode()
    ids = _page_ids(page)
    assert len(ids) == 25
    code = _panel(page, "python")
    assert f'TAPService("{live_server}/tap")' in code
    assert f'SCSService("{live_server}/scs/aperiodic")' in code
    assert "# The same cone through Simple Cone Search. Note: SCS returns its own" in code
    namespace = _run_shown_code(code)
    assert [str(v) for v in namespace["rows"]["extras_id"]] == ids
    assert sorted(str(v) for v in namespace["cone"]["extras_id"]) == sorted(ids)
    # constraints alone, several pages: the shown code gives every page's rows
    query = urllib.parse.urlencode({"camera": "M2", "sort": "ontime", "order": "desc",
                                    "maxrec": "12", "per_page": "5"})
    pages = []
    for number in (1, 2, 3):
        with urllib.request.urlopen(f"{live_server}{URL}?{query}&page={number}",
                                    timeout=60) as response:
            pages.append(response.read().decode())
    namespace = _run_shown_code(_panel(pages[0], "python"))
    assert [str(v) for v in namespace["rows"]["extras_id"]] == sum(map(_page_ids, pages), [])

"""The search forms in a real browser (headless Debian Chromium, gunicorn): the search
half of the student workflow (type an archive name, press "Resolve name": the box gets
the coordinates and the page says which resolver answered; search, sort by clicking a
column header, filter by a column, go to the next page, reopen the Share URL, run the
API code panel's pyvo code in a subprocess: the same rows); "Resolve name" on the
combined search; every kind of bad input shown in the page, with status 400."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import requests
import sqlalchemy as sa
from selenium.webdriver.support.ui import WebDriverWait

from helpers import follow

pytestmark = pytest.mark.e2e


def _first_detection(config) -> tuple[str, float, float]:
    engine = sa.create_engine(config["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT extras_id, ra, dec FROM aperiodic "
                                       "ORDER BY extras_id LIMIT 1")).first()
    finally:
        engine.dispose()
    return row.extras_id, float(row.ra), float(row.dec)


def _rows(browser) -> list[str]:
    return [a.text for a in browser.find_elements(
        "css selector", "table.results tbody a[href*='/detections/']")]


def _column(browser, name: str) -> list[str]:
    """The texts of one column of the result table, by its header."""
    headers = [th.text.split("\n")[0].rstrip(" ▲▼") for th in browser.find_elements(
        "css selector", "table.results thead tr:first-child th")]
    index = headers.index(name) + 1
    return [td.text for td in browser.find_elements(
        "css selector", f"table.results tbody tr td:nth-child({index})")]


def _run_pyvo(code: str, tmp_path) -> list[str]:
    """Run ``code`` as shown, in a new Python process; the extras_id of its ``rows``."""
    script = tmp_path / "shown.py"
    script.write_text(code)
    out = subprocess.run(
        [sys.executable, "-c", "import json, runpy, sys, warnings\n"
         "warnings.simplefilter('ignore')\n"
         "ns = runpy.run_path(sys.argv[1])\n"
         "sys.stderr.write(json.dumps([str(v) for v in ns['rows']['extras_id']]))",
         str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stderr.strip().splitlines()[-1])


def test_search_workflow(browser, live_server, demo_archive, tmp_path):
    extras_id, ra, dec = _first_detection(demo_archive)
    browser.get(f"{live_server}/search/aperiodic")
    box = browser.find_element("id", "f-pos")
    box.send_keys(extras_id)
    button = browser.find_element("id", "resolve")
    assert button.is_displayed()              # shown by the script
    button.click()
    WebDriverWait(browser, 10).until(
        lambda b: "resolved by archive" in b.find_element("id", "resolved").text)
    got_ra, got_dec = map(float, box.get_attribute("value").split())
    assert got_ra == pytest.approx(ra, abs=1e-6) and got_dec == pytest.approx(dec, abs=1e-6)
    radius = browser.find_element("id", "f-radius")
    radius.clear()
    radius.send_keys("600")                    # arcmin: many rows, several pages
    follow(browser, browser.find_element("css selector", "form.search button[type=submit]"))
    WebDriverWait(browser, 10).until(lambda b: "search result" in b.title)
    assert extras_id in _rows(browser)[:1]     # nearest first: the row itself
    # sort by clicking the header of srcid, twice: ascending then descending
    follow(browser, browser.find_element("link text", "srcid"))
    up = [int(t.text) for t in browser.find_elements(
        "css selector", "table.results tbody a[href*='/sources/']")]
    assert up == sorted(up) and "sort=srcid" in browser.current_url
    follow(browser, browser.find_element("partial link text", "srcid"))
    down = [int(t.text) for t in browser.find_elements(
        "css selector", "table.results tbody a[href*='/sources/']")]
    assert down == sorted(down, reverse=True) and down[0] >= up[-1]
    # filter by a column: the camera choice list of the filter row, then "Filter"
    from selenium.webdriver.support.ui import Select
    Select(browser.find_element("id", "f-camera")).select_by_visible_text("PN")
    follow(browser, browser.find_element("xpath", "//button[text()='Filter']"))
    assert "camera=PN" in browser.current_url and "sort=srcid" in browser.current_url
    assert set(_column(browser, "camera")) == {"PN"}
    filtered = [int(t) for t in _column(browser, "srcid")]
    assert filtered == sorted(filtered, reverse=True)
    first_page = _rows(browser)
    follow(browser, browser.find_element("css selector", "a[rel=next]"))
    second_page = _rows(browser)
    assert second_page and not set(second_page) & set(first_page)
    assert set(_column(browser, "camera")) == {"PN"}
    share = browser.find_element("id", "share").get_attribute("href")
    assert "page=2" in share and "camera=PN" in share
    browser.get(share)
    assert _rows(browser) == second_page
    # the API code panel, opened, shows pyvo code giving every page's rows in order
    browser.find_element("css selector", "#api-code summary").click()
    code = browser.find_element("id", "api-python").text
    assert code.startswith("import pyvo") and f"{live_server}/tap" in code
    rows = _run_pyvo(code, tmp_path)
    per_page = len(first_page)
    assert rows[:per_page] == first_page
    assert rows[per_page:per_page + len(second_page)] == second_page


def test_bad_value_shown_in_the_form(browser, live_server):
    browser.get(f"{live_server}/search/aperiodic?pos=10.0+20.0&radius=abc")
    alert = browser.find_element("id", "err-radius").text
    assert "the radius must be a number, not 'abc'" in alert
    assert browser.find_element("id", "f-radius").get_attribute("value") == "abc"
    assert re.search(r"cannot run as given", browser.page_source)


def test_resolve_name_on_the_combined_search(browser, live_server, demo_archive):
    extras_id, ra, dec = _first_detection(demo_archive)
    browser.get(f"{live_server}/search")
    box = browser.find_element("id", "f-pos")
    box.send_keys(extras_id)
    button = browser.find_element("id", "resolve")
    assert button.is_displayed() and button.text == "Resolve name"
    button.click()
    WebDriverWait(browser, 10).until(
        lambda b: "resolved by archive" in b.find_element("id", "resolved").text)
    got_ra, got_dec = map(float, box.get_attribute("value").split())
    assert got_ra == pytest.approx(ra, abs=1e-6) and got_dec == pytest.approx(dec, abs=1e-6)
    follow(browser, browser.find_element("css selector", "#combined button[type=submit]"))
    summary = browser.find_element("css selector", "p.summary").text
    assert f"RA {ra:.6f}" in summary
    assert browser.find_element(
        "css selector", '#cat-aperiodic a[href*="/detections/' + extras_id + '"]')
    # a name nobody knows: the message comes back next to the box
    box = browser.find_element("id", "f-pos")
    box.clear()
    box.send_keys("12:99:00 +100:00:00")
    browser.find_element("id", "resolve").click()
    WebDriverWait(browser, 10).until(
        lambda b: "cannot be read as coordinates" in b.find_element("id", "resolved").text)


def _submit(browser, url: str, fields: dict, button: str) -> None:
    """Open the form at ``url``, type ``fields`` (id: text) and submit it."""
    browser.get(url)
    for fid, text in fields.items():
        box = browser.find_element("id", fid)
        if box.tag_name == "select":
            from selenium.webdriver.support.ui import Select
            Select(box).select_by_visible_text(text)
        else:
            box.clear()
            box.send_keys(text)
    follow(browser, browser.find_element("css selector", button))


SEARCH = "form.search button[type=submit]"
COMBINED = "#combined button[type=submit]"
BAD = [
    ("empty position", "/search", {"f-pos": ""}, COMBINED, "pos",
     "give a position: a name or coordinates"),
    ("malformed coordinates", "/search/aperiodic", {"f-pos": "12:99:00 +100:00:00"}, SEARCH,
     "pos", "'12:99:00 +100:00:00' cannot be read as coordinates"),
    ("radius too large", "/search/aperiodic",
     {"f-pos": "10.0 20.0", "f-radius": "20", "f-unit": "deg"}, SEARCH, "radius",
     "the radius is too large: 20 deg; at most 10 deg"),
    ("radius too large, combined", "/search",
     {"f-pos": "10.0 20.0", "f-radius": "99", "f-unit": "deg"}, COMBINED, "radius",
     "the radius is too large: 99 deg; at most 10 deg"),
    ("unknown column", "/search/aperiodic?nosuch.min=1", {}, None, "nosuch.min",
     "there is no column 'nosuch' in aperiodic"),
    ("unknown sort column", "/search/aperiodic?sort=nosuch", {}, None, "sort",
     "cannot sort by 'nosuch'"),
    ("constraint of the wrong type", "/search/aperiodic", {"c-ontime-min": "long"}, SEARCH,
     "ontime.min", "the minimum of ontime must be a number, not 'long'"),
    ("choice outside the list", "/search/aperiodic?camera=XX", {}, None, "camera",
     "camera must be one of PN, M1, M2, not 'XX'"),
]


@pytest.mark.parametrize("what, url, fields, button, field, message", BAD,
                         ids=[b[0] for b in BAD])
def test_bad_input_is_shown_in_the_page(browser, live_server, what, url, fields, button,
                                        field, message):
    if button:
        _submit(browser, live_server + url, fields, button)
    else:
        browser.get(live_server + url)
    alert = browser.find_element("css selector", "div.errors[role=alert]")
    assert alert.is_displayed() and "The search cannot run as given" in alert.text
    assert f"{field}: {message}" in alert.text, alert.text
    # the same URL answers 400 (the page the browser shows is the error page)
    response = requests.get(browser.current_url, timeout=30)
    assert response.status_code == 400 and "text/html" in response.headers["Content-Type"]
    for fid, text in fields.items():
        if text and browser.find_element("id", fid).tag_name == "input":
            assert browser.find_element("id", fid).get_attribute("value") == text

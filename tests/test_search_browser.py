"""The search form in a real browser (headless Debian Chromium, gunicorn): type an
archive name, press "Resolve name" (the box gets the coordinates and the page says
which resolver answered), search, sort by clicking a column header, go to the next
page, and reopen the Share URL; a bad value comes back in the form with its message."""
from __future__ import annotations

import re

import pytest
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


def test_search_workflow(browser, live_server, demo_archive):
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
    first_page = _rows(browser)
    follow(browser, browser.find_element("css selector", "a[rel=next]"))
    second_page = _rows(browser)
    assert second_page and not set(second_page) & set(first_page)
    share = browser.find_element("id", "share").get_attribute("href")
    assert "page=2" in share
    browser.get(share)
    assert _rows(browser) == second_page


def test_bad_value_shown_in_the_form(browser, live_server):
    browser.get(f"{live_server}/search/aperiodic?pos=10.0+20.0&radius=abc")
    alert = browser.find_element("id", "err-radius").text
    assert "the radius must be a number, not 'abc'" in alert
    assert browser.find_element("id", "f-radius").get_attribute("value") == "abc"
    assert re.search(r"cannot run as given", browser.page_source)

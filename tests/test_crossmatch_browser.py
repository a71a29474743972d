"""The web cross-match in a real browser (headless Debian Chromium, gunicorn): choose a
CSV file written by the test, a catalogue and a radius, submit, and read every match
and separation off the page, checked against a brute-force angular distance over every
catalogue row; a file of the wrong type is refused with its message in the page and
status 400."""
from __future__ import annotations

import pytest
import requests
from selenium.webdriver.support.ui import Select

from helpers import follow
from test_crossmatch_web import RADIUS, _brute_force, _catalogue, _csv, _positions

pytestmark = pytest.mark.e2e


def _fill(browser, live_server, path, catalogue="aperiodic", radius=RADIUS, unit="arcsec"):
    browser.get(f"{live_server}/crossmatch")
    browser.find_element("id", "file").send_keys(str(path))
    Select(browser.find_element("id", "catalogue")).select_by_value(catalogue)
    box = browser.find_element("id", "radius")
    box.clear()
    box.send_keys(str(radius))
    Select(browser.find_element("id", "unit")).select_by_value(unit)
    follow(browser, browser.find_element("css selector", "form.crossmatch button[type=submit]"))


def _table(browser) -> tuple[list[str], list[list[str]]]:
    """(column names, rows of cell texts) of the result table."""
    names = [th.text.split(" [")[0] for th in browser.find_elements(
        "css selector", "#crossmatch thead th")]
    rows = [[td.text for td in tr.find_elements("css selector", "td")]
            for tr in browser.find_elements("css selector", "#crossmatch tbody tr")]
    return names, rows


def test_upload_matches_brute_force(browser, live_server, app, tmp_path):
    positions = _positions(app)
    ids, ra, dec = _catalogue(app)
    expected = _brute_force(positions, ids, ra, dec, RADIUS)
    assert expected and len({i for i, _ in expected}) < len(positions)
    path = tmp_path / "my list.csv"
    path.write_bytes(_csv(positions))
    _fill(browser, live_server, path)
    assert "Cross-match with" in browser.title
    summary = browser.find_element("id", "summary").text
    assert summary.startswith(f"{len(positions)} input rows, "
                              f"{len({i for i, _ in expected})} with at least one match")
    names, rows = _table(browser)
    assert names[:4] == ["name", "ra", "dec", "input_row"] and names[-1] == "sep_arcsec"
    row, key, sep = names.index("input_row"), names.index("extras_id"), names.index("sep_arcsec")
    found, unmatched = {}, set()
    for cells in rows:
        if cells[key]:
            found[(int(cells[row]), cells[key])] = float(cells[sep])
        else:
            assert cells[sep] == ""
            unmatched.add(int(cells[row]))
    assert set(found) == set(expected)
    for pair, separation in expected.items():      # printed to 6 significant digits
        assert found[pair] == pytest.approx(separation, rel=1e-5, abs=1e-4)
    assert unmatched == set(range(1, len(positions) + 1)) - {i for i, _ in expected}
    # each match links to its detection page
    link = browser.find_element("css selector", "#crossmatch tbody a[href*='/detections/']")
    assert link.text in {k for _i, k in expected}


def test_wrong_file_type_is_refused_in_the_page(browser, live_server, tmp_path):
    path = tmp_path / "picture.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    _fill(browser, live_server, path)
    error = browser.find_element("id", "error")
    assert error.is_displayed()
    assert "neither a VOTable, nor FITS, nor CSV" in error.text
    # the form is there again with the choices kept
    assert browser.find_element("id", "radius").get_attribute("value") == str(RADIUS)
    # the same request answers 400
    with path.open("rb") as f:
        response = requests.post(f"{live_server}/crossmatch", files={"file": f}, data={
            "catalogue": "aperiodic", "radius": str(RADIUS), "unit": "arcsec",
            "format": "html"}, timeout=30)
    assert response.status_code == 400
    assert "neither a VOTable, nor FITS, nor CSV" in response.text

"""A student's steps in a real browser (headless Debian Chromium, gunicorn): open a
500 s pn light curve, click a point and read its time, rate and error, change the
time axis; open the detection's multi-camera view, switch on the background and a
band, click their points. Every value read from the page is checked against the FITS
file, read here with astropy."""
from __future__ import annotations

import math

import numpy as np
import pytest
import requests
from astropy.time import Time
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.support.ui import Select, WebDriverWait

from lightcurve_helpers import fits_table, flare_curve, product_paths

pytestmark = pytest.mark.e2e


def _wait_ready(browser, after=None):
    """Wait until the plot has been (re)drawn; returns its data-ready stamp."""
    def ready(driver):
        stamp = driver.find_element("id", "lc-plot").get_attribute("data-ready")
        return stamp if stamp and stamp != after else False
    return WebDriverWait(browser, 30).until(ready)


def _click_point(browser, key, index):
    """Click point ``index`` of curve ``key`` where the page draws it; the readout."""
    pos = browser.execute_script("return LC.page.plot.pixel(arguments[0], arguments[1])",
                                 key, index)
    actions = ActionBuilder(browser)
    actions.pointer_action.move_to_location(int(round(pos["x"])), int(round(pos["y"])))
    actions.pointer_action.click()
    actions.perform()
    readout = browser.find_element("id", "lc-readout")
    WebDriverWait(browser, 10).until(
        lambda d: readout.get_attribute("data-state") == "pinned"
        and readout.find_element("css selector", '[data-field="bin"]').text == str(index))
    return {el.get_attribute("data-field"): el.text
            for el in readout.find_elements("css selector", "dd")}


def _set_axis(browser, unit):
    stamp = browser.find_element("id", "lc-plot").get_attribute("data-ready")
    Select(browser.find_element("id", "lc-axis")).select_by_value(unit)
    _wait_ready(browser, after=stamp)


def _number(text):
    return float(text.split()[0])


def test_a_student_reads_a_point_of_a_light_curve(browser, live_server, demo_archive):
    path = flare_curve(demo_archive)
    cols, header = fits_table(demo_archive, path)
    i = int(np.nanargmax(cols["RATE"]))             # the flare's peak: a point to click
    browser.get(f"{live_server}/lightcurves/view/{path}")
    _wait_ready(browser)
    status = browser.find_element("id", "lc-status").text
    assert f"{len(cols['TIME'])} points" in status
    shown = _click_point(browser, "main", i)
    assert _number(shown["time"]) == pytest.approx(cols["TIME"][i] - header["TSTART"], abs=1e-3)
    assert _number(shown["rate"]) == pytest.approx(cols["RATE"][i], rel=1e-5)
    assert _number(shown["error"]) == pytest.approx(cols["ERROR"][i], rel=1e-5)
    assert _number(shown["fracexp"]) == pytest.approx(cols["FRACEXP"][i], rel=1e-5)

    met = cols["TIME"][i] + header["TIMEZERO"]
    when = Time(header["MJDREF"] + met / 86400, format="mjd", scale="tt")
    _set_axis(browser, "mjd")
    shown = _click_point(browser, "main", i)
    assert _number(shown["time"]) == pytest.approx(when.mjd, abs=2e-8)
    assert _number(shown["rate"]) == pytest.approx(cols["RATE"][i], rel=1e-5)
    _set_axis(browser, "utc")
    shown = _click_point(browser, "main", i)
    assert shown["time"] == when.utc.iso[:23] + " UTC"

    links = {a.text: a.get_attribute("href") for a in browser.find_elements("css selector",
                                                                          "nav.lc-links a")}
    assert links["Download the FITS file"] == f"{live_server}/products/{path}"
    doc = requests.get(f"{live_server}/lightcurves/data/{path}", timeout=30).json()
    assert links[f"Detection {doc['extras_id']}"] == f"{live_server}/detections/{doc['extras_id']}"


def _separated_index(browser, key, shown):
    """A bin of curve ``key`` whose point lies at least 15 px from every other point."""
    mine = browser.execute_script(
        "const d = LC.page.plot.positions[arguments[0]];"
        "return Array.from(d.x, (x, i) => LC.page.plot.pixel(arguments[0], i));", key)
    others = [p for other in shown if other != key for p in browser.execute_script(
        "const d = LC.page.plot.positions[arguments[0]];"
        "return Array.from(d.x, (x, i) => LC.page.plot.pixel(arguments[0], i));", other)]
    best, where = -1.0, None
    for i, p in enumerate(mine):
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in p.values()):
            continue
        gap = min((math.hypot(p["x"] - q["x"], p["y"] - q["y"]) for q in others),
                  default=1e9)
        if gap > best:
            best, where = gap, i
    assert best >= 15, f"no point of {key} stands apart ({best:.1f} px)"
    return where


def _toggle(browser, element_id):
    stamp = browser.find_element("id", "lc-plot").get_attribute("data-ready")
    browser.find_element("id", element_id).click()
    _wait_ready(browser, after=stamp)
    return browser.find_element("id", "lc-plot").get_attribute("data-shown").split()


def test_a_student_compares_cameras_bands_and_background(browser, live_server, demo_archive):
    path = flare_curve(demo_archive)
    obs_id, src_num = path.split("/")[0], int(path.rsplit("_", 2)[1])
    curves = product_paths(demo_archive, obs_id=obs_id, src_num=src_num, category="lightcurve")
    browser.get(f"{live_server}/lightcurves/detection/{obs_id}/{src_num}")
    _wait_ready(browser)
    shown = browser.find_element("id", "lc-plot").get_attribute("data-shown").split()
    expected = sorted(c for c in curves if "ublc" in c and c.endswith("_500s.fit"))
    assert sorted(shown) == expected and len(expected) >= 2    # pn and MOS on one axis

    background = next(c for c in curves if "/bglc_" in c)
    shown = _toggle(browser, "lc-bg")
    assert background in shown
    i = _separated_index(browser, background, shown)
    cols, header = fits_table(demo_archive, background)
    values = _click_point(browser, background, i)
    assert values["curve"] == "pn background"
    assert _number(values["rate"]) == pytest.approx(cols["RATE"][i], rel=1e-5)
    assert _number(values["error"]) == pytest.approx(cols["ERROR"][i], rel=1e-5)
    tmin = min(fits_table(demo_archive, c)[1]["TSTART"] for c in expected)
    assert _number(values["time"]) == pytest.approx(cols["TIME"][i] - tmin, abs=2e-3)

    soft = next(c for c in curves if c.endswith("_500s_b1.fit"))
    shown = _toggle(browser, "lc-band-b1")
    assert soft in shown
    i = _separated_index(browser, soft, shown)
    cols, _ = fits_table(demo_archive, soft)
    values = _click_point(browser, soft, i)
    assert values["curve"] == "pn 0.2-1 keV (soft)"
    assert _number(values["rate"]) == pytest.approx(cols["RATE"][i], rel=1e-5)

    shown = _toggle(browser, "lc-bg")                  # background off again
    assert background not in shown and soft in shown
    stamp = browser.find_element("id", "lc-plot").get_attribute("data-ready")
    browser.find_element("css selector", 'input[name="binning"][value="bb"]').click()
    _wait_ready(browser, after=stamp)
    shown = browser.find_element("id", "lc-plot").get_attribute("data-shown").split()
    assert shown and all("/bblc_" in c for c in shown)
    assert "not in the archive: pn 0.2-1 keV (soft)" in browser.find_element(
        "id", "lc-status").text


def test_a_student_reads_a_long_term_flux_point(browser, live_server, demo_archive):
    import sqlalchemy as sa
    from archive.db import catalogue_tables
    pts = catalogue_tables["longterm_points"]
    engine = sa.create_engine(demo_archive["DATABASE_URL"])
    with engine.connect() as conn:
        srcid = conn.execute(sa.select(pts.c.srcid).group_by(pts.c.srcid)
                             .having(sa.func.count() >= 4).order_by(pts.c.srcid)
                             .limit(1)).scalar_one()
        rows = conn.execute(sa.select(pts).where(pts.c.srcid == srcid)
                            .order_by(pts.c.mjd_start, pts.c.obs_id)).mappings().all()
    engine.dispose()
    browser.get(f"{live_server}/lightcurves/longterm/{srcid}")
    _wait_ready(browser)
    detected = [i for i, r in enumerate(rows) if not r["ul_flag"]]
    j = len(detected) // 2
    pos = browser.execute_script("return LC.page.plot.pixel('flux', arguments[0])", j)
    actions = ActionBuilder(browser)
    actions.pointer_action.move_to_location(int(round(pos["x"])), int(round(pos["y"])))
    actions.pointer_action.click()
    actions.perform()
    readout = browser.find_element("id", "lc-readout")
    WebDriverWait(browser, 10).until(lambda d: readout.get_attribute("data-state") == "pinned")
    values = {el.get_attribute("data-field"): el.text
              for el in readout.find_elements("css selector", "dd")}
    row = rows[detected[j]]
    assert values["bin"] == str(detected[j])
    assert row["obs_id"] in values["time"]
    assert _number(values["rate"]) == pytest.approx(row["flux"], rel=1e-5)
    assert _number(values["error"]) == pytest.approx(row["flux_err"], rel=1e-5)

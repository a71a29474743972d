"""A student's steps in a real browser (headless Debian Chromium, gunicorn): open a
500 s pn light curve, click a point and read its time, rate and error, change the
time axis; open the detection's multi-camera view, switch on the background and a
band, click their points. Every value read from the page is checked against the FITS
file, read here with astropy."""
from __future__ import annotations


import numpy as np
import pytest
import requests
from astropy.time import Time
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.support.ui import WebDriverWait

from lightcurve_helpers import (click_point, fits_table, flare_curve, number, product_paths,
                               separated_index, set_axis, toggle, wait_ready)

pytestmark = pytest.mark.e2e


def test_a_student_reads_a_point_of_a_light_curve(browser, live_server, demo_archive):
    path = flare_curve(demo_archive)
    cols, header = fits_table(demo_archive, path)
    i = int(np.nanargmax(cols["RATE"]))             # the flare's peak: a point to click
    browser.get(f"{live_server}/lightcurves/view/{path}")
    wait_ready(browser)
    status = browser.find_element("id", "lc-status").text
    assert f"{len(cols['TIME'])} points" in status
    shown = click_point(browser, "main", i)
    assert number(shown["time"]) == pytest.approx(cols["TIME"][i] - header["TSTART"], abs=1e-3)
    assert number(shown["rate"]) == pytest.approx(cols["RATE"][i], rel=1e-5)
    assert number(shown["error"]) == pytest.approx(cols["ERROR"][i], rel=1e-5)
    assert number(shown["fracexp"]) == pytest.approx(cols["FRACEXP"][i], rel=1e-5)

    met = cols["TIME"][i] + header["TIMEZERO"]
    when = Time(header["MJDREF"] + met / 86400, format="mjd", scale="tt")
    set_axis(browser, "mjd")
    shown = click_point(browser, "main", i)
    assert number(shown["time"]) == pytest.approx(when.mjd, abs=2e-8)
    assert number(shown["rate"]) == pytest.approx(cols["RATE"][i], rel=1e-5)
    set_axis(browser, "utc")
    shown = click_point(browser, "main", i)
    assert shown["time"] == when.utc.iso[:23] + " UTC"

    links = {a.text: a.get_attribute("href") for a in browser.find_elements("css selector",
                                                                          "nav.lc-links a")}
    assert links["Download the FITS file"] == f"{live_server}/products/{path}"
    doc = requests.get(f"{live_server}/lightcurves/data/{path}", timeout=30).json()
    assert links[f"Detection {doc['extras_id']}"] == f"{live_server}/detections/{doc['extras_id']}"


def test_a_student_compares_cameras_bands_and_background(browser, live_server, demo_archive):
    path = flare_curve(demo_archive)
    obs_id, src_num = path.split("/")[0], int(path.rsplit("_", 2)[1])
    curves = product_paths(demo_archive, obs_id=obs_id, src_num=src_num, category="lightcurve")
    browser.get(f"{live_server}/lightcurves/detection/{obs_id}/{src_num}")
    wait_ready(browser)
    shown = browser.find_element("id", "lc-plot").get_attribute("data-shown").split()
    expected = sorted(c for c in curves if "ublc" in c and c.endswith("_500s.fit"))
    assert sorted(shown) == expected and len(expected) >= 2    # pn and MOS on one axis

    background = next(c for c in curves if "/bglc_" in c)
    shown = toggle(browser, "lc-bg")
    assert background in shown
    i = separated_index(browser, background, shown)
    cols, header = fits_table(demo_archive, background)
    values = click_point(browser, background, i)
    assert values["curve"] == "pn background"
    assert number(values["rate"]) == pytest.approx(cols["RATE"][i], rel=1e-5)
    assert number(values["error"]) == pytest.approx(cols["ERROR"][i], rel=1e-5)
    tmin = min(fits_table(demo_archive, c)[1]["TSTART"] for c in expected)
    assert number(values["time"]) == pytest.approx(cols["TIME"][i] - tmin, abs=2e-3)

    soft = next(c for c in curves if c.endswith("_500s_b1.fit"))
    shown = toggle(browser, "lc-band-b1")
    assert soft in shown
    i = separated_index(browser, soft, shown)
    cols, _ = fits_table(demo_archive, soft)
    values = click_point(browser, soft, i)
    assert values["curve"] == "pn 0.2-1 keV (soft)"
    assert number(values["rate"]) == pytest.approx(cols["RATE"][i], rel=1e-5)

    shown = toggle(browser, "lc-bg")                  # background off again
    assert background not in shown and soft in shown
    stamp = browser.find_element("id", "lc-plot").get_attribute("data-ready")
    browser.find_element("css selector", 'input[name="binning"][value="bb"]').click()
    wait_ready(browser, after=stamp)
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
    wait_ready(browser)
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
    assert number(values["rate"]) == pytest.approx(row["flux"], rel=1e-5)
    assert number(values["error"]) == pytest.approx(row["flux_err"], rel=1e-5)

"""The student workflow of the EXTraS archive (shared/WEB_PORTAL.md, section 2), in a
real browser (headless Debian Chromium, gunicorn on 127.0.0.1, the demo archive).

Step 1 searches by coordinates with the ADQL form of /tap (an HTML result whose rows
lead to the detection pages); the dedicated search form is the web portal's work.
Every value read from a page is checked against the database or the FITS file.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import sqlalchemy as sa
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from archive.db import catalogue_tables, products
from helpers import follow, go_back
from lightcurve_helpers import (click_point, fits_table, flare_curve, number, separated_index,
                               toggle, wait_ready)

pytestmark = pytest.mark.e2e

RADIUS = 0.002          # degrees: the cone of step 1


def _rows(config, stmt):
    engine = sa.create_engine(config["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return conn.execute(stmt).mappings().all()
    finally:
        engine.dispose()


def _visible_names(browser) -> list[str]:
    return [row.get_attribute("data-name") for row in
            browser.find_elements(By.CSS_SELECTOR, "#products-list tr[data-name]")
            if row.is_displayed()]


def _open_preview(browser, name: str) -> None:
    row = browser.find_element(By.CSS_SELECTOR, f'#products-list tr[data-name="{name}"]')
    follow(browser, row.find_element(By.LINK_TEXT, "interactive preview"))
    wait_ready(browser)


def test_the_student_workflow(browser, live_server, demo_archive):
    path = flare_curve(demo_archive)            # a pn 500 s light curve with a flare
    name = path.rsplit("/", 1)[1]
    ap = catalogue_tables["aperiodic"]
    me = _rows(demo_archive, sa.select(ap).join(
        products, products.c.extras_id == ap.c.extras_id).where(products.c.path == path))[0]
    # every detection within the cone, by brute force on the unit vectors
    everyone = _rows(demo_archive, sa.select(ap.c.extras_id, ap.c.ra, ap.c.dec))
    c0 = (math.cos(math.radians(me["dec"])) * math.cos(math.radians(me["ra"])),
          math.cos(math.radians(me["dec"])) * math.sin(math.radians(me["ra"])),
          math.sin(math.radians(me["dec"])))
    inside = set()
    for r in everyone:
        v = (math.cos(math.radians(r.dec)) * math.cos(math.radians(r.ra)),
             math.cos(math.radians(r.dec)) * math.sin(math.radians(r.ra)),
             math.sin(math.radians(r.dec)))
        if sum(a * b for a, b in zip(c0, v)) >= math.cos(math.radians(RADIUS)):
            inside.add(r.extras_id)

    # 1. search by coordinates
    browser.get(live_server + "/tap")
    query = browser.find_element(By.NAME, "QUERY")
    query.clear()
    query.send_keys(
        "SELECT extras_id, obs_id, exp_id, camera, srcid FROM extras.aperiodic WHERE "
        f"CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {me['ra']!r}, {me['dec']!r}, "
        f"{RADIUS})) = 1")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "form button[type=submit]"))

    # 2. every exposure and camera analysed at that position; pick the pn one
    found = {a.text for a in browser.find_elements(By.CSS_SELECTOR, "a[href*='/detections/']")}
    assert found == inside and me["extras_id"] in found and len(found) >= 2
    follow(browser, browser.find_element(By.LINK_TEXT, me["extras_id"]))

    # 3. the products of that camera and exposure, and the 3XMM catalogue entry
    assert me["extras_id"] in browser.find_element(By.TAG_NAME, "h1").text
    recorded = _rows(demo_archive, sa.select(products.c.path).where(
        products.c.extras_id == me["extras_id"]))
    assert len(_visible_names(browser)) == len(recorded)
    ssc = browser.find_element(By.PARTIAL_LINK_TEXT, "serendipitous source catalogue")
    assert ssc.get_attribute("href").endswith(f"/source/{me['srcid']}")

    # 4. the Bayesian-block light curve through the filter box, and its preview
    browser.find_element(By.ID, "product-filter").send_keys("bblc")
    visible = _visible_names(browser)
    assert visible and all("bblc" in n for n in visible)
    blocks_file = name.replace("ublc_", "bblc_").replace("_500s.fit", ".fit")
    blocks = blocks_file.lower()
    _open_preview(browser, blocks)
    n_blocks = len(fits_table(demo_archive, f"{me['obs_id']}/{blocks_file}")[0]["RATE"])
    assert browser.find_element(By.ID, "lc-status").text.startswith(f"{n_blocks} blocks")
    assert n_blocks > 1                             # the flare shows as blocks
    go_back(browser)

    # 5. the 500 s uniform-bin light curve: the flare's peak, read by clicking it
    box = browser.find_element(By.ID, "product-filter")
    box.clear()
    box.send_keys("_500s.fit")
    _open_preview(browser, name.lower())
    cols, header = fits_table(demo_archive, path)
    peak = int(np.nanargmax(cols["RATE"]))
    shown = click_point(browser, "main", peak)
    assert number(shown["time"]) == pytest.approx(cols["TIME"][peak] - header["TSTART"],
                                                  abs=1e-3)
    assert number(shown["rate"]) == pytest.approx(cols["RATE"][peak], rel=1e-5)
    assert number(shown["error"]) == pytest.approx(cols["ERROR"][peak], rel=1e-5)
    assert cols["RATE"][peak] > 2 * np.nanmedian(cols["RATE"])           # a flare
    go_back(browser)

    # 6-8. pn, MOS1 and MOS2 on one time axis, with the background and the bands
    follow(browser, browser.find_element(By.PARTIAL_LINK_TEXT, "pn, MOS1 and MOS2 light curves"))
    wait_ready(browser)
    plot = browser.find_element(By.ID, "lc-plot")
    curves = plot.get_attribute("data-shown").split()
    cameras = {c.rsplit("/", 1)[1].split("_")[2] for c in curves}
    assert cameras >= {"PN", "M1"} and path in curves
    shown = toggle(browser, "lc-bg")                                       # 6. background
    background = next(c for c in shown if "/bglc_" in c)
    i = separated_index(browser, background, shown)
    values = click_point(browser, background, i)
    assert number(values["rate"]) == pytest.approx(
        fits_table(demo_archive, background)[0]["RATE"][i], rel=1e-5)
    shown = toggle(browser, "lc-bg")
    for band in ("b1", "b2", "b3"):                                        # 7. the bands
        shown = toggle(browser, f"lc-band-{band}")
        assert any(c.endswith(f"_500s_{band}.fit") for c in shown)
    WebDriverWait(browser, 10).until(lambda d: "curves shown" in d.find_element(
        By.ID, "lc-status").text or "points" in d.find_element(By.ID, "lc-status").text)
    go_back(browser)

    # 9. sources around the position in Simbad, ranked by distance; ESASky
    simbad = browser.find_element(By.PARTIAL_LINK_TEXT, "Simbad").get_attribute("href")
    assert "sim-coo" in simbad and f"{me['ra']:.6f}" in simbad
    assert "sky.esa.int" in browser.find_element(By.PARTIAL_LINK_TEXT, "ESASky") \
        .get_attribute("href")

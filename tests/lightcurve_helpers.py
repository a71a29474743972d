"""Helpers shared by the light-curve tests: pick products of the demo archive, read
their FITS files independently of the code under test, build a small private archive
whose files the tests may delete or break; read the plot pages in a browser."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from astropy.io import fits
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.support.ui import Select, WebDriverWait

from archive.db import products


def product_paths(config: dict, **where) -> list[str]:
    """Paths of the products (ordered) whose columns equal ``where``."""
    engine = sa.create_engine(config["DATABASE_URL"])
    try:
        stmt = sa.select(products.c.path).order_by(products.c.path)
        for name, value in where.items():
            stmt = stmt.where(products.c[name] == value)
        with engine.connect() as conn:
            return list(conn.execute(stmt).scalars())
    finally:
        engine.dispose()


def fits_table(config: dict, path: str, extension: str = "RATE"):
    """(columns as float64 arrays, header) of a product, read with astropy directly."""
    with fits.open(Path(config["PRODUCTS_DIR"]) / path, memmap=False) as hdul:
        hdu = hdul[extension]
        cols = {n: np.array(hdu.data[n], dtype=np.float64) for n in hdu.columns.names}
        return cols, dict(hdu.header)


def flare_curve(config: dict) -> str:
    """A 500 s, full-band pn light curve with a clear peak (the largest max/median)."""
    best, path = -1.0, None
    for candidate in product_paths(config, product_type="ublc_500s", camera="PN"):
        rate = fits_table(config, candidate)[0]["RATE"]
        contrast = float(np.nanmax(rate) / max(np.nanmedian(rate), 1e-9))
        if contrast > best:
            best, path = contrast, candidate
    return path


# -- reading the pages in a browser (Selenium) ----------------------------------
def wait_ready(browser, after=None):
    """Wait until the plot has been (re)drawn; returns its data-ready stamp."""
    def ready(driver):
        stamp = driver.find_element("id", "lc-plot").get_attribute("data-ready")
        return stamp if stamp and stamp != after else False
    return WebDriverWait(browser, 30).until(ready)
def click_point(browser, key, index):
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
def set_axis(browser, unit):
    stamp = browser.find_element("id", "lc-plot").get_attribute("data-ready")
    Select(browser.find_element("id", "lc-axis")).select_by_value(unit)
    wait_ready(browser, after=stamp)
def number(text):
    return float(text.split()[0])
def separated_index(browser, key, shown):
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
def toggle(browser, element_id):
    stamp = browser.find_element("id", "lc-plot").get_attribute("data-ready")
    browser.find_element("id", element_id).click()
    wait_ready(browser, after=stamp)
    return browser.find_element("id", "lc-plot").get_attribute("data-shown").split()

"""Pages in a real browser: Debian's Chromium driven by Selenium against gunicorn.

No browser is downloaded: the test uses /usr/bin/chromium and /usr/bin/chromedriver
(Debian's ``chromium`` and ``chromium-driver``, installed by ``.ci/test``). A failing
test leaves a screenshot in ``browser-screenshots/``.
"""
from __future__ import annotations

import pytest

from helpers import follow

pytestmark = pytest.mark.e2e


def test_tap_form_error_is_a_page_in_the_site_layout(browser, live_server):
    """A misspelt table in the /tap form shows the server's message in an HTML page
    (not a VOTable the browser cannot show), with a way back to the form."""
    from selenium.webdriver.common.by import By
    browser.get(live_server + "/tap")
    query = browser.find_element(By.NAME, "QUERY")
    query.clear()
    query.send_keys("SELECT TOP 5 ra, dec FROM extras.aperiodc")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "form button[type=submit]"))
    title = browser.find_element(By.ID, "error-title")
    assert title.text == "The request cannot be answered"
    message = browser.find_element(By.CSS_SELECTOR, "section.error .message").text
    assert "unknown table 'extras.aperiodc'" in message
    assert "HTTP 400" in browser.find_element(By.CSS_SELECTOR, "section.error .status").text
    assert browser.find_element(By.CSS_SELECTOR, "header.site a.brand").is_displayed()
    back = browser.find_element(By.LINK_TEXT, "Back to the previous page")
    follow(browser, back)
    assert browser.current_url.rstrip("/").endswith("/tap")
    assert browser.find_element(By.NAME, "QUERY").is_displayed()


def test_unknown_url_is_a_page_in_the_site_layout(browser, live_server):
    from selenium.webdriver.common.by import By
    browser.get(live_server + "/no/such/page")
    assert browser.find_element(By.ID, "error-title").text == "Not found"
    assert "/no/such/page" in browser.find_element(
        By.CSS_SELECTOR, "section.error .message").text
    follow(browser, browser.find_element(By.LINK_TEXT, "Home page"))
    assert browser.current_url == live_server + "/"

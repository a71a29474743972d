"""Navigation: the landing page leads everywhere, every page has the site header and a
footer that claims only what exists, the ADQL form (GET-able, examples one click away,
errors with the way back to the form and the query kept), and the pages at 420 px.

Links to pages other parts of the portal build (``/search/<catalogue>``,
``/crossmatch``) are followed only when this tree has their route; until then the test
checks they are the only links without a route (``PENDING``).
"""
from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from werkzeug.exceptions import MethodNotAllowed, NotFound

import datamodel
from archive.db import catalogue_tables, get_db, products
from archive.http import FORM_LINK_MAX
from archive.tap.examples import EXAMPLES
from archive.web.views import DOCS
from helpers import follow

NAVIGATE = {"Sec-Fetch-Mode": "navigate"}
DOCS_DIR = Path(__file__).resolve().parent.parent / "docs"
HEADER_LINKS = {"Home": "/", "Catalogues": "/catalogues", "Search": "/search",
                "Cross-match": "/crossmatch", "ADQL/TAP": "/tap"}
#: Paths linked to that other parts of issue 11 build (followed once their route exists).
PENDING = {"/crossmatch"} | {f"/search/{t.name}" for t in datamodel.positional_tables()}


class Links(HTMLParser):
    """Every <a href> of a page with its text, and the header's and footer's links."""

    def __init__(self):
        super().__init__()
        self.links: list[tuple[str, str, str]] = []     # (href, text, region)
        self._region: list[str] = []
        self._href: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("header", "footer", "nav", "main"):
            self._region.append(tag)
        if tag == "a" and "href" in attrs:
            self._href, self._text = attrs["href"], ""

    def handle_endtag(self, tag):
        if tag in ("header", "footer", "nav", "main") and self._region:
            self._region.pop()
        if tag == "a" and self._href is not None:
            region = self._region[0] if self._region else "body"
            self.links.append((self._href, " ".join(self._text.split()), region))
            self._href = None

    def handle_data(self, data):
        if self._href is not None:
            self._text += data


def links_of(page: str) -> list[tuple[str, str, str]]:
    parser = Links()
    parser.feed(page)
    return parser.links


def _route_exists(app, path: str) -> bool:
    try:
        app.url_map.bind("localhost").match(path, method="GET")
    except NotFound:
        return False
    except MethodNotAllowed:
        return True
    return True


def _local(href: str) -> str | None:
    """The path of a link into the archive (None for links elsewhere)."""
    parts = urlsplit(href)
    if parts.scheme and parts.netloc != "localhost":
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


@pytest.fixture(scope="module")
def detection(app):
    """A detection with products."""
    ap = catalogue_tables["aperiodic"]
    with get_db(app).readonly.connect() as conn:
        return dict(conn.execute(sa.select(ap.c.extras_id, ap.c.srcid).where(
            ap.c.extras_id.in_(sa.select(products.c.extras_id)))
            .order_by(ap.c.extras_id).limit(1)).mappings().one())


def _pages(detection) -> list[str]:
    return ["/", "/tap", "/catalogues", "/catalogues/aperiodic",
            f"/detections/{detection['extras_id']}", f"/sources/{detection['srcid']}"]


# -- the landing page and the header ----------------------------------------------------

def test_every_link_of_the_landing_page_resolves(client, app):
    page = client.get("/").get_data(as_text=True)
    pending, followed = set(), set()
    for href, text, _ in links_of(page):
        path = _local(href)
        if path is None or href.startswith("#"):
            continue
        bare = path.split("?", 1)[0]
        if not _route_exists(app, bare):
            pending.add(bare)
            continue
        response = client.get(path)
        assert response.status_code == 200, (href, text, response.status_code)
        followed.add(bare)
    # only the pages other parts of the portal build may lack a route, and all of them
    # are linked from the landing page
    assert pending <= PENDING, pending - PENDING
    linked = {(_local(h) or "").split("?", 1)[0] for h, _, _ in links_of(page)}
    assert PENDING <= linked
    for t in datamodel.TABLES.values():
        assert f"/catalogues/{t.name}" in followed
    assert "/tap" in followed and "/catalogues" in followed


def test_landing_page_gives_the_service_urls(client, app):
    page = unescape(client.get("/").get_data(as_text=True))
    urls = re.findall(r'<code class="url">([^<]+)</code>', page)
    assert "http://localhost/tap" in urls
    assert "http://localhost/datalink/links" in urls
    cones = [u for u in urls if "/scs/" in u]
    assert {u.rsplit("/", 1)[1] for u in cones} == \
        {t.name for t in datamodel.positional_tables()} | {"all"}
    for url in urls:                     # each one answers its protocol
        path = urlsplit(url).path
        assert _route_exists(app, path), url
    for url in cones:
        response = client.get(urlsplit(url).path, query_string={"RA": 0, "DEC": 0, "SR": 1})
        assert response.status_code == 200 and b"<VOTABLE" in response.data, url
    assert client.get("/tap/capabilities").status_code == 200
    assert client.get("/datalink/capabilities").status_code == 200


def test_landing_page_names_documentation_that_exists(client):
    page = client.get("/").get_data(as_text=True)
    listed = re.findall(r"<code>docs/([^<]+)</code>", page)
    assert listed == [name for name, _ in DOCS]
    for name in listed:
        assert (DOCS_DIR / name).is_file(), name
    assert "not serve" in page                # and says they are not served


@pytest.mark.parametrize("which", range(7))
def test_every_page_has_the_header_navigation_and_footer(client, app, detection, which):
    path = (_pages(detection) + ["/no/such/page"])[which]
    response = client.get(path, headers=NAVIGATE)
    assert response.status_code == (404 if path == "/no/such/page" else 200)
    links = links_of(response.get_data(as_text=True))
    nav = {text: href for href, text, region in links if region == "header"}
    assert nav.pop("EXTraS Variability Archive", "/") == "/"       # the brand: home
    assert nav == HEADER_LINKS
    for href in HEADER_LINKS.values():
        bare = href.split("#", 1)[0]
        if _route_exists(app, bare):
            assert client.get(bare).status_code == 200, href
        else:
            assert bare in PENDING
    footer = [href for href, _, region in links if region == "footer"]
    assert footer and all(client.get(h.split("#")[0]).status_code == 200 for h in footer)


def test_footer_claims_only_services_that_answer(client):
    page = client.get("/").get_data(as_text=True)
    footer = re.search(r'<footer class="site">(.*?)</footer>', page, re.S).group(1)
    assert "TAP 1.1" in footer and "ObsCore 1.1" in footer
    assert "Simple Cone Search 1.03" in footer and "DataLink 1.1" in footer
    tap = client.get("/tap/capabilities").get_data(as_text=True)
    assert 'standardID="ivo://ivoa.net/std/TAP"' in tap
    assert "ivo://ivoa.net/std/ObsCore#core-1.1" in tap
    scs = client.get("/scs/aperiodic/capabilities").get_data(as_text=True)
    assert 'version="1.03"' in scs
    dl = client.get("/datalink/capabilities").get_data(as_text=True)
    assert 'version="1.1"' in dl


# -- the ADQL form -----------------------------------------------------------------------

def _form(page: str) -> str:
    return re.search(r'<form class="adql".*?</form>', page, re.S).group(0)


def test_adql_form_is_get_and_every_control_has_a_label(client):
    form = _form(client.get("/tap").get_data(as_text=True))
    assert re.search(r'method="get" action="http://localhost/tap/sync"', form)
    assert 'formmethod="post"' in form        # long queries
    controls = re.findall(r"<(textarea|select|input)\b([^>]*)>", form)
    visible = [attrs for tag, attrs in controls if 'type="hidden"' not in attrs]
    assert len(visible) == 3
    for attrs in visible:
        ident = re.search(r'id="([^"]+)"', attrs)
        labelled = ident and f'for="{ident.group(1)}"' in form
        wrapped = re.search(r"<label>[^<]*<(input|select)\b" + re.escape(attrs), form)
        assert labelled or wrapped, attrs


def test_adql_form_runs_by_get_and_the_result_is_a_url(client):
    query = "SELECT TOP 3 extras_id FROM extras.aperiodic ORDER BY extras_id"
    response = client.get("/tap/sync", query_string={
        "LANG": "ADQL", "QUERY": query, "MAXREC": "5", "RESPONSEFORMAT": "html"})
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.get_data(as_text=True).count("/detections/") >= 3


def test_adql_form_fills_in_from_the_url(client):
    query = "SELECT TOP 2 name FROM extras.transients WHERE ra < 10 & 'x' <> 'y'"
    page = client.get("/tap", query_string={"QUERY": query, "MAXREC": "7",
                                            "RESPONSEFORMAT": "csv"}).get_data(as_text=True)
    form = _form(page)
    textarea = re.search(r"<textarea[^>]*>(.*?)</textarea>", form, re.S).group(1)
    assert unescape(textarea) == query
    assert 'name="MAXREC" value="7"' in form
    assert '<option value="csv" selected>' in form
    # lower-case names (DALI parameters are case-insensitive); unknown format: html
    form = _form(client.get("/tap?query=SELECT+1&responseformat=nonsense")
                 .get_data(as_text=True))
    assert ">SELECT 1</textarea>" in form and '<option value="html" selected>' in form
    # no QUERY: the default query
    assert "FROM extras.aperiodic" in _form(client.get("/tap").get_data(as_text=True))


def _examples_links(page: str) -> tuple[list[str], list[str]]:
    links = links_of(page)
    return ([unescape(h) for h, t, _ in links if t.startswith("Run this example")],
            [unescape(h) for h, t, _ in links if t.startswith("Edit in the form")])


def test_every_example_runs_in_one_click(client):
    run, edit = _examples_links(client.get("/tap").get_data(as_text=True))
    runnable = [ex for ex in EXAMPLES if not ex.uploads]
    assert len(run) == len(runnable) and len(edit) == len(EXAMPLES)
    for ex, href in zip(runnable, run):
        params = {k: v[0] for k, v in parse_qs(urlsplit(href).query).items()}
        assert params == {"LANG": "ADQL", "RESPONSEFORMAT": "html", "QUERY": ex.query}
        response = client.get(_local(href))
        assert response.status_code == 200, (ex.id, response.get_data(as_text=True)[:500])
        assert response.mimetype == "text/html"
        assert "<table" in response.get_data(as_text=True), ex.id
    for ex, href in zip(EXAMPLES, edit):
        form = _form(client.get(_local(href)).get_data(as_text=True))
        assert unescape(re.search(r"<textarea[^>]*>(.*?)</textarea>", form, re.S)
                        .group(1)) == ex.query


def test_result_page_leads_home_and_back_to_the_form(client):
    query = "SELECT TOP 2 extras_id FROM extras.aperiodic ORDER BY extras_id"
    page = client.get("/tap/sync", query_string={
        "LANG": "ADQL", "QUERY": query, "MAXREC": "4", "RESPONSEFORMAT": "html"}) \
        .get_data(as_text=True)
    nav = {text: unescape(href) for href, text, region in links_of(page) if region == "nav"}
    assert nav["Home"] == "http://localhost/" and nav["ADQL form"] == "http://localhost/tap"
    form = _form(client.get(_local(nav["Edit this query in the form"])).get_data(as_text=True))
    assert unescape(re.search(r"<textarea[^>]*>(.*?)</textarea>", form, re.S)
                    .group(1)) == query
    assert 'name="MAXREC" value="4"' in form
    # other formats are unchanged: no page navigation in a CSV
    csv = client.get("/tap/sync", query_string={"LANG": "ADQL", "QUERY": query,
                                                "RESPONSEFORMAT": "csv"}).get_data(as_text=True)
    assert csv.splitlines()[0] == "extras_id"


def test_examples_document_leads_home_and_to_the_form(client):
    import xml.etree.ElementTree as ET
    response = client.get("/tap/examples")
    root = ET.fromstring(response.data)                 # still well-formed XHTML
    hrefs = [a.get("href") for a in root.iter("{http://www.w3.org/1999/xhtml}a")]
    assert "http://localhost/" in hrefs and "http://localhost/tap#examples" in hrefs


# -- ADQL errors: in the page, with the position and the way back ------------------------

def _form_link(page: str) -> str | None:
    found = [h for h, t, _ in links_of(page) if t == "Correct the query in the form"]
    return unescape(found[0]) if found else None


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("query, message", [
    ("SELECT ra dec, FROM extras.aperiodic", "(line 1, column 27)"),
    ("SELECT TOP 5 ra,\n  dec FROM extras.aperiodc", "(line 2, column 12)"),
    ("SELECT TOP 5 ra FROM extras.aperiodic WHERE nosuch > 1",
     "unknown column 'nosuch' (line 1, column 45)"),
])
def test_adql_error_page_gives_the_position_and_the_form_back(client, method, query,
                                                              message):
    params = {"LANG": "ADQL", "QUERY": query, "MAXREC": "9", "RESPONSEFORMAT": "html"}
    send = client.get if method == "get" else client.post
    response = send("/tap/sync", **({"query_string": params} if method == "get"
                                    else {"data": params}), headers=NAVIGATE)
    assert response.status_code == 400 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert message in unescape(re.search(r'class="message">(.*?)</p>', page, re.S).group(1))
    link = _form_link(page)
    assert link is not None and urlsplit(link).path == "/tap"
    assert {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()} == \
        {"QUERY": query, "MAXREC": "9", "RESPONSEFORMAT": "html"}
    form = _form(client.get(_local(link)).get_data(as_text=True))
    assert unescape(re.search(r"<textarea[^>]*>(.*?)</textarea>", form, re.S)
                    .group(1)) == query
    assert 'name="MAXREC" value="9"' in form


def test_error_page_of_a_very_long_query_links_to_the_empty_form(client):
    query = "SELECT ra FROM extras.aperiodc WHERE " + " OR ".join(
        f"ra = {i}" for i in range(FORM_LINK_MAX // 8))
    assert len(query) > FORM_LINK_MAX
    response = client.post("/tap/sync", data={"LANG": "ADQL", "QUERY": query,
                                              "RESPONSEFORMAT": "html"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert _form_link(page) is None                       # no URL of 100 kB
    assert "http://localhost/tap" in [h for h, _, _ in links_of(page)]


def test_other_errors_have_no_form_link(client):
    response = client.get("/detections/nonsense", headers=NAVIGATE)
    assert response.status_code == 404
    assert _form_link(response.get_data(as_text=True)) is None
    response = client.get("/tap/sync", query_string={"LANG": "ADQL",
                                                     "RESPONSEFORMAT": "html"})
    assert response.status_code == 400                 # no QUERY: nothing to give back
    assert _form_link(response.get_data(as_text=True)) is None


def test_vo_clients_still_get_votable_errors(client):
    response = client.get("/tap/sync", query_string={
        "LANG": "ADQL", "QUERY": "SELECT ra dec, FROM extras.aperiodic"})
    assert response.status_code == 400 and b"<VOTABLE" in response.data
    assert b"line 1, column 27" in response.data


# -- a real browser at 420 px -------------------------------------------------------------

def _fits(browser, what) -> None:
    """The page does not scroll sideways; its wide tables scroll in their own box."""
    scroll, inner = browser.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]")
    assert inner <= 440, inner              # the window really is narrow
    assert scroll <= inner, (what, scroll, inner)
    # every table wider than the window sits in a box that scrolls sideways
    loose = browser.execute_script("""
        return Array.from(document.querySelectorAll('main table')).filter(function (t) {
          if (t.scrollWidth <= window.innerWidth) { return false; }
          var box = t.closest('div.scroll');
          return !box || getComputedStyle(box).overflowX !== 'auto'
                 || box.clientWidth > window.innerWidth; }).length""")
    assert loose == 0, what


def _search_pages(detection) -> list[str]:
    """The search form, a result, the combined search's form and result, each catalogue."""
    cone = f"pos={detection['extras_id']}&radius=60&unit=arcmin"
    return (["/search/aperiodic", f"/search/aperiodic?{cone}&verb=3",
             "/search/classification?src_class=AGN", "/search", f"/search?{cone}",
             "/crossmatch"]
            + [f"/catalogues/{name}" for name in datamodel.TABLES])


@pytest.mark.e2e
def test_pages_fit_420_px_and_the_navigation_is_reachable_by_tab(browser, live_server,
                                                                 detection):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    size = browser.get_window_size()
    browser.set_window_size(420, 900)
    try:
        for path in _pages(detection) + _search_pages(detection) + [
                "/tap/sync?LANG=ADQL&RESPONSEFORMAT=html&QUERY=SELECT+x+FROM+y"]:
            browser.get(live_server + path)
            _fits(browser, path)
        # the search result with its API code panel open (long lines of code)
        browser.get(live_server + _search_pages(detection)[1])
        assert browser.find_elements(By.CSS_SELECTOR, "table.results tbody tr")
        browser.find_element(By.CSS_SELECTOR, "#api-code summary").click()
        _fits(browser, "API code panel")
        # the cross-match result (a POST from the form)
        browser.get(live_server + "/crossmatch")
        browser.find_element(By.ID, "text").send_keys(detection["extras_id"])
        radius = browser.find_element(By.ID, "radius")
        radius.clear()
        radius.send_keys("600")
        follow(browser, browser.find_element(By.CSS_SELECTOR, "form.crossmatch button"))
        assert browser.find_elements(By.CSS_SELECTOR, "#crossmatch tbody tr")
        _fits(browser, "cross-match result")
        browser.get(live_server + "/")
        body = browser.find_element(By.TAG_NAME, "body")
        reached = []
        for _ in range(12):
            body.send_keys(Keys.TAB) if not reached else \
                browser.switch_to.active_element.send_keys(Keys.TAB)
            reached.append(browser.switch_to.active_element.text)
        for text in HEADER_LINKS:
            assert text in reached, (text, reached)
        # the skip link comes first and leads to the content
        assert reached[0] == "Skip to the content"
    finally:
        browser.set_window_size(size["width"], size["height"])


@pytest.mark.e2e
def test_adql_form_error_and_back_in_a_browser(browser, live_server):
    """Run a misspelt query from the form: the URL holds the query (GET), the error page
    names the position, and its link reopens the form with the query."""
    from selenium.webdriver.common.by import By
    browser.get(live_server + "/tap")
    box = browser.find_element(By.ID, "adql-query")
    box.clear()
    query = "SELECT TOP 5 ra, dec FROM extras.aperiodc"
    box.send_keys(query)
    follow(browser, browser.find_element(By.XPATH, "//button[text()='Run']"))
    assert "/tap/sync?" in browser.current_url and "aperiodc" in browser.current_url
    message = browser.find_element(By.CSS_SELECTOR, "section.error .message").text
    assert "(line 1, column 27)" in message
    follow(browser, browser.find_element(By.LINK_TEXT, "Correct the query in the form"))
    assert browser.find_element(By.ID, "adql-query").get_attribute("value") == query
    # an example runs in one click
    follow(browser, browser.find_element(By.PARTIAL_LINK_TEXT, "Run this example"))
    assert browser.find_elements(By.CSS_SELECTOR, "table tbody tr")

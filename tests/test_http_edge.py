"""The shared HTTP edge: faults answered in the asker's form, for every blueprint."""
from __future__ import annotations

import io

import pytest
from astropy.io.votable import parse

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0",
           "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
           "Sec-Fetch-Mode": "navigate"}
#: what Java's URLConnection sends by default (TOPCAT, STILTS): text/html listed first
JAVA = {"User-Agent": "Java/17.0.15",
        "Accept": "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2"}
PYVO = {"User-Agent": "python-requests/2.34.2 pyVO/1.9.1", "Accept": "*/*"}
BAD_QUERY = {"LANG": "ADQL", "QUERY": "SELECT TOP 1 ra FROM extras.aperiodc"}


def _status_text(body: bytes) -> str:
    """The QUERY_STATUS=ERROR text of an error VOTable (which must be valid)."""
    table = parse(io.BytesIO(body))
    infos = [i for r in table.resources for i in r.infos if i.name == "QUERY_STATUS"]
    assert [i.value for i in infos] == ["ERROR"]
    return infos[0].content


@pytest.mark.parametrize("headers", [PYVO, JAVA, {}])
def test_vo_clients_get_dali_error_votables(client, headers):
    response = client.post("/tap/sync", data=BAD_QUERY, headers=headers)
    assert response.status_code == 400
    assert response.content_type == "application/x-votable+xml"
    assert "unknown table 'extras.aperiodc'" in _status_text(response.data)


def test_a_browser_gets_the_error_page(client):
    response = client.post("/tap/sync", data=BAD_QUERY, headers=BROWSER)
    assert response.status_code == 400
    assert response.content_type == "text/html; charset=utf-8"
    page = response.get_data(as_text=True)
    assert "unknown table &#39;extras.aperiodc&#39;" in page
    assert 'class="site"' in page and "HTTP 400" in page and "UsageFault" in page
    assert "Back to the TAP query form" in page       # no referrer: the service's page


def test_the_way_back_is_the_referring_page_when_it_is_ours(client):
    page = client.post("/tap/sync", data=BAD_QUERY, headers={
        **BROWSER, "Referer": "http://localhost/tap"}).get_data(as_text=True)
    assert 'href="http://localhost/tap">Back to the previous page' in page
    foreign = client.post("/tap/sync", data=BAD_QUERY, headers={
        **BROWSER, "Referer": "http://evil.example/x"}).get_data(as_text=True)
    assert "evil.example" not in foreign


def test_responseformat_decides_over_the_browser(client):
    """RESPONSEFORMAT=html asks for a page from anyone; a VO format from a browser
    asks for a VOTable."""
    html = client.post("/tap/sync", data={**BAD_QUERY, "RESPONSEFORMAT": "html"},
                       headers=PYVO)
    assert html.status_code == 400 and html.content_type.startswith("text/html")
    vo = client.post("/tap/sync", data={**BAD_QUERY, "format": "votable"}, headers=BROWSER)
    assert vo.status_code == 400 and vo.content_type == "application/x-votable+xml"
    assert "unknown table" in _status_text(vo.data)


def test_cone_search_errors_in_both_forms(client):
    vo = client.get("/scs/aperiodic?RA=1&DEC=2&SR=ten", headers=JAVA)
    assert vo.status_code == 200 and vo.content_type == "text/xml"      # SCS 1.03
    assert b'<INFO name="Error"' in vo.data
    page = client.get("/scs/aperiodic?RA=1&DEC=2&SR=ten", headers=BROWSER)
    assert page.status_code == 400 and page.content_type.startswith("text/html")
    assert "SR" in page.get_data(as_text=True)


def test_unknown_urls(client):
    page = client.get("/no/such/page", headers=PYVO)
    assert page.status_code == 404 and page.content_type.startswith("text/html")
    assert "there is nothing at /no/such/page" in page.get_data(as_text=True)
    assert "Not found" in page.get_data(as_text=True)
    tap = client.get("/tap/nothing", headers=PYVO)              # inside TAP: DALI 404
    assert tap.status_code == 404 and tap.content_type == "application/x-votable+xml"
    assert "no TAP resource /tap/nothing" in _status_text(tap.data)
    job = client.get("/tap/async/no-such-job", headers=BROWSER)
    assert job.status_code == 404 and job.content_type.startswith("text/html")


def test_method_not_allowed(client):
    vo = client.delete("/tap/sync", headers=PYVO)
    assert vo.status_code == 405 and vo.content_type == "application/x-votable+xml"
    _status_text(vo.data)
    assert client.delete("/", headers=BROWSER).status_code == 405


def test_unexpected_failures_are_500_in_both_forms(client, monkeypatch):
    from archive.tap.views import sync

    def boom(*args, **kwargs):
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(sync, "run_query", boom)
    good = {"LANG": "ADQL", "QUERY": "SELECT TOP 1 ra FROM extras.aperiodic"}
    vo = client.post("/tap/sync", data=good, headers=PYVO)
    assert vo.status_code == 500
    assert "RuntimeError: the disk is on fire" in _status_text(vo.data)
    page = client.post("/tap/sync", data=good, headers=BROWSER)
    assert page.status_code == 500 and "The archive failed to answer" in page.get_data(
        as_text=True)


def test_every_answer_names_the_server(client):
    for url in ("/", "/tap/capabilities", "/scs/aperiodic/availability", "/nothing"):
        assert client.get(url).headers["Server"].startswith("extras-archive/")


def _server_time(response) -> float:
    """The app's duration (ms) in a W3C Server-Timing header ``app;dur=<ms>``."""
    name, dur = response.headers["Server-Timing"].split(";")
    assert name == "app" and dur.startswith("dur=")
    return float(dur[len("dur="):])


def test_every_answer_says_how_long_the_application_took(client, monkeypatch):
    """Server-Timing on pages, VO answers, streamed results, errors and unknown URLs;
    the figure is the application's time (a view made 80 ms slower shows it)."""
    import time

    from archive.resolver import views

    for url in ("/", "/tap/capabilities", "/scs/aperiodic?RA=10&DEC=20&SR=0.1",
                "/tap/sync?LANG=ADQL&QUERY=SELECT+TOP+5+ra+FROM+extras.aperiodic",
                "/search/aperiodic?pos=10+20&radius=1", "/search/aperiodic?radius=-1",
                "/resolve?name=", "/nothing"):
        started = time.perf_counter()
        response = client.get(url)
        wall = 1000 * (time.perf_counter() - started)
        assert 0 <= _server_time(response) <= wall, url
    real = views.resolve_name

    def slow(*args, **kwargs):
        time.sleep(0.08)
        return real(*args, **kwargs)

    monkeypatch.setattr(views, "resolve_name", slow)
    response = client.get("/resolve", query_string={"name": "150.1 +2.2"})
    assert response.status_code == 200 and _server_time(response) >= 80


def test_availability_is_one_document_for_both_services(client):
    for url in ("/tap/availability", "/scs/aperiodic/availability"):
        body = client.get(url).get_data(as_text=True)
        assert "<vosi:available>true</vosi:available>" in body
        assert "the archive database answered in" in body

"""Helpers shared by the tests: VOTable documents, query results, TAP requests, the CLI."""
from __future__ import annotations

import io
import socket
import warnings
import xml.etree.ElementTree as ET

import click
from astropy.io import votable
from click.testing import CliRunner

from archive import sky
from archive.formats import get_format
from archive.result import QueryResult

VOT = "{http://www.ivoa.net/xml/VOTable/v1.3}"


# -- VOTable documents ------------------------------------------------------------------

def votable_of(data: bytes):
    """The parsed VOTable document; any astropy VOTable warning fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return votable.parse(io.BytesIO(data))


def first_table(data: bytes):
    """The first TABLE of a VOTable document, parsed as astropy does by default."""
    return votable.parse_single_table(io.BytesIO(data))


def query_status(vot) -> list[str]:
    """The values of the QUERY_STATUS INFOs of the first RESOURCE."""
    return [i.value for i in vot.resources[0].infos if i.name == "QUERY_STATUS"]


def query_error(response) -> str:
    """The message of a VOTable error document (exactly one QUERY_STATUS, ERROR)."""
    assert response.mimetype == "application/x-votable+xml"
    vot = votable.parse(io.BytesIO(response.data))
    infos = [i for i in vot.resources[0].infos if i.name == "QUERY_STATUS"]
    assert [i.value for i in infos] == ["ERROR"]
    return infos[0].content


def field_attributes(body: bytes) -> list[dict]:
    """The attributes of every FIELD of a VOTable 1.3 document, in order."""
    root = ET.fromstring(body)
    return [dict(f.attrib) for f in root.iter(f"{VOT}FIELD")]


# -- query results ----------------------------------------------------------------------

def result_rows(result) -> list:
    """Every row of a QueryResult, as its chunks give them."""
    return [row for chunk in result.chunks() for row in chunk]


def query_result(columns, rows, *, chunk=2, overflow=False, infos=(), resources=(),
                 fail_after=None, error=None) -> QueryResult:
    """A QueryResult over ``rows`` in chunks, optionally failing after some chunks."""
    def generate():
        for k, start in enumerate(range(0, len(rows), chunk)):
            if fail_after is not None and k == fail_after:
                raise error or RuntimeError("disk on fire")
            yield list(rows[start:start + chunk])

    return QueryResult(columns, maxrec=None, chunks=generate(), overflow=overflow,
                       infos=infos, resources=resources)


def render(key, result, **options) -> bytes:
    """The whole document the format ``key`` writes for ``result``."""
    return b"".join(get_format(key).render(result, **options))


def longterm_rows(n: int) -> list[dict]:
    """``n`` rows for the longterm table along a short diagonal near (10, -5) degrees."""
    ra = [10.0 + 0.01 * i for i in range(n)]
    dec = [-5.0 + 0.01 * i for i in range(n)]
    hpx = sky.healpix_index(ra, dec)
    x, y, z = sky.unit_vectors(ra, dec)
    return [{"iauname": f"3XMM J{i:06d}", "srcid": i + 1, "ra": ra[i], "dec": dec[i],
             "n_obs": 2 + i % 5, "var_flag": i % 3 == 0, "_hpx": int(hpx[i]),
             "_x": float(x[i]), "_y": float(y[i]), "_z": float(z[i])} for i in range(n)]


# -- TAP requests -----------------------------------------------------------------------

def tap_sync(client, query, files=None, **params):
    """POST an ADQL query to /tap/sync as multipart/form-data, ``files`` as parts."""
    data = {"LANG": "ADQL", "QUERY": query, **params}
    for name, content in (files or {}).items():
        data[name] = (io.BytesIO(content), name)
    return client.post("/tap/sync", data=data, content_type="multipart/form-data")


# -- the command line -------------------------------------------------------------------

class ArchiveRunner(CliRunner):
    """A CliRunner whose ``invoke(args)`` runs ``extras-archive ARGS`` in process: the
    real group of the console script (``archive.cli.cli``, complete once imported)."""

    def invoke(self, args=None, **kwargs):
        return super().invoke(cli_group(), args, prog_name="extras-archive", **kwargs)


def cli_group() -> click.Group:
    """The ``extras-archive`` click group with all its sub-commands."""
    from archive.cli import cli
    return cli


# -- real servers -----------------------------------------------------------------------

def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- a real browser ---------------------------------------------------------------------

def _wait_for_new_page(browser, act, timeout: float) -> None:
    """Run ``act`` (a click, ``back()``) and wait until another page has replaced the
    current one and has loaded: WebDriver's click returns once the click is sent, so a
    test reading the page straight after it may still read the old page. The current
    page is marked with a token of its own in ``window``; a new page (or one restored
    from the back-forward cache, marked by an earlier call) does not carry it. Errors
    while the browser is between pages are retried."""
    import uuid

    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait
    token = uuid.uuid4().hex
    browser.execute_script("window.__archiveTestPage = arguments[0]", token)
    act()
    WebDriverWait(browser, timeout, ignored_exceptions=(WebDriverException,)).until(
        lambda b: b.execute_script(
            "return window.__archiveTestPage !== arguments[0] "
            "&& document.readyState === 'complete'", token))


def follow(browser, element, timeout: float = 10) -> None:
    """Click ``element`` (a link or a submit button) and wait for the page it loads."""
    _wait_for_new_page(browser, element.click, timeout)


def go_back(browser, timeout: float = 10) -> None:
    """``browser.back()``, waiting until the previous page has replaced the current one."""
    _wait_for_new_page(browser, browser.back, timeout)

"""Name resolution (archive/resolver, GET /resolve): the archive's own names, every
coordinate notation, a local stand-in Simbad on 127.0.0.1 (known, unknown, stopped,
too slow), the name_cache table, and bad input. Nothing reaches the internet:
SIMBAD_URL always points at the stand-in or at a closed local port."""
from __future__ import annotations

import re
import socket
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
import sqlalchemy as sa

from archive.db import catalogue_tables, get_db, name_cache
from archive.errors import UsageFault
from archive.resolver import resolve
from archive.resolver.coords import CoordinateError, parse_position

TIMEOUT = 1.0          # SIMBAD_TIMEOUT in these tests
MARGIN = 1.5           # seconds allowed on top of it (a loaded machine)

#: what the stand-in Simbad knows: normalised name -> (main_id, ra, dec)
KNOWN = {"m 31": ("M  31", 10.684708333, 41.26875),
         "3c 273": ("3C 273", 187.27791666, 2.05238888),
         "barnard's star": ("NAME Barnard's star", 269.45207511, 4.69339088)}

VOTABLE = """<?xml version="1.0" encoding="UTF-8"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">
<RESOURCE type="results">
<INFO name="QUERY_STATUS" value="OK"/>
<TABLE>
<FIELD name="main_id" datatype="char" arraysize="*" ucd="meta.id;meta.main"/>
<FIELD name="ra" datatype="double" unit="deg" ucd="pos.eq.ra;meta.main"/>
<FIELD name="dec" datatype="double" unit="deg" ucd="pos.eq.dec;meta.main"/>
<FIELD name="matched_id" datatype="char" arraysize="*" ucd="meta.id"/>
<DATA><TABLEDATA>
{rows}</TABLEDATA></DATA>
</TABLE>
</RESOURCE>
</VOTABLE>
"""


class StandIn:
    """A tiny Simbad TAP service: POST <url>/sync with an ADQL ``id = '<name>'``."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.trickle = 0.0            # > 0: send the answer one byte per this many seconds
        self.stopped = False
        self.status = 200             # anything else: answered with that HTTP error
        self.queries: list[str] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not self.path.endswith("/simbad/sim-tap/sync"):
                    self.send_error(404)
                    return
                query = parse_qs(body.decode())["QUERY"][0]
                stand_in.queries.append(query)
                time.sleep(stand_in.delay)
                if stand_in.status != 200:
                    self.send_error(stand_in.status)
                    return
                match = re.search(r"id = '((?:[^']|'')*)'", query)
                name = " ".join(match.group(1).replace("''", "'").split()).casefold()
                rows = ""
                if name in KNOWN:
                    main_id, ra, dec = KNOWN[name]
                    main_id = main_id.replace("&", "&amp;").replace("<", "&lt;")
                    rows = (f"<TR><TD>{main_id}</TD><TD>{ra}</TD><TD>{dec}</TD>"
                            f"<TD>{main_id}</TD></TR>\n")
                data = VOTABLE.format(rows=rows).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/x-votable+xml")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if stand_in.trickle:
                        for i in range(len(data)):
                            if stand_in.stopped:
                                return
                            self.wfile.write(data[i:i + 1])
                            self.wfile.flush()
                            time.sleep(stand_in.trickle)
                    self.wfile.write(data)
                except OSError:
                    pass              # the client gave up (timeout)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_port}/simbad/sim-tap"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopped = True
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module", autouse=True)
def _astroquery_loaded():
    """Import astroquery once (half a second), so the timings below measure requests."""
    import astroquery.simbad  # noqa: F401


@pytest.fixture
def simbad(app, monkeypatch):
    """A running stand-in Simbad, named by SIMBAD_URL; an empty name_cache."""
    server = StandIn()
    monkeypatch.setitem(app.config, "SIMBAD_URL", server.url)
    monkeypatch.setitem(app.config, "SIMBAD_TIMEOUT", TIMEOUT)
    with get_db(app).engine.begin() as conn:
        conn.execute(sa.delete(name_cache))
    yield server
    server.stop()


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/simbad/sim-tap"


def _resolve(client, name):
    return client.get("/resolve", query_string={"name": name})


def _first(app, table: str, *columns):
    t = catalogue_tables[table]
    with get_db(app).readonly.connect() as conn:
        return conn.execute(sa.select(*(t.c[c] for c in columns)).limit(1)).first()


# -- coordinates ------------------------------------------------------------------------

@pytest.mark.parametrize("text, ra, dec", [
    ("150.1 2.2", 150.1, 2.2),
    ("150.1, +2.2", 150.1, 2.2),
    ("150.1,-2.2", 150.1, -2.2),
    ("150 2", 150.0, 2.0),
    ("150.1d +2.2d", 150.1, 2.2),
    ("10 00 24.0 +02 12 00", 150.1, 2.2),
    ("10 00 24.0 -02 12 00", 150.1, -2.2),
    ("10:00:24 +02:12:00", 150.1, 2.2),
    ("10:00:24, -02:12:00", 150.1, -2.2),
    ("10h00m24s +02d12m00s", 150.1, 2.2),
    ("10h00m24s-02d12m00s", 150.1, -2.2),
    ("J100024.0+021200", 150.1, 2.2),
    ("3XMM J100024.0+021200", 150.1, 2.2),
    ("EXMM J100024.0-021200", 150.1, -2.2),
    ("0.0 -90", 0.0, -90.0),
])
def test_equatorial_notations(text, ra, dec):
    got_ra, got_dec, _ = parse_position(text)
    assert got_ra == pytest.approx(ra, abs=1e-9) and got_dec == pytest.approx(dec, abs=1e-9)


@pytest.mark.parametrize("text", ["gal 120.5 -3.2", "galactic 120.5, -3.2",
                                  "l=120.5 b=-3.2", "L = 120.5, B = -3.2"])
def test_galactic(text):
    from astropy.coordinates import SkyCoord
    ra, dec, kind = parse_position(text)
    expected = SkyCoord(l=120.5, b=-3.2, unit="deg", frame="galactic").icrs
    assert kind == "galactic"
    assert (ra, dec) == pytest.approx((expected.ra.deg, expected.dec.deg), abs=1e-9)
    # and not the same numbers read as RA/Dec
    assert abs(ra - 120.5) > 1


@pytest.mark.parametrize("text, words", [
    ("10 20", "ambiguous"), ("0 0", "ambiguous"), ("1 2 3", "declination begins"),
    ("10 61 00 +02 12 00", "minute"), ("10 00 24 +95 00 00", "-90"),
    ("400.0 2.0", "0..360"), ("150.0 95.0", "-90..+90"), ("gal 400 2", "longitude"),
    ("gal 120 -95", "latitude"),
])
def test_malformed_or_ambiguous_coordinates(text, words):
    with pytest.raises(CoordinateError, match=re.escape(words)):
        parse_position(text)


@pytest.mark.parametrize("text", ["M 31", "m31", "3C 273", "Barnard's star", "NGC 4151",
                                  "PSR J0437-4715", "J1000+0212"])
def test_names_are_not_coordinates(text):
    assert parse_position(text) is None


def test_coordinates_endpoint(client, simbad):
    response = _resolve(client, "10:00:24 +02:12:00")
    assert response.status_code == 200, response.json
    doc = response.json
    assert doc["resolver"] == "coordinates" and doc["cached"] is False
    assert (doc["ra"], doc["dec"]) == pytest.approx((150.1, 2.2), abs=1e-9)
    assert simbad.queries == []
    response = _resolve(client, "10 20")
    assert response.status_code == 400 and "ambiguous" in response.json["error"]
    for jname in ("3XMM J100024.0+021200", "EXMM J100024.0-021200"):   # not archive names
        doc = _resolve(client, jname).json
        assert doc["resolver"] == "coordinates" and doc["resolved_name"] is None
        assert doc["ra"] == pytest.approx(150.1) and abs(doc["dec"]) == pytest.approx(2.2)
    doc = _resolve(client, "gal 120.5 -3.2").json
    assert doc["resolver"] == "coordinates" and doc["dec"] == pytest.approx(59.581059, abs=1e-5)
    response = _resolve(client, "10 61 00 +02 12 00")
    assert response.status_code == 400 and "minute" in response.json["error"]
    assert simbad.queries == []


# -- the archive's own names ------------------------------------------------------------

@pytest.mark.parametrize("table, column", [
    ("longterm", "iauname"), ("classification", "iauname"), ("aperiodic", "extras_id"),
    ("periodic", "extras_id"), ("transients", "name"), ("longterm", "srcid")])
def test_archive_names(app, client, simbad, table, column):
    row = _first(app, table, column, "ra", "dec")
    assert row is not None, f"the demo archive has no {table} rows"
    response = _resolve(client, str(row[0]))
    assert response.status_code == 200, response.json
    doc = response.json
    assert doc["resolver"] == "archive"
    assert (doc["ra"], doc["dec"]) == pytest.approx((row.ra, row.dec), abs=1e-9)
    if column != "srcid":
        assert doc["resolved_name"] == row[0]
    assert simbad.queries == []


def test_archive_name_case_and_spaces(app, client, simbad):
    iauname = _first(app, "longterm", "iauname")[0]
    response = _resolve(client, "  " + iauname.lower().replace(" ", "   ") + " ")
    assert response.status_code == 200 and response.json["resolved_name"] == iauname


def test_unknown_srcid(client, simbad):
    response = _resolve(client, "999999999999")
    assert response.status_code == 404 and "srcid" in response.json["error"]
    assert simbad.queries == []


# -- Simbad (the stand-in) --------------------------------------------------------------

def test_simbad_known_name(client, simbad):
    response = _resolve(client, "M 31")
    assert response.status_code == 200, response.json
    assert response.json == {"name": "M 31", "ra": pytest.approx(10.684708333),
                             "dec": pytest.approx(41.26875), "resolver": "simbad",
                             "resolved_name": "M  31", "cached": False}
    assert len(simbad.queries) == 1 and "id = 'M 31'" in simbad.queries[0]


def test_simbad_quote_in_name(client, simbad):
    response = _resolve(client, "Barnard's star")
    assert response.status_code == 200 and response.json["resolved_name"] == \
        "NAME Barnard's star"
    assert "id = 'Barnard''s star'" in simbad.queries[0]


def test_simbad_unknown_name(client, simbad):
    response = _resolve(client, "No Such Object 42")
    assert response.status_code == 404
    assert "not a name known to this archive or to Simbad" in response.json["error"]


def test_cache_serves_without_simbad(app, client, simbad):
    assert _resolve(client, "3C 273").json["cached"] is False
    assert _resolve(client, "No Such Object 43").status_code == 404
    simbad.stop()
    for _ in range(2):
        response = _resolve(client, "3c   273")          # normalised to the same key
        assert response.status_code == 200, response.json
        assert response.json["cached"] is True and response.json["resolver"] == "simbad"
        assert response.json["resolved_name"] == "3C 273"
        assert _resolve(client, "no such object 43").status_code == 404   # cached miss
    assert len(simbad.queries) == 2
    with get_db(app).engine.connect() as conn:
        rows = {r.name: r.source for r in conn.execute(sa.select(name_cache))}
    assert rows == {"3c 273": "simbad", "no such object 43": "miss"}


def test_cached_miss_expires(app, simbad):
    from datetime import datetime, timedelta, timezone
    db, config = get_db(app), dict(app.config)
    then = datetime.now(timezone.utc) - timedelta(seconds=config["RESOLVER_MISS_TTL"] + 10)
    with pytest.raises(Exception, match="not a name known"):
        resolve(db.engine, db.readonly, "Fresh Miss", config, now=then)
    assert len(simbad.queries) == 1
    with pytest.raises(Exception, match="not a name known"):
        resolve(db.engine, db.readonly, "Fresh Miss", config)       # expired: asked again
    assert len(simbad.queries) == 2
    with pytest.raises(Exception, match="not a name known"):
        resolve(db.engine, db.readonly, "Fresh Miss", config)       # fresh miss: cached
    assert len(simbad.queries) == 2


def test_cache_latency(app, simbad):
    """A cached Simbad answer is served in under 5 ms (median of the service call)."""
    db, config = get_db(app), dict(app.config)
    assert not resolve(db.engine, db.readonly, "M 31", config).cached
    times = []
    for _ in range(50):
        start = time.perf_counter()
        found = resolve(db.engine, db.readonly, "M 31", config)
        times.append(time.perf_counter() - start)
        assert found.cached
    median = statistics.median(times) * 1000
    print(f"\nname resolution from the cache ({app.config['BACKEND']}): "
          f"median {median:.2f} ms, max {max(times) * 1000:.2f} ms")
    assert median < 5.0


def test_simbad_unreachable(app, client, monkeypatch, simbad):
    monkeypatch.setitem(app.config, "SIMBAD_URL", _closed_port_url())
    start = time.perf_counter()
    response = _resolve(client, "M 31")
    elapsed = time.perf_counter() - start
    assert response.status_code == 503
    assert "could not be reached" in response.json["error"]
    assert "type the coordinates" in response.json["error"]
    assert elapsed < TIMEOUT + MARGIN
    with get_db(app).engine.connect() as conn:     # an outage is not cached
        assert conn.execute(sa.select(sa.func.count()).select_from(name_cache)).scalar() == 0


def test_simbad_too_slow(client, simbad):
    simbad.delay = TIMEOUT + 3
    start = time.perf_counter()
    response = _resolve(client, "M 31")
    elapsed = time.perf_counter() - start
    assert response.status_code == 503 and "timed out" in response.json["error"]
    assert elapsed < TIMEOUT + MARGIN
    simbad.delay = 0


def test_simbad_error_status(app, client, simbad):
    simbad.status = 500
    response = _resolve(client, "M 31")
    assert response.status_code == 503 and "type the coordinates" in response.json["error"]
    assert response.headers["Cache-Control"] == "no-store"
    with get_db(app).engine.connect() as conn:     # a failure is not cached
        assert conn.execute(sa.select(sa.func.count()).select_from(name_cache)).scalar() == 0
    simbad.status = 200
    assert _resolve(client, "M 31").status_code == 200


def test_simbad_trickling(client, simbad):
    """A server that answers one byte at a time, each well within the socket timeout,
    still gets only SIMBAD_TIMEOUT in all."""
    simbad.trickle = TIMEOUT / 4
    start = time.perf_counter()
    response = _resolve(client, "M 31")
    elapsed = time.perf_counter() - start
    assert response.status_code == 503 and "timed out" in response.json["error"]
    assert elapsed < TIMEOUT + MARGIN


# -- bad input --------------------------------------------------------------------------

@pytest.mark.parametrize("name, words", [
    (None, "empty"), ("", "empty"), ("   ", "empty"), ("x" * 10000, "at most"),
    ("M\x0031", "control"), ("M 31\x07", "control"), ("M\u200b31", "control"),
    ("M\n31", "control")])
def test_bad_input(client, simbad, name, words):
    response = client.get("/resolve", query_string={} if name is None else {"name": name})
    assert response.status_code == 400
    assert response.content_type == "application/json"
    assert words in response.json["error"]
    assert simbad.queries == []


def test_service_rejects_without_flask(app):
    db = get_db(app)
    with pytest.raises(UsageFault):
        resolve(db.engine, db.readonly, "", dict(app.config))

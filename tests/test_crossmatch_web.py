"""The web cross-match (/crossmatch): uploads and pasted lists against a catalogue,
checked against a brute-force angular-distance computation over every catalogue row."""
from __future__ import annotations

import io
import re

import numpy as np
import pytest
import sqlalchemy as sa
from astropy.table import Table

from archive.db import catalogue_tables

RADIUS = 6.0      # arcsec


def _catalogue(app, name="aperiodic", key="extras_id"):
    """(ids, ra, dec) of every row of the catalogue, straight from the database."""
    from archive.db import get_db
    t = catalogue_tables[name]
    with get_db(app).engine.connect() as conn:
        rows = conn.execute(sa.select(t.c[key], t.c.ra, t.c.dec)).all()
    return ([r[0] for r in rows], np.array([r[1] for r in rows], dtype=float),
            np.array([r[2] for r in rows], dtype=float))


def _separation(ra1, dec1, ra2, dec2):
    """Angular separation in arcsec (haversine), numpy broadcasting."""
    ra1, dec1, ra2, dec2 = map(np.radians, (ra1, dec1, ra2, dec2))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.minimum(h, 1.0)))) * 3600.0


def _brute_force(positions, ids, ra, dec, radius):
    """{(input row, id): separation} of every pair within ``radius`` arcsec."""
    out = {}
    for i, (r, d) in enumerate(positions, 1):
        sep = _separation(r, d, ra, dec)
        # no pair so close to the radius that rounding decides
        assert not np.any(np.abs(sep - radius) < 1e-3)
        for j in np.flatnonzero(sep <= radius):
            out[(i, ids[j])] = float(sep[j])
    return out


def _positions(app):
    """Catalogue positions, some shifted by a few arcsec, and positions far from all."""
    ids, ra, dec = _catalogue(app)
    rng = np.random.default_rng(7)
    picks = rng.choice(len(ids), 12, replace=False)
    out = []
    for n, j in enumerate(picks):
        shift = (0.0, 1.5, 3.5, 8.0)[n % 4] / 3600.0     # arcsec in Dec
        out.append((float(ra[j]), float(dec[j]) + shift))
    grid = [(r, d) for r in range(5, 360, 37) for d in range(-85, 90, 17)]
    far = [(float(r), float(d)) for r, d in grid if _separation(r, d, ra, dec).min() > 600]
    assert len(far) >= 2
    return out + far[:2]


def _post(client, **fields):
    data = {"catalogue": "aperiodic", "radius": str(RADIUS), "unit": "arcsec",
            "format": "html"}
    data.update(fields)
    return client.post("/crossmatch", data=data, content_type="multipart/form-data")


def _csv(positions, extra=True) -> bytes:
    lines = ["name,ra,dec"] + [f"src{i},{r!r},{d!r}" for i, (r, d) in enumerate(positions, 1)]
    return ("\n".join(lines) + "\n").encode()


def _pairs(table, key="extras_id"):
    """{(input_row, id): sep} and the input rows without a match, from a result table."""
    found, unmatched = {}, set()
    for row in table:
        ident = row[key]
        if np.ma.is_masked(ident) or ident in (None, ""):
            unmatched.add(int(row["input_row"]))
        else:
            found[(int(row["input_row"]), str(ident))] = float(row["sep_arcsec"])
    return found, unmatched


def _check(found, unmatched, expected, n_inputs):
    assert set(found) == set(expected)
    for k, sep in expected.items():
        assert found[k] == pytest.approx(sep, abs=1e-4)
    matched_rows = {i for i, _ in expected}
    assert unmatched == set(range(1, n_inputs + 1)) - matched_rows


def test_form_page(client):
    resp = client.get("/crossmatch")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page and 'name="catalogue"' in page
    assert "<header" in page          # the site's layout


def test_csv_upload_matches_brute_force(app, client):
    positions = _positions(app)
    ids, ra, dec = _catalogue(app)
    expected = _brute_force(positions, ids, ra, dec, RADIUS)
    assert expected and len({i for i, _ in expected}) < len(positions)
    resp = _post(client, file=(io.BytesIO(_csv(positions)), "list.csv"), format="csv")
    assert resp.status_code == 200, resp.get_data(as_text=True)[:2000]
    assert "attachment" in resp.headers["Content-Disposition"]
    table = Table.read(resp.get_data(as_text=True), format="ascii.csv")
    assert table.colnames[:4] == ["name", "ra", "dec", "input_row"]
    assert "aperiodic_ra" in table.colnames and table.colnames[-1] == "sep_arcsec"
    found, unmatched = _pairs(table)
    _check(found, unmatched, expected, len(positions))
    # an input row without a match has no separation (not 180 degrees)
    for row in table:
        if int(row["input_row"]) in unmatched:
            assert np.ma.is_masked(row["sep_arcsec"]), row
    # nearest first within one input row
    rows = list(table["input_row"])
    assert rows == sorted(rows)


def test_html_result_links_and_layout(app, client):
    positions = _positions(app)
    resp = _post(client, file=(io.BytesIO(_csv(positions)), "list.csv"))
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert "<header" in page and 'id="crossmatch"' in page
    assert re.search(r'href="[^"]*/detections/0', page)
    assert re.search(r'href="[^"]*/sources/\d+"', page)
    ids, ra, dec = _catalogue(app)
    matched = {i for i, _ in _brute_force(positions, ids, ra, dec, RADIUS)}
    assert f"{len(positions)} input rows, {len(matched)} with at least one match" in page


@pytest.mark.parametrize("fmt", ["votable", "fits"])
def test_votable_and_fits_uploads(app, client, tmp_path, fmt):
    positions = _positions(app)
    ids, ra, dec = _catalogue(app)
    expected = _brute_force(positions, ids, ra, dec, RADIUS)
    table = Table(rows=positions, names=("RA_deg", "Dec_deg"))
    table["RA_deg"].unit = table["Dec_deg"].unit = "deg"
    path = tmp_path / f"in.{fmt}"
    table.write(path, format=fmt)
    # the output in the other format: every result format must parse
    out = "fits" if fmt == "votable" else "votable"
    resp = _post(client, file=(open(path, "rb"), path.name), format=out)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:2000]
    result = Table.read(io.BytesIO(resp.get_data()), format=out)
    found, unmatched = _pairs(result)
    _check(found, unmatched, expected, len(positions))


def test_json_output_parses(app, client):
    import json
    positions = _positions(app)
    resp = _post(client, file=(io.BytesIO(_csv(positions)), "list.csv"), format="json")
    assert resp.status_code == 200
    document = json.loads(resp.get_data())
    assert document


def test_pasted_sexagesimal_decimal_and_names(app, client):
    from astropy.coordinates import SkyCoord
    import astropy.units as u
    ids, ra, dec = _catalogue(app)
    p1, p2, p3 = (float(ra[0]), float(dec[0])), (float(ra[1]), float(dec[1])), \
        (float(ra[2]), float(dec[2]))
    sexa = SkyCoord(p2[0] * u.deg, p2[1] * u.deg).to_string("hmsdms", sep=":", precision=3)
    text = "\n".join([f"{p1[0]:.7f} {p1[1]:+.7f}", "", "# a comment", sexa,
                      ids[2],                       # an archive name
                      "no such object anywhere"])   # Simbad is a closed port: unresolved
    resp = _post(client, text=text, format="csv")
    assert resp.status_code == 200, resp.get_data(as_text=True)[:2000]
    table = Table.read(resp.get_data(as_text=True), format="ascii.csv")
    expected = _brute_force([p1, (p2[0], p2[1]), p3], ids, ra, dec, RADIUS)
    found, unmatched = _pairs(table)
    assert set(found) == set(expected)
    assert list(dict.fromkeys(table["line"])) == [1, 4, 5]
    # the HTML page reports the unresolved line
    resp = _post(client, text=text)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert 'id="unresolved"' in page and "line 6" in page and "no such object" in page
    # a VOTable says it in an INFO
    resp = _post(client, text=text, format="votable")
    assert resp.status_code == 200 and b'name="UNRESOLVED"' in resp.get_data()


BAD = [
    ("no position columns", {"file": (b"name,flux\na,1\n", "l.csv")},
     "columns found: name, flux"),
    ("empty file", {"file": (b"", "l.csv")}, "the uploaded file is empty"),
    ("broken VOTable", {"file": (b"<?xml version='1.0'?><VOTABLE><RESOURCE><TABLE>", "l.xml")},
     "VOTable cannot be read"),
    ("wrong file type", {"file": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "l.png")},
     "neither a VOTable, nor FITS, nor CSV"),
    ("dec out of range", {"file": (b"ra,dec\n10,20\n10,95\n", "l.csv")}, "row 2"),
    ("nothing given", {}, "upload a file"),
    ("no line resolves", {"text": "not a thing\n999.5 +100"}, "line 2"),
    ("radius too large", {"text": "10 20", "radius": "11", "unit": "arcmin"},
     "CROSSMATCH_MAX_RADIUS_ARCSEC"),
    ("radius not a number", {"text": "10 20", "radius": "ten"}, "not a number"),
    ("unknown catalogue", {"text": "10 20", "catalogue": "nope"}, "not a positional"),
    ("unknown unit", {"text": "10 20", "unit": "deg"}, "unit 'deg'"),
    ("unknown format", {"text": "10 20", "format": "xls"}, "xls"),
]


@pytest.mark.parametrize("what, fields, message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_shown_in_the_form(client, what, fields, message):
    fields = dict(fields)
    if "file" in fields:
        content, name = fields["file"]
        fields["file"] = (io.BytesIO(content), name)
    resp = _post(client, **fields)
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert 'id="error"' in page and "<form" in page
    assert message.lower() in page.lower().replace("&#39;", "'"), page[:3000]


def test_file_over_the_size_limit(app, client):
    limit = app.config["UPLOAD_MAX_BYTES"]
    app.config["UPLOAD_MAX_BYTES"] = 100
    try:
        resp = _post(client, file=(io.BytesIO(_csv([(10.0, 20.0)] * 20)), "big.csv"))
    finally:
        app.config["UPLOAD_MAX_BYTES"] = limit
    assert resp.status_code == 400
    assert "UPLOAD_MAX_BYTES" in resp.get_data(as_text=True)


def test_the_match_uses_the_upload_index(app):
    """The same indexed cross-match as TAP uploads: the ADQL translator asked the
    uploaded table for its HEALPix neighbour ranges (archive.tap.uploads)."""
    from archive.crossmatch import service
    from archive.db import get_db
    with app.app_context():
        db = get_db()
        checked = service.parse_request({"catalogue": "aperiodic", "radius": "5"},
                                        app.config)
        table = service.input_table(io.BytesIO(_csv(_positions(app))), app.config)
        match = service.run_crossmatch(table, checked, db, app.config, 1000)
        rows = [r for chunk in match.result.chunks() for r in chunk]
    assert rows
    assert table.xmatch_radius == pytest.approx(5.0 / 3600.0)
    assert "LEFT OUTER JOIN" in service.adql(table, checked.catalogue, 5.0)[0]


@pytest.mark.parametrize("name, key", [("transients", "name"), ("periodic", "extras_id"),
                                       ("longterm", "iauname"),
                                       ("classification", "iauname")])
def test_other_catalogues_match_brute_force(app, client, name, key):
    ids, ra, dec = _catalogue(app, name, key)
    positions = [(float(ra[j]), float(dec[j]) + 1.0 / 3600.0) for j in range(0, len(ids), 7)]
    positions.append((float(ra[0]) + 0.5, float(dec[0])))
    radius = 30.0
    expected = _brute_force(positions, ids, ra, dec, radius)
    text = "\n".join(f"{r!r} {d!r}" for r, d in positions)
    resp = _post(client, text=text, catalogue=name, radius="0.5", unit="arcmin",
                 format="votable")
    assert resp.status_code == 200, resp.get_data(as_text=True)[:2000]
    table = Table.read(io.BytesIO(resp.get_data()), format="votable")
    found, unmatched = _pairs(table, key)
    _check(found, unmatched, expected, len(positions))

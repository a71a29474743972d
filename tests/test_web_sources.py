"""The per-detection and per-source pages, and result rows that lead to them."""
from __future__ import annotations

import math
import re
from html import unescape

import pytest
import sqlalchemy as sa

from archive.db import catalogue_tables, get_db, products

NAVIGATE = {"Sec-Fetch-Mode": "navigate"}


def _fetch(app, stmt):
    with get_db(app).readonly.connect() as conn:
        return conn.execute(stmt).mappings().all()


@pytest.fixture(scope="module")
def detection(app):
    """A pn detection that has products and other detections of its source."""
    ap = catalogue_tables["aperiodic"]
    counts = sa.select(ap.c.srcid, sa.func.count().label("n")).group_by(ap.c.srcid) \
        .subquery()
    row = _fetch(app, sa.select(ap).join(counts, counts.c.srcid == ap.c.srcid).where(
        ap.c.camera == "PN", counts.c.n > 1,
        ap.c.extras_id.in_(sa.select(products.c.extras_id))).order_by(ap.c.extras_id)
        .limit(1))[0]
    return dict(row)


def _names(page: str) -> list[str]:
    return re.findall(r'<tr data-name="([^"]+)">', page)


def test_detection_page_lists_every_product_by_category(client, app, detection):
    page = client.get(f"/detections/{detection['extras_id']}").get_data(as_text=True)
    expected = _fetch(app, sa.select(products.c.path, products.c.category).where(
        products.c.extras_id == detection["extras_id"]))
    names = [p.path.rsplit("/", 1)[1] for p in expected]
    assert sorted(_names(page)) == sorted(n.lower() for n in names)
    for p in expected:
        assert f'href="http://localhost/products/{p.path}"' in page or \
            f'href="/products/{p.path}"' in page
        assert f'value="{p.path}"' in page               # selectable for bulk download
    headings = re.findall(r"<h3>([^<]+)</h3>", page)
    assert headings[0] == "Lightcurve" and "Preview" in headings
    assert len(headings) == len({p.category for p in expected})
    # the full band 500 s pn curve comes first among the light curves
    first = _names(page)[0]
    assert first.startswith("ublc_") and first.endswith("_500s.fit")


def test_filter_box_keeps_matching_products(client, detection):
    url = f"/detections/{detection['extras_id']}"
    names = _names(client.get(url + "?q=BBLC").get_data(as_text=True))
    assert names and all("bblc" in n for n in names)
    assert len(names) < len(_names(client.get(url).get_data(as_text=True)))
    empty = client.get(url + "?q=no-such-file").get_data(as_text=True)
    assert _names(empty) == [] and "No product name contains" in empty


def test_detection_page_shows_its_rows_and_links(client, app, detection):
    page = client.get(f"/detections/{detection['extras_id']}").get_data(as_text=True)
    text = unescape(page)
    assert f"RA {detection['ra']:.6f}°, Dec {detection['dec']:.6f}°" in text
    assert f'/sources/{detection["srcid"]}"' in page
    ap = catalogue_tables["aperiodic"]
    siblings = _fetch(app, sa.select(ap.c.extras_id).where(
        ap.c.srcid == detection["srcid"], ap.c.extras_id != detection["extras_id"]))
    assert siblings
    for s in siblings:
        assert f'/detections/{s.extras_id}">{s.extras_id}</a>' in page
    assert "simbad.cds.unistra.fr/simbad/sim-coo?" in page and "sky.esa.int" in page
    assert f"xmm-catalog.irap.omp.eu/source/{detection['srcid']}" in page
    assert f"/products/bulk?id={detection['extras_id']}" in page
    assert f"/lightcurves/detection/{detection['obs_id']}/{detection['src_num']}" in page
    # every column of the row with its unit and description
    assert "ub_lc500_co_pval" in page and "ct.s**-1" in page


def test_source_page_gathers_every_catalogue(client, app, detection):
    srcid = detection["srcid"]
    page = client.get(f"/sources/{srcid}").get_data(as_text=True)
    ap, lt = catalogue_tables["aperiodic"], catalogue_tables["longterm"]
    rows = _fetch(app, sa.select(ap.c.extras_id, ap.c.ra, ap.c.dec).where(ap.c.srcid == srcid))
    for r in rows:
        assert f'/detections/{r.extras_id}">{r.extras_id}</a>' in page
    has_longterm = bool(_fetch(app, sa.select(lt.c.srcid).where(lt.c.srcid == srcid)))
    assert ("Long-term light curve" in page) is has_longterm
    # transients within 10 arcsec of the mean position, by brute force
    x = sum(math.cos(math.radians(r.dec)) * math.cos(math.radians(r.ra)) for r in rows)
    y = sum(math.cos(math.radians(r.dec)) * math.sin(math.radians(r.ra)) for r in rows)
    z = sum(math.sin(math.radians(r.dec)) for r in rows)
    tr = catalogue_tables["transients"]
    near = []
    for t in _fetch(app, sa.select(tr.c.name, tr.c.ra, tr.c.dec)):
        tx = math.cos(math.radians(t.dec)) * math.cos(math.radians(t.ra))
        ty = math.cos(math.radians(t.dec)) * math.sin(math.radians(t.ra))
        tz = math.sin(math.radians(t.dec))
        cos = (x * tx + y * ty + z * tz) / math.sqrt(x * x + y * y + z * z)
        if math.degrees(math.acos(min(1.0, cos))) < 10 / 3600:
            near.append(t.name)
    for name in near:
        assert f">{name}<" in page
    if not near:
        assert "No transient of the catalogue lies within 10 arcsec" in page


def test_a_transient_near_a_source_is_shown(empty_config, tmp_path):
    """A transient 3 arcsec from a source's detections is listed on the source page,
    one 20 arcsec away is not."""
    import numpy as np
    from archive import create_app
    from ingest_helpers import file_table, run_cli, synthetic, write
    synth = synthetic(300, seed=4)
    ap = synth.aperiodic
    path = write(file_table("aperiodic", ap), tmp_path / "a.fits", "fits")
    assert run_cli(empty_config, "ingest", "catalogue", str(path),
                   "--catalogue", "aperiodic").exit_code == 0
    srcid = int(ap["srcid"][0])
    mine = ap["srcid"] == srcid
    ra, dec = float(np.mean(ap["ra"][mine])), float(np.mean(ap["dec"][mine]))
    tr = {k: np.asarray(v)[:2].copy() for k, v in synth.transients.items()}
    tr["name"] = np.array(["EXMM J000000.0+000000 near", "EXMM J000000.0+000000 far"])
    tr["dec"] = np.array([dec + 3 / 3600, dec + 20 / 3600])
    tr["ra"] = np.array([ra, ra])
    path = write(file_table("transients", tr), tmp_path / "t.csv", "csv")
    result = run_cli(empty_config, "ingest", "catalogue", str(path), "--catalogue",
                     "transients")
    assert result.exit_code == 0, result.output
    app = create_app({**empty_config, "TESTING": True})
    try:
        page = app.test_client().get(f"/sources/{srcid}").get_data(as_text=True)
    finally:
        get_db(app).dispose()
    assert "EXMM J000000.0+000000 near" in page
    assert "EXMM J000000.0+000000 far" not in page


def test_unknown_detection_and_source(client):
    page = client.get("/detections/0000000000_S001_PN_1", headers=NAVIGATE)
    assert page.status_code == 404
    assert "there is no detection" in page.get_data(as_text=True)
    assert client.get("/sources/999999999999").status_code == 404
    assert "no catalogue of this archive has the 3XMM source" in client.get(
        "/sources/999999999999").get_data(as_text=True)
    assert client.get("/sources/not-a-number").status_code == 404


def test_tap_html_results_link_to_the_pages(client):
    body = client.get("/tap/sync", query_string={
        "LANG": "ADQL", "RESPONSEFORMAT": "html",
        "QUERY": "SELECT TOP 3 extras_id, srcid, ra FROM extras.aperiodic"}).get_data(
        as_text=True)
    detections = re.findall(r'<a href="http://localhost/detections/([^"]+)">([^<]+)</a>', body)
    sources = re.findall(r'<a href="http://localhost/sources/(\d+)">(\d+)</a>', body)
    assert len(detections) == 3 and all(a == b for a, b in detections)
    assert len(sources) == 3 and all(a == b for a, b in sources)

"""The /lightcurves endpoints through the Flask client: JSON, pages, caching, BokehJS,
and every bad input (unknown path, an image, a file deleted after ingest, a truncated
file, unknown obs_id/src_num/srcid)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from archive import create_app
from archive.db import catalogue_tables, get_db
from conftest import BACKENDS, new_database_url
from lightcurve_helpers import fits_table, flare_curve, product_paths


def test_json_of_a_light_curve_equals_the_file(client, demo_archive):
    path = flare_curve(demo_archive)
    response = client.get(f"/lightcurves/data/{path}")
    assert response.status_code == 200
    assert response.content_type == "application/json"
    doc = response.get_json()
    cols, header = fits_table(demo_archive, path)
    assert doc["path"] == path and doc["kind"] == "bins" and doc["camera"] == "PN"
    assert doc["binning"] == "500s" and doc["band"] == "full"
    assert doc["energy_kev"] == [0.2, 12.0]
    assert doc["length"] == len(cols["TIME"])
    assert doc["columns"]["TIME"] == cols["TIME"].tolist()
    for name in ("RATE", "ERROR", "FRACEXP"):      # float32 in the file, exact as float32
        np.testing.assert_array_equal(np.float32(doc["columns"][name]),
                                      cols[name].astype(np.float32))
    for key in ("TSTART", "TSTOP", "TIMEZERO", "MJDREF", "TIMESYS", "TIMEDEL", "E_MIN",
                "E_MAX"):
        assert doc["header"][key] == header[key]
    assert doc["gti"]["start"] == [header["TSTART"]]
    assert doc["time"]["mjd_start"] == pytest.approx(
        header["MJDREF"] + header["TSTART"] / 86400, abs=1e-9)
    assert doc["links"]["fits"] == f"/products/{path}"
    assert doc["links"]["detection_page"] == f"/detections/{doc['extras_id']}"


def test_every_time_series_type_has_json(client, demo_archive):
    kinds = {"bblc": "blocks", "bglc_500s": "bins", "ublc_opt": "bins",
             "ublc_500s_b3": "bins", "hrlc_500s": "hardness", "pds": "power"}
    for product_type, kind in kinds.items():
        path = product_paths(demo_archive, product_type=product_type)[0]
        doc = client.get(f"/lightcurves/data/{path}").get_json()
        assert doc["kind"] == kind, product_type
        assert doc["background"] == (product_type == "bglc_500s")


def test_etag_and_not_modified(client, demo_archive):
    path = product_paths(demo_archive, product_type="ublc_opt")[0]
    first = client.get(f"/lightcurves/data/{path}")
    tag = first.headers["ETag"]
    engine = sa.create_engine(demo_archive["DATABASE_URL"])
    with engine.connect() as conn:
        checksum = conn.execute(sa.text("SELECT checksum FROM products WHERE path = :p"),
                                {"p": path}).scalar_one()
    engine.dispose()
    assert tag.strip('"').startswith(checksum.removeprefix("sha256:")[:32])
    assert "max-age=300" in first.headers["Cache-Control"]
    again = client.get(f"/lightcurves/data/{path}", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.data == b""
    other = client.get(f"/lightcurves/data/{path}", headers={"If-None-Match": '"other"'})
    assert other.status_code == 200


def test_pages(client, demo_archive):
    path = flare_curve(demo_archive)
    page = client.get(f"/lightcurves/view/{path}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    doc = client.get(f"/lightcurves/data/{path}").get_json()
    for needed in (f'href="/products/{path}"', f'href="/detections/{doc["extras_id"]}"',
                   "/lightcurves/static/bokeh.min.js", "/lightcurves/static/bokeh-api.min.js",
                   "/static/lightcurves.js", 'id="lc-readout"', 'id="lc-axis"'):
        assert needed in html, needed
    assert "cdn" not in html.lower() and "https://" not in html
    obs_id, src_num = doc["obs_id"], doc["src_num"]
    detection = client.get(f"/lightcurves/detection/{obs_id}/{src_num}")
    assert detection.status_code == 200
    text = detection.get_data(as_text=True)
    for curve in product_paths(demo_archive, obs_id=obs_id, src_num=src_num,
                               category="lightcurve"):
        assert curve in text
    for control in ('id="lc-bg"', 'id="lc-band-b1"', 'value="bb"', 'value="opt"'):
        assert control in text


def test_longterm_json_and_page(client, demo_archive):
    engine = sa.create_engine(demo_archive["DATABASE_URL"])
    pts = catalogue_tables["longterm_points"]
    with engine.connect() as conn:
        srcid = conn.execute(sa.select(pts.c.srcid).where(pts.c.ul_flag)
                             .limit(1)).scalar_one()
        rows = conn.execute(sa.select(pts).where(pts.c.srcid == srcid)
                            .order_by(pts.c.mjd_start)).mappings().all()
    engine.dispose()
    doc = client.get(f"/lightcurves/longterm/{srcid}.json").get_json()
    assert doc["source"]["srcid"] == srcid and doc["length"] == len(rows)
    assert doc["columns"]["mjd_start"] == [r["mjd_start"] for r in rows]
    assert doc["columns"]["flux"] == pytest.approx([r["flux"] for r in rows], rel=1e-6)
    assert doc["columns"]["ul_flag"] == [bool(r["ul_flag"]) for r in rows]
    assert True in doc["columns"]["ul_flag"]
    page = client.get(f"/lightcurves/longterm/{srcid}")
    assert page.status_code == 200 and doc["source"]["iauname"] in page.get_data(as_text=True)


def test_bokehjs_is_served_from_the_wheel(client):
    import bokeh
    response = client.get("/lightcurves/static/bokeh.min.js")
    assert response.status_code == 200
    shipped = Path(bokeh.__file__).parent / "server" / "static" / "js" / "bokeh.min.js"
    assert response.data == shipped.read_bytes()
    assert bokeh.__version__ == "3.9.2"
    for refused in ("compiler.js", "../../__init__.py", "lib/api/main.d.ts"):
        assert client.get(f"/lightcurves/static/{refused}").status_code == 404


# -- bad input ------------------------------------------------------------------------

def test_unknown_path_is_404(client):
    response = client.get("/lightcurves/data/0100000000/ublc_nothing.fit")
    assert response.status_code == 404
    assert "no product '0100000000/ublc_nothing.fit' is registered" in response.get_json()["error"]
    page = client.get("/lightcurves/view/0100000000/ublc_nothing.fit",
                      headers={"Sec-Fetch-Mode": "navigate"})
    assert page.status_code == 404 and "is registered" in page.get_data(as_text=True)
    assert client.get("/lightcurves/data/../../etc/passwd").status_code == 404


def test_an_image_is_not_a_light_curve(client, demo_archive):
    png = product_paths(demo_archive, product_type="qlimg")[0]
    response = client.get(f"/lightcurves/data/{png}")
    assert response.status_code == 400
    assert "is not a light curve" in response.get_json()["error"]
    preview = product_paths(demo_archive, product_type="preview")[0]
    page = client.get(f"/lightcurves/view/{preview}", headers={"Sec-Fetch-Mode": "navigate"})
    assert page.status_code == 400 and "quick-look plot" in page.get_data(as_text=True)


def test_unknown_detection_and_source_are_404(client, demo_archive):
    path = product_paths(demo_archive, product_type="ublc_500s")[0]
    obs_id = path.split("/")[0]
    for url in (f"/lightcurves/detection/{obs_id}/99999", "/lightcurves/detection/0000000000/1",
                "/lightcurves/longterm/1", "/lightcurves/longterm/1.json"):
        response = client.get(url)
        assert response.status_code == 404, url
    assert "no light curves of source 99999" in client.get(
        f"/lightcurves/detection/{obs_id}/99999").get_data(as_text=True)
    assert "has no long-term light curve" in client.get(
        "/lightcurves/longterm/1.json").get_json()["error"]
    assert client.get(f"/lightcurves/detection/{obs_id}/x").status_code == 404


@pytest.fixture(scope="module", params=BACKENDS)
def breakable(request, tmp_path_factory):
    """A small private demo archive whose product files the tests delete and break."""
    from archive.config import load_config
    from ingest.demo import build_demo
    data_dir = tmp_path_factory.mktemp(f"lc-breakable-{request.param}")
    config = load_config({"DATA_DIR": str(data_dir),
                          "DATABASE_URL": new_database_url(request.param, data_dir)},
                         environ={})
    build_demo(config, rows=200, seed=7, workers=1, previews=False)
    app = create_app({**config, "TESTING": True})
    yield config, app.test_client()
    get_db(app).dispose()


def test_a_file_deleted_after_ingest_is_410(breakable):
    config, client = breakable
    path = product_paths(config, product_type="ublc_opt")[0]
    ok = client.get(f"/lightcurves/data/{path}")
    assert ok.status_code == 200
    (Path(config["PRODUCTS_DIR"]) / path).unlink()
    gone = client.get(f"/lightcurves/data/{path}")
    assert gone.status_code == 410
    assert "is registered but its file is no longer on disk" in gone.get_json()["error"]
    cached = client.get(f"/lightcurves/data/{path}", headers={"If-None-Match": ok.headers["ETag"]})
    assert cached.status_code == 410
    page = client.get(f"/lightcurves/view/{path}", headers={"Sec-Fetch-Mode": "navigate"})
    assert page.status_code == 410 and "no longer on disk" in page.get_data(as_text=True)


def test_a_truncated_file_cannot_be_read(breakable):
    config, client = breakable
    path = product_paths(config, product_type="ublc_500s")[0]
    target = Path(config["PRODUCTS_DIR"]) / path
    target.write_bytes(target.read_bytes()[:5000])
    response = client.get(f"/lightcurves/data/{path}")
    assert response.status_code == 422
    assert "cannot be read" in response.get_json()["error"]
    page = client.get(f"/lightcurves/view/{path}", headers={"Sec-Fetch-Mode": "navigate"})
    assert page.status_code == 422
    assert "cannot be read" in page.get_data(as_text=True)

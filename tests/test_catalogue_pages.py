"""Catalogue pages (/catalogues): columns from the data model, row counts, the sky
coverage (MOC) checked against the positions in the database, whole-catalogue
downloads, bad input. On SQLite and PostgreSQL (the ``app``/``client`` fixtures)."""
from __future__ import annotations

import html
import io
import json
import re

import healpy as hp
import numpy as np
import pytest
import sqlalchemy as sa
from astropy.io import fits
from astropy.io.votable import parse_single_table
from mocpy import MOC

import datamodel
from archive.catalogues.coverage import MOC_ORDER, coverage, draw_moc
from archive.db import catalogue_tables, create_engine

POSITIONAL = [n for n, t in datamodel.TABLES.items() if t.positional]


def _engine(app):
    return create_engine(app.config["DATABASE_URL"])


def _count(app, name: str) -> int:
    engine = _engine(app)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(
                catalogue_tables[name])).scalar_one()
    finally:
        engine.dispose()


def _expected_cells(app, name: str) -> set[int]:
    """The order-MOC_ORDER cells of every row's position, computed with healpy from
    ra/dec as stored (not from the _hpx index the MOC is built from)."""
    table = catalogue_tables[name]
    engine = _engine(app)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(table.c.ra, table.c.dec)).all()
    finally:
        engine.dispose()
    ra = np.array([r[0] for r in rows])
    dec = np.array([r[1] for r in rows])
    return set(hp.ang2pix(1 << MOC_ORDER, ra, dec, nest=True, lonlat=True).tolist())


def _moc_cells(moc: MOC) -> set[int]:
    """The cells of ``moc`` at order MOC_ORDER (coarser cells expanded)."""
    out = set()
    ranges = moc.to_depth29_ranges
    shift = np.uint64(2 * (29 - MOC_ORDER))
    for lo, hi in ranges:
        out.update(range(int(lo >> shift), int(hi >> shift)))
    return out


def test_list_page_links_every_catalogue_with_its_count(app, client):
    response = client.get("/catalogues")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for name, table in datamodel.TABLES.items():
        assert f'href="/catalogues/{name}"' in page
        assert html.escape(table.title) in page
        assert f"{_count(app, name):,}" in page


def test_landing_page_links_the_catalogue_pages(client):
    page = client.get("/").get_data(as_text=True)
    for name in datamodel.TABLES:
        assert f'href="/catalogues/{name}"' in page


@pytest.mark.parametrize("name", list(datamodel.TABLES))
def test_page_lists_every_column_and_the_row_count(app, client, name):
    table = datamodel.TABLES[name]
    response = client.get(f"/catalogues/{name}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert html.escape(table.title) in page
    assert html.escape(table.description) in page
    rows = re.search(r'class="row-count" data-rows="(\d+)"', page)
    assert rows and int(rows.group(1)) == _count(app, name) > 0
    for column in table.columns:
        cells = re.search(rf'<tr id="col-{column.name}">(.*?)</tr>', page, re.S)
        assert cells, column.name
        texts = [html.unescape(t) for t in re.findall(r"<td[^>]*>(.*?)</td>", cells.group(1),
                                                     re.S)]
        assert texts == [f"<code>{column.name}</code>", column.datatype,
                         column.arraysize or "", column.unit or "", column.ucd or "",
                         {1: "minimal", 2: "standard", 3: "full"}[column.verbosity],
                         column.description]
    for fmt in ("fits", "votable"):
        assert f"/catalogues/{name}/download?format={fmt}" in page
    if table.positional:
        assert f'src="/catalogues/{name}/moc.png"' in page
        assert f"/catalogues/{name}/moc.fits" in page and f"/catalogues/{name}/moc.json" in page
    else:
        assert "has no positions" in page and "moc.png" not in page


@pytest.mark.parametrize("name", POSITIONAL)
def test_moc_holds_exactly_the_cells_of_the_positions(app, client, name, tmp_path):
    expected = _expected_cells(app, name)
    assert expected
    response = client.get(f"/catalogues/{name}/moc.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    from_json = MOC.from_json(json.loads(response.data))
    response = client.get(f"/catalogues/{name}/moc.fits")
    assert response.status_code == 200
    path = tmp_path / "moc.fits"
    path.write_bytes(response.data)
    from_fits = MOC.load(str(path), format="fits")
    assert fits.open(io.BytesIO(response.data))[1].header["MOCORD_S"] == MOC_ORDER
    assert _moc_cells(from_json) == expected
    assert _moc_cells(from_fits) == expected
    # and every position is inside, as mocpy sees it
    table = catalogue_tables[name]
    engine = _engine(app)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.ra, table.c.dec)).all()
    engine.dispose()
    import astropy.units as u
    inside = from_fits.contains_lonlat([r[0] for r in rows] * u.deg,
                                       [r[1] for r in rows] * u.deg)
    assert inside.all()


@pytest.mark.parametrize("name", POSITIONAL)
def test_moc_picture_is_a_png(client, name):
    response = client.get(f"/catalogues/{name}/moc.png")
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.data.startswith(b"\x89PNG\r\n\x1a\n")


def test_picture_marks_the_cells():
    """Drawn from cells: an empty sky and a covered sky give different pictures."""
    empty = draw_moc(np.array([], dtype=np.uint64))
    full = draw_moc(np.arange(12 * 4 ** MOC_ORDER, step=97, dtype=np.uint64))
    assert empty.startswith(b"\x89PNG") and full != empty


def _transient(i: int, ra: float, dec: float) -> dict:
    theta, phi = np.radians(90.0 - dec), np.radians(ra)
    return {"name": f"EXMM T{i}", "obs_id": f"{i:010d}", "ra": ra, "dec": dec,
            "_hpx": int(hp.ang2pix(1 << 29, ra, dec, nest=True, lonlat=True)),
            "_x": float(np.sin(theta) * np.cos(phi)), "_y": float(np.sin(theta) * np.sin(phi)),
            "_z": float(np.cos(theta))}


def test_moc_cache_is_reused_and_follows_the_data(empty_config):
    """Cached files are reused while the positions stay; a moved row gives new files
    (with the new cell, without the old one) and the old files are removed."""
    from archive.db import init_db
    table = datamodel.TABLES["transients"]
    engine = create_engine(empty_config["DATABASE_URL"])
    data_dir = empty_config["DATA_DIR"]
    try:
        init_db(engine)
        sql = catalogue_tables["transients"]
        with engine.begin() as conn:
            conn.execute(sa.insert(sql), [_transient(1, 10.0, 20.0), _transient(2, 200.0, -45.0)])
        first = coverage(engine, table, data_dir, timeout=10)
        stamp = first.fits.stat().st_mtime_ns
        again = coverage(engine, table, data_dir, timeout=10)
        assert again == first and again.fits.stat().st_mtime_ns == stamp
        assert _moc_cells(MOC.load(str(first.fits), format="fits")) == {
            hp.ang2pix(1 << MOC_ORDER, 10.0, 20.0, nest=True, lonlat=True),
            hp.ang2pix(1 << MOC_ORDER, 200.0, -45.0, nest=True, lonlat=True)}
        with engine.begin() as conn:
            moved = _transient(2, 300.0, 60.0)
            conn.execute(sa.update(sql).where(sql.c.name == "EXMM T2").values(
                **{k: v for k, v in moved.items() if k not in ("name", "obs_id")}))
        second = coverage(engine, table, data_dir, timeout=10)
        assert second.fingerprint != first.fingerprint
        assert not first.fits.exists() and not first.json.exists() and not first.png.exists()
        assert _moc_cells(MOC.from_json(json.loads(second.json.read_text()))) == {
            hp.ang2pix(1 << MOC_ORDER, 10.0, 20.0, nest=True, lonlat=True),
            hp.ang2pix(1 << MOC_ORDER, 300.0, 60.0, nest=True, lonlat=True)}
        assert coverage(engine, datamodel.TABLES["longterm_points"], data_dir,
                        timeout=10) is None
    finally:
        engine.dispose()


def test_longterm_points_has_no_moc(client):
    for suffix in ("moc.fits", "moc.json", "moc.png"):
        response = client.get(f"/catalogues/longterm_points/{suffix}")
        assert response.status_code == 404
        assert "has no positions" in response.get_data(as_text=True)


@pytest.mark.parametrize("name", list(datamodel.TABLES))
def test_fits_download_has_every_row_and_column(app, client, name):
    table = datamodel.TABLES[name]
    response = client.get(f"/catalogues/{name}/download?format=fits")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == \
        f'attachment; filename="extras-{name}.fits"'
    data = fits.open(io.BytesIO(response.data))[1].data
    assert len(data) == _count(app, name)
    assert [n.lower() for n in data.columns.names] == [c.name for c in table.columns]


@pytest.mark.parametrize("name", list(datamodel.TABLES))
def test_votable_download_has_every_row_and_column(app, client, name):
    table = datamodel.TABLES[name]
    response = client.get(f"/catalogues/{name}/download?format=votable")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == \
        f'attachment; filename="extras-{name}.vot"'
    votable = parse_single_table(io.BytesIO(response.data))
    assert len(votable.array) == _count(app, name)
    assert [f.name for f in votable.fields] == [c.name for c in table.columns]
    assert [f.ucd for f in votable.fields] == [c.ucd for c in table.columns]


@pytest.mark.parametrize("path", ["/catalogues/nosuch", "/catalogues/nosuch/moc.fits",
                                  "/catalogues/nosuch/moc.json", "/catalogues/nosuch/moc.png",
                                  "/catalogues/nosuch/download?format=fits"])
def test_unknown_catalogue_is_a_404_page(client, path):
    response = client.get(path, headers={"Accept": "text/html"})
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "no catalogue &#39;nosuch&#39;" in page or "no catalogue 'nosuch'" in page
    assert "<html" in page


def test_unknown_coverage_file_is_a_404_naming_the_files(client):
    response = client.get("/catalogues/aperiodic/moc.txt")
    assert response.status_code == 404
    assert "moc.fits, moc.json, moc.png" in response.get_data(as_text=True)


@pytest.mark.parametrize("query", ["", "?format=csv", "?format=", "?format=fits%00"])
def test_unknown_format_is_a_400_naming_the_accepted_ones(client, query):
    response = client.get(f"/catalogues/aperiodic/download{query}",
                          headers={"Accept": "text/html"})
    assert response.status_code == 400
    page = html.unescape(response.get_data(as_text=True))
    assert "accepted formats are fits, votable" in page
    assert "Content-Disposition" not in response.headers


def test_format_is_case_insensitive(client):
    response = client.get("/catalogues/transients/download?format=VOTable")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].endswith('filename="extras-transients.vot"')
    assert parse_single_table(io.BytesIO(response.data)).array.shape[0] > 0


def test_moc_files_answer_conditional_requests(client):
    first = client.get("/catalogues/periodic/moc.fits")
    assert first.status_code == 200 and first.headers.get("ETag")
    again = client.get("/catalogues/periodic/moc.fits",
                       headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


def test_download_is_streamed(client):
    """The body is a generator sent as it is produced, not a buffered document."""
    response = client.get("/catalogues/aperiodic/download?format=fits", buffered=False)
    try:
        assert response.status_code == 200 and response.is_streamed
        assert "Content-Length" not in response.headers
    finally:
        response.close()

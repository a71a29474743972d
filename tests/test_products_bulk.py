"""GET/POST /products/bulk: zip and tar archives of a selection, read back with zipfile
and tarfile; every selector and filter; every bad input; curl and wget."""
from __future__ import annotations

import csv
import io
import os
import subprocess
import tarfile
import zipfile

import pytest
import requests
import sqlalchemy as sa

from archive.db import catalogue_tables, get_db, products
from products_helpers import SCRATCH_OBS, file_of, product_rows, scratch, sha256  # noqa: F401


def _read_zip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None                     # every CRC right
        return {name: zf.read(name) for name in zf.namelist()}


def _read_tar(data: bytes) -> dict[str, bytes]:
    assert len(data) % tarfile.RECORDSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers()}


def _check_archive(app, response, rows, stem, fmt="zip", statuses=None):
    """The archive holds exactly ``rows``' files, byte for byte, and a manifest whose
    sizes and checksums are the table's and match the bytes."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == {"zip": "application/zip", "tar": "application/x-tar"}[fmt]
    assert response.headers["Content-Disposition"] == f'attachment; filename="{stem}.{fmt}"'
    members = (_read_zip if fmt == "zip" else _read_tar)(response.data)
    statuses = statuses or {}
    included = [r for r in rows if statuses.get(r["path"], "ok") == "ok"]
    assert sorted(members) == sorted([f"{stem}/{r['path']}" for r in included]
                                     + [f"{stem}/manifest.tsv", f"{stem}/SHA256SUMS"])
    for row in included:
        data = members[f"{stem}/{row['path']}"]
        assert data == file_of(app, row).read_bytes()
        assert "sha256:" + sha256(data) == row["checksum"]
    manifest = list(csv.DictReader(io.StringIO(members[f"{stem}/manifest.tsv"].decode()),
                                   delimiter="\t"))
    assert [m["path"] for m in manifest] == [r["path"] for r in rows]
    for entry, row in zip(manifest, rows):
        assert int(entry["size"]) == row["size"]
        assert "sha256:" + entry["sha256"] == row["checksum"]
        assert entry["status"] == statuses.get(row["path"], "ok")
        if entry["status"] == "ok":
            assert sha256(members[f"{stem}/{row['path']}"]) == entry["sha256"]
    sums = members[f"{stem}/SHA256SUMS"].decode().splitlines()
    assert sums == [f"{r['checksum'][7:]}  {r['path']}" for r in included]
    return members


@pytest.fixture(scope="module")
def obs_id(app):
    """The observation with the most products (several cameras)."""
    with get_db(app).engine.connect() as conn:
        return conn.execute(sa.select(products.c.obs_id).group_by(products.c.obs_id)
                            .order_by(sa.func.count().desc(), products.c.obs_id)
                            .limit(1)).scalar_one()


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_an_observation(client, app, obs_id, fmt):
    rows = product_rows(app, products.c.obs_id == obs_id)
    assert len({r["camera"] for r in rows}) > 1
    query = f"/products/bulk?obs_id={obs_id}" + ("" if fmt == "zip" else "&format=tar")
    r = client.get(query)
    _check_archive(app, r, rows, f"extras-products-{obs_id}", fmt)
    assert int(r.headers["X-Archive-Files"]) == len(rows)
    assert int(r.headers["X-Archive-Bytes"]) == sum(x["size"] for x in rows)


def test_a_detection_by_its_catalogue_id(client, app, obs_id):
    extras_id = product_rows(app, products.c.obs_id == obs_id)[0]["extras_id"]
    rows = product_rows(app, products.c.extras_id == extras_id)
    assert 1 < len(rows) < len(product_rows(app, products.c.obs_id == obs_id))
    _check_archive(app, client.get(f"/products/bulk?id={extras_id}"), rows,
                   f"extras-products-{extras_id}")


def _source_with_products(app):
    """(srcid, extras_ids of its aperiodic and periodic detections with products)."""
    ap = catalogue_tables["aperiodic"]
    with get_db(app).engine.connect() as conn:
        srcid = conn.execute(sa.select(ap.c.srcid).join(
            products, products.c.extras_id == ap.c.extras_id).group_by(ap.c.srcid)
            .order_by(sa.func.count(sa.distinct(ap.c.extras_id)).desc(), ap.c.srcid)
            .limit(1)).scalar_one()
        ids = set()
        for name in ("aperiodic", "periodic"):
            t = catalogue_tables[name]
            ids |= set(conn.execute(sa.select(t.c.extras_id).where(t.c.srcid == srcid))
                       .scalars())
    return int(srcid), ids


def test_every_detection_of_a_source(client, app):
    srcid, ids = _source_with_products(app)
    rows = product_rows(app, products.c.extras_id.in_(ids))
    assert len({r["extras_id"] for r in rows}) > 1
    _check_archive(app, client.get(f"/products/bulk?srcid={srcid}"), rows,
                   f"extras-products-srcid-{srcid}")


def test_a_source_by_the_iauname_of_its_longterm_row(client, app):
    srcid, ids = _source_with_products(app)
    lt = catalogue_tables["longterm"]
    with get_db(app).engine.connect() as conn:
        iauname = conn.execute(sa.select(lt.c.iauname).where(lt.c.srcid == srcid)).scalar()
    if iauname is None:
        pytest.fail(f"the demo archive has no long-term row for source {srcid}")
    rows = product_rows(app, products.c.extras_id.in_(ids))
    stem = "extras-products-" + iauname.replace(" ", "_")
    _check_archive(app, client.get("/products/bulk", query_string={"id": iauname}), rows, stem)


def test_paths_repeated_or_comma_separated_and_posted(client, app, obs_id):
    rows = product_rows(app, products.c.obs_id == obs_id)[:3]
    paths = [r["path"] for r in rows]
    by_get = client.get("/products/bulk", query_string=[("path", paths[0]),
                                                        ("PATH", ",".join(paths[1:]))])
    members = _check_archive(app, by_get, rows, by_get.headers["Content-Disposition"]
                             .split('"')[1].rsplit(".", 1)[0])
    by_post = client.post("/products/bulk", data={"Path": paths, "FORMAT": "TAR"})
    stem = by_post.headers["Content-Disposition"].split('"')[1].rsplit(".", 1)[0]
    assert stem.startswith("extras-products-selection-")
    assert _read_tar(by_post.data) == members
    _check_archive(app, by_post, rows, stem, "tar")
    one = client.get("/products/bulk", query_string={"path": paths[0]})
    assert one.headers["Content-Disposition"] == (
        f'attachment; filename="extras-products-{paths[0].split("/")[1].rsplit(".", 1)[0]}.zip"')


@pytest.mark.parametrize("filters, condition", [
    ({"camera": "pn"}, products.c.camera == "PN"),
    ({"category": "lightcurve", "band": "b1"},
     (products.c.category == "lightcurve") & (products.c.band == "b1")),
    ({"type": ["bblc", "ublc_500s"]}, products.c.product_type.in_(["bblc", "ublc_500s"])),
    ({"CATEGORY": "preview,image"}, products.c.category.in_(["preview", "image"])),
])
def test_filters_narrow_the_selection(client, app, obs_id, filters, condition):
    rows = product_rows(app, products.c.obs_id == obs_id, condition)
    assert rows
    r = client.get("/products/bulk", query_string={"obs_id": obs_id, **filters})
    _check_archive(app, r, rows, f"extras-products-{obs_id}")


def test_a_file_gone_or_changed_is_skipped_and_listed_in_the_manifest(client, app, scratch):
    kept = scratch("bblc_0999999999_PN_S001_1.fit", b"A" * 2880)
    gone = scratch("bblc_0999999999_PN_S001_2.fit", b"B" * 2880)
    changed = scratch("bblc_0999999999_PN_S001_3.fit", b"C" * 2880)
    file_of(app, gone).unlink()
    file_of(app, changed).write_bytes(b"D" * 5760)
    statuses = {gone["path"]: "missing", changed["path"]: "changed"}
    for fmt in ("zip", "tar"):
        r = client.get(f"/products/bulk?obs_id={SCRATCH_OBS}&format={fmt}")
        _check_archive(app, r, [kept, gone, changed], f"extras-products-{SCRATCH_OBS}", fmt,
                       statuses)


def test_a_link_out_is_refused_in_the_manifest(client, app, scratch, tmp_path):
    outside = tmp_path / "secret.fit"
    outside.write_bytes(b"SECRET" * 480)
    kept = scratch("bblc_0999999999_PN_S001_1.fit", b"A" * 2880)
    link = scratch("bblc_0999999999_PN_S001_2.fit", target=outside)
    r = client.get(f"/products/bulk?obs_id={SCRATCH_OBS}")
    assert b"SECRET" not in r.data
    _check_archive(app, r, [kept, link], f"extras-products-{SCRATCH_OBS}",
                   statuses={link["path"]: "refused"})


def test_the_archive_streams(client, app, obs_id):
    """The body is an iterator of pieces, not one bytes object."""
    r = client.get(f"/products/bulk?obs_id={obs_id}", buffered=False)
    assert not r.is_sequence
    assert r.headers.get("Content-Length") is None
    pieces = list(r.iter_encoded())
    assert len(pieces) > 1 and all(pieces)


def _error(r, status: int, *words: str) -> str:
    text = r.get_data(as_text=True)
    assert r.status_code == status, text
    assert r.mimetype == "text/plain"
    for word in words:
        assert word in text, text
    return text


@pytest.mark.parametrize("query, status, words", [
    ("", 400, ["empty selection", "obs_id"]),
    ("camera=PN&category=lightcurve", 400, ["empty selection", "only narrow"]),
    ("obs_id={obs}&format=rar", 400, ["unknown bulk download format 'rar'", "zip, tar"]),
    ("obs_id={obs}&format=zip&FORMAT=tar", 400, ["FORMAT was given 2 times"]),
    ("obs_id=12345", 400, ["10-digit", "'12345'"]),
    ("obs_id=0000000000", 404, ["unknown observation", "0000000000"]),
    ("srcid=3XMM", 400, ["srcid must be", "'3XMM'"]),
    ("srcid=-5", 400, ["srcid must be", "'-5'"]),
    ("srcid=1.5", 400, ["srcid must be"]),
    ("srcid=1", 404, ["unknown srcid: 1"]),
    ("id=no_such_row", 404, ["unknown id: 'no_such_row'", "extras_id"]),
    ("path=0000000000/none.fit", 404, ["unknown product path", "0000000000/none.fit"]),
    ("path=../../etc/passwd", 404, ["unknown product path"]),
    ("path=/etc/passwd", 404, ["unknown product path"]),
    ("obs_id={obs}&camera=EMOS1", 400, ["unknown camera 'EMOS1'", "PN, M1, M2"]),
    ("obs_id={obs}&category=spectra", 400, ["unknown category 'spectra'"]),
    ("obs_id={obs}&band=b9", 400, ["unknown band 'b9'", "full, b1"]),
    ("obs_id={obs}&type=lc", 400, ["unknown type 'lc'", "bblc"]),
    ("obs_id={obs}&type=hrlc_500s&band=b1", 400, ["holds no products"]),
])
def test_bad_requests(client, obs_id, query, status, words):
    _error(client.get("/products/bulk?" + query.format(obs=obs_id)), status, *words)


def test_a_transient_name_points_to_its_observation(client, app):
    t = catalogue_tables["transients"]
    with get_db(app).engine.connect() as conn:
        name, obs = conn.execute(sa.select(t.c.name, t.c.obs_id).limit(1)).one()
    _error(client.get("/products/bulk", query_string={"id": name}), 400, "is a transient",
           f"obs_id={obs}")


def test_limits_are_checked_before_streaming(client, app, obs_id, monkeypatch):
    rows = product_rows(app, products.c.obs_id == obs_id)
    total = sum(r["size"] for r in rows)
    monkeypatch.setitem(app.config, "BULK_DOWNLOAD_MAX_FILES", len(rows) - 1)
    text = _error(client.get(f"/products/bulk?obs_id={obs_id}"), 413,
                  f"holds {len(rows):,} files", f"at most {len(rows) - 1:,} files",
                  "narrow it with category=")
    assert "PK" not in text
    monkeypatch.setitem(app.config, "BULK_DOWNLOAD_MAX_FILES", len(rows))
    monkeypatch.setitem(app.config, "BULK_DOWNLOAD_MAX_BYTES", total - 1)
    _error(client.get(f"/products/bulk?obs_id={obs_id}"), 413, f"holds {len(rows):,} files")
    monkeypatch.setitem(app.config, "BULK_DOWNLOAD_MAX_BYTES", total)
    assert client.get(f"/products/bulk?obs_id={obs_id}").status_code == 200


def test_too_many_values(client):
    from archive.products.selection import MAX_VALUES
    query = {"srcid": [str(i) for i in range(1, MAX_VALUES + 2)]}
    _error(client.post("/products/bulk", data=query), 413, f"{MAX_VALUES + 1:,} paths")


def test_a_browser_gets_an_error_page(client):
    r = client.get("/products/bulk", headers={"Sec-Fetch-Mode": "navigate"})
    assert r.status_code == 400 and r.mimetype == "text/html"
    assert "empty selection" in r.get_data(as_text=True)


# -- through gunicorn, with curl and wget ----------------------------------------------

def test_curl_and_wget_save_it_under_its_name(live_server, app, obs_id, tmp_path):
    rows = product_rows(app, products.c.obs_id == obs_id)
    url = f"{live_server}/products/bulk?obs_id={obs_id}"
    for tool, args in (("curl", ["curl", "-sSfOJ", url]),
                       ("wget", ["wget", "-q", "--content-disposition", url + "&format=tar"])):
        where = tmp_path / tool
        where.mkdir()
        subprocess.run(args, cwd=where, check=True, timeout=120)
        (saved,) = where.iterdir()
        fmt = "zip" if tool == "curl" else "tar"
        assert saved.name == f"extras-products-{obs_id}.{fmt}"
        members = (_read_zip if fmt == "zip" else _read_tar)(saved.read_bytes())
        assert len(members) == len(rows) + 2


def test_gunicorn_streams_it_chunked(live_server, app, obs_id):
    r = requests.get(f"{live_server}/products/bulk", params={"obs_id": obs_id}, stream=True,
                     timeout=60)
    assert r.headers.get("Transfer-Encoding") == "chunked"
    members = _read_zip(r.raw.read())
    assert len(members) == len(product_rows(app, products.c.obs_id == obs_id)) + 2
    bad = requests.get(f"{live_server}/products/bulk", params={"srcid": "x"}, timeout=60)
    assert bad.status_code == 400 and bad.text.startswith("400 UsageFault: srcid must be")


def test_a_directory_linked_out_is_refused(client, app, scratch, tmp_path):
    """An observation directory that is a link out of PRODUCTS_DIR: no file of it is
    served, alone or in an archive."""
    from archive.db import get_db
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "bblc_0999999998_PN_S001_1.fit").write_bytes(b"SECRET" * 480)
    kept = scratch("bblc_0999999999_PN_S001_1.fit", b"A" * 2880)
    link = os.path.join(app.config["PRODUCTS_DIR"], "0999999998")
    os.symlink(outside, link)
    st = (outside / "bblc_0999999998_PN_S001_1.fit").stat()
    row = {**kept, "path": "0999999998/bblc_0999999998_PN_S001_1.fit", "size": st.st_size,
           "mtime_ns": st.st_mtime_ns, "extras_id": "0999999998_S001_PN_1"}
    engine = get_db(app).engine
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(products).values(**row))
        single = client.get("/products/" + row["path"])
        assert single.status_code == 404 and b"SECRET" not in single.data
        assert "outside the products directory" in single.get_data(as_text=True)
        for fmt in ("zip", "tar"):
            r = client.post("/products/bulk", data={"path": [row["path"], kept["path"]],
                                                    "format": fmt})
            assert b"SECRET" not in r.data
            stem = r.headers["Content-Disposition"].split('"')[1].rsplit(".", 1)[0]
            _check_archive(app, r, [row, kept], stem, fmt, {row["path"]: "refused"})
    finally:
        with engine.begin() as conn:
            conn.execute(sa.delete(products).where(products.c.path == row["path"]))
        os.unlink(link)


def test_a_large_posted_selection_and_a_too_large_body(client, app):
    """Flask's default form limits (500 kB, 1,000 fields) would refuse 10,000 paths."""
    rows = product_rows(app)[:1]
    paths = [rows[0]["path"]] + [f"0000000000/{i:045d}.fit" for i in range(9999)]
    r = client.post("/products/bulk", data={"path": paths})
    _error(r, 404, "unknown product path", "and 9989 more")
    r = client.post("/products/bulk", data={"path": ["x" * 1000] * 5000})
    _error(r, 413, "the request is too large", "10,000 values")


def test_the_edge_answers_a_body_too_large_to_parse(client):
    """Werkzeug refuses a form beyond Flask's limits while the edge reads the parameters
    to choose the error's form: a 413, not a 500 (here on TAP, whose limit is Flask's)."""
    r = client.post("/tap/sync", data={"QUERY": "x" * 600_000})
    assert r.status_code == 413

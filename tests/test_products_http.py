"""GET /products/<path>: one product file with its headers, conditional and range
requests, and every way of asking for something that must not be served."""
from __future__ import annotations

import os
import subprocess
from email.utils import format_datetime, parsedate_to_datetime
from datetime import timedelta

import pytest
import requests

from archive.db import products
from products_helpers import file_of, product_rows, scratch, sha256  # noqa: F401 (fixture)

BROWSER = {"Sec-Fetch-Mode": "navigate", "Accept": "text/html",
           "User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"}


@pytest.fixture(scope="module")
def fits_row(app):
    return product_rows(app, products.c.product_type == "ublc_500s")[0]


@pytest.fixture(scope="module")
def png_row(app):
    return product_rows(app, products.c.category == "preview")[0]


def _url(row) -> str:
    return "/products/" + row["path"]


@pytest.mark.parametrize("kind", ["fits", "png"])
def test_a_product_is_served_with_its_headers(client, app, request, kind):
    row = request.getfixturevalue(f"{kind}_row")
    data = file_of(app, row).read_bytes()
    r = client.get(_url(row))
    assert r.status_code == 200
    assert r.data == data
    assert "sha256:" + sha256(r.data) == row["checksum"]
    assert r.mimetype == row["mime"] == {"fits": "application/fits", "png": "image/png"}[kind]
    assert int(r.headers["Content-Length"]) == row["size"] == len(data)
    assert r.headers["ETag"] == f'"{row["checksum"].split(":")[1]}"'
    modified = parsedate_to_datetime(r.headers["Last-Modified"])
    assert int(modified.timestamp()) == row["mtime_ns"] // 10 ** 9
    filename = row["path"].rsplit("/", 1)[1]
    assert r.headers["Content-Disposition"] == f"inline; filename={filename}"
    assert r.headers["Accept-Ranges"] == "bytes"
    assert "max-age=3600" in r.headers["Cache-Control"]


def test_head_gives_the_headers_without_the_body(client, fits_row):
    r = client.head(_url(fits_row))
    assert r.status_code == 200
    assert r.data == b""
    assert int(r.headers["Content-Length"]) == fits_row["size"]
    assert r.headers["ETag"].strip('"') == fits_row["checksum"].split(":")[1]


def test_conditional_requests(client, fits_row):
    first = client.get(_url(fits_row))
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert client.get(_url(fits_row), headers={"If-None-Match": etag}).status_code == 304
    assert client.get(_url(fits_row), headers={"If-Modified-Since": modified}).status_code == 304
    other = client.get(_url(fits_row), headers={"If-None-Match": '"0123abcd"'})
    assert other.status_code == 200 and other.data == first.data
    earlier = format_datetime(parsedate_to_datetime(modified) - timedelta(days=1),
                              usegmt=True)
    assert client.get(_url(fits_row),
                      headers={"If-Modified-Since": earlier}).status_code == 200


def test_single_ranges_are_partial_content(client, app, fits_row):
    data = file_of(app, fits_row).read_bytes()
    size = len(data)
    for header, (start, end) in (("bytes=10-19", (10, 19)), ("bytes=-100", (size - 100, size - 1)),
                                 (f"bytes={size - 5}-", (size - 5, size - 1)),
                                 (f"bytes=0-{size + 1000}", (0, size - 1))):
        r = client.get(_url(fits_row), headers={"Range": header})
        assert r.status_code == 206, header
        assert r.headers["Content-Range"] == f"bytes {start}-{end}/{size}"
        assert r.data == data[start:end + 1]
        assert int(r.headers["Content-Length"]) == end - start + 1


def test_if_range_with_a_stale_etag_gives_the_whole_file(client, app, fits_row):
    r = client.get(_url(fits_row), headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert r.status_code == 200
    assert r.data == file_of(app, fits_row).read_bytes()
    current = r.headers["ETag"]
    r = client.get(_url(fits_row), headers={"Range": "bytes=0-9", "If-Range": current})
    assert r.status_code == 206 and len(r.data) == 10


@pytest.mark.parametrize("header", ["bytes=0-9,20-29", "bytes=0-0,-1", "lines=1-2"])
def test_several_ranges_or_another_unit_get_the_whole_file(client, app, fits_row, header):
    r = client.get(_url(fits_row), headers={"Range": header})
    assert r.status_code == 200
    assert r.data == file_of(app, fits_row).read_bytes()


@pytest.mark.parametrize("header", ["bytes={size}-", "bytes={size}-{end}", "bytes=9-2"])
def test_an_unsatisfiable_range_is_416(client, fits_row, header):
    size = fits_row["size"]
    r = client.get(_url(fits_row), headers={"Range": header.format(size=size, end=size + 9)})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == f"bytes */{size}"
    assert r.mimetype == "text/plain"
    assert "not satisfiable" in r.get_data(as_text=True)
    assert f"{size} bytes" in r.get_data(as_text=True)


def _refused(r, secret: bytes = b"root:") -> None:
    assert r.status_code == 404, r.get_data(as_text=True)
    assert secret not in r.data
    text = r.get_data(as_text=True)
    assert "no product is registered" in text or "there is nothing at" in text, text


@pytest.mark.parametrize("url", [
    "/products/../../../../../../etc/passwd",
    "/products/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/products/%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "/products//etc/passwd",
    "/products/%2Fetc%2Fpasswd",
    "/products/etc/passwd",
    "/products/../archive.sqlite",
    "/products/%2e%2e/archive.sqlite",
    "/products/./{path}",
    "/products/{obs}/../{path}",
    "/products/{obs}//{name}",
    "/products/{obs}/%2e/{name}",
    "/products/{path}%00",
    "/products/{path}/",
])
def test_paths_that_are_not_registered_are_404(client, fits_row, url):
    obs, name = fits_row["path"].split("/")
    _refused(client.get(url.format(path=fits_row["path"], obs=obs, name=name)), b"SIMPLE")


def test_a_file_in_the_products_directory_that_is_not_registered_is_404(client, app):
    extra = os.path.join(app.config["PRODUCTS_DIR"], "unregistered.txt")
    with open(extra, "w") as fh:
        fh.write("not a product")
    try:
        _refused(client.get("/products/unregistered.txt"), b"not a product")
    finally:
        os.unlink(extra)


def test_a_link_leading_out_of_the_products_directory_is_refused(client, scratch, tmp_path):
    outside = tmp_path / "secret.fit"
    outside.write_bytes(b"SECRET" * 500)
    row = scratch("bblc_0999999999_PN_S001_1.fit", target=outside)
    r = client.get("/products/" + row["path"])
    assert r.status_code == 404
    assert b"SECRET" not in r.data
    assert "outside the products directory" in r.get_data(as_text=True)


def test_a_link_inside_the_products_directory_is_served(client, app, scratch, fits_row):
    row = scratch("bblc_0999999999_PN_S001_2.fit", target=file_of(app, fits_row))
    r = client.get("/products/" + row["path"])
    assert r.status_code == 200
    assert r.data == file_of(app, fits_row).read_bytes()


def test_a_row_with_a_path_out_of_the_tree_is_never_opened(client, app, scratch):
    from archive.db import get_db
    import sqlalchemy as sa
    row = scratch("bblc_0999999999_PN_S001_3.fit", b"x" * 2880)
    with get_db(app).engine.begin() as conn:       # a tampered table
        conn.execute(sa.update(products).where(products.c.path == row["path"])
                     .values(path="0999999999/../../../../../../etc/passwd"))
    _refused(client.get("/products/0999999999/../../../../../../etc/passwd"))
    _refused(client.get("/products/%2e%2e/%2e%2e/etc/passwd"))


def test_a_product_deleted_from_disk_is_410(client, app, scratch):
    row = scratch("bblc_0999999999_PN_S001_4.fit", b"y" * 2880)
    file_of(app, row).unlink()
    r = client.get("/products/" + row["path"])
    assert r.status_code == 410
    assert r.mimetype == "text/plain"
    text = r.get_data(as_text=True)
    assert "no longer on disk" in text and row["path"] in text
    page = client.get("/products/" + row["path"], headers=BROWSER)
    assert page.status_code == 410 and page.mimetype == "text/html"
    assert "no longer on disk" in page.get_data(as_text=True)


def test_a_product_changed_on_disk_is_409(client, app, scratch):
    row = scratch("bblc_0999999999_PN_S001_5.fit", b"z" * 2880)
    path = file_of(app, row)
    path.write_bytes(b"z" * 5760)
    r = client.get("/products/" + row["path"])
    assert r.status_code == 409
    assert "5760 bytes now, 2880 recorded" in r.get_data(as_text=True)
    path.write_bytes(b"w" * 2880)                     # same size, new content and mtime
    os.utime(path, ns=(row["mtime_ns"] + 10 ** 9, row["mtime_ns"] + 10 ** 9))
    r = client.get("/products/" + row["path"])
    assert r.status_code == 409
    assert "modification time changed" in r.get_data(as_text=True)
    os.utime(path, ns=(row["mtime_ns"], row["mtime_ns"]))
    assert client.get("/products/" + row["path"]).status_code == 200


def test_errors_are_pages_for_browsers_and_text_for_scripts(client):
    r = client.get("/products/0000000000/nothing.fit")
    assert r.status_code == 404 and r.mimetype == "text/plain"
    assert r.get_data(as_text=True).startswith("404 NotFoundFault: no product is registered")
    page = client.get("/products/0000000000/nothing.fit", headers=BROWSER)
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert "no product is registered" in page.get_data(as_text=True)


def test_only_get_and_head(client, fits_row):
    assert client.post(_url(fits_row)).status_code == 405
    assert client.delete(_url(fits_row)).status_code == 405


# -- through gunicorn, with real clients ---------------------------------------------

def test_served_by_gunicorn(live_server, app, fits_row):
    data = file_of(app, fits_row).read_bytes()
    r = requests.get(live_server + _url(fits_row), timeout=30)
    assert r.status_code == 200 and r.content == data
    assert r.headers["Content-Type"] == "application/fits"
    r = requests.get(live_server + _url(fits_row), headers={"Range": "bytes=100-199"},
                     timeout=30)
    assert r.status_code == 206 and r.content == data[100:200]
    r = requests.get(live_server + _url(fits_row),
                     headers={"If-None-Match": f'"{fits_row["checksum"][7:]}"'}, timeout=30)
    assert r.status_code == 304 and r.content == b""


def test_curl_resumes_a_download(live_server, app, fits_row, tmp_path):
    """curl -C - continues a partial file with a range request."""
    data = file_of(app, fits_row).read_bytes()
    target = tmp_path / "partial.fit"
    target.write_bytes(data[:1000])
    subprocess.run(["curl", "-sSf", "-C", "-", "-o", str(target), live_server + _url(fits_row)],
                   check=True, timeout=60)
    assert target.read_bytes() == data


def test_curl_does_not_normalise_into_another_file(live_server):
    out = subprocess.run(["curl", "-s", "--path-as-is", "-w", "\n%{http_code}",
                          live_server + "/products/../../../../etc/passwd"],
                         capture_output=True, text=True, timeout=60).stdout
    assert out.rstrip().endswith("404") and "root:" not in out

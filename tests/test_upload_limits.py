"""Hostile uploads get a 400 naming what was wrong, before anything big is allocated:
declared arraysizes, columns, rows, names (archive/tap/upload_limits.py). Sync
through the Flask test client on both backends, async jobs end in ERROR with the
same message, and a gunicorn worker's memory stays flat under the 264-byte
VOTable that used to grow it by over 1 GB."""
from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from archive.errors import UsageFault, describe
from helpers import first_table, query_error, tap_sync

#: 264 bytes: one char field declaring 100,000,000 characters, one row
HUGE_CHAR = (b'<?xml version="1.0"?><VOTABLE version="1.3" '
             b'xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE>'
             b'<FIELD name="s" datatype="char" arraysize="100000000"/>'
             b'<DATA><TABLEDATA><TR><TD>x</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE>'
             b'</VOTABLE>')


def votable(fields: str, data: str = "<TABLEDATA></TABLEDATA>", table_attrs: str = "") -> bytes:
    return (f'<?xml version="1.0"?><VOTABLE version="1.3" '
            f'xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE{table_attrs}>'
            f'{fields}<DATA>{data}</DATA></TABLE></RESOURCE></VOTABLE>').encode()


def csv_with_columns(n: int, rows: int = 2) -> bytes:
    head = ",".join(f"c{i}" for i in range(n))
    body = "\n".join(",".join(str(r * n + i) for i in range(n)) for r in range(rows))
    return (head + "\n" + body + "\n").encode()


def upload(client, content: bytes, query: str = "SELECT * FROM TAP_UPLOAD.t", name="t"):
    return tap_sync(client, query, {"p": content}, UPLOAD=f"{name},param:p")


def refused(response, *words) -> str:
    assert response.status_code == 400, response.data[:500]
    message = query_error(response)
    for word in words:
        assert word in message, message
    assert "/" + "tmp" not in message and "Traceback" not in message
    return message


def test_huge_declared_char_field_is_refused_before_reading(client):
    assert len(HUGE_CHAR) < 300
    refused(upload(client, HUGE_CHAR), "field 's'", "arraysize='100000000'",
            "UPLOAD_MAX_ARRAYSIZE")
    # the same declaration with a BINARY2 stream (numpy's reader) and an empty one
    empty = votable('<FIELD name="s" datatype="char" arraysize="100000000"/>',
                    '<BINARY2><STREAM encoding="base64"></STREAM></BINARY2>')
    refused(upload(client, empty), "UPLOAD_MAX_ARRAYSIZE")
    # several dimensions multiply
    refused(upload(client, votable('<FIELD name="m" datatype="double" '
                                   'arraysize="1000x1000"/>')),
            "field 'm'", "1000000 elements")
    refused(upload(client, votable('<FIELD name="b" datatype="char" arraysize="ten"/>')),
            "not a VOTable array size")


def test_declared_width_times_rows_is_bounded(client):
    # 4,000 empty rows of a 60,000-character field: 56 kB sent, 240 MB to allocate
    rows = "<TR><TD/></TR>" * 4000
    content = votable('<FIELD name="s" datatype="char" arraysize="60000"/>',
                      f"<TABLEDATA>{rows}</TABLEDATA>")
    assert len(content) < 60000
    refused(upload(client, content), "4000 rows of 60000 bytes", "UPLOAD_MAX_BYTES")
    # the same field with few rows is fine, and its values come back
    ok = votable('<FIELD name="s" datatype="char" arraysize="60000"/>',
                 "<TABLEDATA><TR><TD>abc</TD></TR></TABLEDATA>")
    r = upload(client, ok)
    assert r.status_code == 200, r.data
    assert [str(x) for x in first_table(r.data).array["s"]] == ["abc"]


def test_stream_href_is_refused(client, tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\x00\x00\x00\x06secret")
    content = votable('<FIELD name="s" datatype="char" arraysize="*"/>',
                      f'<BINARY><STREAM href="file://{secret}"/></BINARY>')
    message = refused(upload(client, content), "STREAM with href", "not accepted")
    assert "secret" not in message


def test_declared_nrows_above_the_limit_is_refused(client):
    refused(upload(client, votable('<FIELD name="i" datatype="int"/>',
                                   table_attrs=' nrows="1000000000"')),
            "nrows=1000000000", "UPLOAD_MAX_ROWS")


def test_too_many_columns(client):
    refused(upload(client, csv_with_columns(2001)), "2001 columns", "UPLOAD_MAX_COLUMNS")
    fields = "".join(f'<FIELD name="c{i}" datatype="int"/>' for i in range(2001))
    refused(upload(client, votable(fields)), "2001 columns", "UPLOAD_MAX_COLUMNS")
    # at the limit, the table works on both databases
    r = upload(client, csv_with_columns(1000), "SELECT c0, c999 FROM TAP_UPLOAD.t ORDER BY c0")
    assert r.status_code == 200, r.data[:500]
    got = first_table(r.data).array
    assert got["c0"].tolist() == [0, 1000] and got["c999"].tolist() == [999, 1999]


def test_long_names(client):
    message = refused(upload(client, b"a\n1\n", name="t" * 10000), "10000 characters long",
                      "at most 52")
    assert len(message) < 300            # the name is not echoed in full
    # the longest allowed name works on both databases (tap_upload_<name>: 63 bytes)
    name = "n" * 52
    r = upload(client, b"a\n1\n", f"SELECT a FROM TAP_UPLOAD.{name}", name=name)
    assert r.status_code == 200, r.data
    assert first_table(r.data).array["a"].tolist() == [1]
    refused(upload(client, ("x" * 64 + "\n1\n").encode()), "64 bytes long", "at most 63")


def test_async_job_with_a_hostile_upload_ends_in_error(client):
    r = client.post("/tap/async", data={"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t",
                                        "UPLOAD": "t,param:p", "PHASE": "RUN",
                                        "p": (io.BytesIO(HUGE_CHAR), "t.vot")},
                    content_type="multipart/form-data")
    assert r.status_code == 303
    url = urlsplit(r.headers["Location"]).path
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        phase = client.get(url + "/phase").get_data(as_text=True)
        if phase not in ("QUEUED", "EXECUTING"):
            break
        time.sleep(0.2)
    assert phase == "ERROR"
    error = query_error(client.get(url + "/error"))
    assert "UPLOAD_MAX_ARRAYSIZE" in error and "field 's'" in error


def test_uploads_do_not_fill_the_compiled_cache(client, app):
    """Each upload is a new Table: its statements cannot be reused, and a cache entry
    kept the upload alive (a worker grew ~0.2 MB per upload in benchmarks/soak.py)."""
    from archive.db import get_db
    cache = get_db(app).readonly._compiled_cache
    query = "SELECT TOP 1 t.a, c.ra FROM TAP_UPLOAD.t AS t, extras.aperiodic AS c " \
            "WHERE c.ra > t.a"
    assert upload(client, b"a\n1\n", query).status_code == 200
    before = len(cache)
    for i in range(10):
        r = upload(client, f"a\n{i}\n".encode(), query)
        assert r.status_code == 200, r.data
    assert len(cache) - before < 3


def test_describe_leaves_server_paths_out():
    exc = IsADirectoryError(21, "Is a directory", "/srv/archive/jobs/abc/uploads/..")
    assert describe(exc) == "IsADirectoryError: Is a directory"
    assert describe(ValueError("bad")) == "ValueError: bad"
    assert describe(UsageFault("x")) == "UsageFault: x"


# -- a real worker -------------------------------------------------------------------------

def gunicorn_workers(base_url: str) -> list[int]:
    """PIDs of the worker processes of the gunicorn serving ``base_url`` (read from
    /proc: the master is the process bound to that address, the workers its children)."""
    bind = urlsplit(base_url).netloc
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"gunicorn" in b" ".join(cmdline) and bind.encode() in cmdline:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            return [int(c) for c in children]
    raise AssertionError(f"no gunicorn master bound to {bind}")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.mark.e2e
def test_gunicorn_worker_memory_stays_flat(live_server):
    workers = gunicorn_workers(live_server)
    assert workers
    # warm the workers (imports, first query) so that only the uploads are measured
    for _ in range(4):
        requests.post(live_server + "/tap/sync", timeout=60,
                      data={"LANG": "ADQL", "QUERY": "SELECT TOP 5 ra FROM extras.aperiodic"})
    before = {pid: rss_kib(pid) for pid in workers}
    binary = votable('<FIELD name="s" datatype="char" arraysize="100000000"/>',
                     '<BINARY2><STREAM encoding="base64">'
                     + base64.b64encode(b"\0" + b"x" * 10).decode() + '</STREAM></BINARY2>')
    for content in (HUGE_CHAR, binary) * 4:
        r = requests.post(live_server + "/tap/sync",
                          data={"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t",
                                "UPLOAD": "t,param:p"},
                          files={"p": ("t.vot", content)}, timeout=60)
        assert r.status_code == 400 and "UPLOAD_MAX_ARRAYSIZE" in r.text
    after = {pid: rss_kib(pid) for pid in workers}
    grown = {pid: (after[pid] - before[pid]) // 1024 for pid in workers}
    # before the bound, each of these requests grew the worker by over 1 GB
    assert all(mib < 64 for mib in grown.values()), grown

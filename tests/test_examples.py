"""/tap/examples: a DALI examples document whose every query runs (both backends)."""
from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from astropy.io.votable.tree import VOTableFile
from astropy.table import Table

from archive.tap.examples import EXAMPLES
from helpers import first_table, tap_sync

XHTML = "{http://www.w3.org/1999/xhtml}"


def parse(client):
    r = client.get("/tap/examples")
    assert r.status_code == 200
    return ET.fromstring(r.data)


def test_document_is_dali_examples(client):
    root = parse(client)
    body = root.find(f"{XHTML}body")
    assert body.get("vocab") == "http://www.ivoa.net/rdf/examples#"
    found = [d for d in root.iter(f"{XHTML}div") if d.get("typeof") == "example"]
    assert len(found) >= 8
    for div, ex in zip(found, EXAMPLES):
        assert div.get("id") == ex.id and div.get("resource") == f"#{ex.id}"
        props = {}
        for el in div.iter():
            if el.get("property"):
                props.setdefault(el.get("property"), []).append(el.text)
        assert props["name"] == [ex.name]
        assert props["query"] == [ex.query]
        assert props["table"] == list(ex.tables)
    assert len({ex.id for ex in EXAMPLES}) == len(EXAMPLES)


def test_examples_declared_in_capabilities(client):
    caps = client.get("/tap/capabilities").data.decode()
    assert "ivo://ivoa.net/std/DALI#examples" in caps


def upload_for(client):
    rows = first_table(client.get("/tap/sync", query_string={
        "LANG": "ADQL", "QUERY": "SELECT TOP 10 ra, dec FROM extras.aperiodic"}).data).array
    t = Table({"ra": np.asarray(rows["ra"], float), "dec": np.asarray(rows["dec"], float)})
    out = io.BytesIO()
    VOTableFile.from_table(t).to_xml(out)
    return out.getvalue()


@pytest.mark.parametrize("example", EXAMPLES, ids=[ex.id for ex in EXAMPLES])
def test_every_example_runs(client, example):
    files, params = {}, {"MAXREC": "1000"}
    if example.uploads:
        content = upload_for(client)
        files = {u: content for u in example.uploads}
        params["UPLOAD"] = ";".join(f"{u},param:{u}" for u in example.uploads)
    r = tap_sync(client, example.query, files, **params)
    assert r.status_code == 200, r.data
    table = first_table(r.data)
    assert len(table.fields) >= 2
    if example.id in ("flare-candidates", "upload-crossmatch", "longterm-lightcurve",
                      "class-statistics", "observation-detections", "variable-clean"):
        assert len(table.array) > 0, f"{example.id} finds nothing in the demo archive"

"""VOSI endpoints of the TAP service: capabilities, availability, tables."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

import datamodel
from archive.formats import all_formats
from datamodel.publish import tap_schema_rows
from datamodel.tap_schema import TAP_SCHEMA_TABLES
from helpers import query_error

XSI = "{http://www.w3.org/2001/XMLSchema-instance}type"
VOSI_CAP = "{http://www.ivoa.net/xml/VOSICapabilities/v1.0}capabilities"
VOSI_TABLES = "http://www.ivoa.net/xml/VOSITables/v1.0"


def _xml(response):
    assert response.status_code == 200, response.data[:500]
    assert response.mimetype == "text/xml"
    return ET.fromstring(response.data)


def _capability(root, standard_id):
    caps = [c for c in root.findall("capability") if c.get("standardID") == standard_id]
    return caps


def test_capabilities_document(client, app):
    response = client.get("/tap/capabilities")
    root = _xml(response)
    assert root.tag == VOSI_CAP
    raw = response.data.decode()
    for prefix, ns in (("vs", "http://www.ivoa.net/xml/VODataService/v1.1"),
                       ("vr", "http://www.ivoa.net/xml/VOResource/v1.0"),
                       ("tr", "http://www.ivoa.net/xml/TAPRegExt/v1.0")):
        assert f'xmlns:{prefix}="{ns}"' in raw
    taps = _capability(root, "ivo://ivoa.net/std/TAP")
    assert len(taps) == 1
    tap = taps[0]
    assert tap.get(XSI) == "tr:TableAccess"
    interfaces = tap.findall("interface")
    assert len(interfaces) == 1
    intf = interfaces[0]
    assert (intf.get(XSI), intf.get("role"), intf.get("version")) == (
        "vs:ParamHTTP", "std", "1.1")
    assert intf.findtext("accessURL") == "http://localhost/tap"
    # children in TAPRegExt schema order
    order = ["interface", "dataModel", "language", "outputFormat", "uploadMethod", "retentionPeriod",
             "executionDuration", "outputLimit", "uploadLimit"]
    tags = [c.tag for c in tap]
    assert tags == sorted(tags, key=order.index)
    lang = tap.find("language")
    assert lang.findtext("name") == "ADQL"
    versions = {v.get("ivo-id"): v.text for v in lang.findall("version")}
    assert versions == {"ivo://ivoa.net/std/ADQL#v2.0": "2.0",
                        "ivo://ivoa.net/std/ADQL#v2.1": "2.1"}
    geo = [f for f in lang.findall("languageFeatures")
           if f.get("type") == "ivo://ivoa.net/std/TAPRegExt#features-adqlgeo"]
    forms = {f.findtext("form") for f in geo[0].findall("feature")}
    assert {"POINT", "CIRCLE", "CONTAINS", "DISTANCE", "BOX", "POLYGON"} <= forms
    mimes = {o.findtext("mime") for o in tap.findall("outputFormat")}
    assert mimes == {f.mime for f in all_formats()}
    binary2 = [o for o in tap.findall("outputFormat")
               if o.findtext("mime") == "application/x-votable+xml"][0]
    assert binary2.get("ivo-id") == "ivo://ivoa.net/std/TAPRegExt#output-votable-binary2"
    assert "votable" in [a.text for a in binary2.findall("alias")]
    limit = tap.find("outputLimit")
    assert limit.find("default").get("unit") == "row"
    assert int(limit.findtext("default")) == app.config["TAP_DEFAULT_MAXREC"]
    assert int(limit.findtext("hard")) == app.config["TAP_HARD_MAXREC"]
    assert int(tap.find("executionDuration").findtext("default")) == \
        app.config["ASYNC_EXECUTION_DURATION"]
    # both upload methods (taplint E_MUPM), with the upload limit
    methods = {m.get("ivo-id") for m in tap.findall("uploadMethod")}
    assert methods == {"ivo://ivoa.net/std/TAPRegExt#upload-inline",
                       "ivo://ivoa.net/std/TAPRegExt#upload-http"}
    assert tap.find("uploadLimit") is not None
    # the VOSI capabilities
    for std, path in (("ivo://ivoa.net/std/VOSI#capabilities", "/capabilities"),
                      ("ivo://ivoa.net/std/VOSI#availability", "/availability"),
                      ("ivo://ivoa.net/std/VOSI#tables-1.1", "/tables")):
        (cap,) = _capability(root, std)
        intf = cap.find("interface")
        assert intf.get(XSI) == "vs:ParamHTTP"
        assert intf.findtext("accessURL") == "http://localhost/tap" + path
    examples = _capability(root, "ivo://ivoa.net/std/DALI#examples")
    has_examples = any(r.rule == "/tap/examples" for r in app.url_map.iter_rules())
    assert len(examples) == int(has_examples)


def test_capabilities_access_url_follows_the_request_host(client):
    root = _xml(client.get("/tap/capabilities", base_url="http://archive.example:8123"))
    (tap,) = _capability(root, "ivo://ivoa.net/std/TAP")
    assert tap.find("interface").findtext("accessURL") == "http://archive.example:8123/tap"


def test_server_header_names_the_software(client):
    for path in ("/tap/capabilities", "/tap/tables", "/tap/availability"):
        assert client.get(path).headers["Server"].startswith("extras-archive/")


def test_availability(client):
    root = _xml(client.get("/tap/availability"))
    ns = "{http://www.ivoa.net/xml/VOSIAvailability/v1.0}"
    assert root.tag == ns + "availability"
    assert root.findtext(ns + "available") == "true"
    assert "answered" in root.findtext(ns + "note")


def _columns(table_el):
    return [c.findtext("name") for c in table_el.findall("column")]


def test_tables_document_matches_tap_schema(client):
    root = _xml(client.get("/tap/tables"))
    assert root.tag == f"{{{VOSI_TABLES}}}tableset"
    schemas = {s.findtext("name"): s for s in root.findall("schema")}
    assert set(schemas) == {"extras", "ivoa", "TAP_SCHEMA"}
    rows = tap_schema_rows()
    declared = {}
    for schema in schemas.values():
        for t in schema.findall("table"):
            declared[t.findtext("name")] = t
    assert set(declared) == {r["table_name"] for r in rows["tables"]}
    by_table = {}
    for r in sorted(rows["columns"], key=lambda r: r["column_index"]):
        by_table.setdefault(r["table_name"], []).append(r)
    for name, t in declared.items():
        assert _columns(t) == [r["column_name"] for r in by_table[name]]
        for col, r in zip(t.findall("column"), by_table[name]):
            dt = col.find("dataType")
            assert dt.get(XSI) == "vs:VOTableType"
            assert (dt.text, dt.get("arraysize"), col.findtext("unit"),
                    col.findtext("ucd")) == (r["datatype"], r["arraysize"], r["unit"], r["ucd"])
            flags = {f.text for f in col.findall("flag")}
            assert ("indexed" in flags) == bool(r["indexed"])
            assert ("primary" in flags) == bool(r["principal"])
    # the reserved column name is delimited here too
    assert '"size"' in _columns(declared["TAP_SCHEMA.columns"])
    # foreign keys
    (fk,) = declared["extras.periodic"].findall("foreignKey")
    assert fk.findtext("targetTable") == "extras.aperiodic"
    assert [c.findtext("fromColumn") for c in fk.findall("fkColumn")] == [
        "obs_id", "exp_id", "camera", "src_num"]


def test_tables_detail_min_and_max(client):
    minimal = _xml(client.get("/tap/tables?detail=min"))
    tables = minimal.findall("schema/table")
    assert len(tables) == len(datamodel.TABLES) + 1 + len(TAP_SCHEMA_TABLES)  # ivoa.obscore
    assert all(t.findall("column") == [] for t in tables)
    assert all(t.findtext("description") for t in tables)
    maximal = _xml(client.get("/tap/tables?DETAIL=max"))
    assert all(t.findall("column") for t in maximal.findall("schema/table"))


def test_tables_bad_detail(client):
    response = client.get("/tap/tables?detail=medium")
    assert response.status_code == 400
    assert "DETAIL='medium' is not understood" in query_error(response)


@pytest.mark.parametrize("name", ["extras.aperiodic", "EXTRAS.APERIODIC", "TAP_SCHEMA.columns"])
def test_single_table_document(client, name):
    root = _xml(client.get(f"/tap/tables/{name}"))
    assert root.tag == f"{{{VOSI_TABLES}}}table"
    assert root.findtext("name").lower() == name.lower()
    assert root.findall("column")


def test_unknown_table_is_404_with_a_message(client):
    response = client.get("/tap/tables/extras.nosuchtable")
    assert response.status_code == 404
    assert "there is no table 'extras.nosuchtable'" in query_error(response)


def test_unknown_tap_resource_is_a_votable_404(client):
    response = client.get("/tap/nothing-here")
    assert response.status_code == 404
    assert "there is no TAP resource /tap/nothing-here" in query_error(response)


def test_tap_page_for_people(client):
    response = client.get("/tap")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.data.decode()
    assert "http://localhost/tap/capabilities" in page
    assert 'action="http://localhost/tap/sync"' in page
    for table in datamodel.TABLES.values():
        assert table.qualified_name in page

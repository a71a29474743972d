"""DataLink {links} (/datalink/links), its VOSI resources and the service descriptors
of TAP and cone-search results, on the demo archive (SQLite and PostgreSQL)."""
from __future__ import annotations

import io
import shutil
import time
import xml.etree.ElementTree as ET
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from astropy.io import votable

from archive.datalink.links import COLUMNS, STANDARD_ID
from archive.db import catalogue_tables, get_db, products
from helpers import VOT, field_attributes, tap_sync, votable_of

LINKS_MIME = "application/x-votable+xml;content=datalink"
BASE = "http://localhost"
UCDS = {"ID": "meta.id;meta.main", "access_url": "meta.ref.url", "service_def": "meta.ref",
        "error_message": "meta.code.error", "description": "meta.note",
        "semantics": "meta.code", "content_type": "meta.code.mime",
        "content_length": "phys.size;meta.file"}


# -- what the demo archive holds, read independently of the service ------------------------

@pytest.fixture(scope="module")
def facts(app):
    """IDs of the demo archive: a detection with products (and its product rows), a
    3XMM source of the long-term catalogue, a transient, srcid -> rows."""
    ap, pe = catalogue_tables["aperiodic"], catalogue_tables["periodic"]
    lt, cl, tr = (catalogue_tables[n] for n in ("longterm", "classification", "transients"))
    with get_db(app).engine.connect() as conn:
        detection = conn.execute(sa.select(products.c.extras_id)
                                 .where(products.c.product_type == "ublc_500s")
                                 .order_by(products.c.extras_id).limit(1)).scalar_one()
        prods = conn.execute(sa.select(products).where(products.c.extras_id == detection)
                             ).mappings().all()
        srcid = conn.execute(sa.select(ap.c.srcid).where(ap.c.extras_id == detection)
                             ).scalar_one()
        same_source = set()
        for t, key in ((ap, "extras_id"), (pe, "extras_id"), (lt, "iauname"),
                       (cl, "iauname")):
            same_source |= set(conn.execute(sa.select(t.c[key]).where(t.c.srcid == srcid))
                               .scalars())
        source, source_srcid = conn.execute(sa.select(lt.c.iauname, lt.c.srcid)
                                            .order_by(lt.c.iauname).limit(1)).one()
        source_rows = set()
        for t in (ap, pe):
            source_rows |= set(conn.execute(sa.select(t.c.extras_id)
                                            .where(t.c.srcid == source_srcid)).scalars())
        transient = conn.execute(sa.select(tr.c.name).order_by(tr.c.name).limit(1)
                                 ).scalar_one()
        many = list(conn.execute(sa.select(ap.c.extras_id).order_by(ap.c.extras_id)
                                 .limit(60)).scalars())
    return {"detection": detection, "products": prods, "srcid": srcid,
            "same_source": same_source - {detection}, "source": source,
            "source_srcid": source_srcid, "source_detections": source_rows,
            "transient": transient, "many": many}


def links(client, *ids, method="post", **params):
    """(response, rows as dicts) of a {links} request."""
    if method == "post":
        response = client.post("/datalink/links", data={"ID": list(ids), **params})
    else:
        response = client.get("/datalink/links", query_string={"ID": list(ids), **params})
    assert response.status_code == 200, response.data[:2000]
    assert response.content_type == LINKS_MIME
    table = votable_of(response.data).get_first_table()
    names = [f.name for f in table.fields]
    rows = [{n: _plain(row[n]) for n in names} for row in table.array]
    for row in rows:
        given = [row[k] for k in ("access_url", "service_def", "error_message")]
        assert sum(v is not None for v in given) == 1, row
        assert row["semantics"], row
    return response, rows


def _plain(value):
    if value is None or value is not votable and getattr(value, "mask", False) is True:
        return None
    if hasattr(value, "item"):
        value = value.item()
    return None if value == "" else value


def _by(rows, key, value):
    return [r for r in rows if r[key] == value]


# -- the links table -------------------------------------------------------------------------

def test_the_links_table_is_a_datalink_1_1_tabledata_votable(client, facts):
    response, _ = links(client, facts["detection"])
    root = ET.fromstring(response.data)
    results = root.find(f"{VOT}RESOURCE")
    assert results.get("type") == "results"
    infos = {i.get("name"): i.get("value") for i in results.findall(f"{VOT}INFO")}
    assert infos["standardID"] == STANDARD_ID and infos["QUERY_STATUS"] == "OK"
    assert root.find(f".//{VOT}TABLEDATA") is not None
    fields = {f["name"]: f for f in field_attributes(response.data)}
    assert list(fields)[0] == "ID" and set(UCDS) <= set(fields)
    for name, ucd in UCDS.items():
        assert fields[name]["ucd"] == ucd
    assert fields["content_length"]["datatype"] == "long"
    assert fields["content_length"]["unit"] == "byte"
    assert [c.name for c in COLUMNS][-2:] == ["content_qualifier", "local_semantics"]


def test_a_detection_links_every_product(client, facts, demo_archive):
    detection = facts["detection"]
    _, rows = links(client, detection)
    assert {r["ID"] for r in rows} == {detection}
    by_url = {r["access_url"]: r for r in rows}
    assert len(by_url) == len(rows)                     # no link twice
    for product in facts["products"]:
        row = by_url[f"{BASE}/products/{quote(product['path'])}"]
        assert row["content_type"] == product["mime"]
        assert row["content_length"] == product["size"]
        assert row["local_semantics"] == product["product_type"]
        camera = {"PN": "EPIC pn", "M1": "EPIC MOS1", "M2": "EPIC MOS2"}[product["camera"]]
        assert row["description"].endswith(f"({camera})")
        expected = {"ublc_500s": "#this", "bglc_500s": "#auxiliary", "qlimg": "#preview-image",
                    "preview": "#preview-plot"}.get(product["product_type"], "#coderived")
        assert row["semantics"] == expected
        if product["category"] in ("lightcurve", "power-spectrum"):
            assert row["content_qualifier"] == "timeseries"
    this = _by(rows, "semantics", "#this")
    assert len(this) == 1 and this[0]["local_semantics"] == "ublc_500s"
    assert rows[0] is this[0]                           # #this comes first
    # the interactive pages of the previewable light curves
    pages = {r["access_url"] for r in rows if r["local_semantics"] == "lightcurve-page"}
    previewable = {p["path"] for p in facts["products"]
                   if p["category"] == "lightcurve" and p["product_type"] != "hrlc_500s"}
    assert pages == {f"{BASE}/lightcurves/view/{quote(p)}" for p in previewable}
    assert all(r["content_type"] == "text/html" and r["semantics"] == "#preview-plot"
               for r in rows if r["local_semantics"] == "lightcurve-page")


def test_a_detection_links_its_counterparts_and_pages(client, facts):
    detection, srcid = facts["detection"], facts["srcid"]
    _, rows = links(client, detection)
    counterparts = _by(rows, "semantics", "#counterpart")
    assert {r["access_url"] for r in counterparts} == {
        f"{BASE}/datalink/links?ID={quote(other, safe='')}".replace("%20", "+")
        for other in facts["same_source"]}
    assert all(r["content_type"] == LINKS_MIME for r in counterparts)
    docs = {r["access_url"]: r for r in _by(rows, "semantics", "#documentation")}
    assert set(docs) == {f"{BASE}/sources/{srcid}", f"{BASE}/detections/{detection}"}
    assert all(r["content_type"] == "text/html" for r in docs.values())


def test_the_counterpart_links_work(client, facts):
    """Following a #counterpart link answers that row's links (and links back)."""
    _, rows = links(client, facts["detection"])
    url = _by(rows, "semantics", "#counterpart")[0]["access_url"]
    response = client.get(url.removeprefix(BASE))
    assert response.status_code == 200
    other = votable_of(response.data).get_first_table().array
    back = [r for r in other if r["semantics"] == "#counterpart"
            and r["access_url"].endswith("ID=" + facts["detection"])]
    assert len(back) == 1


def test_a_source_links_its_long_term_curve_detections_and_page(client, facts):
    source, srcid = facts["source"], facts["source_srcid"]
    _, rows = links(client, source, method="get")
    assert {r["ID"] for r in rows} == {source}
    coderived = {r["local_semantics"]: r for r in _by(rows, "semantics", "#coderived")}
    assert coderived["longterm-page"]["access_url"] == f"{BASE}/lightcurves/longterm/{srcid}"
    assert coderived["longterm-page"]["content_type"] == "text/html"
    points = coderived["longterm-points"]
    assert points["content_type"] == "application/x-votable+xml"
    answer = client.get(points["access_url"].removeprefix(BASE))
    table = votable_of(answer.data).get_first_table().array
    assert len(table) >= 1 and set(table["srcid"].tolist()) == {srcid}
    counterparts = {r["access_url"].split("ID=")[1] for r in _by(rows, "semantics",
                                                                 "#counterpart")}
    assert counterparts == facts["source_detections"]
    assert _by(rows, "semantics", "#documentation")[0]["access_url"] == \
        f"{BASE}/sources/{srcid}"


def test_a_transient_links_its_catalogue_entry(client, facts):
    name = facts["transient"]
    _, rows = links(client, name)
    assert len(rows) == 1 and rows[0]["semantics"] == "#this"
    answer = client.get(rows[0]["access_url"].removeprefix(BASE))
    table = votable_of(answer.data).get_first_table().array
    assert table["name"].tolist() == [name]


def test_rows_are_grouped_by_id_in_the_order_given(client, facts):
    ids = [facts["source"], facts["detection"], "bogus", facts["transient"],
           facts["detection"], "0100000001_S001_PN_999"]
    _, rows = links(client, *ids)
    order = []
    for row in rows:
        if not order or order[-1] != row["ID"]:
            order.append(row["ID"])
    expected = list(dict.fromkeys(ids))                  # each ID once, contiguous
    assert order == expected
    _, got = links(client, *ids, method="get")
    assert got == rows


def test_no_id_gives_an_empty_links_table(client):
    response, rows = links(client)
    assert rows == []
    infos = {i.name: i.value for i in votable_of(response.data).resources[0].infos}
    assert infos["standardID"] == STANDARD_ID


def test_too_many_ids_give_the_first_ones_and_overflow(app, client, facts, monkeypatch):
    monkeypatch.setitem(app.config, "DATALINK_MAX_IDS", 3)
    ids = facts["many"][:5]
    response, rows = links(client, *ids)
    assert list(dict.fromkeys(r["ID"] for r in rows)) == ids[:3]
    statuses = [i.get("value") for i in ET.fromstring(response.data).iter(f"{VOT}INFO")
                if i.get("name") == "QUERY_STATUS"]
    assert statuses[-1] == "OVERFLOW"


@pytest.mark.parametrize("value, fault, words", [
    ("0100000001_S001_PN_999", "NotFoundFault", "no detection"),
    ("3XMM J000000.0+000000", "NotFoundFault", "no 3XMM source"),
    ("EXMM J000000.0+000000", "NotFoundFault", "no transient"),
    ("bogus", "UsageFault", "not an identifier"),
    ("", "UsageFault", "empty ID"),
    ("0100000001_S001_XX_1", "UsageFault", "OBSID_EXPID_CAMERA_SRCNUM"),
    ("x" * 500, "UsageFault", "characters long"),
    ("'; DROP TABLE products; --", "UsageFault", "not an identifier"),
])
def test_bad_ids_get_an_error_row(client, value, fault, words):
    _, rows = links(client, value)
    assert len(rows) == 1 and rows[0]["ID"] == (value or None)
    assert rows[0]["error_message"].startswith(f"{fault}: ")
    assert words in rows[0]["error_message"]


@pytest.mark.parametrize("value", ["votable", "application/x-votable+xml", "VOTable",
                                   "application/x-votable+xml;content=datalink", ""])
def test_votable_response_formats_are_accepted(client, facts, value):
    links(client, facts["transient"], RESPONSEFORMAT=value)


@pytest.mark.parametrize("value", ["csv", "fits", "html-ish", "text/xml"])
def test_other_response_formats_are_usage_faults(client, value):
    response = client.get("/datalink/links", query_string={"ID": "x", "RESPONSEFORMAT": value})
    assert response.status_code == 400
    status = [i for i in votable.parse(io.BytesIO(response.data)).resources[0].infos
              if i.name == "QUERY_STATUS"]
    assert status[0].value == "ERROR" and "not supported" in status[0].content


def test_a_product_missing_from_disk_is_an_error_row(app, client, facts, tmp_path,
                                                     monkeypatch, demo_archive):
    """The products directory without one registered file: that product alone becomes
    an error row; the rest still links."""
    copy = tmp_path / "products"
    shutil.copytree(demo_archive["PRODUCTS_DIR"], copy)
    main = next(p for p in facts["products"] if p["product_type"] == "ublc_500s")
    (copy / main["path"]).unlink()
    monkeypatch.setitem(app.config, "PRODUCTS_DIR", str(copy))
    _, rows = links(client, facts["detection"])
    errors = [r for r in rows if r["error_message"]]
    assert len(errors) == 1
    assert errors[0]["error_message"].startswith("NotFoundFault: ")
    assert main["path"] in errors[0]["error_message"]
    assert errors[0]["semantics"] == "#this"
    assert not any(main["path"] in (r["access_url"] or "") for r in rows)
    assert len([r for r in rows if r["access_url"] and "/products/" in r["access_url"]]) == \
        len(facts["products"]) - 1


def test_queries_are_batched_not_per_id(app, client, facts):
    """One query per table per batch: one ID of each kind and 60 IDs cost the same
    number of queries (tables with nothing to look up are not asked)."""
    engine = get_db(app).readonly
    counts = []

    def count(*_args):
        counts[-1] += 1

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        for ids in ([facts["detection"], facts["source"], facts["transient"]],
                    facts["many"] + [facts["source"], facts["transient"]]):
            counts.append(0)
            links(client, *ids)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert counts[0] == counts[1] and counts[1] <= 10


def test_one_id_is_fast(client, facts):
    """A loose guard (the benchmark measures): one ID well under 100 ms in process."""
    links(client, facts["detection"])
    started = time.perf_counter()
    for _ in range(5):
        links(client, facts["detection"])
    assert (time.perf_counter() - started) / 5 < 0.1


# -- VOSI ----------------------------------------------------------------------------------

def test_capabilities_and_availability(client):
    root = ET.fromstring(client.get("/datalink/capabilities").data)
    caps = {c.get("standardID"): c for c in root.findall("capability")}
    assert set(caps) == {STANDARD_ID, "ivo://ivoa.net/std/VOSI#capabilities",
                         "ivo://ivoa.net/std/VOSI#availability"}
    assert caps[STANDARD_ID].find("interface/accessURL").text == f"{BASE}/datalink/links"
    body = client.get("/datalink/availability").data
    assert b"<vosi:available>true</vosi:available>" in body


def test_tap_capabilities_name_the_datalink_service(client):
    root = ET.fromstring(client.get("/tap/capabilities").data)
    caps = {c.get("standardID"): c for c in root.findall("capability")}
    assert caps[STANDARD_ID].find("interface/accessURL").text == f"{BASE}/datalink/links"


def test_unknown_datalink_resources_are_vo_errors(client):
    response = client.get("/datalink/nothing")
    assert response.status_code == 404 and b"QUERY_STATUS" in response.data


# -- service descriptors -----------------------------------------------------------------------

def _descriptors(body: bytes) -> list[dict]:
    root = ET.fromstring(body)
    found = []
    for res in root.iter(f"{VOT}RESOURCE"):
        if res.get("type") == "meta" and res.get("utype") == "adhoc:service":
            params = {p.get("name"): p.get("value") for p in res.findall(f"{VOT}PARAM")}
            ref = res.find(f"{VOT}GROUP[@name='inputParams']/{VOT}PARAM[@name='ID']").get("ref")
            found.append({**params, "ref": ref})
    return found


@pytest.mark.parametrize("query, refs", [
    ("SELECT TOP 3 * FROM extras.aperiodic", ["extras_id"]),
    ("SELECT TOP 3 name, ra FROM extras.transients", ["name"]),
    ("SELECT TOP 3 a.extras_id AS det, c.iauname FROM extras.aperiodic AS a "
     "JOIN extras.classification AS c ON c.srcid = a.srcid", ["det", "iauname"]),
    ("SELECT TOP 3 srcid, ra FROM extras.aperiodic", []),
    ("SELECT TOP 3 extras_id || 'x' AS e FROM extras.aperiodic", []),
    ("SELECT TOP 3 table_name FROM TAP_SCHEMA.tables", []),
])
def test_tap_results_carry_a_descriptor_for_id_columns(client, query, refs):
    response = tap_sync(client, query)
    assert response.status_code == 200, response.data[:1000]
    found = _descriptors(response.data)
    assert [d["ref"] for d in found] == refs
    for d in found:
        assert d["standardID"] == STANDARD_ID and d["accessURL"] == f"{BASE}/datalink/links"
    ids = [f.get("ID") for f in field_attributes(response.data) if f.get("ID")]
    assert ids == refs
    # astropy and pyvo keep the column names (the FIELD ID is the name)
    table = votable.parse_single_table(io.BytesIO(response.data)).to_table()
    names = [f["name"] for f in field_attributes(response.data)]
    assert table.colnames == names


def test_descriptors_in_every_votable_serialization(client):
    for fmt in ("votable", "votable/td"):
        response = tap_sync(client, "SELECT TOP 1 extras_id FROM extras.aperiodic",
                            RESPONSEFORMAT=fmt)
        assert [d["ref"] for d in _descriptors(response.data)] == ["extras_id"]
    csv = tap_sync(client, "SELECT TOP 1 extras_id FROM extras.aperiodic", RESPONSEFORMAT="csv")
    assert csv.data.splitlines()[0] == b"extras_id"


def test_async_results_carry_the_descriptor_when_base_url_is_set(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "BASE_URL", "https://archive.example.org/extras")
    created = client.post("/tap/async", data={
        "LANG": "ADQL", "QUERY": "SELECT TOP 2 extras_id FROM extras.aperiodic",
        "PHASE": "RUN"})
    job = created.headers["Location"].removeprefix("https://archive.example.org/extras")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        phase = client.get(job + "/phase").data.decode()
        if phase in ("COMPLETED", "ERROR"):
            break
        time.sleep(0.2)
    assert phase == "COMPLETED"
    body = client.get(job + "/results/result").data
    assert [d["accessURL"] for d in _descriptors(body)] == \
        ["https://archive.example.org/extras/datalink/links"]


@pytest.mark.parametrize("service, ref", [("aperiodic", "extras_id"), ("transients", "name"),
                                          ("all", "id")])
def test_cone_search_results_carry_the_descriptor(client, service, ref):
    response = client.get(f"/scs/{service}", query_string={"RA": 0, "DEC": 0, "SR": 10})
    found = _descriptors(response.data)
    assert [d["ref"] for d in found] == [ref]
    assert found[0]["accessURL"] == f"{BASE}/datalink/links"
    table = votable.parse_single_table(io.BytesIO(response.data)).to_table()
    assert ref in table.colnames
    # the metadata query (what pyvo's SCSService.columns sends) has none: pyvo would
    # list the descriptor's PARAMs as columns
    metadata = client.get(f"/scs/{service}", query_string={"RA": 0, "DEC": 0, "SR": 0})
    assert _descriptors(metadata.data) == []

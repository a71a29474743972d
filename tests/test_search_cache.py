"""The cache of web search results (archive/search/cache.py): pages and sorts served
from the cache equal those the database gives, a cached result is not searched again,
the cache stays under its size bound, and ingesting a catalogue again empties its
entries. SQLite and PostgreSQL."""
from __future__ import annotations

import re
from html import unescape

import pytest
import sqlalchemy as sa

from archive.db import get_db, search_cache
from archive.search.query import bytewise_text

URL = "/search/aperiodic"


def _ids(client, **params) -> list[str]:
    response = client.get(URL, query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)[:1000]
    page = response.get_data(as_text=True)
    return re.findall(r'<a href="/detections/([^"]+)">', page), page


def _entries(app) -> list:
    with app.app_context(), get_db().engine.connect() as conn:
        return conn.execute(sa.select(search_cache.c.key, search_cache.c.catalogue,
                                      search_cache.c.rows, search_cache.c.hits,
                                      search_cache.c.size)).all()


@pytest.fixture
def cache_on(app, monkeypatch):
    monkeypatch.setitem(app.config, "SEARCH_CACHE_MIN_ROWS", 1)
    with app.app_context(), get_db().engine.begin() as conn:
        conn.execute(search_cache.delete())
    return app


@pytest.mark.parametrize("sort", ["ub_lc500_ave", "fvar", "obs_id", "srcid", "_r"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_cached_pages_equal_database_pages(client, cache_on, monkeypatch, sort, order):
    params = {"sort": sort, "order": order, "page": "3", "per_page": "40", "verb": "3",
              "radius": "10", "unit": "deg"}
    if sort == "_r":
        # a position of the demo archive: the first aperiodic row's
        with cache_on.app_context(), get_db().engine.connect() as conn:
            first = conn.execute(sa.text("SELECT extras_id FROM aperiodic ORDER BY extras_id"
                                         " LIMIT 1")).scalar_one()
        params["pos"] = first
    cached, cached_page = _ids(client, **params)
    assert len(_entries(cache_on)) == 1
    again, again_page = _ids(client, **params)
    assert _entries(cache_on)[0].hits == 1
    monkeypatch.setitem(cache_on.config, "SEARCH_CACHE_MAX_BYTES", 0)
    direct, direct_page = _ids(client, **params)
    assert len(direct) == 40
    assert cached == again == direct
    # the whole table body (every value as printed) is the same
    body = re.compile(r"<tbody>.*</tbody>", re.S)
    assert body.search(cached_page).group(0) == body.search(direct_page).group(0)


def test_cached_result_is_not_searched_again(client, cache_on):
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "aperiodic" in statement.lower():
            statements.append(statement)

    with cache_on.app_context():
        readonly = get_db().readonly
    sa.event.listen(readonly, "before_cursor_execute", record)
    try:
        first, _ = _ids(client, camera="PN", sort="fvar", per_page="20")
        assert statements, "the first request searches the database"
        statements.clear()
        for params in ({"page": "2"}, {"sort": "ontime", "order": "desc"},
                       {"col": ["extras_id", "fvar"]}):
            _ids(client, **{"camera": "PN", "sort": "fvar", "per_page": "20", **params})
        assert statements == []
    finally:
        sa.event.remove(readonly, "before_cursor_execute", record)
    (entry,) = _entries(cache_on)
    assert entry.hits == 3 and entry.catalogue == "aperiodic"


def test_small_results_and_size_bound(client, cache_on, monkeypatch):
    monkeypatch.setitem(cache_on.config, "SEARCH_CACHE_MIN_ROWS", 500)
    _ids(client, camera="PN", **{"src_num.max": "1"})      # a few rows: not cached
    assert _entries(cache_on) == []
    monkeypatch.setitem(cache_on.config, "SEARCH_CACHE_MIN_ROWS", 1)
    _ids(client, camera="PN")
    (one,) = _entries(cache_on)
    # room for one entry only: the least recently used goes
    monkeypatch.setitem(cache_on.config, "SEARCH_CACHE_MAX_BYTES", int(one.size * 1.5))
    _ids(client, camera="M1")
    entries = _entries(cache_on)
    assert len(entries) == 1 and entries[0].key != one.key


def test_ingest_empties_the_cache(empty_config):
    from archive import create_app
    from ingest.demo import build_demo
    build_demo(empty_config, rows=200, seed=1, workers=1, products=False)
    app = create_app({**empty_config, "TESTING": True, "SEARCH_CACHE_MIN_ROWS": 1})
    try:
        client = app.test_client()
        before, _ = _ids(client, sort="ub_lc500_ave")
        assert [e.catalogue for e in _entries(app)] == ["aperiodic"]
        build_demo(empty_config, rows=300, seed=2, workers=1, products=False)
        assert _entries(app) == []
        after, page = _ids(client, sort="ub_lc500_ave")
        assert after != before
        with app.app_context(), get_db().engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT count(*) FROM aperiodic")).scalar_one()
        assert f'data-rows="{rows}"' in page
    finally:
        with app.app_context():
            get_db().dispose()


def test_a_cut_result_is_its_first_rows_by_the_key(client, cache_on):
    """A result cut at maxrec is cached as its first maxrec rows in the table's key
    order (the rows are read in that order only when the result is cut; a whole
    result is read in any order and sorted here), and its pages sort those rows."""
    params = {"camera": "PN", "maxrec": "30", "per_page": "10", "sort": "fvar",
              "order": "desc", "verb": "3"}
    pages = [_ids(client, **params, page=str(n)) for n in (1, 2, 3)]
    assert "More than 30 rows match" in pages[0][1]
    assert len(_entries(cache_on)) == 1
    with cache_on.app_context(), get_db().engine.connect() as conn:
        first = conn.execute(sa.text(
            "SELECT extras_id, fvar FROM aperiodic WHERE camera = 'PN' "
            "ORDER BY obs_id, exp_id, camera, src_num LIMIT 30")).all()
    assert len(first) == 30
    ordered = sorted(first, key=lambda r: (r.fvar is None, -(r.fvar or 0)))
    assert [i for ids, _ in pages for i in ids] == [r.extras_id for r in ordered]


# the iauname values of the collation test: case and punctuation that a linguistic
# collation (ICU, en_US) sorts differently from byte order
_NAMES = ["b", "B", "_c", "a", "A-1", "a1", "Zeta", "zeta", "(x)", "x.y", "X_y", "~tilde",
          "3XMM J1", "3xmm j0", "éclair", "Eclair", " space", "ab", "aB", "Ab"]


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_text_order_is_the_same_from_the_cache_and_the_database(empty_config, order):
    """Sorted by a text column, a page from the database and the same page cut from the
    cache are equal and in byte (code point) order, on PostgreSQL even when the column's
    collation is a linguistic one (ICU ``und``)."""
    from archive import create_app
    from archive.db import Database, catalogue_tables
    from helpers import longterm_rows
    rows = longterm_rows(len(_NAMES) * 3)
    for i, row in enumerate(rows):
        row["iauname"] = _NAMES[i % len(_NAMES)] + ("" if i < len(_NAMES) else f" {i}")
    db = Database(empty_config["DATABASE_URL"])
    try:
        with db.engine.begin() as conn:
            if db.engine.dialect.name == "postgresql":
                conn.exec_driver_sql('ALTER TABLE longterm ALTER COLUMN iauname '
                                     'TYPE varchar COLLATE "und-x-icu"')
                linguistic = [r[0] for r in conn.exec_driver_sql(
                    "SELECT x FROM unnest(%(names)s::varchar[]) x ORDER BY x COLLATE "
                    '"und-x-icu"', {"names": _NAMES})]
                assert linguistic != sorted(_NAMES)      # the test means something
            conn.execute(catalogue_tables["longterm"].insert(), rows)
    finally:
        db.dispose()
    app = create_app({**empty_config, "TESTING": True, "SEARCH_CACHE_MIN_ROWS": 1})
    try:
        client = app.test_client()
        params = {"sort": "iauname", "order": order, "per_page": "7", "col": ["iauname"]}
        pages = {}
        for path in ("database", "cache", "cached"):
            app.config["SEARCH_CACHE_MAX_BYTES"] = 0 if path == "database" else 10 ** 8
            got = []
            for number in (1, 2, 3, 4, 5, 6, 7, 8, 9):
                response = client.get("/search/longterm", query_string={
                    **params, "page": str(number), "format": "html"})
                page = response.get_data(as_text=True)
                cells = re.findall(r"<tbody>(.*?)</tbody>", page, re.S)[0]
                got += [unescape(v) for v in re.findall(r"<td>([^<]*)</td>", cells)]
            pages[path] = got
        assert len(_entries(app)) == 1
        with app.app_context():
            readonly = get_db().readonly
        # COLLATE "C" only where the column's collation is not byte-wise already
        assert bytewise_text(readonly) == (readonly.dialect.name == "sqlite")
        names = [r["iauname"] for r in rows]
        expected = sorted(names, reverse=order == "desc")
        assert pages["database"] == expected
        assert pages["cache"] == pages["cached"] == expected
    finally:
        with app.app_context():
            get_db().dispose()


def test_byte_order_databases_keep_their_plain_order_by(app):
    """On a database that orders text byte-wise (SQLite, PostgreSQL with C.UTF-8, as
    the demo archive), the statement has no COLLATE, so text keys keep their index."""
    from sqlalchemy.dialects import postgresql

    import datamodel
    from archive.search.params import Search
    from archive.search.query import statement
    with app.app_context():
        readonly = get_db().readonly
    assert bytewise_text(readonly)
    search = Search(datamodel.TABLES["aperiodic"], sort="obs_id")
    plain = str(statement(search, True).compile(dialect=readonly.dialect))
    assert "COLLATE" not in plain
    collated = str(statement(search, False).compile(
        dialect=postgresql.dialect()))
    assert collated.count('COLLATE "C"') == 4        # the sort column and the text keys

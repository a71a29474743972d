"""What the translator tells the executor: the outermost TOP and OFFSET and whether the
query is a plain scan of one table (``Translation.top``, ``.offset``, ``.plain_scan``)."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from archive.db import PUBLISHED, Database
from archive.params import Params
from archive.result import ResultColumn
from archive.tap.adql import Catalog, Upload, translate
from archive.tap.run import run_query

CATALOG = Catalog.of(PUBLISHED)

SHAPES = [
    # query, (top, offset, plain_scan)
    ("SELECT TOP 5 * FROM extras.aperiodic", (5, 0, True)),
    ("SELECT obs_id, ra FROM extras.aperiodic AS a OFFSET 10", (None, 10, True)),
    ("SELECT TOP 3 a.* FROM extras.aperiodic AS a OFFSET 2", (3, 2, True)),
    ("SELECT ALL ra AS r, dec FROM extras.aperiodic", (None, 0, True)),
    ("SELECT table_name, column_name FROM TAP_SCHEMA.columns", (None, 0, True)),
    ("SELECT TOP 5 ra FROM extras.aperiodic WHERE dec > 0", (5, 0, False)),
    ("SELECT TOP 5 ra FROM extras.aperiodic ORDER BY ra", (5, 0, False)),
    ("SELECT camera, COUNT(*) FROM extras.aperiodic GROUP BY camera", (None, 0, False)),
    ("SELECT camera FROM extras.aperiodic GROUP BY camera", (None, 0, False)),
    ("SELECT COUNT(*) FROM extras.aperiodic HAVING COUNT(*) > 1", (None, 0, False)),
    ("SELECT DISTINCT camera FROM extras.aperiodic", (None, 0, False)),
    ("SELECT a.ra FROM extras.aperiodic AS a JOIN extras.longterm AS l USING (srcid)",
     (None, 0, False)),
    ("SELECT a.ra FROM extras.aperiodic AS a, extras.longterm AS l", (None, 0, False)),
    ("SELECT ra + 1 FROM extras.aperiodic", (None, 0, False)),
    ("SELECT ra, 1 AS one FROM extras.aperiodic", (None, 0, False)),
    ("SELECT ra, (SELECT MAX(dec) FROM extras.longterm) FROM extras.aperiodic",
     (None, 0, False)),
    ("SELECT TOP 4 s.ra FROM (SELECT ra FROM extras.aperiodic) AS s", (4, 0, False)),
    ("SELECT ra FROM extras.aperiodic UNION SELECT ra FROM extras.longterm",
     (None, 0, False)),
    (("SELECT ra FROM extras.aperiodic UNION ALL SELECT TOP 2 ra FROM extras.longterm "
      "ORDER BY 1 OFFSET 3"), (None, 3, False)),
    ("(SELECT TOP 2 ra FROM extras.aperiodic) ORDER BY ra", (None, 0, False)),
    ("WITH w AS (SELECT ra FROM extras.longterm) SELECT TOP 6 ra FROM w", (6, 0, False)),
    ("WITH w AS (SELECT ra FROM extras.longterm) SELECT ra FROM extras.aperiodic",
     (None, 0, False)),
]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
@pytest.mark.parametrize("query, shape", SHAPES)
def test_translation_shape(query, shape, dialect):
    t = translate(query, CATALOG, dialect)
    assert (t.top, t.offset, t.plain_scan) == shape


def test_uploaded_table_is_no_plain_scan():
    """An uploaded table lives on the query's own connection, out of the columnar
    reader's reach."""
    table = sa.Table("tap_upload_t", sa.MetaData(), sa.Column("id", sa.Integer))
    catalog = Catalog.of(PUBLISHED, uploads=[Upload("t", [ResultColumn("id", "int")], table)])
    t = translate("SELECT TOP 1 id FROM TAP_UPLOAD.t", catalog, "sqlite")
    assert (t.top, t.offset, t.plain_scan) == (1, 0, False)


def test_plain_scan_is_read_columnar(demo_archive):
    db = Database(demo_archive["DATABASE_URL"])
    try:
        def run(query):
            result = run_query(Params({"LANG": "ADQL", "QUERY": query}), db, demo_archive)
            rows = [row for chunk in result.chunks() for row in chunk]
            return result, rows
        plain, rows = run("SELECT TOP 20 obs_id, ra FROM extras.aperiodic AS a OFFSET 3")
        assert plain.columnar is True and len(rows) == 20
        filtered, rows = run("SELECT TOP 20 obs_id, ra FROM extras.aperiodic AS a "
                             "WHERE ra >= 0")
        assert filtered.columnar is False and len(rows) == 20
    finally:
        db.dispose()

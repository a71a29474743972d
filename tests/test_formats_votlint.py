"""STILTS votlint on every VOTable the format writers produce: no errors, no warnings."""
from __future__ import annotations

import subprocess

import pytest

from archive.errors import UsageFault
from archive.formats import get_format
from archive.formats.votable import error_document
from archive.result import ResultColumn

from test_formats import COLUMNS, POLYGON, POLYGONS, ROWS, make_result


def votlint(stilts, path) -> str:
    proc = subprocess.run([stilts, "votlint", f"votable={path}"], capture_output=True,
                          text=True, timeout=300)
    return (proc.stdout + proc.stderr).strip()


def write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def assert_clean(stilts, path):
    report = votlint(stilts, path)
    lines = [line for line in report.splitlines() if line.strip()]
    assert not lines, f"votlint on {path.name}:\n{report}"


CASES = {
    "full": lambda: make_result(),
    "overflow": lambda: make_result(overflow=True, infos=[("QUERY", "SELECT TOP 5 *", None)]),
    "empty": lambda: make_result([]),
    "error-mid-stream": lambda: make_result(fail_after=1),
    "with-descriptor": lambda: make_result(resources=[
        '<RESOURCE type="meta" utype="adhoc:service">'
        '<PARAM name="standardID" datatype="char" arraysize="*" '
        'value="ivo://ivoa.net/std/DataLink#links-1.1"/>'
        '<GROUP name="inputParams"><PARAM name="ID" datatype="char" arraysize="*" '
        'value="" ref="pubdid"/></GROUP></RESOURCE>']),
}


@pytest.mark.parametrize("key", ["votable", "votable/td"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_votlint_reports_nothing(stilts, tmp_path, key, case):
    data = b"".join(get_format(key).render(CASES[case]()))
    assert_clean(stilts, write(tmp_path, f"{case}.vot", data))


def test_votlint_reports_a_broken_document(stilts, tmp_path):
    """The check above can fail: a truncated stream is an error for votlint."""
    data = b"".join(get_format("votable").render(make_result()))
    cut = data.index(b"</STREAM>") - 8
    report = votlint(stilts, write(tmp_path, "cut.vot", data[:cut] + data[cut + 4:]))
    assert "ERROR" in report


@pytest.mark.parametrize("scs", [False, True])
def test_votlint_error_documents(stilts, tmp_path, scs):
    doc = error_document(UsageFault('SR must be a number, got "x<1"'), scs=scs)
    assert_clean(stilts, write(tmp_path, "err.vot", doc))


def test_votlint_polygons_in_tabledata(stilts, tmp_path):
    """Non-null polygons pass; see docs/formats.md for votlint's polygon bugs."""
    rows = [r[:1] + (p,) for r, p in zip(ROWS, POLYGONS) if p]
    data = b"".join(get_format("votable/td").render(
        make_result(rows, [COLUMNS[0], POLYGON])))
    assert_clean(stilts, write(tmp_path, "poly.vot", data))


def test_votlint_every_datatype_alone_in_binary2(stilts, tmp_path):
    """One file per column, so a failure names the column."""
    failures = {}
    for k, col in enumerate(COLUMNS):
        data = b"".join(get_format("votable").render(
            make_result([(r[k],) for r in ROWS], [col])))
        report = votlint(stilts, write(tmp_path, f"{col.name}.vot", data))
        if report:
            failures[col.name] = report
    assert not failures


def test_votlint_unicode_char_fixed_width(stilts, tmp_path):
    col = ResultColumn("code", "unicodeChar", arraysize="3")
    for key in ("votable", "votable/td"):
        data = b"".join(get_format(key).render(make_result([("ab",), ("✓✓✓✓",), (None,)],
                                                            [col])))
        assert_clean(stilts, write(tmp_path, "u.vot", data))

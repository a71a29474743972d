"""DALI/TAP parameter handling: archive.params and archive.tap.run.parse_request."""
from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from archive.config import DEFAULTS
from archive.errors import UsageFault
from archive.params import Params, parse_float, parse_int
from archive.tap.run import effective_maxrec, parse_request, parse_uploads

CONFIG = {**DEFAULTS, "TAP_DEFAULT_MAXREC": 100, "TAP_HARD_MAXREC": 1000}


def test_names_are_case_insensitive_values_case_sensitive():
    p = Params(MultiDict([("lAnG", "ADQL"), ("Query", "SELECT a FROM t WHERE b='X'")]))
    assert p.get("LANG") == "ADQL" and p.get("lang") == "ADQL"
    assert p.get("QUERY") == "SELECT a FROM t WHERE b='X'"
    assert "query" in p and "MAXREC" not in p
    assert p.get("MAXREC", "dflt") == "dflt"
    assert p.names() == ["lAnG", "Query"]


def test_query_string_and_form_are_merged():
    p = Params(MultiDict([("LANG", "ADQL")]), MultiDict([("query", "SELECT 1")]))
    assert (p.get("lang"), p.get("QUERY")) == ("ADQL", "SELECT 1")


def test_plain_dicts_and_pairs_are_accepted():
    assert Params({"maxrec": "5"}).get("MAXREC") == "5"
    assert Params([("A", "1"), ("a", "2")]).getlist("A") == ["1", "2"]
    assert Params({"upload": ["x,param:x", "y,param:y"]}).getlist("UPLOAD") == [
        "x,param:x", "y,param:y"]


def test_repeated_single_valued_parameter_is_an_error():
    p = Params(MultiDict([("MAXREC", "10"), ("maxrec", "20")]))
    with pytest.raises(UsageFault, match=r"MAXREC was given 2 times.*'10', '20'"):
        p.get("MAXREC")
    # but multi-valued reading works
    assert p.getlist("maxrec") == ["10", "20"]
    # the same value repeated is that value (TapPlus sends FORMAT and format)
    assert Params(MultiDict([("FORMAT", "votable"), ("format", "votable")])).get(
        "FORMAT") == "votable"


def test_synonyms_may_not_be_combined():
    p = Params({"FORMAT": "csv", "responseformat": "votable"})
    with pytest.raises(UsageFault, match="RESPONSEFORMAT and FORMAT mean the same thing"):
        p.first("RESPONSEFORMAT", "FORMAT")
    assert Params({"format": "csv"}).first("RESPONSEFORMAT", "FORMAT") == "csv"


def test_files_are_found_by_part_name():
    marker = object()
    p = Params({}, files={"Upload_T1": marker})
    assert p.file("Upload_T1") is marker and p.file("upload_t1") is marker
    assert p.file("other") is None


@pytest.mark.parametrize("raw,message", [
    ("abc", "MAXREC must be an integer, not 'abc'"),
    ("1.5", "MAXREC must be an integer, not '1.5'"),
    ("-1", "MAXREC must be at least 0, not -1"),
])
def test_parse_int_errors(raw, message):
    with pytest.raises(UsageFault) as info:
        parse_int("MAXREC", raw, minimum=0)
    assert info.value.message == message


def test_parse_float():
    assert parse_float("SR", " 0.5 ") == 0.5
    for bad in ("x", "nan", "inf"):
        with pytest.raises(UsageFault, match="SR must be a"):
            parse_float("SR", bad)


def _request(**params):
    return parse_request(Params(params), CONFIG)


def test_parse_request_defaults():
    req = _request(lang="ADQL", query="SELECT 1")
    assert (req.lang, req.query, req.maxrec, req.format.key, req.runid, req.uploads) == (
        "ADQL", "SELECT 1", None, "votable", None, [])


@pytest.mark.parametrize("lang", ["ADQL", "adql", "ADQL-2.0", "ADQL-2.1", "adql-2.1"])
def test_languages_accepted(lang):
    assert _request(LANG=lang, QUERY="SELECT 1").lang == lang.upper()


@pytest.mark.parametrize("params,message", [
    ({"QUERY": "SELECT 1"}, "parameter LANG is missing; use LANG=ADQL"),
    ({"LANG": "OOBLECK", "QUERY": "SELECT 1"},
     "unknown query language LANG='OOBLECK'; this service supports ADQL, ADQL-2.0, ADQL-2.1"),
    ({"LANG": "PQL", "QUERY": "SELECT 1"}, "unknown query language LANG='PQL'"),
    ({"LANG": "ADQL"}, "parameter QUERY is missing or empty"),
    ({"LANG": "ADQL", "QUERY": "   "}, "parameter QUERY is missing or empty"),
    ({"LANG": "ADQL", "QUERY": "SELECT 1", "MAXREC": "ten"},
     "MAXREC must be an integer, not 'ten'"),
    ({"LANG": "ADQL", "QUERY": "SELECT 1", "MAXREC": "-5"}, "MAXREC must be at least 0"),
    ({"LANG": "ADQL", "QUERY": "SELECT 1", "RESPONSEFORMAT": "application/x-excel"},
     "unsupported output format 'application/x-excel'"),
    ({"LANG": "ADQL", "QUERY": "SELECT 1", "REQUEST": "getCapabilities"},
     "REQUEST='getCapabilities' is not supported"),
    ({"LANG": "ADQL", "QUERY": "SELECT 1", "RUNID": "x" * 65}, "RUNID is 65 characters"),
    ({"LANG": "ADQL", "QUERY": "SELECT 1", "UPLOAD": "t1"}, "UPLOAD item 't1' must be"),
    ({"LANG": "ADQL", "QUERY": "SELECT 1", "UPLOAD": "1t,param:x"},
     "UPLOAD table name '1t' is not valid"),
    ({"LANG": "ADQL", "QUERY": "SELECT 1", "UPLOAD": "t,ftp://h/x"},
     "UPLOAD URI 'ftp://h/x' for table t is not supported"),
    ({"LANG": "ADQL", "QUERY": "SELECT 1", "UPLOAD": "t,param:a;T,param:b"},
     "UPLOAD names table T twice"),
])
def test_bad_parameters_are_named(params, message):
    with pytest.raises(UsageFault) as info:
        parse_request(Params(params), CONFIG)
    assert message in info.value.message


def test_request_doquery_and_unknown_parameters_are_ignored():
    req = _request(LANG="ADQL", QUERY="SELECT 1", REQUEST="doQuery", DUMMY="ignore-me")
    assert req.query == "SELECT 1"


def test_format_and_responseformat_are_synonyms():
    assert _request(LANG="ADQL", QUERY="SELECT 1", FORMAT="csv").format.key == "csv"
    req = _request(LANG="ADQL", QUERY="SELECT 1",
                   RESPONSEFORMAT="application/x-votable+xml;serialization=TABLEDATA")
    assert req.format.key == "votable/td"
    assert req.format_requested == "application/x-votable+xml;serialization=TABLEDATA"


def test_uploads_parsed_from_repeated_and_joined_values():
    p = Params(MultiDict([("UPLOAD", "a,param:pa;b,https://example.org/t.vot"),
                          ("upload", "c,param:pc")]))
    specs = parse_uploads(p)
    assert [(s.name, s.uri, s.part) for s in specs] == [
        ("a", "param:pa", "pa"), ("b", "https://example.org/t.vot", None),
        ("c", "param:pc", "pc")]


def test_effective_maxrec():
    # MAXREC given: capped by the hard limit
    assert effective_maxrec(10, None, CONFIG) == 10
    assert effective_maxrec(10, 5, CONFIG) == 10          # the executor keeps TOP 5
    assert effective_maxrec(5000, None, CONFIG) == 1000
    assert effective_maxrec(0, None, CONFIG) == 0
    # not given: TOP asks explicitly, else the default
    assert effective_maxrec(None, 500, CONFIG) == 500
    assert effective_maxrec(None, 50000, CONFIG) == 1000
    assert effective_maxrec(None, None, CONFIG) == 100

"""Everything a user can reach is documented under docs/: URL rules, CLI commands, settings.

How a mention is found (one failing test per missing item):

- URL rule of ``create_app`` (``static`` excepted): the docs hold the path as a
  whole word, e.g. ``/tap/async/{id}/phase``. A variable part may be spelled with any
  name, ``<job_id>``, ``<id>`` or ``{id}`` (``<path:rest>`` likewise). A scheme and
  host before the path (``http://127.0.0.1:8000/tap/sync``) and a query string after
  it are allowed; a longer path (``/tap/async/{id}`` inside ``/tap/async/{id}/phase``)
  does not count for the shorter one. The root page ``/`` counts only as ``GET /`` or
  as a URL ending in its host's ``/`` (a lone ``/`` is also the division sign).
- CLI command: ``extras-archive`` followed by the command's words, with any global
  options in between (``extras-archive --data-dir DIR ingest catalogue``); every
  command and sub-command of the group is walked.
- CLI option: every long option of every command (and of the group) as a whole word,
  e.g. ``--traceback``.
- Setting (a key of ``archive.config.DEFAULTS``): the name as a whole word, or its
  environment variable ``EXTRAS_ARCHIVE_<NAME>``.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import click
import pytest

from archive import create_app
from archive.config import DEFAULTS
from archive.db import get_db
from helpers import cli_group

DOCS = Path(__file__).resolve().parent.parent / "docs"
TEXT = "\n".join(p.read_text() for p in sorted(DOCS.glob("*.md")))

#: Items (URL rules, commands, settings) that need no page, each with the reason.
SKIP: dict[str, str] = {}


# -- URL rules --------------------------------------------------------------------------

VARIABLE = re.compile(r"<[^<>/\s]+>|\{[^{}/\s]+\}")
HOST = re.compile(r"https?://[^/\s`'\"()|]+(?=/)")
DELIMITERS = re.compile(r"[\s`'\"()|,;*]+")


def _normalised(path: str) -> str:
    return VARIABLE.sub("<>", path)


def _documented_paths(text: str) -> set[str]:
    """Every path written in the docs, normalised; the root only as ``GET /`` or a URL."""
    found = set()
    words = DELIMITERS.split(HOST.sub(" URL ", text))
    for before, word in zip(["", *words], words):
        path = word.split("?", 1)[0].rstrip(".:")
        if before == "URL" and word.startswith("/"):
            found.add(_normalised(path) or "/")
        elif path == "/":
            if before == "GET":
                found.add("/")
        elif path.startswith("/"):
            found.add(_normalised(path))
    return found


def _url_rules() -> list[str]:
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app({"DATA_DIR": data_dir, "DATABASE_URL": "sqlite://",
                          "ASYNC_WORKER_IN_PROCESS": False, "TESTING": True})
        get_db(app).dispose()
    return sorted({r.rule for r in app.url_map.iter_rules() if r.endpoint != "static"})


@pytest.mark.parametrize("rule", _url_rules())
def test_url_rule_is_documented(rule):
    if rule in SKIP:
        pytest.skip(SKIP[rule])
    assert _normalised(rule) in _documented_paths(TEXT), \
        f"the URL rule {rule} is not mentioned in any docs/*.md page"


# -- CLI commands -----------------------------------------------------------------------

def _commands(group: click.Group, prefix=()) -> list[str]:
    names = []
    for name, command in sorted(group.commands.items()):
        names.append(" ".join((*prefix, name)))
        if isinstance(command, click.Group):
            names += _commands(command, (*prefix, name))
    return names


@pytest.mark.parametrize("command", _commands(cli_group()))
def test_cli_command_is_documented(command):
    if command in SKIP:
        pytest.skip(SKIP[command])
    words = r"\s+".join(re.escape(w) for w in command.split())
    pattern = rf"extras-archive(?:\s+-[-\w]+(?:[=\s][^\s`-]\S*)?)*\s+{words}(?![\w-])"
    assert re.search(pattern, TEXT), \
        f"the command `extras-archive {command}` is not mentioned in any docs/*.md page"


def _options(group: click.Group, prefix=()) -> list[str]:
    """``"<command words> --option"`` for every long option, the group's own included."""
    found = [" ".join((*prefix, o)).strip() for p in group.params for o in p.opts
             if o.startswith("--") and o != "--help"]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += _options(command, (*prefix, name))
        else:
            found += [" ".join((*prefix, name, o)) for p in command.params for o in p.opts
                      if o.startswith("--") and o != "--help"]
    return found


@pytest.mark.parametrize("option", _options(cli_group()))
def test_cli_option_is_documented(option):
    """Every long option of every command appears in the docs (as a whole word)."""
    if option in SKIP:
        pytest.skip(SKIP[option])
    name = option.split()[-1]
    assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", TEXT), \
        f"the option {option} is not mentioned in any docs/*.md page"


# -- settings ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_setting_is_documented(name):
    if name in SKIP:
        pytest.skip(SKIP[name])
    assert re.search(rf"(?<!\w)(?:EXTRAS_ARCHIVE_)?{name}(?!\w)", TEXT), \
        f"the setting {name} is not mentioned in any docs/*.md page"


def test_skipped_items_exist():
    """A skip for an item that no longer exists is stale: remove it."""
    app = create_app({"DATA_DIR": tempfile.mkdtemp(), "TESTING": True})
    try:
        rules = {r.rule for r in app.url_map.iter_rules()}
    finally:
        get_db(app).dispose()
    known = rules | set(DEFAULTS) | set(_commands(cli_group())) | set(_options(cli_group()))
    assert not set(SKIP) - known

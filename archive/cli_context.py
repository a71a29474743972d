"""What every ``extras-archive`` command gets: the configuration, and the database
on demand. Below both the archive's and the ingest's commands, so that they can
share it without importing each other.
"""
from __future__ import annotations

import re

import click

from .config import ConfigError, load_config

__all__ = ["Context", "pass_context", "database_problem", "masked_url"]


def masked_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (also when it does not parse)."""
    return re.sub(r"(://[^/:@]*:)[^/]*@", r"\1***@", str(url))


def database_problem(exc: BaseException, url: str) -> str:
    """One line saying why the database at ``url`` cannot be used."""
    import sqlalchemy as sa
    shown = masked_url(url)
    if isinstance(exc, (sa.exc.NoSuchModuleError, ImportError)):
        return (f"the database URL {shown!r} names a backend that is not installed "
                f"({exc}); use sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/DB")
    if isinstance(exc, (sa.exc.ArgumentError, ValueError)):
        return f"the database URL {shown!r} is not valid: {exc}"
    if isinstance(exc, sa.exc.DBAPIError):
        detail = str(getattr(exc, "orig", None) or exc).strip()
    else:
        detail = (f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError)
                  and exc.strerror and exc.filename else str(exc).strip())
    first = next((line.strip() for line in detail.splitlines() if line.strip()), type(exc).__name__)
    return f"cannot use the database {shown}: {first}"


class Context:
    """What every sub-command gets: the configuration, and the database on demand.
    ``traceback``: let errors through with their traceback instead of one line."""

    def __init__(self, overrides, traceback: bool = False):
        self.overrides = overrides
        self.traceback = traceback
        self._config = None
        self._db = None

    @property
    def config(self) -> dict:
        if self._config is None:
            try:
                self._config = load_config(self.overrides)
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from exc
        return self._config

    @property
    def db(self):
        if self._db is None:
            from .db import Database
            url = self.config["DATABASE_URL"]
            try:
                self._db = Database.from_config(self.config)
            except Exception as exc:
                if self.traceback:
                    raise
                raise click.ClickException(database_problem(exc, url)
                                           + " (--traceback for details)") from None
        return self._db

    def close(self):
        """Dispose of the database engines, if any were made."""
        if self._db is not None:
            self._db.dispose()
            self._db = None


pass_context = click.make_pass_decorator(Context)

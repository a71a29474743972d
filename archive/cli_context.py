"""What every ``extras-archive`` command gets: the configuration, and the database
on demand. Below both the archive's and the ingest's commands, so that they can
share it without importing each other.
"""
from __future__ import annotations

import click

from .config import ConfigError, load_config

__all__ = ["Context", "pass_context"]


class Context:
    """What every sub-command gets: the configuration, and the database on demand."""

    def __init__(self, overrides):
        self.overrides = overrides
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
            self._db = Database.from_config(self.config)
        return self._db

    def close(self):
        """Dispose of the database engines, if any were made."""
        if self._db is not None:
            self._db.dispose()
            self._db = None


pass_context = click.make_pass_decorator(Context)

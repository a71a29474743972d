"""The one exception of the ingest subsystem."""
from __future__ import annotations

__all__ = ["IngestError"]


class IngestError(Exception):
    """Bad input: the message names the file and, where it applies, row and column.

    Raised before anything is committed, so the database is unchanged when it is seen.
    """

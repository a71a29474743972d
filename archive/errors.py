"""Errors, in one module: the DALI fault classes every surface raises.

``UsageFault`` (the request is wrong: 400), ``NotFoundFault`` (404),
``TransientFault`` (try again later: 503) and ``FatalFault`` (our fault: 500).
Views render them as a DALI error VOTable (QUERY_STATUS=ERROR) for VO clients
and as HTML for browsers; the messages are written for the person who sent the
request and name what was wrong.
"""
from __future__ import annotations

__all__ = ["ArchiveFault", "UsageFault", "NotFoundFault", "TransientFault",
           "TooManyRequestsFault", "FatalFault", "QueryTimeout", "describe"]


class ArchiveFault(Exception):
    """Base of the faults; ``label`` is the DALI/DataLink fault name."""

    label = "DefaultFault"
    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    @property
    def dali_text(self) -> str:
        """``<Label>: <message>`` as DataLink error rows and DALI errors spell it."""
        return f"{self.label}: {self.message}"


class UsageFault(ArchiveFault):
    label, status = "UsageFault", 400


class NotFoundFault(ArchiveFault):
    label, status = "NotFoundFault", 404


class TransientFault(ArchiveFault):
    label, status = "TransientFault", 503


class TooManyRequestsFault(TransientFault):
    """One client asks for more than its share (HTTP 429): try again later."""
    status = 429


class FatalFault(ArchiveFault):
    label, status = "FatalFault", 500


class QueryTimeout(UsageFault):
    """A query ran past its time limit."""


def describe(exc: BaseException) -> str:
    """``<type>: <message>`` of an unexpected exception, for the person who sent the
    request: an OSError's file names (server paths) are left out."""
    if isinstance(exc, OSError) and (exc.filename is not None or exc.filename2 is not None):
        return f"{type(exc).__name__}: {exc.strerror or 'input/output error'}"
    return f"{type(exc).__name__}: {exc}"

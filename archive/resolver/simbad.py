"""Simbad through astroquery, at a configurable TAP endpoint, with a short timeout.

astroquery's ``SimbadClass`` builds the ADQL of ``query_object`` (a join of ``basic``
and ``ident`` on ``id = '<name>'``) and sends it as a TAP sync query (HTTP POST to
``<SIMBAD_URL>/sync``) through pyvo. Two of its properties are replaced here:
``tap`` (astroquery only accepts the two public mirrors, over https, and its session
has no timeout: ours points at ``SIMBAD_URL`` and gives every request a connect and a
read timeout of ``SIMBAD_TIMEOUT`` seconds, and the whole query is given that long too)
and ``hardlimit`` (astroquery would first
fetch the service's capabilities to learn it: a second round trip for nothing, since
we ask for a handful of rows). No Flask, no database.
"""
from __future__ import annotations

import concurrent.futures
import warnings
from dataclasses import dataclass

import requests

from ..errors import TransientFault

__all__ = ["SimbadAnswer", "query_simbad"]

#: rows asked for (one name may match a few objects; the first is taken)
_ROWS = 5
#: the threads that talk to Simbad (per process)
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="simbad")


@dataclass(frozen=True)
class SimbadAnswer:
    """What Simbad said about a name: its main identifier and position, or ``None``
    for both when it does not know the name (or knows it without a position)."""

    main_id: str | None
    ra: float | None
    dec: float | None


class _TimeoutSession(requests.Session):
    """A requests session whose every request has a (connect, read) timeout."""

    def __init__(self, timeout: float):
        super().__init__()
        self._timeout = (timeout, timeout)

    def request(self, method, url, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().request(method, url, **kwargs)


def _client(url: str, timeout: float):
    from astroquery.simbad import SimbadClass      # imported when first needed (~0.5 s)
    from pyvo.dal import TAPService

    class Client(SimbadClass):
        @property
        def tap(self):
            if self._tap is None:
                session = _TimeoutSession(timeout)
                session.headers["User-Agent"] = self._session.headers["User-Agent"]
                self._tap = TAPService(baseurl=url.rstrip("/"), session=session)
            return self._tap

        @property
        def hardlimit(self):
            return _ROWS

    return Client(ROW_LIMIT=_ROWS)


def query_simbad(name: str, url: str, timeout: float) -> SimbadAnswer:
    """Ask Simbad (the TAP service at ``url``) for ``name``. TransientFault (503) when it
    cannot be reached or does not answer within ``timeout`` seconds, or answers with
    something that is not a TAP result."""
    from pyvo.dal.exceptions import DALFormatError, DALQueryError, DALServiceError
    from astroquery.exceptions import NoResultsWarning
    client = _client(url, timeout)

    def ask():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoResultsWarning)
            return client.query_object(name)

    try:
        # the socket timeouts bound each connect and read, not a server that trickles
        # its answer: the whole query gets ``timeout`` seconds in a worker thread.
        # A thread still stuck with such a server finishes at its next socket timeout
        # or when the trickle ends; while all are busy, requests wait here and fail
        # in time.
        table = _POOL.submit(ask).result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise _unreachable(timeout, "timed out") from None
    except (DALServiceError, DALQueryError, DALFormatError, requests.RequestException,
            OSError) as exc:
        raise _unreachable(timeout, _cause(exc)) from None
    for row in table:
        ra, dec = row["ra"], row["dec"]
        if _masked(ra) or _masked(dec):
            continue
        return SimbadAnswer(str(row["main_id"]).strip(), float(ra), float(dec))
    return SimbadAnswer(None, None, None)


def _unreachable(timeout: float, cause: str) -> TransientFault:
    return TransientFault(
        f"the name resolver (Simbad) could not be reached or did not answer within "
        f"{timeout:g} s ({cause}); type the coordinates instead "
        f"(e.g. 150.1 +2.2 or 10:00:24 +02:12:00), or try again later")


def _masked(value) -> bool:
    import numpy as np
    return value is None or np.ma.is_masked(value) or not np.isfinite(value)


def _cause(exc: BaseException) -> str:
    """A short reason: timeout, connection refused, HTTP status, or the error's text."""
    seen = exc
    while seen is not None:
        if isinstance(seen, requests.Timeout):
            return "timed out"
        if isinstance(seen, requests.ConnectionError):
            return "connection failed"
        seen = seen.__cause__ or seen.__context__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]

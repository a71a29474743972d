"""Progress of long commands: one mechanism for ingest, demo and serve.

A command is a sequence of steps. ``progress.start("reading", total=None)`` begins a
step (and ends the one before), ``progress.advance(n)`` counts its work,
``progress.finish()`` ends it; ``with progress.step("drawing", total=n):`` does both
and also reports a step that failed. On a terminal a step with a known total is a
click progress bar; every step ends with one line on stderr saying what it did and
how long it took, which is all that is written when stderr is not a terminal (a log,
a pipe, a test)::

    ingest: reading extras_aperiodic.fits: 0.4 s
    ingest: loading aperiodic: 20000/20000 rows, 1.3 s

``Progress.silent()`` reports nothing (library calls without a command). The object
is also a plain ``progress(done, total)`` callback, which advances the current step.
Code running in another process reports through :class:`Forwarder` (any object
with ``send``, e.g. a multiprocessing pipe) and :meth:`Progress.replay` there.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager

import click

__all__ = ["Progress", "Forwarder"]


class Progress:
    """Steps of one command, reported on ``stream`` (default: stderr)."""

    def __init__(self, prefix: str = "", stream=None, tty: bool | None = None,
                 enabled: bool = True):
        self.prefix = f"{prefix}: " if prefix else ""
        self.stream = stream
        self.tty = tty
        self.enabled = enabled
        self.label = None
        self.total = None
        self.unit = ""
        self.done = 0
        self.started = 0.0
        self.bar = None

    @classmethod
    def silent(cls) -> "Progress":
        return cls(enabled=False)

    @classmethod
    def of(cls, progress) -> "Progress":
        """``progress`` itself, or a silent Progress for None."""
        return cls.silent() if progress is None else progress

    def _stream(self):
        return self.stream if self.stream is not None else sys.stderr

    def _is_tty(self) -> bool:
        if self.tty is not None:
            return self.tty
        isatty = getattr(self._stream(), "isatty", None)
        return bool(isatty and isatty())

    # -- steps --------------------------------------------------------------------------

    def start(self, label: str, total: int | None = None, unit: str = "") -> None:
        """Begin the step ``label`` with ``total`` units of work (None: not counted)."""
        self.finish()
        self.label, self.total, self.unit = label, total, unit
        self.done = 0
        self.started = time.perf_counter()
        if self.enabled and self._is_tty() and total:
            self.bar = click.progressbar(length=total, label=self.prefix + label,
                                         file=self._stream(), show_pos=True)
            self.bar.__enter__()

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units of the current step."""
        if self.label is None:
            return
        self.done += n
        if self.bar is not None:
            self.bar.update(n)

    def finish(self, failed: bool = False) -> float | None:
        """End the current step with its line; returns its seconds (None: no step)."""
        if self.label is None:
            return None
        seconds = time.perf_counter() - self.started
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
        if self.enabled:
            self.line(self._describe(seconds, failed))
        self.label = None
        return seconds

    @contextmanager
    def step(self, label: str, total: int | None = None, unit: str = ""):
        """A step around a block: ended when the block ends, reported failed if it raises."""
        self.start(label, total, unit)
        try:
            yield self
        except BaseException:
            self.finish(failed=True)
            raise
        self.finish()

    def line(self, text: str) -> None:
        """One line of its own (e.g. what a command is about to do)."""
        if self.enabled:
            click.echo(self.prefix + text, file=self._stream())

    def _describe(self, seconds: float, failed: bool) -> str:
        text = self.label
        unit = f" {self.unit}" if self.unit else ""
        if self.total is not None:
            text += f": {self.done}/{self.total}{unit}"
        elif self.done:
            text += f": {self.done}{unit}"
        if failed:
            return f"{text} failed after {seconds:.1f} s"
        return f"{text}, {seconds:.1f} s" if ": " in text else f"{text}: {seconds:.1f} s"

    # -- as a callback, and across processes ----------------------------------------------

    def __call__(self, done: int, total: int | None = None) -> None:
        """``progress(done, total)``: advance the current step by ``done``."""
        self.advance(done)

    def replay(self, message: tuple) -> None:
        """Carry out a call a :class:`Forwarder` sent: ``(method, *args)``."""
        method, *args = message
        if method in ("start", "advance", "finish", "line"):
            getattr(self, method)(*args)


class Forwarder(Progress):
    """A Progress stand-in in another process: each call is sent as
    ``("progress", method, *args)`` through ``channel.send`` and replayed by the
    parent's :meth:`Progress.replay`."""

    def __init__(self, channel):
        super().__init__(enabled=False)
        self.channel = channel

    def _send(self, *message) -> None:
        self.channel.send(("progress", *message))

    def start(self, label: str, total: int | None = None, unit: str = "") -> None:
        self._send("start", label, total, unit)

    def advance(self, n: int = 1) -> None:
        self._send("advance", n)

    def finish(self, failed: bool = False) -> None:
        self._send("finish", failed)

    def line(self, text: str) -> None:
        self._send("line", text)


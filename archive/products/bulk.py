"""Zip and tar archives of products, written incrementally into a generator.

Nothing is built in memory or on disk: each file is read in blocks and each block
goes out as soon as it is written, so the memory a download needs does not depend
on its size. Layout, the same for both formats::

    <stem>/<obs_id>/<file name>     the products, stored as registered
    <stem>/manifest.tsv             path, size, sha256, status of every selected product
    <stem>/SHA256SUMS               `sha256sum -c` input for the files included

The manifest comes last because a file can go missing between the selection and
its turn: such a file is skipped and listed with status ``missing`` (no longer on
disk), ``changed`` (size or modification time differ from the registration, so the
recorded checksum does not describe it) or ``refused`` (it resolves outside the
products directory); the other files are ``ok``. A download never fails halfway
because of one file.

Zip: :mod:`zipfile` writing to an unseekable sink (entries are stored, not
compressed: FITS light curves barely compress and storing keeps the rate at disk
speed; sizes and CRCs follow each entry in a data descriptor; Zip64 where needed).
Tar: POSIX pax headers from :mod:`tarfile` (``TarInfo.tobuf``) with the data and its
512-byte padding written around them, so that a file's blocks stream one by one
(``TarFile.addfile`` would copy a whole file in one call).
"""
from __future__ import annotations

import tarfile
import time
import zipfile
from typing import Iterator

from ..errors import NotFoundFault, UsageFault
from .store import ChangedFault, GoneFault, Opener, Product

__all__ = ["FORMATS", "parse_format", "stream_archive"]

#: format key -> (file extension, MIME type)
FORMATS = {"zip": ("zip", "application/zip"), "tar": ("tar", "application/x-tar")}
_READ_BLOCK = 1 << 20          # bytes read from a product file at a time
_SEND_BLOCK = 256 * 1024       # small pieces are gathered up to this before being sent
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def parse_format(value: str | None) -> str:
    """The archive format asked for (``zip`` when not given)."""
    key = (value or "zip").strip().lower()
    if key not in FORMATS:
        raise UsageFault(f"unknown bulk download format {value!r}; format is one of "
                         f"{', '.join(FORMATS)} (default zip)")
    return key


class _Sink:
    """An unseekable writer that keeps what was written until it is taken."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.size = 0
        self.total = 0

    def write(self, data) -> int:
        n = len(data)
        if n:
            self.parts.append(bytes(data) if not isinstance(data, bytes) else data)
            self.size += n
            self.total += n
        return n

    def flush(self) -> None:
        pass

    def take(self, at_least: int = 0) -> Iterator[bytes]:
        """The bytes written so far, if there are at least ``at_least`` of them."""
        if self.size and self.size >= at_least:
            parts, self.parts, self.size = self.parts, [], 0
            yield parts[0] if len(parts) == 1 else b"".join(parts)


def _status(opener: Opener, product: Product):
    """(open file, "ok") or (None, why it is skipped)."""
    try:
        return opener.open(product), "ok"
    except GoneFault:
        return None, "missing"
    except ChangedFault:
        return None, "changed"
    except NotFoundFault:
        return None, "refused"


def _copy(fh, size: int, write, sink: _Sink) -> Iterator[bytes]:
    """Copy ``size`` bytes of ``fh`` through ``write``, yielding full send blocks; the
    number of bytes really read is the generator's return value."""
    done = 0
    while done < size:
        block = fh.read(min(_READ_BLOCK, size - done))
        if not block:
            break
        write(block)
        done += len(block)
        yield from sink.take(_SEND_BLOCK)
    return done


def _manifest(stem: str, statuses: list[tuple[Product, str]]) -> list[tuple[str, bytes]]:
    lines = ["path\tsize\tsha256\tstatus"]
    lines += [f"{p.path}\t{p.size}\t{p.sha256}\t{status}" for p, status in statuses]
    sums = [f"{p.sha256}  {p.path}" for p, status in statuses if status == "ok"]
    return [(f"{stem}/manifest.tsv", ("\n".join(lines) + "\n").encode()),
            (f"{stem}/SHA256SUMS", ("\n".join(sums) + "\n" if sums else "").encode())]


def _zip_time(mtime_ns: int) -> tuple:
    return max(time.gmtime(mtime_ns // 1_000_000_000)[:6], _ZIP_EPOCH)


def _zip(products: list[Product], products_dir: str, stem: str) -> Iterator[bytes]:
    sink = _Sink()
    statuses = []
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as zf, \
            Opener(products_dir) as opener:
        for product in products:
            fh, status = _status(opener, product)
            if fh is not None:
                with fh:
                    info = zipfile.ZipInfo(f"{stem}/{product.path}",
                                           _zip_time(product.mtime_ns))
                    info.file_size = product.size       # lets zipfile choose Zip64 up front
                    info.external_attr = 0o644 << 16
                    with zf.open(info, "w") as dest:
                        copied = yield from _copy(fh, product.size, dest.write, sink)
                    if copied != product.size:        # shrank while being read
                        status = "changed"
            statuses.append((product, status))
            yield from sink.take(_SEND_BLOCK)
        for name, data in _manifest(stem, statuses):
            info = zipfile.ZipInfo(name, time.gmtime()[:6])
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    yield from sink.take()


def _tar_header(name: str, size: int, mtime: float) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o644
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


def _tar(products: list[Product], products_dir: str, stem: str) -> Iterator[bytes]:
    sink = _Sink()
    statuses = []
    with Opener(products_dir) as opener:
        for product in products:
            fh, status = _status(opener, product)
            if fh is not None:
                with fh:
                    sink.write(_tar_header(f"{stem}/{product.path}", product.size,
                                           product.mtime_ns / 1e9))
                    copied = yield from _copy(fh, product.size, sink.write, sink)
                    if copied != product.size:        # shrank while being read: keep the
                        status = "changed"            # header's promise with zeros
                        sink.write(b"\0" * (product.size - copied))
                    sink.write(_padding(product.size))
            statuses.append((product, status))
            yield from sink.take(_SEND_BLOCK)
    now = time.time()
    for name, data in _manifest(stem, statuses):
        sink.write(_tar_header(name, len(data), now))
        sink.write(data)
        sink.write(_padding(len(data)))
    sink.write(b"\0" * (2 * tarfile.BLOCKSIZE))                   # end of archive
    sink.write(b"\0" * (-sink.total % tarfile.RECORDSIZE))        # whole records
    yield from sink.take()


def stream_archive(products: list[Product], products_dir: str, stem: str,
                   fmt: str = "zip") -> Iterator[bytes]:
    """The bytes of a ``fmt`` archive (``zip`` or ``tar``) of ``products``, in pieces."""
    writer = {"zip": _zip, "tar": _tar}[fmt]
    return writer(products, products_dir, stem)

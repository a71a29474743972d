"""Registered product files: look them up in the products table, find them on disk safely.

A product is named by its ``products.path`` (``<obs_id>/<file name>``, relative to
PRODUCTS_DIR). The file served is always ``PRODUCTS_DIR`` joined with the *row's*
path, never with text from a URL, and only if its resolved real path lies inside the
resolved PRODUCTS_DIR (a symbolic link leading out is refused). A registered file
that is no longer on disk is *gone* (410); a file whose size or modification time
differs from what ingest recorded is *changed* (409): its bytes are not the ones the
recorded checksum describes, so the archive does not hand them out under that
checksum until ``extras-archive ingest products`` has registered them again.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..db import products as products_table
from ..errors import ArchiveFault, NotFoundFault

__all__ = ["Product", "OnDisk", "GoneFault", "ChangedFault", "PRODUCT_COLUMNS",
           "is_product_path", "find_product", "product_from_row", "locate", "open_product",
           "Opener"]

#: The products-table columns a Product carries, in order.
PRODUCT_COLUMNS = ("id", "path", "product_type", "category", "mime", "size", "mtime_ns",
                   "checksum", "obs_id", "camera", "extras_id")

_REINGEST = "the archive's operator can re-run `extras-archive ingest products`"


class GoneFault(ArchiveFault):
    """The product is registered but its file is no longer on disk (HTTP 410)."""
    label, status = "NotFoundFault", 410


class ChangedFault(ArchiveFault):
    """The file on disk is not the one ingest registered (HTTP 409)."""
    label, status = "UsageFault", 409


@dataclass(frozen=True)
class Product:
    """One row of the products table."""

    id: int
    path: str
    product_type: str
    category: str
    mime: str
    size: int
    mtime_ns: int
    checksum: str            # "sha256:<hex>"
    obs_id: str
    camera: str
    extras_id: str

    @property
    def sha256(self) -> str:
        """The SHA-256 digest in hex (the checksum without its ``sha256:`` prefix)."""
        return self.checksum.split(":", 1)[1] if ":" in self.checksum else self.checksum

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class OnDisk:
    """Where a product's file is and what the disk says of it."""

    real_path: str
    size: int
    mtime_ns: int

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9


def product_from_row(row) -> Product:
    return Product(*row)


def is_product_path(path: str) -> bool:
    """Whether ``path`` has the shape of a registered path: relative, ``/``-separated,
    no empty, ``.`` or ``..`` parts, no backslash or NUL. Anything else cannot be in
    the table (ingest records paths relative to PRODUCTS_DIR) and is not looked up."""
    if not path or path.startswith("/") or "\\" in path or "\0" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def find_product(engine: Engine, path: str) -> Product:
    """The product registered under exactly ``path``, or a NotFoundFault."""
    if is_product_path(path):
        columns = [products_table.c[name] for name in PRODUCT_COLUMNS]
        with engine.connect() as conn:
            row = conn.execute(sa.select(*columns).where(
                products_table.c.path == path)).first()
        if row is not None:
            return product_from_row(row)
    raise NotFoundFault(f"no product is registered under the path {path!r}: product paths "
                        "are <obs_id>/<file name> as listed by DataLink and the "
                        "detection pages")


def _check(product: Product, st: os.stat_result) -> None:
    """Gone unless a regular file; changed unless of the recorded size and mtime."""
    if not stat.S_ISREG(st.st_mode):
        raise GoneFault(f"the product {product.path!r} is registered but its file is no "
                        f"longer a regular file; {_REINGEST}")
    if st.st_size != product.size or st.st_mtime_ns != product.mtime_ns:
        raise ChangedFault(
            f"the file of product {product.path!r} changed on disk since it was registered "
            f"({st.st_size} bytes now, {product.size} recorded; modification time "
            f"{'changed' if st.st_mtime_ns != product.mtime_ns else 'unchanged'}); its "
            f"recorded checksum no longer describes it, so it is not served until "
            "`extras-archive ingest products` registers it again")


def _gone(product: Product) -> GoneFault:
    return GoneFault(f"the product {product.path!r} is registered but its file is no "
                     f"longer on disk; {_REINGEST} to update the catalogue of products")


def _inside(base: str, real: str) -> bool:
    return real != base and os.path.commonpath([base, real]) == base


def _outside(product: Product) -> NotFoundFault:
    return NotFoundFault(f"the product {product.path!r} is not served: its file resolves "
                         "to a place outside the products directory")


def locate(products_dir: str, product: Product, *, unchanged: bool = True) -> OnDisk:
    """The product's file, checked: inside PRODUCTS_DIR once resolved (else 404), on
    disk and a regular file (else 410), and with ``unchanged`` of the recorded size and
    modification time (else 409). Readers that check the content themselves (the
    light-curve reader says when a file cannot be read) pass ``unchanged=False``."""
    base = os.path.realpath(products_dir)
    real = os.path.realpath(os.path.join(base, product.path))
    if not _inside(base, real):
        raise _outside(product)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        raise _gone(product) from None
    if unchanged:
        _check(product, st)
    elif not stat.S_ISREG(st.st_mode):
        raise _gone(product)
    return OnDisk(real, st.st_size, st.st_mtime_ns)


def open_product(products_dir: str, product: Product):
    """(OnDisk, binary file object) of the product, checked as ``locate`` does; the size
    and time are checked again on the opened file (it may have changed in between)."""
    where = locate(products_dir, product)
    fh = open(where.real_path, "rb")
    try:
        _check(product, os.fstat(fh.fileno()))
    except ArchiveFault:
        fh.close()
        raise
    return where, fh


class Opener:
    """Opens many products of one tree (a bulk download), with the checks of
    ``locate`` at a lower cost: each directory is resolved and checked once and held
    open while its files are read (products come sorted by path), and a file is
    opened relative to it without following a link (``O_NOFOLLOW``); a file that is
    a link is resolved and checked in full. The size and time are checked on the
    opened file. Use as a context manager."""

    def __init__(self, products_dir: str):
        self.products_dir = products_dir
        self.base = os.path.realpath(products_dir)
        # (relative dir, its fd or None, the fault when None)
        self._dir: tuple | None = None

    def __enter__(self) -> "Opener":
        return self

    def __exit__(self, *_exc) -> None:
        self._close_dir()

    def _close_dir(self) -> None:
        if self._dir is not None and self._dir[1] is not None:
            os.close(self._dir[1])
        self._dir = None

    def _dir_fd(self, head: str, product: Product) -> int:
        if self._dir is None or self._dir[0] != head:
            self._close_dir()
            real = os.path.realpath(os.path.join(self.base, head))
            if real != self.base and not _inside(self.base, real):
                self._dir = (head, None, _outside)
            else:
                try:
                    fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                    self._dir = (head, fd, None)
                except (FileNotFoundError, NotADirectoryError):
                    self._dir = (head, None, _gone)
        fd, fault = self._dir[1], self._dir[2]
        if fd is None:
            raise fault(product)
        return fd

    def open(self, product: Product):
        """The product's file, open for binary reading, or the fault ``locate`` raises."""
        head, _, name = product.path.rpartition("/")
        dir_fd = self._dir_fd(head, product)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            raise _gone(product) from None
        except OSError:                     # ELOOP: a link; anything else: check in full
            return open_product(self.products_dir, product)[1]
        fh = open(fd, "rb", buffering=0)
        try:
            _check(product, os.fstat(fd))
        except ArchiveFault:
            fh.close()
            raise
        return fh

"""Product ingest: register the bulk product files of a directory tree.

``ingest_products(engine, config, directory)`` walks ``directory`` (which must lie
inside ``PRODUCTS_DIR``: paths are recorded relative to it, so the tree can be
moved or mounted elsewhere), recognises each file by name
(:func:`datamodel.match_product`), and records path, type, size, mtime, SHA-256
checksum, keys and the ``extras_id`` of the catalogue row it belongs to
(aperiodic, else periodic), with the band and binning of its type and, for time
series, the time range it covers (``t_min``/``t_max`` in MJD from TSTART/TSTOP and
MJDREF of the table extension). FITS light curves are checked for the extension and
columns their product type requires. Every light curve without a quick-look gets
one (:mod:`ingest.previews`, on all cores) unless ``previews=False``.

Re-running is incremental: a file whose path, size and mtime (ns) equal those
recorded is skipped without being opened; only new or changed files are read (and,
once, FITS products recorded by a release that did not keep their time range).
Rows of files that have disappeared from the tree are removed. Everything is
checked before the database is touched and written in one transaction, so a bad
file leaves the database as it was (quick-looks drawn for that run are deleted).
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

import datamodel
from archive import db as archive_db
from archive.progress import Progress
from datamodel.products import preview_name

from .errors import IngestError
from .obscore import ObscoreSync, check_authority, sync_obscore
from .previews import default_workers, draw_previews

__all__ = ["ProductReport", "Inspection", "ingest_products", "inspect_file"]

_HASH_BLOCK = 1 << 20


@dataclass
class ProductReport:
    """What one product ingest did."""

    directory: str
    seen: int = 0                # recognised product files found in the tree
    unchanged: int = 0           # skipped without opening (path, size, mtime equal)
    new: int = 0
    changed: int = 0
    removed: int = 0             # recorded files no longer on disk
    read: int = 0                # files opened (checksum, validation)
    previews: int = 0            # quick-looks drawn
    unrecognised: list[str] = field(default_factory=list)
    obscore: ObscoreSync = field(default_factory=ObscoreSync)

    def summary(self) -> str:
        text = (f"{self.directory}: {self.seen} product files; {self.new} new, "
                f"{self.changed} changed, {self.unchanged} unchanged (not re-read), "
                f"{self.removed} removed; {self.read} files read; "
                f"{self.previews} quick-looks drawn")
        if self.unrecognised:
            text += f"; {len(self.unrecognised)} files not recognised as products, ignored"
        return text + "\n" + self.obscore.summary()


@dataclass(frozen=True)
class Inspection:
    """What reading one product file found."""

    checksum: str                 # "sha256:<hex>"
    problem: str | None = None    # why the file cannot be a product of its type
    t_min: float | None = None    # MJD (TT) covered, for time series
    t_max: float | None = None
    timedel: float | None = None  # FITS TIMEDEL (s) and rows of the table extension,
    nrows: int | None = None      # for ivoa.obscore (t_resolution, t_xel)


def inspect_file(path: str, product_key: str) -> Inspection:
    """Checksum of ``path`` and, for FITS products, the problem with its layout (or
    None) and the time range it covers.

    Runs in worker processes; reads the file once for the checksum and opens
    FITS products to check the required extension and columns.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
    checksum = "sha256:" + digest.hexdigest()
    ptype = datamodel.PRODUCT_TYPES.get(product_key)
    if ptype is None or not ptype.columns:
        return Inspection(checksum)
    problem, times = _check_fits(path, ptype)
    return Inspection(checksum, problem, *times)


def _time_range(header) -> tuple[float | None, float | None]:
    """(t_min, t_max) in MJD from the OGIP timing keywords, or (None, None)."""
    try:
        mjdref = float(header["MJDREF"]) if "MJDREF" in header else \
            float(header["MJDREFI"]) + float(header.get("MJDREFF", 0.0))
        zero = float(header.get("TIMEZERO", 0.0))
        start, stop = float(header["TSTART"]), float(header["TSTOP"])
    except (KeyError, TypeError, ValueError):
        return None, None
    scale = 1.0 / 86400.0 if str(header.get("TIMEUNIT", "s")).strip() == "s" else 1.0
    return mjdref + (start + zero) * scale, mjdref + (stop + zero) * scale


def _check_fits(path: str, ptype) -> tuple[str | None, tuple]:
    import warnings
    from astropy.io import fits
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with fits.open(path, memmap=False) as hdul:
                tables = [h for h in hdul if isinstance(h, fits.BinTableHDU)]
                if ptype.extension:
                    named = [h for h in tables if h.name.upper() == ptype.extension.upper()]
                    if not named:
                        found = ", ".join(h.name for h in tables) or "none"
                        return (f"no {ptype.extension} extension (table extensions found: "
                                f"{found})"), ()
                    hdu = named[0]
                elif tables:
                    hdu = tables[0]
                else:
                    return "no binary table extension", ()
                have = {n.upper() for n in hdu.columns.names}
                missing = [c for c in ptype.columns if c.upper() not in have]
                if missing:
                    return (f"extension {hdu.name} lacks the required column(s) "
                            f"{', '.join(missing)} (has: {', '.join(hdu.columns.names)})"), ()
                nrows = len(hdu.data)
                timedel = hdu.header.get("TIMEDEL")
                times = (*_time_range(hdu.header),
                         float(timedel) if timedel is not None else None, nrows)
    except Exception as exc:  # unreadable or truncated FITS
        return (f"cannot read the file as FITS: "
                f"{str(exc).splitlines()[0] if str(exc) else exc}"), ()
    return None, times


def _inspect(args):
    return inspect_file(*args)


def _walk(directory: Path):
    """Every regular file under ``directory``, in a stable order."""
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            yield Path(root) / name


def _relative(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()


def _key(keys: dict) -> tuple:
    """The product keys (``datamodel.PRODUCT_KEYS``) of a file, in order."""
    return tuple(keys[k] for k in datamodel.PRODUCT_KEYS)


def _link(engine: Engine, wanted: set[tuple]) -> dict[tuple, str]:
    """extras_id of each (obs_id, exp_id, camera, src_num) found in aperiodic or periodic."""
    found: dict[tuple, str] = {}
    obs_ids = sorted({k[0] for k in wanted})
    with engine.connect() as conn:
        for name in ("periodic", "aperiodic"):            # aperiodic wins: read last
            t = archive_db.catalogue_tables[name]
            keys = [t.c[k] for k in datamodel.PRODUCT_KEYS]
            for i in range(0, len(obs_ids), 500):
                stmt = sa.select(*keys, t.c.extras_id).where(
                    keys[0].in_(obs_ids[i:i + 500]))
                for o, e, c, s, xid in conn.execute(stmt):
                    key = (o, e, c, int(s))
                    if key in wanted:
                        found[key] = xid
    return found


@dataclass
class _Found:
    path: Path
    rel: str
    ptype: datamodel.ProductType
    keys: dict
    size: int
    mtime_ns: int
    is_new: bool

    @property
    def key(self) -> tuple:
        return _key(self.keys)


def ingest_products(engine: Engine, config: dict, directory: str | Path | None = None,
                    previews: bool = True, workers: int | None = None,
                    progress: Progress | None = None) -> ProductReport:
    """Register the products under ``directory`` (default: PRODUCTS_DIR); ``progress``
    (:mod:`archive.progress`) gets the steps scanning, reading, drawing, registering."""
    progress = Progress.of(progress)
    base = Path(config["PRODUCTS_DIR"]).resolve()
    directory = Path(directory).resolve() if directory else base
    if not directory.is_dir():
        raise IngestError(f"{directory}: not a directory")
    if directory != base and base not in directory.parents:
        raise IngestError(f"{directory}: product directories must lie inside PRODUCTS_DIR "
                          f"({base}); set EXTRAS_ARCHIVE_PRODUCTS_DIR or move the files")
    check_authority(config.get("IVOID_AUTHORITY", ""))
    workers = workers or default_workers()
    report = ProductReport(str(directory))
    prefix = "" if directory == base else _relative(directory, base) + "/"
    products = archive_db.products

    with engine.connect() as conn:
        stmt = sa.select(products.c.path, products.c.size, products.c.mtime_ns,
                         products.c.t_min.is_(None))
        if prefix:
            stmt = stmt.where(products.c.path.startswith(prefix, autoescape=True))
        recorded, untimed = {}, set()
        for p, size, mtime, no_time in conn.execute(stmt):
            recorded[p] = (size, mtime)
            if no_time:
                untimed.add(p)

    # 1. walk and compare with what is recorded (a stat per file; nothing is opened)
    todo: list[_Found] = []
    on_disk: set[str] = set()
    lightcurves: list[tuple[Path, dict]] = []
    changed_lcs: set[str] = set()     # light curves whose content changed: redraw
    progress.start(f"scanning {directory}", unit="files")
    for path in _walk(directory):
        progress.advance()
        match = datamodel.match_product(path.name)
        rel = _relative(path, base)
        if match is None:
            report.unrecognised.append(rel)
            continue
        ptype, keys = match
        st = path.stat()
        on_disk.add(rel)
        report.seen += 1
        if ptype.previewable:
            lightcurves.append((path, keys))
        same = recorded.get(rel) == (st.st_size, st.st_mtime_ns)
        if same and not (rel in untimed and ptype.columns):
            report.unchanged += 1
            continue
        todo.append(_Found(path, rel, ptype, keys, st.st_size, st.st_mtime_ns,
                           rel not in recorded))
        if ptype.previewable and not same:
            changed_lcs.add(rel)
    gone = sorted(set(recorded) - on_disk)

    # 2. read the new and changed files: checksums and FITS layout
    progress.start("reading new and changed files", len(todo), "files")
    results = _run(_inspect, [(str(f.path), f.ptype.key) for f in todo], workers, progress)
    progress.finish()
    report.read = len(todo)
    found = {f.rel: r for f, r in zip(todo, results)}
    problems = [f"{f.path}: {r.problem}" for f, r in zip(todo, results) if r.problem]
    if problems:
        raise IngestError("invalid product file(s); nothing was ingested:\n"
                          + "\n".join(problems[:20])
                          + (f"\n({len(problems) - 20} more)" if len(problems) > 20 else ""))

    # 3. link to catalogue rows by keys
    pending = []                      # (lc path, png path) to draw
    if previews:
        for path, keys in lightcurves:
            png = path.with_name(preview_name(path.name))
            if _relative(png, base) not in on_disk or _relative(path, base) in changed_lcs:
                pending.append((path, png, keys))
    wanted = {f.key for f in todo} | {_key(k) for _, _, k in pending}
    links = _link(engine, wanted)
    orphans = [f for f in todo if f.key not in links]
    if orphans:
        lines = [f"{f.path}: keys obs_id={f.keys['obs_id']} exp_id={f.keys['exp_id']} "
                 f"camera={f.keys['camera']} src_num={f.keys['src_num']} match no row of "
                 "the aperiodic or periodic catalogue" for f in orphans[:20]]
        raise IngestError("product file(s) not linked to any catalogue row; nothing was "
                          "ingested:\n" + "\n".join(lines)
                          + (f"\n({len(orphans) - 20} more)" if len(orphans) > 20 else ""))

    # 4. draw the missing quick-looks, now that every file is known good
    drawn: list[Path] = []
    try:
        if pending:
            drawn = [png for _, png, _ in pending if not png.exists()]
            with progress.step("drawing quick-looks", len(pending), "files"):
                draw_previews([(str(lc), str(png)) for lc, png, _ in pending], workers,
                              progress=progress)
            report.previews = len(pending)
            redrawn = {_relative(p, base) for _, p, _ in pending}
            todo = [f for f in todo if f.rel not in redrawn]
            for _lc, png, keys in pending:
                rel = _relative(png, base)
                st = png.stat()
                if rel not in on_disk:
                    on_disk.add(rel)
                    report.seen += 1
                todo.append(_Found(png, rel, datamodel.PREVIEW, keys, st.st_size,
                                   st.st_mtime_ns, rel not in recorded))
                found[rel] = inspect_file(str(png), "preview")

        # 5. one transaction: remove rows of changed and vanished files, insert new rows
        rows = []
        for f in todo:
            preview_of = None
            if f.ptype is datamodel.PREVIEW:
                lc = _find_lc(f.path)
                preview_of = _relative(lc, base) if lc else None
            inspection = found[f.rel]
            rows.append({"path": f.rel, "product_type": f.ptype.key,
                         "category": f.ptype.category, "mime": f.ptype.mime,
                         "size": f.size, "mtime_ns": f.mtime_ns,
                         "checksum": inspection.checksum,
                         "obs_id": f.keys["obs_id"], "exp_id": f.keys["exp_id"],
                         "camera": f.keys["camera"], "src_num": f.keys["src_num"],
                         "extras_id": links[f.key], "preview_of": preview_of,
                         "band": f.ptype.band, "binning": f.ptype.binning,
                         "t_min": inspection.t_min, "t_max": inspection.t_max})
            if f.is_new:
                report.new += 1
            else:
                report.changed += 1
        stale = [f.rel for f in todo if not f.is_new] + gone
        progress.start("registering products and ObsCore rows", len(rows), "rows")
        with engine.begin() as conn:
            for i in range(0, len(stale), 500):
                conn.execute(products.delete().where(products.c.path.in_(stale[i:i + 500])))
            for i in range(0, len(rows), 5000):
                conn.execute(products.insert(), rows[i:i + 5000])
                progress.advance(len(rows[i:i + 5000]))
            # ivoa.obscore follows the products in the same transaction
            axes = {f.rel: (found[f.rel].timedel, found[f.rel].nrows) for f in todo
                    if found[f.rel].nrows is not None}
            report.obscore = sync_obscore(conn, config, {f.rel for f in todo if not f.is_new},
                                          run=_run, workers=workers, axes=axes)
        report.removed = len(gone)
        progress.finish()
    except BaseException:
        progress.finish(failed=True)
        for png in drawn:
            png.unlink(missing_ok=True)
        raise
    return report


def _find_lc(png: Path) -> Path | None:
    for ext in (".fit", ".fits"):
        cand = png.with_suffix(ext)
        if cand.exists():
            return cand
    return None


def _run(func, items: list, workers: int, progress: Progress | None = None) -> list:
    """``[func(i) for i in items]`` on ``workers`` processes, counted on ``progress``."""
    progress = Progress.of(progress)
    if workers <= 1 or len(items) < 64:
        return [_counted(func(i), progress) for i in items]
    import multiprocessing
    ctx = multiprocessing.get_context("fork" if "fork" in
                                      multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        return [_counted(r, progress) for r in
                pool.map(func, items, chunksize=max(1, len(items) // (workers * 8)))]


def _counted(result, progress: Progress):
    progress.advance()
    return result

"""Micro-benchmark of the output formats: rows/s of each writer, server side.

Renders a generated 1,000,000-row result shaped like the aperiodic catalogue
(every column of ``datamodel.TABLES["aperiodic"]``, with SQLite-like Python
values: floats, ints, str, a few None) through every registered format and
prints rows per second (by wall-clock and by CPU time of this process, which
is the fairer figure on a shared machine) and output size. Ten distinct 10,000-row chunks are
generated up front and replayed, so row generation is not measured.

    python benchmarks/formats.py [--rows 1000000] [--formats votable,csv] [--columnar]

``--columnar`` replays the chunks as Arrow record batches, as the executor's
columnar path (archive/columnar.py) delivers bulk results.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archive.formats import all_formats, get_format  # noqa: E402
from archive.result import QueryResult, columns_of  # noqa: E402
from datamodel import TABLES  # noqa: E402

CHUNK = 10000


def make_chunk(columns, rng, start: int) -> list[tuple]:
    """One chunk of aperiodic-like rows (values as SQLite returns them)."""
    n = CHUNK
    values = []
    for c in columns:
        if c.name == "extras_id":
            col = [f"{0o100000000 + start + i:010d}_U002_PN_{i % 97 + 1}" for i in range(n)]
        elif c.name == "iauname":
            col = [f"4XMM J{i % 240000:06d}.{i % 10}+{i % 900000:06d}" for i in range(n)]
        elif c.datatype == "char":
            size = int(c.arraysize) if c.arraysize and c.arraysize.isdigit() else 8
            col = ["PN", "M1", "M2"][start % 3:] * n if size == 2 else \
                [f"{(start + i) % 10 ** size:0{size}d}"[:size] for i in range(n)]
            col = col[:n]
        elif c.datatype in ("short", "int", "long"):
            col = rng.integers(0, 30000, n).tolist()
        elif c.datatype == "boolean":
            col = rng.integers(0, 2, n).tolist()
        else:
            col = rng.normal(100, 30, n).tolist()
            if not c.required:
                for j in rng.integers(0, n, n // 50).tolist():
                    col[j] = None
        values.append(col)
    return list(zip(*values))


def result(columns, chunks, rows: int, batches=None) -> QueryResult:
    """A QueryResult replaying ``chunks`` (row tuples), or ``batches`` (Arrow record
    batches, as the columnar executor path gives them) when given."""
    source = batches if batches is not None else chunks

    def generate():
        sent = 0
        while sent < rows:
            piece = source[(sent // CHUNK) % len(source)]
            size = piece.num_rows if batches is not None else len(piece)
            keep = min(size, rows - sent)
            piece = piece.slice(0, keep) if batches is not None else piece[:keep]
            sent += keep
            yield piece
    if batches is not None:
        return QueryResult(columns_of(columns), maxrec=None, batches=generate())
    return QueryResult(columns_of(columns), maxrec=None, chunks=generate())


def arrow_batches(columns, chunks) -> list:
    """The chunks as Arrow record batches typed as SQLite stores the columns
    (what ``archive.columnar`` fetches: int64, double, string)."""
    import pyarrow as pa
    types = {"char": pa.string(), "float": pa.float64(), "double": pa.float64()}
    out = []
    for chunk in chunks:
        arrays = [pa.array(list(values), type=types.get(c.datatype, pa.int64()))
                  for c, values in zip(columns, zip(*chunk))]
        out.append(pa.RecordBatch.from_arrays(arrays, names=[c.name for c in columns]))
    return out


def calibrate() -> float:
    """ns of CPU per value for np.array(list of floats): how busy the machine is."""
    values = np.random.default_rng(0).normal(size=100_000).tolist()
    c0 = time.process_time()
    for _ in range(20):
        np.array(values, dtype=np.float64)
    return (time.process_time() - c0) / 20 / len(values) * 1e9


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--formats", default=",".join(f.key for f in all_formats()))
    parser.add_argument("--columnar", action="store_true",
                        help="feed Arrow record batches (the executor's columnar path, "
                             "archive/columnar.py) instead of row tuples")
    args = parser.parse_args(argv)
    columns = TABLES["aperiodic"].columns
    rng = np.random.default_rng(42)
    chunks = [make_chunk(columns, rng, k * CHUNK) for k in range(10)]
    batches = arrow_batches(columns, chunks) if args.columnar else None
    print(f"{args.rows} rows x {len(columns)} columns (aperiodic shape), "
          f"{'Arrow batches' if args.columnar else 'chunks'} of {CHUNK}")
    print(f"machine reference: numpy converts a list of Python floats at "
          f"{calibrate():.0f} ns per value (CPU time; about 20 on an idle modern core)")
    print(f"{'format':<12} {'rows/s':>12} {'rows/s CPU':>12} {'seconds':>9} {'MB out':>9}")
    for key in args.formats.split(","):
        fmt = get_format(key)
        t0, c0 = time.perf_counter(), time.process_time()
        size = 0
        for piece in fmt.render(result(columns, chunks, args.rows, batches)):
            size += len(piece)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"{fmt.key:<12} {args.rows / dt:>12,.0f} {args.rows / cpu:>12,.0f} "
              f"{dt:>9.2f} {size / 1e6:>9.1f}", flush=True)


if __name__ == "__main__":
    main()

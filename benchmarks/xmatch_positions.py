"""Cross-match of an uploaded table whose positions have neither UCDs nor usual names
(issue 13, point 7), against gunicorn: the columns named in the ADQL use the HEALPix
index; the same join written so that it cannot (``u.px + 0``) tests every pair.

    python benchmarks/xmatch_positions.py --data-dir DIR [--database-url URL] [--rows N]

Prints the time of each form (median of --repeat runs), the rows found and whether
they agree.
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import requests
from astropy.io.votable import parse_single_table
from astropy.io.votable.tree import VOTableFile
from astropy.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from archive.config import load_config  # noqa: E402
from conftest import start_gunicorn  # noqa: E402
from tap import positions  # noqa: E402

FORMS = {
    "named columns, index": "1 = CONTAINS(POINT(u.px, u.py), CIRCLE(a.ra, a.dec, 5.0 / 3600))",
    "DISTANCE, index": "DISTANCE(POINT(u.px, u.py), POINT(a.ra, a.dec)) < 5.0 / 3600",
    "every pair (u.px + 0)": "1 = CONTAINS(POINT(u.px + 0, u.py), CIRCLE(a.ra, a.dec, 5.0 / 3600))",
}


def upload(config: dict, n: int) -> bytes:
    pos = positions(config, n)
    table = Table({"src": np.arange(len(pos), dtype=np.int32),
                   "px": np.array([p[0] for p in pos]) + 1 / 3600,
                   "py": np.array([p[1] for p in pos])})
    doc = VOTableFile.from_table(table)
    doc.version = "1.4"
    out = io.BytesIO()
    doc.to_xml(out, tabledata_format="binary2")
    return out.getvalue()


def run(base: str, condition: str, table: bytes) -> tuple[float, set]:
    query = (f"SELECT u.src, a.extras_id FROM TAP_UPLOAD.mine AS u JOIN extras.aperiodic AS a "
             f"ON {condition}")
    t0 = time.perf_counter()
    response = requests.post(base + "/tap/sync", timeout=900, data={
        "LANG": "ADQL", "QUERY": query, "UPLOAD": "mine,param:mine", "MAXREC": "10000000"},
        files={"mine": ("mine.vot", table, "application/x-votable+xml")})
    seconds = time.perf_counter() - t0
    if response.status_code != 200:        # e.g. the query time limit
        text = response.text
        start = text.find('value="ERROR">')
        print(f"    {response.status_code} after {seconds:.1f} s: "
              f"{text[start + 14:text.find('</INFO>')] if start >= 0 else text[:200]}")
        return seconds, None
    rows = parse_single_table(io.BytesIO(response.content)).array
    return seconds, {(int(s), str(e)) for s, e in zip(rows["src"], rows["extras_id"])}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--rows", type=int, default=1000, help="uploaded positions")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="QUERY_TIMEOUT for the server, seconds")
    args = parser.parse_args(argv)
    overrides = {"DATA_DIR": args.data_dir}
    os.environ["EXTRAS_ARCHIVE_QUERY_TIMEOUT"] = str(args.timeout)    # gunicorn's too
    if args.database_url:
        overrides["DATABASE_URL"] = args.database_url
    config = load_config(overrides, environ={})
    table = upload(config, args.rows)
    proc, base = start_gunicorn(config, workers=2)
    try:
        run(base, FORMS["named columns, index"], table)          # warm up
        print(f"{args.rows} uploaded positions in columns px, py (no UCDs), 5 arcsec, "
              f"{config['DATABASE_URL'].split(':')[0]}, load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        found = {}
        for name, condition in FORMS.items():
            times = []
            for _ in range(args.repeat):
                seconds, rows = run(base, condition, table)
                times.append(seconds)
            if rows is None:
                continue
            found[name] = rows
            print(f"  {name:<24} median {statistics.median(times):8.3f} s "
                  f"(min {min(times):.3f}), {len(rows)} pairs")
        same = len({frozenset(r) for r in found.values()}) == 1
        print(f"  the {len(found)} forms that finished find the same pairs: {same}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()

"""Products benchmark (issue 12): DataLink, light-curve JSON and bulk downloads in one run.

Usage::

    python benchmarks/products.py [--bench1m /tmp/bench1m] [--workdir /tmp/bench-products]

Runs the three product benchmarks one after the other, each against gunicorn on
127.0.0.1, and prints their figures (each script documents what it measures):

* ``benchmarks/datalink.py``: one ID and 1,000 IDs in one request, on a copy of the
  1,000,000-row archive with >= 100,000 product rows (``--prepare`` on first use);
* ``benchmarks/lightcurves.py``: the JSON of a 10,000-point light curve;
* ``benchmarks/bulk.py``: a zip of 10,000 product files from the page cache, and the
  server's memory while it streams.

Goals (issue 12): DataLink one ID < 10 ms median server time and 1,000 IDs < 1 s;
light-curve JSON of 10,000 points < 50 ms; bulk >= 100 MB/s with flat memory.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(script: str, *args: str) -> int:
    print(f"\n=== {script} {' '.join(args)}", flush=True)
    return subprocess.call([sys.executable, str(HERE / script), *args])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench1m", default="/tmp/bench1m",
                    help="the 1,000,000-row demo archive (extras-archive demo --rows "
                         "1000000 --no-products); copied, never written")
    ap.add_argument("--workdir", default="/tmp/bench-products")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    datalink_dir = work / "datalink-1m"
    failures = 0
    if not datalink_dir.exists():
        if not Path(args.bench1m).is_dir():
            print(f"no 1,000,000-row archive in {args.bench1m}: build it with "
                  f"`extras-archive demo --rows 1000000 --no-products --data-dir "
                  f"{args.bench1m}`", file=sys.stderr)
            return 2
        shutil.copytree(args.bench1m, datalink_dir)
        failures += run("datalink.py", "--data-dir", str(datalink_dir), "--prepare") != 0
    else:
        failures += run("datalink.py", "--data-dir", str(datalink_dir)) != 0
    failures += run("lightcurves.py", "--workdir", str(work / "lightcurves")) != 0
    failures += run("bulk.py", "--data-dir", str(work / "bulk")) != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

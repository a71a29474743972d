"""Web portal benchmark (issue 11): the search form, result pages and name resolution
over real HTTP, against gunicorn on the 1,000,000-row archive.

Usage::

    python benchmarks/web.py --data-dir /tmp/webbench --copy-from /tmp/bench1m

``--copy-from`` first copies the SQLite archive of another directory into DIR (SQLite's
backup API: the shared benchmark archive is never written to; the copy gets the
``search_cache`` table and the cached names). The script empties ``search_cache``,
stores a few Simbad answers in ``name_cache``, starts gunicorn as docs/deploy.md does
(``gunicorn --workers <2 per core> --threads 4 --bind 127.0.0.1:<port> wsgi:app``, via
``benchmarks/conesearch.py``'s ``start_server``) with ``SIMBAD_URL`` a closed local
port (a request that asked Simbad would fail), and measures, round by round, in a
shuffled order within each round so that the machine's drift touches all alike:

* the cone search request of ``benchmarks/conesearch.py`` (1 arcmin at a source
  position, service defaults, astropy parse timed apart), for scale;
* a 1-arcmin form search, HTML page (``/search/aperiodic?pos=..&radius=1``) at a
  random source position;
* a page of a 100,000-row result (an RA range, all declinations) from the cache:
  random page, sorted by the next of EVERY column of the standard column set, both
  directions in turn;
* ``/resolve`` of a name cached in ``name_cache`` (a Simbad answer), and of one of
  the archive's own names (3XMM IAU name, EXTraS detection id, transient name);

and, every few rounds, the first request of another 100,000-row range (cold: the
count, the query and filling the cache).

Each request is made with one ``requests.Session`` (kept-alive connection, as a
browser). For each kind: median and 90th percentile of the server time (the
``Server-Timing: app;dur=`` header the HTTP edge sets: request reaching the
application to the response object returned) and of the time to the last byte (the
client's wall time until the whole body is read). Load average and the CPU reference
of conesearch.py before and after.

``--phases N`` then times, in process (no HTTP), the phases of N more cold results and
3N cached pages (count, reading the rows into Arrow, encoding, storing; reading an
entry, decompressing, sorting and cutting a page): where the time goes, in CPU and
wall ms. ``--database-url`` runs against another database holding the catalogue
(e.g. PostgreSQL); its ``search_cache`` is emptied and the names cached in it.

Goals (issue 11, medians): 1-arcmin form search < 30 ms; any page of a 100,000-row
result, sorted by any column, < 300 ms; name resolution from the cache < 5 ms.
"""
from __future__ import annotations

import argparse
import io
import os
import random
import sqlite3
import statistics
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import requests
import sqlalchemy as sa
from astropy.io.votable import parse_single_table
from astropy.io.votable.exceptions import VOWarning

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import conesearch  # noqa: E402  (the cone search benchmark: its request, its server)
from archive.config import load_config  # noqa: E402
from archive.db import catalogue_tables, name_cache, search_cache  # noqa: E402

#: Simbad answers stored in name_cache (name, ra, dec, main id)
CACHED_NAMES = [("M 31", 10.684708, 41.268750, "M  31"),
                ("NGC 4151", 182.635744, 39.405730, "NGC  4151"),
                ("Mrk 421", 166.113808, 38.208833, "Mrk 421"),
                ("3C 273", 187.277915, 2.052388, "3C 273"),
                ("Cyg X-1", 299.590316, 35.201606, "V* V1357 Cyg")]
ROWS = 100_000
GOALS = {"form": 30.0, "page": 300.0, "resolve": 5.0}
#: the order of the figures printed
ORDER = ["cone search 1' (conesearch.py request)", "form search 1', HTML",
         "page of 100,000 rows, from the cache", "page, first request (cold)",
         "resolve, cached Simbad name", "resolve, archive name"]


def _copy(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm"):
        (target / f"archive.sqlite{suffix}").unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source / 'archive.sqlite'}?mode=ro", uri=True)
    dst = sqlite3.connect(target / "archive.sqlite")
    src.backup(dst)
    src.close()
    dst.close()


def _prepare(config: dict, seed: int) -> dict:
    """Upgrade the archive (search_cache), empty the search cache, cache the names;
    pick archive names and the RA windows of ROWS rows each."""
    from archive import create_app
    from archive.db import get_db
    app = create_app({**config, "TESTING": True})
    db = get_db(app)
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    with db.engine.begin() as conn:
        conn.execute(search_cache.delete())
        for name, ra, dec, main_id in CACHED_NAMES:
            key = " ".join(name.split()).casefold()
            conn.execute(sa.delete(name_cache).where(name_cache.c.name == key))
            conn.execute(sa.insert(name_cache).values(
                name=key, ra=ra, dec=dec, source="simbad", resolved_name=main_id,
                created=now))
        names = []
        for table, column in (("longterm", "iauname"), ("aperiodic", "extras_id"),
                              ("transients", "name")):
            t = catalogue_tables[table]
            values = conn.execute(sa.select(t.c[column]).where(
                t.c[column].is_not(None)).order_by(sa.func.random()).limit(20)).scalars()
            names += [v for v in values]
        t = catalogue_tables["aperiodic"]
        ras = np.sort(np.array(conn.execute(sa.select(t.c.ra)).scalars().all(), float))
    db.dispose()
    rng.shuffle(names)
    # windows of exactly ROWS rows (RA values are distinct floats): [ras[k], ras[k+ROWS-1]]
    starts = np.linspace(0, len(ras) - ROWS - 1, 64).astype(int)
    windows = [(float(ras[k]), float(ras[k + ROWS - 1])) for k in starts]
    rng.shuffle(windows)
    return {"names": names, "windows": windows, "rows": len(ras)}


def _range(window: tuple[float, float]) -> dict:
    # repr: the exact float, so the window holds exactly the ROWS rows counted
    return {"shape": "range", "ra_min": repr(window[0]), "ra_max": repr(window[1]),
            "dec_min": "-90", "dec_max": "90"}


def _sort_columns(config: dict, window) -> list[str]:
    """The columns of the standard column set of the range search (what its page
    shows, and the columns its headers sort by)."""
    from werkzeug.datastructures import MultiDict

    import datamodel
    from archive.search.params import parse
    from archive.search.query import result_columns
    search = parse(datamodel.TABLES["aperiodic"], MultiDict(_range(window)), config,
                   None, None)
    assert not search.errors, search.errors
    return [c.name for c in result_columns(search)]


def _server_ms(response: requests.Response) -> float:
    timing = response.headers["Server-Timing"]
    name, dur = timing.split(";")
    assert name == "app" and dur.startswith("dur="), timing
    return float(dur[4:])


class Recorder:
    def __init__(self, session: requests.Session, base: str):
        self.session, self.base = session, base
        self.server: dict[str, list[float]] = {}
        self.wall: dict[str, list[float]] = {}
        self.extra: dict[str, list[float]] = {}

    def get(self, label: str | None, path: str, params: dict, check) -> requests.Response:
        started = time.perf_counter()
        response = self.session.get(self.base + path, params=params, timeout=120)
        wall = 1000 * (time.perf_counter() - started)      # the whole body is read
        if response.status_code != 200:
            raise SystemExit(f"{path} {params}: HTTP {response.status_code}: "
                             f"{response.text[:500]}")
        check(response)
        if label is not None:
            self.server.setdefault(label, []).append(_server_ms(response))
            self.wall.setdefault(label, []).append(wall)
        return response


def _html(response):
    assert response.headers["Content-Type"].startswith("text/html"), response.headers
    assert "<table" in response.text


def _page_of(total: int):
    def check(response):
        _html(response)
        assert f"{total:,} rows match" in response.text, "not the expected row count"
    return check


def _resolved(resolver: str, cached: bool):
    def check(response):
        answer = response.json()
        assert answer["resolver"] == resolver and answer["cached"] == cached, answer
    return check


def _cone(rec: Recorder, label: str | None, ra: float, dec: float) -> None:
    """The request of benchmarks/conesearch.py (``one``): 1', service defaults, the
    answer parsed with astropy (timed apart)."""
    response = rec.get(label, "/scs/aperiodic", conesearch.cone_params(ra, dec, 1 / 60, {}),
                       lambda r: None)
    started = time.perf_counter()
    parse_single_table(io.BytesIO(response.content), verify="ignore")
    if label is not None:
        rec.extra.setdefault("parse", []).append(1000 * (time.perf_counter() - started))


def phases(config: dict, windows: list, sorts: list, reps: int) -> None:
    """Where the time of a 100,000-row result page goes, in process (no HTTP): each
    phase of archive/search/cache.py timed alone, median CPU and wall ms over ``reps``
    results (cold) or pages (cached)."""
    from werkzeug.datastructures import MultiDict

    import datamodel
    from archive import create_app
    from archive.db import get_db
    from archive.search import cache
    from archive.search.params import parse
    from archive.search.query import count, result_columns
    app = create_app({**config, "TESTING": True})
    db = get_db(app)
    times: dict[str, list[tuple[float, float]]] = {}

    def timed(label, fn):
        c0, w0 = time.process_time(), time.perf_counter()
        value = fn()
        times.setdefault(label, []).append(
            (1000 * (time.process_time() - c0), 1000 * (time.perf_counter() - w0)))
        return value

    def search_of(window, sort, order, page):
        args = MultiDict({**_range(window), "sort": sort, "order": order, "page": page})
        return parse(datamodel.TABLES["aperiodic"], args, app.config, None, None)

    rng = random.Random(2)
    client = app.test_client()
    for k in range(reps):
        window = windows[-1 - k]
        sort, order = sorts[k % len(sorts)]
        found = search_of(window, sort, order, str(rng.randint(1, ROWS // 50)))
        names = [c.name for c in result_columns(found)]
        key = cache.key_of(found)
        n = timed("cold: count", lambda: count(db.readonly, found, timeout=60))
        table, total = timed("cold: read the rows, build the Arrow table",
                             lambda: cache._build(db.readonly, found, 60, n))
        timed("cold: encode (LZ4 Arrow file)", lambda: cache._encode(table))
        timed("cold: encode and store (the database write)", lambda: cache._store(
            db.engine, key, found, table, total, 1 << 40))
        timed("cold: sort and cut the page", lambda: cache._page_rows(table.select, found,
                                                                       names))
    window = windows[-1]
    for k in range(3 * reps):
        sort, order = sorts[(7 * k) % len(sorts)]
        found = search_of(window, sort, order, str(rng.randint(1, ROWS // 50)))
        names = [c.name for c in result_columns(found)]
        read, _total = timed("cached: read the entry (blob, hit count)",
                             lambda: cache._lookup(db.engine, cache.key_of(found)))
        timed("cached: decompress its columns, sort and cut the page",
              lambda: cache._page_rows(read, found, names))
        params = {**_range(window), "sort": sort, "order": order, "page": found.page}
        timed("cached: whole request in process (test client)",
              lambda: client.get("/search/aperiodic", query_string=params).get_data())
    db.dispose()
    print(f"\nwhere the time goes, in process ({reps} cold results, {3 * reps} cached pages):")
    for label, values in times.items():
        cpu = statistics.median(v[0] for v in values)
        wall = statistics.median(v[1] for v in values)
        print(f"  {label:58s} CPU {cpu:8.1f} ms  wall {wall:8.1f} ms")


def _q(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default="/tmp/webbench")
    ap.add_argument("--database-url", default="",
                    help="another database (e.g. PostgreSQL holding the same catalogue); "
                         "its search_cache is emptied and name_cache given the names")
    ap.add_argument("--copy-from", default=None,
                    help="copy this directory's SQLite archive into --data-dir first")
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--cold", type=int, default=10,
                    help="first requests of other 100,000-row results (cold cache)")
    ap.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1))
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--phases", type=int, default=5, metavar="N",
                    help="time the phases of N cold results and 3N cached pages in "
                         "process (0: skip)")
    args = ap.parse_args(argv)
    if args.copy_from:
        _copy(Path(args.copy_from), Path(args.data_dir))
    closed = f"http://127.0.0.1:{conesearch._free_port()}/simbad/sim-tap"
    os.environ["EXTRAS_ARCHIVE_SIMBAD_URL"] = closed         # gunicorn's environment
    overrides = {"DATA_DIR": args.data_dir, "SIMBAD_URL": closed}
    if args.database_url:
        overrides["DATABASE_URL"] = args.database_url
    config = load_config(overrides, environ={})
    warnings.simplefilter("ignore", VOWarning)
    load_before = os.getloadavg()
    print(f"before: {conesearch.machine_state()}")
    setup = _prepare(config, args.seed)
    pos = conesearch.positions(config, args.rounds + 20, args.seed)
    windows = setup["windows"]
    if args.cold + 1 + args.phases > len(windows):
        raise SystemExit(f"--cold + --phases: at most {len(windows) - 1} results")
    hot = _range(windows[0])
    sorts = [(c, o) for c in _sort_columns(config, windows[0]) for o in ("asc", "desc")]
    rng = random.Random(args.seed)
    proc, base = conesearch.start_server(config, args.workers, args.threads, None)
    try:
        print(f"server: gunicorn {args.workers} workers x {args.threads} threads, "
              f"{config['DATABASE_URL'].split(':')[0]}, {os.cpu_count()} cores; "
              f"{setup['rows']:,} aperiodic rows; {len(sorts) // 2} sort columns x 2")
        session = requests.Session()
        rec = Recorder(session, base)
        pages = ROWS // 50
        check_page = _page_of(ROWS)
        # cold: the first request of the result paged through below
        rec.get("page, first request (cold)", "/search/aperiodic",
                {**hot, "sort": sorts[0][0], "order": sorts[0][1]}, check_page)
        names = setup["names"]
        for i in range(20):                                    # warm up every worker
            ra, dec = pos[args.rounds + i]
            _cone(rec, None, ra, dec)
            rec.get(None, "/search/aperiodic", {"pos": f"{ra:.6f} {dec:+.6f}",
                                                "radius": "1", "unit": "arcmin"}, _html)
            rec.get(None, "/search/aperiodic", {**hot, "page": str(rng.randint(1, pages))},
                    check_page)
            rec.get(None, "/resolve", {"name": CACHED_NAMES[i % 5][0]},
                    _resolved("simbad", True))
            rec.get(None, "/resolve", {"name": names[i % len(names)]},
                    _resolved("archive", False))
        cold_at = set(np.linspace(0, args.rounds - 1, args.cold).astype(int).tolist()) \
            if args.cold else set()
        cold_windows = iter(windows[1:])
        for i in range(args.rounds):
            ra, dec = pos[i]
            sort, order = sorts[i % len(sorts)]
            steps = [
                lambda: _cone(rec, "cone search 1' (conesearch.py request)", ra, dec),
                lambda: rec.get("form search 1', HTML", "/search/aperiodic",
                                {"pos": f"{ra:.6f} {dec:+.6f}", "radius": "1",
                                 "unit": "arcmin"}, _html),
                lambda: rec.get("page of 100,000 rows, from the cache", "/search/aperiodic",
                                {**hot, "sort": sort, "order": order,
                                 "page": str(rng.randint(1, pages))}, check_page),
                lambda: rec.get("resolve, cached Simbad name", "/resolve",
                                {"name": CACHED_NAMES[i % len(CACHED_NAMES)][0]},
                                _resolved("simbad", True)),
                lambda: rec.get("resolve, archive name", "/resolve",
                                {"name": names[i % len(names)]}, _resolved("archive", False)),
            ]
            if i in cold_at:
                window = next(cold_windows)
                steps.append(lambda: rec.get(
                    "page, first request (cold)", "/search/aperiodic",
                    {**_range(window), "sort": sort, "order": order,
                     "page": str(rng.randint(1, pages))}, check_page))
            rng.shuffle(steps)
            for step in steps:
                step()
        session.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except Exception:                   # noqa: BLE001 - a stuck server is killed
            proc.kill()
    if args.phases:
        phases(config, windows[args.cold + 1:], sorts, args.phases)
    load_after = os.getloadavg()
    print(f"after: {conesearch.machine_state()}")
    print(f"load average before {' '.join(f'{v:.2f}' for v in load_before)}, "
          f"after {' '.join(f'{v:.2f}' for v in load_after)}")
    print(f"\n{'request':44s} {'n':>4s}  {'server median / p90':>20s}  "
          f"{'last byte median / p90':>23s}  goal")
    goals = {"form search 1', HTML": GOALS["form"],
             "page of 100,000 rows, from the cache": GOALS["page"],
             "page, first request (cold)": GOALS["page"],
             "resolve, cached Simbad name": GOALS["resolve"]}
    verdicts = []
    for label in sorted(rec.server, key=lambda k: ORDER.index(k)):
        server, wall = rec.server[label], rec.wall[label]
        goal = goals.get(label)
        text = ""
        if goal is not None:
            ok = statistics.median(wall) < goal
            text = f"< {goal:g} ms: {'met' if ok else 'NOT met'}"
            verdicts.append(f"{label}: {'met' if ok else 'NOT met'}")
        print(f"{label:44s} {len(server):4d}  {_q(server, 50):8.2f} / {_q(server, 90):8.2f} ms"
              f"  {_q(wall, 50):9.2f} / {_q(wall, 90):8.2f} ms  {text}")
    parse = rec.extra.get("parse", [])
    if parse:
        print(f"(the cone answer's astropy parse, after the last byte: median "
              f"{_q(parse, 50):.2f} ms, p90 {_q(parse, 90):.2f} ms)")
    print("goals (median time to the last byte): " + "; ".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())

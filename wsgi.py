"""Entry point for gunicorn: ``gunicorn wsgi:app`` serves the archive the environment names."""
import gc
import logging
import sys

from archive import create_app
from archive.tap import adql

# Where the archive's log lines go under gunicorn: the access log (one JSON line per
# request, logger archive.access) and the archive's own messages (job workers,
# failures) on standard error, beside gunicorn's; a log collector reads them there.
_access = logging.getLogger("archive.access")
_access.setLevel(logging.INFO)
_access.propagate = False
_handler = logging.StreamHandler(sys.stderr)
_handler.setFormatter(logging.Formatter("%(message)s"))
_access.addHandler(_handler)
_archive = logging.getLogger("archive")
_archive.setLevel(logging.INFO)
_handler = logging.StreamHandler(sys.stderr)
_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
_archive.addHandler(_handler)

app = create_app()

# Build the ADQL parser now rather than in the first query (it takes about half a
# second), then move everything made so far -- modules, the data model, parser
# tables, templates -- out of the garbage collector's generations: it lives as long
# as the process, and a full collection during a request would otherwise walk all
# of it (~200,000 objects, >100 ms on a slow core), which shows in the latencies.
adql.parse("SELECT ra FROM t")
gc.freeze()

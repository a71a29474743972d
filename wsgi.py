"""Entry point for gunicorn: ``gunicorn wsgi:app`` serves the archive the environment names."""
import gc

from archive import create_app
from archive.tap import adql

app = create_app()

# Build the ADQL parser now rather than in the first query (it takes about half a
# second), then move everything made so far -- modules, the data model, parser
# tables, templates -- out of the garbage collector's generations: it lives as long
# as the process, and a full collection during a request would otherwise walk all
# of it (~200,000 objects, >100 ms on a slow core), which shows in the latencies.
adql.parse("SELECT ra FROM t")
gc.freeze()

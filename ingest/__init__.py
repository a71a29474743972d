"""Ingest of catalogues and bulk products, and the demo archive.

- :func:`ingest.catalogue.ingest_catalogue`: a FITS/VOTable/CSV file into a catalogue table.
- :func:`ingest.products.ingest_products`: a tree of product files into the products table.
- :func:`ingest.demo.build_demo`: a synthetic archive built with the two above.
- :mod:`ingest.cli`: the ``extras-archive ingest ...`` and ``extras-archive demo`` commands.
"""
from .errors import IngestError

__all__ = ["IngestError"]

"""Interactive light curves (``/lightcurves``): the product files of a detection as
JSON for the plots, the pages that draw them, and the long-term light curve of a
source.

``read`` turns a FITS product into plain columns and header values (numpy, no
Flask), ``encode`` writes them as JSON, ``lookup`` finds products and long-term
points in the database and on disk; ``views`` is the blueprint. See
docs/lightcurves.md.
"""

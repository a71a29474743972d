"""Catalogue pages: what each catalogue is, its sky coverage (a MOC) and its download.

``coverage`` builds the Multi-Order Coverage map of a positional catalogue from its
HEALPix index and caches it (FITS, JSON, PNG) in ``DATA_DIR/moc``; ``export`` runs the
whole-catalogue download through the one query executor; ``views`` is the blueprint
(``/catalogues``).
"""

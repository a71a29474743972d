"""The web cross-match: an uploaded or pasted list of positions against one catalogue
(``service``: no Flask; ``views``: the blueprint at /crossmatch). docs/crossmatch.md."""

"""DataLink 1.1 ({links} at /datalink/links and the service descriptors of TAP and
cone-search results).

``ids`` reads the request (ID repeated, RESPONSEFORMAT, the ID limit), ``links``
finds what each catalogue row ID links to (batched, indexed queries) and builds the
links table, ``descriptor`` marks the id column of query results and writes the
service descriptor that points clients at /datalink/links. Only ``views`` imports
Flask. See docs/datalink.md.
"""

"""IVOA Simple Cone Search 1.03 for every positional catalogue (``/scs/<catalogue>``)
and for all of them combined (``/scs/all``), with VOSI capabilities and availability.

``params`` reads the request, ``search`` builds and runs the query (no Flask),
``views`` is the blueprint. See docs/conesearch.md.
"""

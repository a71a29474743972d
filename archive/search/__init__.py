"""The search form per catalogue (``GET /search/<catalogue>``, docs/search.md).

``params`` reads and checks the request's parameters into a ``Search`` (every
message tied to the form field it is about); ``query`` builds the SQLAlchemy
statement from the data model and runs it through the one executor. Only
``views`` imports Flask.
"""

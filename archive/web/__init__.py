"""Web pages for people: landing page, search form, source pages, downloads."""

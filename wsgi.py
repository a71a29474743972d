"""Entry point for gunicorn: ``gunicorn wsgi:app`` serves the archive the environment names."""
from archive import create_app

app = create_app()

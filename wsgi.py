"""The WSGI entry point: ``gunicorn wsgi:app``."""

from abconv import create_app

app = create_app()

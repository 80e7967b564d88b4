"""WSGI entry point for gunicorn and other servers: ``gunicorn wsgi:app``.

Configuration comes from CELLCHAIN_* environment variables (see README).
"""

from cellchain import create_app

app = create_app()

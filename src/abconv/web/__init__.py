"""HTTP: blueprints, error rendering, CORS, security headers and the admin check."""

from __future__ import annotations

from flask import Flask, current_app, request

from abconv.web import api, auth, errors, headers, metrics, pages


def init_app(app: Flask) -> None:
    metrics.init_app(app)  # first: it hands the services their metrics hook
    errors.init_app(app)
    headers.init_app(app)
    auth.init_app(app)
    app.before_request(_ensure_schema)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)


def _ensure_schema() -> None:
    if request.endpoint != "api.healthz":
        current_app.extensions["abconv"].store.ensure_schema()

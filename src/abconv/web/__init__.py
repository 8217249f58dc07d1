"""HTTP: blueprints, error rendering, CORS, security headers and the admin check."""

from __future__ import annotations

from flask import Flask

from abconv.web import api, auth, errors, headers, pages


def init_app(app: Flask) -> None:
    errors.init_app(app)
    headers.init_app(app)
    auth.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)

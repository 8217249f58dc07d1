"""HTTP: blueprints, error rendering, CORS, security headers, the admin check and login."""

from __future__ import annotations

from flask import Flask

from abconv.web import (
    api,
    auth,
    embed,
    errors,
    fast_lane,
    headers,
    landing,
    login,
    metrics,
    pages,
    session,
)


def init_app(app: Flask) -> None:
    metrics.init_app(app)  # first: it hands the services their metrics hook
    errors.init_app(app)
    app.wsgi_app = fast_lane.FastLane(app)  # type: ignore[method-assign]
    headers.init_app(app)  # wraps the fast lane too
    session.init_app(app)
    auth.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(embed.bp)
    app.register_blueprint(landing.bp)
    login.init_app(app)

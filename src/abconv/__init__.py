"""abconv: A/B tests for calls to action and landing pages."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the pure modules must be importable without Flask loaded
    from flask import Flask

__all__ = ["analyze", "create_app"]

MAX_BODY_BYTES = 1024 * 1024


def analyze(data: dict[str, Any]) -> dict[str, Any]:
    """The results document for aggregated counts; see :func:`abconv.stats.analyze`."""
    from abconv.stats import analyze as run_analysis

    return run_analysis(data)


def templates_dir() -> Path:
    """``templates/`` inside the installed package, or at the checkout's top."""
    packaged = Path(__file__).parent / "templates"
    return packaged if packaged.is_dir() else Path(__file__).parents[2] / "templates"


def create_app(environ: Mapping[str, str] | None = None) -> Flask:
    """The WSGI app; settings come from ``environ`` (default: ``os.environ``)."""
    from flask import Flask
    from sqlalchemy.exc import SQLAlchemyError

    from abconv import logs, web
    from abconv.config import load_config
    from abconv.experiments import ExperimentRegistry
    from abconv.service import Services
    from abconv.store import Store

    settings = load_config(environ)
    app = Flask(__name__, template_folder=str(templates_dir()))
    app.config.update(
        ABCONV=settings,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    logs.init_app(app)  # before anything logs
    store = Store(settings.database_url)
    try:
        store.upgrade_schema()
    except SQLAlchemyError as error:  # serve 503s until the database is back
        app.logger.error("database unavailable at start-up: %s", error)
    registry = ExperimentRegistry(settings.experiments_dir, logger=app.logger)
    app.extensions["abconv"] = Services(store=store, experiments=registry)
    web.init_app(app)
    return app

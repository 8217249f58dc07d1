"""Pages for people: the dashboard."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from abconv.web.auth import admin_required

bp = Blueprint("pages", __name__)


@bp.get("/")
@admin_required
def dashboard() -> str:
    services = current_app.extensions["abconv"]
    rows = [
        (experiment, services.store.visitors_by_variant(experiment.key))
        for experiment in services.experiments.all().values()
    ]
    return render_template("pages/dashboard.html", rows=rows)

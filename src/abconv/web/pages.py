"""Pages for people: the dashboard."""

from __future__ import annotations

from flask import Blueprint, render_template

from abconv.web.api import services
from abconv.web.auth import admin_required

bp = Blueprint("pages", __name__)


@bp.get("/")
@admin_required
def dashboard() -> str:
    store, registry = services().store, services().experiments
    rows = [
        (experiment, store.visitors_by_variant(experiment.key))
        for experiment in registry.all().values()
    ]
    return render_template("pages/dashboard.html", rows=rows)

"""Definitions, health and the error envelope (the admin check: test_web_auth.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from abconv import create_app
from tests.conftest import assert_error


def test_experiments_lists_the_definitions(client: FlaskClient) -> None:
    body = client.get("/api/experiments").get_json()
    [shop] = body["experiments"]
    assert shop["key"] == "shop" and shop["status"] == "running"
    assert [v["key"] for v in shop["variants"]] == ["trial", "guide"]
    assert {g["key"]: g["kind"] for g in shop["goals"]} == {
        "purchase": "hard",
        "newsletter": "soft",
    }


def test_one_experiment_by_key(client: FlaskClient) -> None:
    body = client.get("/api/experiments/shop").get_json()
    assert body["control"] == "trial" and body["analysis"]["method"] == "bayesian"
    assert_error(client.get("/api/experiments/nope"), 404, "unknown_experiment")


def test_healthz_reports_the_database(client: FlaskClient) -> None:
    body = client.get("/healthz").get_json()
    assert body == {"status": "ok", "database": "ok", "experiments": "ok", "experiments_loaded": 1}


def test_healthz_is_503_when_the_database_is_gone(tmp_path: Path, experiments_dir: Path) -> None:
    database = tmp_path / "gone" / "abconv.sqlite3"
    app = create_app({"ABCONV_DATABASE_URL": f"sqlite:///{database}",
                      "ABCONV_EXPERIMENTS_DIR": str(experiments_dir)})  # fmt: skip
    app.extensions["abconv"].store.dispose()
    for path in database.parent.iterdir():
        path.unlink()
    database.parent.rmdir()
    client = app.test_client()
    reply = client.get("/healthz")
    assert reply.status_code == 503 and reply.get_json()["database"] == "unreachable"
    assign = client.get("/api/assign?visitor=a&experiment=shop")
    assert assign.status_code == 200 and "degraded" in assign.get_json()
    assert_error(client.post("/api/convert", json={"visitor": "a", "goal": "purchase"}), 503,
                 "database_unavailable")  # fmt: skip
    app.extensions["abconv"].store.dispose()


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "/api/nothing-here", 404, "not_found"),
        ("get", "/api", 404, "not_found"),
        ("delete", "/api/assign", 405, "method_not_allowed"),
        ("get", "/api/convert", 405, "method_not_allowed"),
    ],
)
def test_http_errors_use_the_envelope(
    client: FlaskClient, method: str, path: str, status: int, code: str
) -> None:
    assert_error(getattr(client, method)(path), status, code)


def test_pages_get_html_errors(client: FlaskClient) -> None:
    reply = client.get("/no-such-page")
    assert reply.status_code == 404 and reply.mimetype == "text/html"


def test_dashboard_escapes_what_files_say(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    path = experiments_dir / "shop.toml"
    path.write_text(path.read_text().replace('name = "Shop CTA"', 'name = "<script>x</script>"'))
    app.extensions["abconv"].experiments.refresh()
    page = client.get("/").get_data(as_text=True)
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page

"""A fresh world per test: temp experiments folder, temp database, no ABCONV_* leaks.

Tests that take the ``database_url`` fixture (directly or through ``app``)
run once on SQLite and once on PostgreSQL; the PostgreSQL run is skipped
unless ``ABCONV_TEST_DATABASE_URL`` names a server (``.ci/run`` sets it).
Each PostgreSQL test gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from abconv import create_app
from abconv.store import Store, normalise_url
from tests.openapi_contract import ContractClient

POSTGRES_ENV = "ABCONV_TEST_DATABASE_URL"
POSTGRES_URL = os.environ.get(POSTGRES_ENV)
ADMIN_PASSWORD = "test-admin-password"
ADMIN_AUTHORIZATION = f"Bearer {ADMIN_PASSWORD}"  # what `client` sends

SHOP_EXPERIMENT = """
key = "{key}"
name = "Shop CTA"
status = "{status}"
kind = "cta"
traffic = {traffic}

[[variants]]
key = "trial"
weight = {weight_trial}
content = {{ text = "Start free trial", href = "/signup" }}

[[variants]]
key = "guide"
weight = {weight_guide}
content = {{ text = "Get my free guide", href = "/guide" }}

[[goals]]
key = "purchase"
kind = "hard"
value = true
primary = true

[[goals]]
key = "newsletter"
kind = "soft"
"""


def experiment_toml(key: str = "shop", **fields: Any) -> str:
    values = {
        "key": key,
        "status": "running",
        "traffic": 1.0,
        "weight_trial": 1,
        "weight_guide": 1,
    }
    values.update(fields)
    return textwrap.dedent(SHOP_EXPERIMENT).format(**values)


def write_experiment(folder: Path, key: str = "shop", **fields: Any) -> Path:
    path = folder / f"{key}.toml"
    path.write_text(experiment_toml(key, **fields))
    # Make the change visible to a registry that compares mtimes within one tick.
    stamp = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))
    return path


@pytest.fixture(autouse=True)
def _no_abconv_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ABCONV_* leaks in; the instance folder (generated admin password,
    default database) is the test's own, never ./instance."""
    for name in list(os.environ):
        if name.startswith("ABCONV_") and name != POSTGRES_ENV:
            monkeypatch.delenv(name)
    monkeypatch.setenv("ABCONV_INSTANCE_DIR", str(tmp_path / "instance"))


@pytest.fixture(autouse=True)
def _replies_keep_the_openapi_document(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every app a test builds checks each reply against ``web/openapi.json``."""
    monkeypatch.setattr(Flask, "test_client_class", ContractClient)


@pytest.fixture
def experiments_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "experiments"
    folder.mkdir()
    write_experiment(folder)
    return folder


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'abconv.sqlite3'}"
        return
    if not POSTGRES_URL:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    yield from postgres_schema(POSTGRES_URL)


def postgres_schema(base_url: str) -> Iterator[str]:
    """A URL whose connections use a fresh schema, dropped afterwards."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(normalise_url(base_url))
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.engine.make_url(normalise_url(base_url))
    options = f"-csearch_path={schema}"
    yield url.update_query_dict({"options": options}).render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A store on the test's database, migrated to the newest revision."""
    store = Store(database_url)
    store.upgrade_schema()
    yield store
    store.dispose()


@pytest.fixture
def environ(experiments_dir: Path, database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "ABCONV_EXPERIMENTS_DIR": str(experiments_dir),
        "ABCONV_DATABASE_URL": database_url,
        "ABCONV_INSTANCE_DIR": str(tmp_path / "instance"),
        "ABCONV_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }


@pytest.fixture
def app(environ: dict[str, str]) -> Iterator[Flask]:
    app = create_app(environ)
    app.config["TESTING"] = True
    yield app
    app.extensions["abconv"].store.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return admin_client(app)


def admin_client(app: Flask) -> FlaskClient:
    """A client that sends the admin password (as a Bearer token) with every request."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = ADMIN_AUTHORIZATION
    return client


@pytest.fixture
def anonymous_client(app: Flask) -> FlaskClient:
    """A client without credentials, as a visitor's browser or an attacker."""
    return app.test_client()


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The one check of the API error envelope: ``{"error": {"code", "message"}}``."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]

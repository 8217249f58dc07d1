"""The admin check: passwords, the generated one, loopback only, proxies, cross-site writes."""

from __future__ import annotations

import base64
import logging
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from abconv import create_app
from tests.conftest import ADMIN_PASSWORD, assert_error

REMOTE = {"REMOTE_ADDR": "203.0.113.9"}
EVENTS = {"events": [{"type": "exposure", "visitor": "a", "experiment": "shop"}]}


def basic(password: str) -> dict[str, str]:
    token = base64.b64encode(f"admin:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def bearer(password: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {password}"}


@pytest.fixture
def make_app(environ: dict[str, str]) -> Iterator[Any]:
    """Apps built from the test's environ with some variables changed (None: removed)."""
    apps: list[Flask] = []

    def make(**changes: str | None) -> Flask:
        settings = {**environ, **changes}
        app = create_app({k: v for k, v in settings.items() if v is not None})
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["abconv"].store.dispose()


@pytest.fixture
def local_only(make_app: Any) -> FlaskClient:
    """No ABCONV_ADMIN_PASSWORD: the generated password, from this machine only."""
    return make_app(ABCONV_ADMIN_PASSWORD=None).test_client()  # type: ignore[no-any-return]


def generated(environ: dict[str, str]) -> str:
    return (Path(environ["ABCONV_INSTANCE_DIR"]) / "admin-password").read_text().strip()


def admin_rules(app: Flask) -> list[str]:
    """A URL of every admin route, found by asking anonymously (401, or the login form
    for a page, means admin)."""
    client, urls = app.test_client(), []
    for rule in app.url_map.iter_rules():
        methods = rule.methods or set()
        method = "GET" if "GET" in methods else "POST"
        url = rule.build({arg: "shop" for arg in rule.arguments}, append_unknown=False)[1]
        reply = client.open(url, method=method)
        if reply.status_code == 401 or reply.location == f"/login?next={url}":
            urls.append(url)
    return urls


def test_with_a_password_everyone_needs_it(anonymous_client: FlaskClient) -> None:
    error = assert_error(anonymous_client.get("/api/experiments"), 401, "unauthorized")
    assert "password" in error["message"]
    reply = anonymous_client.get("/api/experiments")
    assert reply.headers["WWW-Authenticate"].startswith("Basic")
    wrong = anonymous_client.get("/api/experiments", headers=basic("wrong"))
    assert_error(wrong, 401, "unauthorized")
    right = anonymous_client.get(
        "/api/experiments", headers=basic(ADMIN_PASSWORD), environ_base=REMOTE
    )
    assert right.status_code == 200
    token = anonymous_client.get("/api/experiments/shop", headers=bearer(ADMIN_PASSWORD))
    assert token.status_code == 200
    page = anonymous_client.get("/")  # a person: the login form, not a Basic prompt
    assert page.status_code == 302 and page.location == "/login?next=/"
    assert anonymous_client.get("/", headers=basic(ADMIN_PASSWORD)).status_code == 200
    wrong_page = anonymous_client.get("/", headers=basic("wrong"))
    assert wrong_page.status_code == 401 and wrong_page.mimetype == "text/html"
    assert_error(anonymous_client.post("/api/events", json={"events": []}), 401, "unauthorized")


def test_every_admin_route_refuses_without_the_password(app: Flask) -> None:
    urls = admin_rules(app)
    assert {"/", "/experiments/shop", "/api/events", "/api/experiments/shop/results.csv"} <= set(
        urls
    )
    assert not {"/api/assign", "/api/convert", "/healthz"} & set(urls)


def test_public_routes_need_no_password(anonymous_client: FlaskClient) -> None:
    assert anonymous_client.get("/api/assign?visitor=a", environ_base=REMOTE).status_code == 200
    reply = anonymous_client.post(
        "/api/convert", json={"visitor": "a", "goal": "purchase"}, environ_base=REMOTE
    )
    assert reply.status_code == 200


def test_without_a_password_one_is_generated_and_needed_here(
    local_only: FlaskClient, environ: dict[str, str]
) -> None:
    # A proxy on this machine adding no header looks exactly like this: it still needs a secret.
    error = assert_error(local_only.get("/api/experiments"), 401, "unauthorized")
    assert "admin-password" in error["message"]
    path = Path(environ["ABCONV_INSTANCE_DIR"]) / "admin-password"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    password = generated(environ)
    assert len(password) >= 32
    assert_error(local_only.get("/api/experiments", headers=basic("guess")), 401, "unauthorized")
    assert local_only.get("/api/experiments", headers=basic(password)).status_code == 200
    assert local_only.get("/", headers=bearer(password)).status_code == 200
    ipv6 = local_only.get("/", headers=bearer(password), environ_base={"REMOTE_ADDR": "::1"})
    assert ipv6.status_code == 200


@pytest.mark.parametrize(
    "spoof",
    [
        {},
        {"X-Forwarded-For": "127.0.0.1"},
        {"Forwarded": "for=127.0.0.1"},
        {"Forwarded": 'for="[::1]"'},
        {"X-Real-IP": "127.0.0.1"},
        {"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "localhost"},
    ],
)
def test_without_a_password_another_machine_is_refused_whatever_its_headers(
    local_only: FlaskClient, environ: dict[str, str], spoof: dict[str, str]
) -> None:
    local_only.get("/api/experiments")  # writes the password file
    headers = {**spoof, **bearer(generated(environ))}
    reply = local_only.get("/api/experiments", headers=headers, environ_base=REMOTE)
    assert_error(reply, 403, "forbidden")
    assert local_only.get("/", headers=headers, environ_base=REMOTE).status_code == 403


def test_trusted_proxies_decide_the_client_address(make_app: Any, environ: dict[str, str]) -> None:
    client = make_app(ABCONV_ADMIN_PASSWORD=None, ABCONV_TRUSTED_PROXIES="1").test_client()
    client.get("/")
    auth = bearer(generated(environ))
    # The proxy (on this machine) says who connected to it.
    from_afar = {**auth, "X-Forwarded-For": "203.0.113.9"}
    assert_error(client.get("/api/experiments", headers=from_afar), 403, "forbidden")
    here = {**auth, "X-Forwarded-For": "127.0.0.1"}
    assert client.get("/api/experiments", headers=here).status_code == 200
    # Only the last hop counts: a client cannot prepend its own claim.
    spoofed = {**auth, "X-Forwarded-For": "127.0.0.1, 203.0.113.9"}
    assert_error(client.get("/api/experiments", headers=spoofed), 403, "forbidden")
    # Without the header the peer itself is the client: from afar, refused.
    afar = client.get("/api/experiments", headers=auth, environ_base=REMOTE)
    assert_error(afar, 403, "forbidden")


def test_the_generated_password_file_is_kept(make_app: Any, environ: dict[str, str]) -> None:
    path = Path(environ["ABCONV_INSTANCE_DIR"]) / "admin-password"
    path.parent.mkdir(parents=True)
    path.write_text("chosen-by-the-operator\n")
    client = make_app(ABCONV_ADMIN_PASSWORD=None).test_client()
    assert client.get("/", headers=basic("chosen-by-the-operator")).status_code == 200
    assert path.read_text() == "chosen-by-the-operator\n"


def test_a_configured_password_writes_no_file(client: FlaskClient, environ: dict[str, str]) -> None:
    assert client.get("/api/experiments").status_code == 200
    assert not (Path(environ["ABCONV_INSTANCE_DIR"]) / "admin-password").exists()


def test_two_hundred_wrong_passwords_are_mostly_refused(
    anonymous_client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    attacker = {"REMOTE_ADDR": "198.51.100.7"}
    caplog.set_level(logging.WARNING)
    replies = [
        anonymous_client.get("/api/experiments", headers=basic(f"guess-{i}"), environ_base=attacker)
        for i in range(200)
    ]
    statuses = [reply.status_code for reply in replies]
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429] * 195
    locked = assert_error(replies[-1], 429, "too_many_attempts")
    assert "try again" in locked["message"]
    assert 1 <= int(replies[-1].headers["Retry-After"]) <= 600
    # Locked out means the right password too, from that address ...
    right = anonymous_client.get(
        "/api/experiments", headers=basic(ADMIN_PASSWORD), environ_base=attacker
    )
    assert_error(right, 429, "too_many_attempts")
    # ... but not from another one.
    elsewhere = anonymous_client.get(
        "/api/experiments", headers=basic(ADMIN_PASSWORD), environ_base=REMOTE
    )
    assert elsewhere.status_code == 200
    logged = [r.getMessage() for r in caplog.records if "198.51.100.7" in r.getMessage()]
    assert len([m for m in logged if "wrong password from" in m]) == 5
    assert len(logged) == 201


def test_an_html_page_says_too_many_attempts_too(anonymous_client: FlaskClient) -> None:
    for _ in range(6):
        reply = anonymous_client.get("/", headers=basic("nope"))
    assert reply.status_code == 429 and reply.mimetype == "text/html"
    assert int(reply.headers["Retry-After"]) > 0


# Cross-site writes: a page elsewhere may make the browser post with cached Basic credentials.


def test_admin_writes_need_json(anonymous_client: FlaskClient, app: Flask) -> None:
    for body, headers in [
        ('{"events": []}', {"Content-Type": "text/plain"}),
        ("events=1", {"Content-Type": "application/x-www-form-urlencoded"}),
        ('{"events": []}', {}),
    ]:
        reply = anonymous_client.post(
            "/api/events", data=body, headers={**headers, **basic(ADMIN_PASSWORD)}
        )
        assert_error(reply, 415, "unsupported_media_type")
    with_bearer = anonymous_client.post(
        "/api/events", data='{"events": []}', headers={"Content-Type": "text/plain",
                                                       **bearer(ADMIN_PASSWORD)}
    )  # fmt: skip
    assert_error(with_bearer, 415, "unsupported_media_type")
    assert app.extensions["abconv"].store.count_rows("exposure", "shop") == 0


@pytest.mark.parametrize(
    "cross_site",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
def test_admin_writes_from_another_site_are_refused(
    anonymous_client: FlaskClient, app: Flask, cross_site: dict[str, str]
) -> None:
    headers = {**cross_site, **basic(ADMIN_PASSWORD)}
    reply = anonymous_client.post("/api/events", json=EVENTS, headers=headers)
    assert_error(reply, 403, "cross_site_request")
    assert app.extensions["abconv"].store.count_rows("exposure", "shop") == 0


@pytest.mark.parametrize(
    "headers",
    [
        basic(ADMIN_PASSWORD),  # curl: no Origin
        {**basic(ADMIN_PASSWORD), "Origin": "http://localhost"},  # the dashboard's own origin
        {**basic(ADMIN_PASSWORD), "Sec-Fetch-Site": "same-origin"},
        {**bearer(ADMIN_PASSWORD), "Origin": "https://tools.example"},  # a script with the token
    ],
)
def test_admin_writes_from_here_or_with_the_token_pass(
    anonymous_client: FlaskClient, headers: dict[str, str]
) -> None:
    assert anonymous_client.post("/api/events", json=EVENTS, headers=headers).status_code == 200


def test_behind_a_trusted_proxy_the_origin_is_the_public_one(make_app: Any) -> None:
    client = make_app(ABCONV_TRUSTED_PROXIES="1").test_client()
    proxied = {
        **basic(ADMIN_PASSWORD),
        "X-Forwarded-For": "198.51.100.7",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "abconv.example",
    }
    own = {**proxied, "Origin": "https://abconv.example"}
    assert client.post("/api/events", json=EVENTS, headers=own).status_code == 200
    plain_http = {**proxied, "Origin": "http://abconv.example"}
    reply = client.post("/api/events", json=EVENTS, headers=plain_http)
    assert_error(reply, 403, "cross_site_request")


def test_every_admin_write_is_guarded(anonymous_client: FlaskClient, app: Flask) -> None:
    posts = [
        rule.build({arg: "shop" for arg in rule.arguments}, append_unknown=False)[1]
        for rule in app.url_map.iter_rules()
        if "POST" in (rule.methods or set())
    ]
    admin = [url for url in posts if anonymous_client.post(url).status_code == 401]
    assert "/api/events" in admin
    for url in admin:
        plain = anonymous_client.post(
            url, data="{}", headers={"Content-Type": "text/plain", **basic(ADMIN_PASSWORD)}
        )
        assert_error(plain, 415, "unsupported_media_type")
        evil = {"Origin": "https://evil.example", **basic(ADMIN_PASSWORD)}
        assert_error(anonymous_client.post(url, json={}, headers=evil), 403, "cross_site_request")


def test_public_writes_take_a_beacon_from_another_site(anonymous_client: FlaskClient) -> None:
    # navigator.sendBeacon posts text/plain, cross-site, with no preflight: that is its purpose.
    reply = anonymous_client.post(
        "/api/convert",
        data='{"visitor": "a", "goal": "purchase"}',
        headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": "https://shop.example"},
    )
    assert reply.status_code == 200

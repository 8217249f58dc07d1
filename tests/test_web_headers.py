"""Browser defences on every reply, read from every route of the URL map; cookies; ProxyFix."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from flask import Flask, session
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from abconv import create_app

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc=)|\son[a-z]+\s*=|javascript:", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style|\sstyle\s*=", re.IGNORECASE)


def every_get_reply(client: FlaskClient) -> Iterator[tuple[str, TestResponse]]:
    """A reply of every GET route (new pages included as they come), then error pages."""
    app = client.application
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or set()):
            continue
        values = {
            arg: "abconv.css" if rule.endpoint == "static" else "shop" for arg in rule.arguments
        }
        url = rule.build(values, append_unknown=False)[1]
        yield url, read(client.get(url + ("?visitor=a" if rule.endpoint == "api.assign" else "")))
    for url in ("/no-such-page", "/api/no-such-route", "/api/experiments/nope"):
        yield url, client.get(url)
    yield "POST /", client.post("/")  # 405 page


def read(reply: TestResponse) -> TestResponse:
    """The reply with its body read and its file (a static file's) closed."""
    reply.get_data()
    reply.close()
    return reply


def directives(policy: str) -> dict[str, list[str]]:
    parts = (part.split() for part in policy.split(";") if part.strip())
    return {words[0]: words[1:] for words in parts}


def assert_html_defences(reply: TestResponse, where: str) -> None:
    policy = directives(reply.headers.get("Content-Security-Policy", ""))
    assert policy, where
    script = policy.get("script-src", policy.get("default-src"))
    assert script == ["'self'"], where
    assert policy.get("style-src") == ["'self'"], where
    assert policy["frame-ancestors"] == ["'none'"], where
    assert reply.headers["X-Frame-Options"] == "DENY", where
    assert reply.headers["Referrer-Policy"] in ("same-origin", "no-referrer", "strict-origin")
    page = reply.get_data(as_text=True)
    assert not INLINE_SCRIPT.search(page), where  # the CSP would block it anyway
    assert not INLINE_STYLE.search(page), where


def test_every_reply_has_the_headers(client: FlaskClient, anonymous_client: FlaskClient) -> None:
    html = 0
    replies = [*every_get_reply(client), *every_get_reply(anonymous_client)]
    for url, reply in replies:
        assert reply.headers["X-Content-Type-Options"] == "nosniff", url
        if reply.mimetype == "text/html":
            html += 1
            assert_html_defences(reply, url)
        else:
            known = ("application/json", "text/csv", "text/css", "text/plain", "text/javascript")
            assert reply.mimetype in known, url
    assert html >= 6  # the dashboard and its 401 page, the 404 and 405 pages, twice


def test_the_dashboard_is_styled_by_its_own_css(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    [href] = re.findall(r'<link rel="stylesheet" href="([^"]+)">', page)
    css = read(client.get(href))
    assert css.status_code == 200 and css.mimetype == "text/css"
    assert "body" in css.get_data(as_text=True)


@pytest.fixture
def session_app(environ: dict[str, str]) -> Iterator[Callable[..., Flask]]:
    """The app with one extra route that uses the session, as a future login would."""

    def build(**more: str) -> Flask:
        app = create_app({**environ, **more})

        @app.get("/session-probe")
        def probe() -> str:
            session["seen"] = True
            return "ok"

        built.append(app)
        return app

    built: list[Flask] = []
    yield build
    for app in built:
        app.extensions["abconv"].store.dispose()


def cookie(reply: TestResponse) -> str:
    [header] = reply.headers.getlist("Set-Cookie")
    return header


def test_the_session_cookie_is_httponly_and_samesite_lax(session_app: Callable[..., Flask]) -> None:
    client = session_app().test_client()
    plain = cookie(client.get("/session-probe"))
    assert "HttpOnly" in plain and "SameSite=Lax" in plain and "Secure" not in plain
    secure = cookie(client.get("/session-probe", base_url="https://abconv.example"))
    assert "HttpOnly" in secure and "SameSite=Lax" in secure and "Secure" in secure


def test_https_behind_a_trusted_proxy_makes_the_cookie_secure(
    session_app: Callable[..., Flask],
) -> None:
    behind = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
    trusted = session_app(ABCONV_TRUSTED_PROXIES="1").test_client()
    assert "Secure" in cookie(trusted.get("/session-probe", headers=behind))
    untrusted = session_app().test_client()
    assert "Secure" not in cookie(untrusted.get("/session-probe", headers=behind))

"""Landing pages /lp/KEY: a page experiment's template, a redirect's URL, the cookie,
one exposure per visitor, bots and force unrecorded, concluded winners, 404 pages."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from abconv.web.embed import VISITOR_COOKIE
from abconv.web.landing import merged_url

PAGE = """
key = "{key}"
name = "Pricing"
status = "{status}"
kind = "page"
{extra}

[[variants]]
key = "three-plans"
template = "landing/pricing-a.html"
content = {{ headline = "Three plans <b>here</b>" }}

[[variants]]
key = "one-plan"
template = "landing/pricing-b.html"
content = {{ headline = "One plan for all" }}

[[goals]]
key = "purchase"
kind = "hard"
"""

REDIRECT = """
key = "{key}"
name = "Sign-up flow"
status = "{status}"
kind = "redirect"
{extra}

[[variants]]
key = "short"
url = "/signup/a"

[[variants]]
key = "tour"
url = "https://flow.example.com/b?tour=1&utm_source=old"

[[goals]]
key = "signup"
kind = "soft"
"""


def write(folder: Path, template: str, key: str, status: str = "running", extra: str = "") -> None:
    path = folder / f"{key}.toml"
    path.write_text(textwrap.dedent(template).format(key=key, status=status, extra=extra))
    stamp = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


@pytest.fixture
def experiments_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "experiments"
    folder.mkdir()
    write(folder, PAGE, "pricing", extra="engagement = true")
    write(folder, REDIRECT, "flow")
    return folder


def exposures(app: Flask, key: str) -> int:
    return app.extensions["abconv"].store.count_rows("exposure", key)  # type: ignore[no-any-return]


def visit(client: FlaskClient, url: str, visitor: str | None = None, **headers: str) -> object:
    if visitor is not None:
        client.set_cookie(VISITOR_COOKIE, visitor)
    return client.get(url, headers=headers)


def test_a_page_experiment_renders_the_variants_template_with_its_content(
    app: Flask, client: FlaskClient
) -> None:
    seen = {}
    for _ in range(40):
        client.delete_cookie(VISITOR_COOKIE)
        reply = client.get("/lp/pricing")
        assert reply.status_code == 200 and reply.mimetype == "text/html"
        page = reply.get_data(as_text=True)
        variant = "three-plans" if "Choose Starter" in page else "one-plan"
        seen[variant] = page
        assert '<script src="/abconv.js" async data-engagement="1">' in page
    assert set(seen) == {"three-plans", "one-plan"}
    assert "Three plans &lt;b&gt;here&lt;/b&gt;" in seen["three-plans"]  # escaped content
    assert "One plan for all" in seen["one-plan"]
    assert exposures(app, "pricing") == 40


def test_the_visitor_cookie_is_set_for_a_year_and_kept(client: FlaskClient) -> None:
    reply = client.get("/lp/pricing")
    cookie = reply.headers["Set-Cookie"]
    assert "Max-Age=31536000" in cookie and "SameSite=Lax" in cookie and "HttpOnly" not in cookie
    assert "Secure" not in cookie
    visitor = client.get_cookie(VISITOR_COOKIE)
    assert visitor is not None and len(visitor.value) == 32
    again = client.get("/lp/pricing")
    assert f"{VISITOR_COOKIE}={visitor.value};" in again.headers["Set-Cookie"]
    https = client.get("/lp/pricing", base_url="https://localhost")
    assert "Secure" in https.headers["Set-Cookie"]


def test_one_exposure_per_visitor_over_repeated_visits(app: Flask, client: FlaskClient) -> None:
    pages = {visit(client, "/lp/pricing", "alice").get_data(as_text=True) for _ in range(5)}  # type: ignore[attr-defined]
    for _ in range(5):
        visit(client, "/lp/flow", "alice")
    assert len(pages) == 1
    assert exposures(app, "pricing") == 1 and exposures(app, "flow") == 1


def test_a_redirect_keeps_the_query_string_merged_with_the_urls_own(
    app: Flask, client: FlaskClient
) -> None:
    places = set()
    for number in range(30):
        client.set_cookie(VISITOR_COOKIE, f"v{number}")
        reply = client.get(f"/lp/flow?utm_source=ads&utm_campaign=spring&n={number}")
        assert reply.status_code == 302
        assert reply.headers["Cache-Control"] == "private, no-store"
        location = urlsplit(reply.headers["Location"])
        query = dict(parse_qsl(location.query))
        assert query["utm_source"] == "ads" and query["utm_campaign"] == "spring"
        assert query["n"] == str(number)
        places.add(location.netloc + location.path)
        if location.path == "/b":
            assert query["tour"] == "1"  # the URL's own parameter stays
    assert places == {"/signup/a", "flow.example.com/b"}
    assert exposures(app, "flow") == 30  # committed before each 302 was sent


def test_merged_url_keeps_repeated_parameters_and_drops_force() -> None:
    from werkzeug.datastructures import MultiDict

    query = MultiDict([("tag", "a"), ("tag", "b"), ("force", "x"), ("q", "1 2")])
    merged = merged_url("https://x.example/p?q=old&keep=1#top", query, drop={"force"})
    assert merged == "https://x.example/p?keep=1&tag=a&tag=b&q=1+2#top"


@pytest.mark.parametrize("url", ["/lp/pricing", "/lp/flow"])
def test_bots_are_served_but_not_recorded(app: Flask, client: FlaskClient, url: str) -> None:
    reply = visit(client, url, "crawler", **{"User-Agent": "Googlebot/2.1"})
    assert reply.status_code in (200, 302)  # type: ignore[attr-defined]
    assert exposures(app, url.removeprefix("/lp/")) == 0


def test_a_head_request_is_answered_but_not_recorded(app: Flask, client: FlaskClient) -> None:
    assert client.head("/lp/flow").status_code == 302
    assert client.head("/lp/pricing").status_code == 200
    assert exposures(app, "flow") == 0 and exposures(app, "pricing") == 0


def test_force_serves_that_variant_without_recording(app: Flask, client: FlaskClient) -> None:
    for _ in range(3):
        page = visit(client, "/lp/pricing?force=one-plan", "qa").get_data(as_text=True)  # type: ignore[attr-defined]
        assert "One plan for all" in page
        assert "data-engagement" not in page  # a view not recorded reports no engagement
    reply = visit(client, "/lp/flow?force=tour&utm_source=qa", "qa")
    assert reply.headers["Location"] == (  # type: ignore[attr-defined]
        "https://flow.example.com/b?tour=1&utm_source=qa"
    )
    assert exposures(app, "pricing") == 0 and exposures(app, "flow") == 0


def test_a_force_naming_no_variant_is_a_400_page(client: FlaskClient) -> None:
    reply = client.get("/lp/pricing?force=nope")
    assert reply.status_code == 400 and reply.mimetype == "text/html"


def test_a_concluded_experiment_serves_its_winner_to_everyone(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    write(experiments_dir, PAGE, "pricing", status="concluded", extra='winner = "one-plan"')
    write(experiments_dir, REDIRECT, "flow", status="concluded", extra='winner = "tour"')
    for number in range(10):
        page = visit(client, "/lp/pricing", f"v{number}").get_data(as_text=True)  # type: ignore[attr-defined]
        assert "One plan for all" in page
        location = visit(client, "/lp/flow", f"v{number}").headers["Location"]  # type: ignore[attr-defined]
        assert location.startswith("https://flow.example.com/b")
    assert exposures(app, "pricing") == 0 and exposures(app, "flow") == 0


@pytest.mark.parametrize("url", ["/lp/nothing", "/lp/shop", "/lp/Bad%20Key", "/lp/draft"])
def test_unknown_cta_and_draft_keys_get_a_friendly_404_page(
    client: FlaskClient, experiments_dir: Path, url: str
) -> None:
    write(experiments_dir, PAGE, "draft", status="draft")
    reply = client.get(url)
    assert reply.status_code == 404 and reply.mimetype == "text/html"
    page = reply.get_data(as_text=True)
    assert "Page not found" in page and "Visit the shop" in page
    assert VISITOR_COOKIE not in reply.headers.get("Set-Cookie", "")


def test_a_draft_can_be_previewed_with_force(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    write(experiments_dir, PAGE, "draft", status="draft")
    reply = client.get("/lp/draft?force=three-plans")
    assert reply.status_code == 200 and "Three plans" in reply.get_data(as_text=True)
    assert exposures(app, "draft") == 0


def test_a_missing_template_is_a_404_page_and_logged(
    client: FlaskClient, experiments_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = textwrap.dedent(PAGE).format(key="gone", status="running", extra="")
    (experiments_dir / "gone.toml").write_text(text.replace("pricing-b.html", "missing.html"))
    reply = client.get("/lp/gone")
    assert reply.status_code == 404
    assert "landing/missing.html" in caplog.text

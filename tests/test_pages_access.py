"""The login form: who gets in, the session cookie, CSRF, where a person lands."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from tests.conftest import ADMIN_PASSWORD, assert_error
from tests.test_web_auth import REMOTE, bearer, generated, local_only, make_app

__all__ = ["local_only", "make_app"]  # fixtures, shared with test_web_auth.py


def csrf_of(client: FlaskClient, url: str = "/login", **kwargs: Any) -> str:
    page = client.get(url, **kwargs).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def log_in(client: FlaskClient, password: str, next_url: str = "/", **kwargs: Any) -> Any:
    token = csrf_of(client, **kwargs)
    form = {"csrf_token": token, "password": password, "next": next_url}
    return client.post("/login", data=form, **kwargs)


def test_a_page_sends_a_person_to_the_form_and_back(anonymous_client: FlaskClient) -> None:
    reply = anonymous_client.get("/experiments/shop?view=frequentist", environ_base=REMOTE)
    assert reply.status_code == 302
    assert reply.location == "/login?next=/experiments/shop?view%3Dfrequentist"
    form = anonymous_client.get(reply.location, environ_base=REMOTE)
    assert form.status_code == 200 and 'type="password"' in form.get_data(as_text=True)
    done = log_in(anonymous_client, ADMIN_PASSWORD, "/experiments/shop?view=frequentist",
                  environ_base=REMOTE)  # fmt: skip
    assert done.status_code == 303 and done.location == "/experiments/shop?view=frequentist"
    assert anonymous_client.get(done.location, environ_base=REMOTE).status_code == 200
    assert anonymous_client.get("/", environ_base=REMOTE).status_code == 200


def test_api_clients_get_401_json_not_the_form(anonymous_client: FlaskClient) -> None:
    for url in ("/api/experiments", "/api/experiments/shop/results"):
        reply = anonymous_client.get(url, headers={"Accept": "text/html"})
        assert_error(reply, 401, "unauthorized")


def test_scripts_read_pages_with_the_bearer_token(anonymous_client: FlaskClient) -> None:
    assert anonymous_client.get("/", headers=bearer(ADMIN_PASSWORD)).status_code == 200
    page = anonymous_client.get("/experiments/shop", headers=bearer(ADMIN_PASSWORD))
    assert page.status_code == 200 and page.mimetype == "text/html"
    wrong = anonymous_client.get("/experiments/shop", headers=bearer("nope"))
    assert wrong.status_code == 401 and wrong.mimetype == "text/html"


def test_a_wrong_password_shows_the_form_again_and_counts(anonymous_client: FlaskClient) -> None:
    reply = log_in(anonymous_client, "guess", environ_base=REMOTE)
    assert reply.status_code == 401 and "Wrong password" in reply.get_data(as_text=True)
    assert anonymous_client.get("/", environ_base=REMOTE).status_code == 302  # not logged in
    for _ in range(4):
        assert log_in(anonymous_client, "guess", environ_base=REMOTE).status_code == 401
    assert anonymous_client.get("/", environ_base=REMOTE).status_code == 429
    token = csrf_of(anonymous_client, environ_base={"REMOTE_ADDR": "198.51.100.1"})
    locked = anonymous_client.post(
        "/login", data={"csrf_token": token, "password": ADMIN_PASSWORD}, environ_base=REMOTE
    )
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert locked.mimetype == "text/html"
    other = log_in(anonymous_client, ADMIN_PASSWORD, environ_base={"REMOTE_ADDR": "198.51.100.1"})
    assert other.status_code == 303  # another client is not locked out


def test_without_a_password_the_form_answers_this_machine_only(
    local_only: FlaskClient, environ: dict[str, str]
) -> None:
    assert local_only.get("/login", environ_base=REMOTE).status_code == 403
    refused = local_only.post("/login", data={"password": "x"}, environ_base=REMOTE)
    assert refused.status_code == 403 and refused.mimetype == "text/html"
    form = local_only.get("/login").get_data(as_text=True)
    assert "admin-password" in form  # where the generated password is
    assert log_in(local_only, "wrong").status_code == 401
    assert log_in(local_only, generated(environ)).status_code == 303
    assert local_only.get("/").status_code == 200
    assert local_only.get("/", environ_base=REMOTE).status_code == 403  # the cookie is no way in


def test_the_form_needs_its_csrf_token(anonymous_client: FlaskClient) -> None:
    no_token = anonymous_client.post("/login", data={"password": ADMIN_PASSWORD})
    assert no_token.status_code == 400 and "out of date" in no_token.get_data(as_text=True)
    csrf_of(anonymous_client)
    forged = {"password": ADMIN_PASSWORD, "csrf_token": "forged"}
    assert anonymous_client.post("/login", data=forged).status_code == 400
    assert anonymous_client.get("/").status_code == 302  # not logged in
    # A token from another browser's session is no good either.
    stranger = anonymous_client.application.test_client()
    theirs = csrf_of(stranger)
    mine = {"password": ADMIN_PASSWORD, "csrf_token": theirs}
    assert anonymous_client.post("/login", data=mine).status_code == 400


def test_logging_out_needs_the_token_too(anonymous_client: FlaskClient) -> None:
    assert log_in(anonymous_client, ADMIN_PASSWORD).status_code == 303
    assert anonymous_client.post("/logout").status_code == 400
    assert anonymous_client.get("/").status_code == 200  # still logged in
    token = csrf_of(anonymous_client, "/")  # the page's own logout form
    out = anonymous_client.post("/logout", data={"csrf_token": token})
    assert out.status_code == 303 and out.location == "/login"
    assert anonymous_client.get("/").status_code == 302


def test_the_cookie_is_httponly_lax_and_secure_over_https(anonymous_client: FlaskClient) -> None:
    reply = log_in(anonymous_client, ADMIN_PASSWORD)
    cookie = reply.headers["Set-Cookie"]
    assert cookie.startswith("abconv_session=") and "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie and "Secure" not in cookie and "Expires" not in cookie
    https = anonymous_client.application.test_client()
    secure = log_in(https, ADMIN_PASSWORD, base_url="https://localhost")
    assert "; Secure" in secure.headers["Set-Cookie"]


def test_only_a_path_here_is_a_place_to_land(anonymous_client: FlaskClient) -> None:
    for target in ("//evil.example/", "/\\evil.example", "https://evil.example/", "javascript:x"):
        client = anonymous_client.application.test_client()
        assert log_in(client, ADMIN_PASSWORD, target).location == "/", target


def test_the_cookie_opens_the_api_but_not_cross_site_writes(anonymous_client: FlaskClient) -> None:
    log_in(anonymous_client, ADMIN_PASSWORD)
    assert anonymous_client.get("/api/experiments/shop/results.csv").status_code == 200
    events = {"events": [{"type": "exposure", "visitor": "a", "experiment": "shop"}]}
    evil = anonymous_client.post(
        "/api/events", json=events, headers={"Origin": "https://evil.example"}
    )
    assert_error(evil, 403, "cross_site_request")
    assert anonymous_client.post("/api/events", json=events).status_code == 200


def test_a_new_password_logs_everyone_out(make_app: Any) -> None:
    first = make_app(ABCONV_SECRET_KEY="k" * 32)
    client = first.test_client()
    log_in(client, ADMIN_PASSWORD)
    assert client.get("/").status_code == 200
    second = make_app(ABCONV_SECRET_KEY="k" * 32, ABCONV_ADMIN_PASSWORD="a-new-password")
    carried = second.test_client()
    carried.set_cookie("abconv_session", client.get_cookie("abconv_session").value)
    assert carried.get("/").status_code == 302


def test_the_session_key_is_generated_once_and_shared(
    make_app: Any, environ: dict[str, str]
) -> None:
    key_file = Path(environ["ABCONV_INSTANCE_DIR"]) / "secret-key"
    app = make_app()
    visitor = app.test_client()
    assert visitor.get("/api/assign?visitor=a").status_code == 200
    assert not key_file.exists()  # visitors carry no cookie: no key needed
    client = app.test_client()
    log_in(client, ADMIN_PASSWORD)
    assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600
    other_worker = make_app().test_client()  # another process, the same instance folder
    other_worker.set_cookie("abconv_session", client.get_cookie("abconv_session").value)
    assert other_worker.get("/").status_code == 200

"""Request ids and one-line key=value logs."""

from __future__ import annotations

import logging
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from abconv import create_app
from abconv.logs import ACCESS_LOGGER, LogfmtFormatter

GENERATED_ID = re.compile(r"[0-9a-f]{32}")
ACCESS_LINE = re.compile(
    r"time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=info logger=abconv\.access "
    r"request_id=(?P<id>\S+) method=GET endpoint=api\.assign path=/api/assign status=200 "
    r"duration_ms=\d+\.?\d*"
)


def written(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The captured lines, formatted as the app's handler formats them."""
    formatter = LogfmtFormatter()
    return [formatter.format(record) for record in caplog.records]


def test_every_reply_carries_a_generated_request_id(client: FlaskClient) -> None:
    first = client.get("/api/assign?visitor=alice").headers["X-Request-Id"]
    second = client.get("/nope").headers["X-Request-Id"]
    assert GENERATED_ID.fullmatch(first) and GENERATED_ID.fullmatch(second)
    assert first != second


@pytest.mark.parametrize("given", ["4f0c9a6e-1b2d-4c3e-9f8a-0b1c2d3e4f5a", "lb:17.3_x", "a" * 64])
def test_a_sane_incoming_request_id_is_echoed(client: FlaskClient, given: str) -> None:
    assert client.get("/healthz", headers={"X-Request-Id": given}).headers["X-Request-Id"] == given


@pytest.mark.parametrize(
    "given", ["a" * 65, "two words", 'x" level=error', "<script>", "id=1", "é"]
)
def test_any_other_incoming_request_id_is_replaced(client: FlaskClient, given: str) -> None:
    reply = client.get("/healthz", headers={"X-Request-Id": given})
    assert GENERATED_ID.fullmatch(reply.headers["X-Request-Id"])


def test_one_access_line_per_request_with_its_id(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="abconv")
    request_id = client.get("/api/assign?visitor=alice").headers["X-Request-Id"]
    access = [line for line in written(caplog) if "logger=abconv.access" in line]
    assert len(access) == 1
    match = ACCESS_LINE.fullmatch(access[0])
    assert match, access[0]
    assert match["id"] == request_id


def test_every_line_written_during_a_request_carries_its_id(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="abconv")
    # A wrong password is logged by the view's code, besides the access line.
    wrong = {"Authorization": "Bearer wrong"}
    request_id = client.get("/api/experiments", headers=wrong).headers["X-Request-Id"]
    lines = [line for line in written(caplog) if " logger=abconv" in line]
    assert any("admin: wrong password from" in line for line in lines), lines
    assert len(lines) >= 2 and all(f"request_id={request_id} " in line for line in lines), lines


def test_lines_outside_requests_have_no_id(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="abconv")
    logging.getLogger("abconv").info("starting")
    [line] = written(caplog)
    assert " request_id=- msg=starting" in line


def test_unknown_routes_log_the_path_cut_short_and_on_one_line(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="abconv")
    client.get("/x%0Alevel=error%20forged/" + "a" * 1000)
    [line] = written(caplog)
    assert "\n" not in line and "endpoint=none" in line and "status=404" in line
    assert 'path="/x\\nlevel=error forged/aaa' in line
    assert "a" * 200 not in line


def test_a_traceback_stays_on_one_line(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="abconv")

    @app.get("/api/boom")
    def boom() -> str:
        raise RuntimeError("kaboom")

    reply = app.test_client().get("/api/boom")
    assert reply.status_code == 500
    error = next(line for line in written(caplog) if "level=error" in line)
    assert "\n" not in error
    assert "Traceback" in error and "RuntimeError: kaboom" in error
    assert f"request_id={reply.headers['X-Request-Id']} " in error


def test_passwords_are_never_logged(
    environ: dict[str, str], caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, logger="abconv")
    app = create_app({**environ, "ABCONV_ADMIN_PASSWORD": "s3cret-pw"})
    client = app.test_client()
    client.get("/api/experiments", headers={"Authorization": "Bearer s3cret-pw"})
    client.get("/api/experiments", headers={"Authorization": "Bearer wrong-pw"})
    client.get("/api/experiments?password=query-pw", headers={"Authorization": "Basic eDp5"})
    app.extensions["abconv"].store.dispose()
    text = "\n".join(written(caplog)) + capsys.readouterr().err
    assert text.count("logger=abconv.access") == 6  # three, in caplog and on stderr
    for secret in ("s3cret-pw", "wrong-pw", "query-pw", "eDp5", "Authorization"):
        assert secret not in text


def test_the_handler_writes_one_line_per_record_to_stderr(
    client: FlaskClient, capsys: pytest.CaptureFixture[str]
) -> None:
    request_id = client.get("/healthz").headers["X-Request-Id"]
    err = capsys.readouterr().err
    ours = [line for line in err.splitlines() if f"request_id={request_id} " in line]
    [access] = [line for line in ours if f"logger={ACCESS_LOGGER} " in line]
    assert "endpoint=api.healthz" in access
    assert len(ours) == 2  # the access line and the experiment file loaded


def test_the_simulator_can_silence_access_lines(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="abconv")
    app.config["ACCESS_LOG"] = False
    app.test_client().get("/healthz")
    assert not [line for line in written(caplog) if "abconv.access" in line]

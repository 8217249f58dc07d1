"""Hostile text from files and requests: escaped on every page, harmless in every CSV cell."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from abconv.results import results_csv, spreadsheet_safe
from tests.conftest import assert_error

SNIPPET_TAG = re.compile(r'<script src="/abconv\.js" async(?: data-engagement="1")?></script>')
PAYLOADS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "{{7*7}}"]
ESCAPED = ["&lt;script&gt;alert(1)&lt;/script&gt;", "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"]

HOSTILE_EXPERIMENT = """
key = "hostile"
name = '{0} {1} {2}'
hypothesis = '{0} {1} {2}'
status = "running"
kind = "cta"

[[variants]]
key = "-2-3"
weight = 1
content = {{ text = '{0}', href = '{1}', note = '{2}' }}

[[variants]]
key = "-cmd"
weight = 1
content = {{ text = '{1}', href = '/x' }}

[[goals]]
key = "-sum"
kind = "hard"
value = true
primary = true
"""


@pytest.fixture
def hostile(app: Flask, experiments_dir: Path) -> Flask:
    (experiments_dir / "hostile.toml").write_text(HOSTILE_EXPERIMENT.format(*PAYLOADS))
    app.extensions["abconv"].experiments.refresh()
    assert "hostile" in app.extensions["abconv"].experiments.all()
    return app


def page_urls(app: Flask) -> list[str]:
    """Every GET route outside the API (new pages are covered as they come), plus
    error pages whose URL carries the payloads."""
    urls = [
        rule.build({arg: "hostile" for arg in rule.arguments}, append_unknown=False)[1]
        for rule in app.url_map.iter_rules()
        if "GET" in (rule.methods or set())
        and not rule.rule.startswith(("/api/", "/healthz", "/metrics", "/static/"))
        and rule.rule != "/abconv.js"  # the snippet: JavaScript, not a page
    ]
    return urls + [f"/{payload}" for payload in PAYLOADS] + [f"/?q={PAYLOADS[1]}"]


def test_file_payloads_come_out_escaped_on_every_page(hostile: Flask, client: FlaskClient) -> None:
    pages = {url: client.get(url) for url in page_urls(hostile)}
    assert pages["/"].status_code == 200
    for url, reply in pages.items():
        assert reply.mimetype == "text/html", url
        # Landing pages and the demo load the snippet, from this server, with this tag.
        text = SNIPPET_TAG.sub("", reply.get_data(as_text=True))
        for payload in PAYLOADS[:2]:
            assert payload not in text, url
        assert "<img" not in text and "<script" not in text, url
    dashboard = pages["/"].get_data(as_text=True)
    assert all(escaped in dashboard for escaped in ESCAPED)
    assert "{{7*7}}" in dashboard  # shown as typed, never evaluated as a template


def test_file_payloads_stay_data_in_json(hostile: Flask, client: FlaskClient) -> None:
    definition = client.get("/api/experiments/hostile")
    assert definition.mimetype == "application/json"
    assert definition.headers["X-Content-Type-Options"] == "nosniff"
    assert definition.get_json()["name"] == " ".join(PAYLOADS)
    assignment = client.get("/api/assign?visitor=v1&experiment=hostile&force=-2-3").get_json()
    assert assignment["assignments"][0]["content"]["text"] == PAYLOADS[0]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_request_payloads_are_refused_or_escaped(client: FlaskClient, payload: str) -> None:
    assert_error(client.get("/api/assign", query_string={"visitor": payload}), 400, "bad_visitor")
    convert = client.post("/api/convert", json={"visitor": "v", "goal": payload})
    assert convert.status_code in (400, 404)
    assert convert.mimetype == "application/json"
    page = client.get("/", query_string={"visitor": payload}).get_data(as_text=True)
    assert payload not in page or payload == "{{7*7}}"


def test_csv_cells_never_start_a_formula(hostile: Flask, client: FlaskClient) -> None:
    for i in range(40):
        variant = "-2-3" if i % 2 else "-cmd"
        client.get(f"/api/assign?visitor=v{i}&experiment=hostile&force={variant}")
        client.post("/api/events", json={"events": [
            {"type": "exposure", "visitor": f"w{i}", "experiment": "hostile", "variant": variant},
        ]})  # fmt: skip
        if i % 3 == 0 or (variant == "-cmd" and i % 5 == 0):
            client.post("/api/convert", json={"visitor": f"w{i}", "goal": "-sum", "value": 10})
    reply = client.get("/api/experiments/hostile/results.csv")
    assert reply.status_code == 200
    rows = list(csv.reader(io.StringIO(reply.get_data(as_text=True))))
    cells = [cell for row in rows[1:] for cell in row]
    assert {"'-2-3", "'-cmd", "'-sum"} <= set(cells)
    numbers = 0
    for cell in cells:
        if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
            float(cell)  # only numbers may start so, and they parse as numbers
            numbers += 1
    assert numbers > 0  # a negative difference is there, and stays a number


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+1+1", "'+1+1"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("purchase", "purchase"),
        ("", ""),
        (-0.01, -0.01),
        (None, None),
        (True, True),
    ],
)
def test_spreadsheet_safe(cell: object, safe: object) -> None:
    assert spreadsheet_safe(cell) == safe


def test_results_csv_neutralises_every_text_cell() -> None:
    variant = {
        "key": "=cmd", "control": True, "visitors": 10, "conversions": 1, "rate": 0.1,
        "rate_ci": [0.01, 0.4], "prob_best": 0.5, "expected_loss": 0.01,
        "vs_control": {"abs_diff": -0.05, "abs_diff_ci": [-0.2, 0.1], "rel_lift": -0.3},
        "value": None,
    }  # fmt: skip
    document = {"goals": [{"key": "@goal", "kind": "+hard", "primary": True,
                           "variants": [variant]}],
                "srm": {"p_value": None, "flag": False},
                "decision": {"status": "keep_running", "winner": None,
                             "reason": "-'=cmd' wins", "guardrails": []}}  # fmt: skip
    [row] = list(csv.DictReader(io.StringIO(results_csv(document))))
    assert row["goal"] == "'@goal" and row["kind"] == "'+hard" and row["variant"] == "'=cmd"
    assert row["decision_reason"] == "'-'=cmd' wins" and row["srm_flag"] == "false"
    assert row["abs_diff"] == "-0.05" and row["rel_lift"] == "-0.3"  # numbers stay numbers


@pytest.mark.parametrize("url", ["/api/assign", "/api/convert", "/api/events"])
def test_bodies_over_the_limit_get_413(client: FlaskClient, url: str) -> None:
    body = '{"visitor": "' + "a" * (1024 * 1024) + '"}'
    reply = client.post(url, data=body, headers={"Content-Type": "application/json"})
    assert_error(reply, 413, "body_too_large")

"""The dashboard and the results page, read with the Flask client.

The results document is the analysis' own, or (``full``) one with every part
section C of the issue-15 shapes adds, so every chart is drawn.
"""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from abconv.analysis_settings import AnalysisSettings
from abconv.web import api, pages, verdict
from abconv.web.pages import safe_link
from tests.full_results import full_document

XSS = '<script>alert("x")</script>'


class Charts(HTMLParser):
    """Each ``<svg class="chart-...">``: its kind and the variants of its series, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: list[tuple[str, list[str]]] = []
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        classes = (found.get("class") or "").split()
        if tag == "svg" and any(c.startswith("chart-") for c in classes):
            self.charts.append((classes[0], []))
        if tag == "g" and "series" in classes and self.charts:
            self.charts[-1][1].append(found["data-variant"] or "")


def charts(page: str) -> list[tuple[str, list[str]]]:
    parser = Charts()
    parser.feed(page)
    return parser.charts


@pytest.fixture
def full(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    document = full_document()
    monkeypatch.setattr(pages, "results_of", lambda key, phase=None: document)
    return document


def page_of(client: FlaskClient, url: str) -> str:
    reply = client.get(url)
    assert reply.status_code == 200 and reply.mimetype == "text/html", reply.status_code
    return reply.get_data(as_text=True)


def test_every_chart_has_one_series_per_variant(client: FlaskClient, full: dict[str, Any]) -> None:
    found = charts(page_of(client, "/experiments/shop"))
    per_goal = [("chart-forest", ["control", "B", "C"]), ("chart-density", ["control", "B", "C"])]
    assert found == per_goal * 3 + [
        ("chart-timeline", ["control", "B", "C"]),
        ("chart-funnel", ["control", "B", "C"]),
    ]


def test_the_decision_comes_first_in_plain_words(client: FlaskClient, full: dict[str, Any]) -> None:
    page = page_of(client, "/experiments/shop")
    assert page.index('class="decision-sentence"') < page.index('class="figures"')
    assert "No winner yet" in page
    assert "So far B converts 23 % better than control on purchase" in page
    assert "(likely between +6 % and +44 %); 99.7 % chance to beat control." in page
    assert "about 41 more days at today&#39;s traffic" in page
    assert "Bayesian: a variant ships when its chance to beat the control reaches 95 %" in page
    assert full["decision"]["reason"].replace("'", "&#39;") in page


def test_a_plan_beyond_a_year_gives_advice_not_a_count(
    client: FlaskClient, full: dict[str, Any]
) -> None:
    full["progress"]["days_left"] = 2451
    page = page_of(client, "/experiments/shop")
    assert "2451" not in page
    assert "the plan needs more than a year; send more traffic to the test" in page
    assert "9,980 visitors per variant" in page and "of the 53,000 planned (19 %)" in page


def test_the_view_switch_is_a_link_and_changes_the_words(
    client: FlaskClient, full: dict[str, Any]
) -> None:
    bayesian = page_of(client, "/experiments/shop")
    assert '<a href="?view=bayesian" aria-current="page">' in bayesian
    frequentist = page_of(client, "/experiments/shop?view=frequentist")
    assert '<a href="?view=frequentist" aria-current="page">' in frequentist
    assert "(likely between +6 % and +44 %); p = 0.0058, unlikely to be chance." in frequentist
    assert "95 % confidence interval" in frequentist and "credible" not in frequentist
    assert page_of(client, "/experiments/shop?view=<x>") == bayesian  # unknown: the default


def test_hard_goals_come_before_soft_ones(client: FlaskClient, full: dict[str, Any]) -> None:
    full["goals"].reverse()  # soft first in the document
    page = page_of(client, "/experiments/shop")
    assert page.index('data-goal="purchase"') < page.index('data-goal="guide"')


def test_a_soft_win_with_a_hard_loss_is_said(client: FlaskClient, full: dict[str, Any]) -> None:
    page = page_of(client, "/experiments/shop")  # C: far more guides, 35 % on purchase
    assert "C: more guide" not in page  # 35 % is not "likely fewer"
    purchase = next(g for g in full["goals"] if g["key"] == "purchase")
    purchase["variants"][2]["vs_control"]["chance_to_beat_control"] = 0.1
    page = page_of(client, "/experiments/shop")
    assert "C: more guide, fewer purchase: not shipped." in page


def test_the_srm_warning_shows_when_flagged(client: FlaskClient, full: dict[str, Any]) -> None:
    assert "traffic split is off" not in page_of(client, "/experiments/shop")
    full["srm"] = {"p_value": 0.0001, "flag": True}
    assert "traffic split is off" in page_of(client, "/experiments/shop")


def test_parts_the_document_lacks_are_left_out(client: FlaskClient, full: dict[str, Any]) -> None:
    for part in ("soft_to_hard", "timeline", "progress"):
        del full[part]
    page = page_of(client, "/experiments/shop")
    assert [kind for kind, _ in charts(page)] == ["chart-forest", "chart-density"] * 3
    assert "15 % of the planned 64,439 visitors per variant" in page  # the plan instead


def test_the_results_page_from_stored_events(client: FlaskClient) -> None:
    for visitor in range(40):
        client.get(f"/api/assign?visitor=v{visitor}&experiment=shop")
        if visitor % 4 == 0:
            client.post("/api/convert", json={"visitor": f"v{visitor}", "goal": "purchase"})
    page = page_of(client, "/experiments/shop")
    assert "No winner yet" in page
    drawn = charts(page)
    assert all(series == ["trial", "guide"] for _, series in drawn)
    kinds = [kind for kind, _ in drawn]
    assert kinds.count("chart-forest") == kinds.count("chart-density") == 2  # two goals
    assert 'href="/api/experiments/shop/results.csv"' in page and "<code>shop.toml</code>" in page
    dashboard = page_of(client, "/")
    assert 'href="/experiments/shop"' in dashboard and ">40<" in dashboard
    assert '<span class="badge keep_running">Keep running</span>' in dashboard


def test_the_dashboard_shows_leader_and_decision(client: FlaskClient, full: dict[str, Any]) -> None:
    page = page_of(client, "/")
    assert "<strong>B</strong> +23 %" in page and "99.7 % chance to beat control" in page
    assert ">30,030<" in page and ">9<" in page  # visitors, days running


def test_an_unknown_experiment_is_a_404_page(client: FlaskClient) -> None:
    reply = client.get("/experiments/nope")
    assert reply.status_code == 404 and reply.mimetype == "text/html"
    assert "no experiment" in reply.get_data(as_text=True)


def test_names_contents_and_goal_keys_are_escaped(
    app: Flask, client: FlaskClient, experiments_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = experiments_dir / "shop.toml"
    text = path.read_text().replace('name = "Shop CTA"', f"name = '{XSS}'")
    text = text.replace('text = "Start free trial"', "text = '\"><img src=x onerror=alert(1)>'")
    path.write_text(text)
    app.extensions["abconv"].experiments.refresh()
    document = full_document(names=(XSS, "<b>guide</b>", "x' onload='alert(1)"))
    monkeypatch.setattr(pages, "results_of", lambda key, phase=None: document)
    for url in ("/experiments/shop", "/experiments/shop?view=frequentist", "/"):
        page = page_of(client, url)
        assert "<script>alert" not in page and "<img src=x" not in page, url
        assert "<b>guide</b>" not in page and "' onload='" not in page, url
    page = page_of(client, "/experiments/shop")
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in page


def test_the_csv_neutralises_formulas_in_goal_keys(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = full_document(names=("=HYPERLINK(1)", "+cmd", "@sum"))
    monkeypatch.setattr(api, "results_of", lambda key, phase=None: document)
    text = client.get("/api/experiments/shop/results.csv").get_data(as_text=True)
    rows = [row for row in csv.DictReader(io.StringIO(text)) if row["row"] == "goal"]
    assert {row["goal"] for row in rows} == {"'=HYPERLINK(1)", "'+cmd", "'@sum"}


@pytest.mark.parametrize(
    ("status", "winner", "badge", "headline", "action"),
    [
        ("winner", "B", "Ship B", "B wins on purchase", 'winner = "B"'),
        ("no_difference", None, "No difference", "No variant changes purchase enough to matter",
         "End the test and keep control"),
        ("invalid", None, "Do not trust", "These results cannot be trusted", "Find out why"),
        ("keep_running", None, "Keep running", "No winner yet", "about 41 more days"),
    ],
)  # fmt: skip
def test_each_decision_in_plain_words(
    status: str, winner: str | None, badge: str, headline: str, action: str
) -> None:
    document = full_document()
    document["decision"].update(status=status, winner=winner)
    said = verdict.verdict(document, AnalysisSettings(), "bayesian", days_left=41)
    assert (said.tone, said.badge, said.headline) == (status, badge, headline)
    assert action in said.action
    if status == "winner":
        assert said.detail == (
            "B converts 23 % better than control on purchase (likely between +6 % and +44 %); "
            "99.7 % chance to beat control."
        )
    if status == "no_difference":
        assert said.detail.startswith(
            "The lift over control is likely between +6 % and +44 % for B"
        )


def test_a_leader_is_said_with_its_p_value_in_the_frequentist_view() -> None:
    purchase = verdict.primary_goal(full_document())
    leader = verdict.leader(purchase, "frequentist", alpha=0.001)
    assert leader == verdict.Leader("B", False, "+23 %", "p = 0.0058, could be chance")
    assert verdict.leader(purchase, "frequentist") == verdict.Leader(
        "B", False, "+23 %", "p = 0.0058, unlikely to be chance"
    )


@pytest.mark.parametrize(
    ("url", "link"),
    [("https://shop.example/a", "https://shop.example/a"), ("/signup/b?tour=1", "/signup/b?tour=1"),
     ("javascript:alert(1)", None), ("//evil.example", None), (None, None)],
)  # fmt: skip
def test_only_page_urls_become_links(url: str | None, link: str | None) -> None:
    assert safe_link(url) == link


def test_a_layered_experiment_shows_how_its_layer_is_split(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    from tests.test_layers_api import put

    put(app, experiments_dir, "shop", 1, 0.5)
    put(app, experiments_dir, "hero", 2, 0.3)
    layer = layer_line(page_of(client, "/experiments/shop"))
    assert layer == (
        "Layer “homepage”: a visitor is in at most one of its experiments. "
        "50 % here · 30 % in hero · 20 % in none"
    )
    assert layer_line(page_of(client, "/experiments/hero")).endswith(
        "50 % in shop · 30 % here · 20 % in none"
    )


def test_an_experiment_in_no_layer_shows_none(client: FlaskClient) -> None:
    assert layer_line(page_of(client, "/experiments/shop")) is None


def layer_line(page: str) -> str | None:
    """The text of the page's layer paragraph, spaces collapsed."""
    start = page.find('<p class="layer"')
    if start < 0:
        return None
    body = page[page.index(">", start) + 1 : page.index("</p>", start)]
    return " ".join(re.sub(r"<[^>]+>", "", body).split())

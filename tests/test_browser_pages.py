"""The pages in a real browser: Debian's Chromium driven by Playwright.

A real gunicorn, filled by ``abconv simulate``, serves the dashboard and a
results page; a person logs in with the form and reads them at 1280 px and
on a 390 px phone. Full-page screenshots go to ``tests/artifacts/`` (git-
ignored) for a human to look at. A second test serves a results document
with every part (soft→hard, timeline, progress) from an in-process server,
so each chart is drawn in the browser whatever the analysis offers today.

Never downloads a browser: without ``/usr/bin/chromium`` the tests skip
(``.ci/run`` installs it, so CI always runs them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from abconv import create_app
from abconv.web import pages
from tests.conftest import ADMIN_PASSWORD, write_experiment
from tests.full_results import full_document
from tests.test_concurrency import ROOT, free_port, request, start_gunicorn, stop_gunicorn
from tests.test_layers import write_layered

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
WIDTHS = (1280, 390)
CHART_KINDS = ("chart-forest", "chart-density", "chart-timeline", "chart-funnel")

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no {CHROMIUM} (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """gunicorn on a SQLite file that ``abconv simulate`` filled first."""
    experiments = tmp_path / "experiments"
    shutil.copytree(ROOT / "experiments", experiments)
    database_url = f"sqlite:///{tmp_path / 'abconv.sqlite3'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABCONV_")}
    env.update(ABCONV_DATABASE_URL=database_url, ABCONV_EXPERIMENTS_DIR=str(experiments),
               ABCONV_INSTANCE_DIR=str(tmp_path / "instance"))  # fmt: skip
    for key, visitors in (("homepage-cta", 6000), ("signup-redirect", 3000)):
        subprocess.run(
            [sys.executable, "-m", "abconv", "simulate", key, "--visitors", str(visitors)],
            cwd=ROOT, env=env, check=True, capture_output=True,
        )  # fmt: skip
    base, process = start_gunicorn(database_url, experiments, tmp_path / "gunicorn.log", workers=2)
    try:
        yield base
    finally:
        stop_gunicorn(process)


def log_in(page: Any, url: str) -> None:
    """Open ``url``, get the login form instead, log in, land on ``url``."""
    page.goto(url)
    assert "/login" in page.url
    page.fill("#password", ADMIN_PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(url)


def charts_of(page: Any) -> dict[str, list[int]]:
    """Each chart kind on the page: the number of series of each of its SVGs."""
    found: dict[str, list[int]] = {}
    for kind in CHART_KINDS:
        for svg in page.locator(f"svg.{kind}").all():
            found.setdefault(kind, []).append(svg.locator("g.series").count())
    return found


def read_at(browser: Any, url: str, width: int, name: str) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    log_in(page, url)
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= width, f"{name} at {width} px is {overflow} px wide"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    return page


@pytest.mark.parametrize("width", WIDTHS)
def test_a_person_logs_in_and_reads_the_results(browser: Any, server: str, width: int) -> None:
    status, document = request(server, "/api/experiments/homepage-cta/results")
    assert status == 200
    variants = len(document["goals"][0]["variants"])
    page = read_at(browser, f"{server}/experiments/homepage-cta", width, "results")
    sentence = page.locator(".decision-sentence").inner_text()
    assert sentence in {"No winner yet", "Ship guide", "Ship trial", "No difference"} | {
        "These results cannot be trusted"
    }
    assert page.locator(".verdict .action").inner_text().startswith("What to do:")
    charts = charts_of(page)
    assert charts["chart-forest"] == charts["chart-density"] == [variants] * 3  # three goals
    drawn = {"chart-timeline": bool(document["timeline"]["days"]), "chart-funnel": True}
    for kind, expected in drawn.items():
        assert (kind in charts) == expected, kind
        assert all(count == variants for count in charts.get(kind, []))

    page.goto(server + "/")
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{width}.png"), full_page=True)
    assert page.locator("tr[data-experiment]").count() == 3
    assert page.locator("tr[data-experiment='homepage-cta'] .badge").inner_text()
    page.context.close()


@pytest.fixture
def full_server(
    experiments_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The app in a thread, answering a full section-C document for ``shop``."""
    monkeypatch.setattr(pages, "results_of", lambda key, phase=None: full_document(key))
    yield from serving(in_process_app(experiments_dir, tmp_path))


def in_process_app(experiments_dir: Path, tmp_path: Path) -> Flask:
    return create_app({
        "ABCONV_EXPERIMENTS_DIR": str(experiments_dir),
        "ABCONV_DATABASE_URL": f"sqlite:///{tmp_path / 'abconv.sqlite3'}",
        "ABCONV_INSTANCE_DIR": str(tmp_path / "instance"),
        "ABCONV_ADMIN_PASSWORD": ADMIN_PASSWORD,
    })  # fmt: skip


def serving(app: Flask) -> Iterator[str]:
    """``app`` served from a thread, its base URL; stopped and closed after."""
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join()
        app.extensions["abconv"].store.dispose()


@pytest.mark.parametrize("width", WIDTHS)
def test_every_chart_has_one_series_per_variant(browser: Any, full_server: str, width: int) -> None:
    page = read_at(browser, f"{full_server}/experiments/shop", width, "results-full")
    assert charts_of(page) == {
        "chart-forest": [3, 3, 3], "chart-density": [3, 3, 3],
        "chart-timeline": [3], "chart-funnel": [3],
    }  # fmt: skip
    assert page.locator(".decision-sentence").inner_text() == "No winner yet"
    assert "41 days left" in page.locator(".progress").inner_text()
    page.emulate_media(media="print")  # on paper: no header, no view switch, charts kept
    assert not page.locator(".view-switch").is_visible()
    assert page.locator("svg.chart-timeline").is_visible()
    page.screenshot(path=str(ARTIFACTS / f"results-full-print-{width}.png"), full_page=True)
    page.context.close()


@pytest.fixture
def layered_dir(experiments_dir: Path) -> Path:
    """``shop`` and ``hero`` share the layer "homepage": half and 30 %."""
    write_layered(experiments_dir, "shop", 1, 0.5)
    write_layered(experiments_dir, "hero", 2, 0.3)
    return experiments_dir


def test_the_layer_is_shown_and_links_to_its_other_experiment(
    browser: Any, layered_dir: Path, full_server: str
) -> None:
    page = read_at(browser, f"{full_server}/experiments/shop", 1280, "results-layer")
    layer = page.locator("#layer")
    assert layer.is_visible()
    text = " ".join(layer.inner_text().split())
    assert "Layer “homepage”" in text and "50 % here · 30 % in hero · 20 % in none" in text
    layer.get_by_role("link", name="hero").click()
    page.wait_for_url(f"{full_server}/experiments/hero")
    assert "30 % here" in page.locator("#layer").inner_text()
    page.context.close()


@pytest.fixture
def phased_server(experiments_dir: Path, tmp_path: Path) -> Iterator[str]:
    """The app in a thread, ``shop`` in phase 2: 40 visitors at 1/1 (phase 1),
    then 90 at 2/1 (phase 2), every tenth of each buying."""
    app = in_process_app(experiments_dir, tmp_path)
    client = app.test_client()
    for phase, visitors, weight in ((1, 40, 1), (2, 90, 2)):
        write_experiment(experiments_dir, weight_trial=weight)
        app.extensions["abconv"].experiments.refresh()
        for n in range(visitors):
            client.get(f"/api/assign?visitor=p{phase}-{n}&experiment=shop")
            if n % 10 == 0:
                client.post("/api/convert", json={"visitor": f"p{phase}-{n}", "goal": "purchase"})
    yield from serving(app)


def shown_visitors(page: Any) -> int:
    """The visitors of the primary goal's table, summed over the variants."""
    cells = page.locator("#goal-purchase td[data-label=Visitors]").all_inner_texts()
    return sum(int(cell.replace(",", "")) for cell in cells)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_person_picks_a_phase(browser: Any, phased_server: str, width: int) -> None:
    page = read_at(browser, f"{phased_server}/experiments/shop", width, "results-phase-2")
    picker = page.locator("nav.phase-picker")
    assert picker.locator("a[aria-current=page]").inner_text() == "2 (current)"
    assert shown_visitors(page) == 90
    assert "trial 66.7 % · guide 33.3 %" in page.locator(".phase-note").inner_text()
    assert page.locator("ol.phases li").count() == 2
    picker.get_by_text("1", exact=True).click()
    page.wait_for_url("**/experiments/shop?phase=1&view=*")
    assert picker.locator("a[aria-current=page]").inner_text() == "1"
    assert shown_visitors(page) == 40
    assert "trial 50 % · guide 50 %" in page.locator(".phase-note").inner_text()
    # The other view keeps the phase.
    page.locator("nav[aria-label='How figures are read'] a").last.click()
    page.wait_for_url("**/experiments/shop?view=frequentist&phase=1")
    assert shown_visitors(page) == 40
    page.screenshot(path=str(ARTIFACTS / f"results-phase-1-{width}.png"), full_page=True)
    page.context.close()

"""The snippet in a real browser: Debian's Chromium driven by Playwright.

A site on one origin (``http://localhost:SITE``) embeds ``/abconv.js`` from a
real ``abconv serve`` on another (``http://127.0.0.1:SERVER``). What the
visitor sees is read from the page; what was recorded is read through the
API (the results document: a goal whose events carry a value shows a
duplicate as a doubled sum). Screenshots go to ``tests/artifacts/``.

Nothing here is timed: waits poll until the expected state or a generous
deadline; "nothing was recorded" is checked after a later event of the same
kind has arrived, or on the requests the page made.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from abconv.assignment import assign, in_traffic
from abconv.experiments.files import load_experiment_file
from tests.test_concurrency import free_port
from tests.test_readme_examples import clean_environment, wait_for

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
PASSWORD = "browser-test-password"
# Headless Chromium says "HeadlessChrome", which abconv counts as a bot; a visitor's does not.
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36"
)
SLOW_REPLY = 3.0  # seconds the slow site's /api/assign takes: far beyond the page's timeout

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"
    ),
]
playwright_api = pytest.importorskip("playwright.sync_api")
from axe_playwright_python.sync_playwright import Axe  # noqa: E402 (after the skip above)

EXPERIMENT = """
key = "hero"
name = "Hero headline"
status = "running"
kind = "cta"
engagement = true

[[variants]]
key = "plain"
content = { text = "Plain headline", classes = "chosen plain" }

[[variants]]
key = "bold"
[variants.content]
text = "Bold <b>headline</b>"
title = "bold one"
onclick = "alert(1)"
href = " javascript:alert(1)"
srcdoc = "<b>x</b>"

[[goals]]
key = "signup"
kind = "hard"
value = true
primary = true

[[goals]]
key = "contact"
kind = "hard"
value = true

[[goals]]
key = "purchase"
kind = "hard"
value = true
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A shop elsewhere</title>
<script>window.abconv = [["variant", "hero"]];</script>
<script src="{snippet}" async data-timeout="{timeout}"{consent}></script>
<style>body {{ font: 18px sans-serif; margin: 2rem; }} .tall {{ height: 4000px; }}</style>
</head><body>
<h1 id="hero" data-abconv="hero">Original headline</h1>
<button id="signup" data-abconv-goal="signup" data-abconv-value="1">Sign up</button>
<form id="contact" data-abconv-goal="contact" data-abconv-value="1" action="#sent">
  <label for="email">Email</label> <input id="email" name="email">
  <button id="send" type="submit">Send</button>
</form>
<button id="buy"
  onclick="abconv.track('purchase', {{value: 49.5, event_id: 'order-1'}})">Buy</button>
<button id="grant" onclick="abconv.consent(true)">I agree</button>
<div class="tall"></div>
</body></html>
"""


class Site(SimpleHTTPRequestHandler):
    """The other origin's pages; ``/slow/`` serves the snippet from a server whose
    ``/api/assign`` answers only after SLOW_REPLY seconds."""

    snippet = b""

    def do_GET(self) -> None:  # noqa: N802 (the http.server name)
        if self.path in ("/slow/abconv.js", "/down/abconv.js"):
            return self._reply(self.snippet, "text/javascript")
        if self.path.startswith("/down/api/"):  # a server whose database is gone
            self.send_response(503)
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if self.path.startswith("/slow/api/assign"):
            time.sleep(SLOW_REPLY)
            body = {"visitor": "x", "assignments": [{"experiment": "hero", "variant": "bold",
                    "kind": "cta", "enrolled": True, "content": {"text": "Too late"}}]}  # fmt: skip
            return self._reply(json.dumps(body).encode(), "application/json")
        return super().do_GET()

    def _reply(self, body: bytes, mimetype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", mimetype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class SiteServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the browser aborting the slow request: expected


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real server, a site on another origin, and Chromium."""
    folder = tmp_path_factory.mktemp("browser")
    shutil.copytree(Path(__file__).parents[1] / "experiments", folder / "experiments")
    (folder / "experiments" / "hero.toml").write_text(EXPERIMENT)
    site_port, server_port = free_port(), free_port()
    server = f"http://127.0.0.1:{server_port}"
    site = f"http://localhost:{site_port}"
    env = {**clean_environment(), "ABCONV_ADMIN_PASSWORD": PASSWORD,
           "ABCONV_ALLOWED_ORIGINS": site}  # fmt: skip
    log = folder / "server.log"
    with log.open("wb") as stream:
        process = subprocess.Popen(
            [sys.executable, "-m", "abconv", "serve", "--port", str(server_port),
             "--workers", "2"],
            cwd=folder, env=env, stdout=stream, stderr=subprocess.STDOUT,
        )  # fmt: skip
    pages = folder / "site"
    pages.mkdir()
    for name, snippet, timeout, consent in [
        ("index.html", f"{server}/abconv.js", 800, ""),
        ("consent.html", f"{server}/abconv.js", 800, ' data-consent="wait"'),
        ("slow.html", "/slow/abconv.js", 300, ""),
        ("down.html", "/down/abconv.js", 800, ""),
    ]:
        page = PAGE.format(snippet=snippet, timeout=timeout, consent=consent)
        (pages / name).write_text(page)
    Site.snippet = (Path(__file__).parents[1] / "src/abconv/static/abconv.js").read_bytes()
    httpd = SiteServer(
        ("127.0.0.1", site_port),
        lambda *args: Site(*args, directory=str(pages)),  # type: ignore[misc]
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        wait_for(f"{server}/healthz", process, log)
        with playwright_api.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            yield {"server": server, "site": site, "browser": browser, "process": process,
                   "folder": folder}  # fmt: skip
            browser.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def results_document(world: dict[str, Any], experiment: str = "hero") -> dict[str, Any]:
    """The results document of ``experiment``, read through the API with the admin bearer."""
    req = urllib.request.Request(
        world["server"] + f"/api/experiments/{experiment}/results",
        headers={"Authorization": f"Bearer {PASSWORD}"},
    )
    with urllib.request.urlopen(req, timeout=30) as reply:
        document: dict[str, Any] = json.loads(reply.read())
    return document


def results(world: dict[str, Any], experiment: str = "hero") -> dict[str, dict[str, Any]]:
    """Per goal, the variants of the results document by key."""
    document = results_document(world, experiment)
    return {goal["key"]: {v["key"]: v for v in goal["variants"]} for goal in document["goals"]}


def totals(world: dict[str, Any], goal: str) -> tuple[int, int, float]:
    """(visitors, converting visitors, value sum) of a goal over all variants."""
    variants = results(world)[goal].values()
    value = sum((v["value"] or {}).get("sum", 0) for v in variants)
    return sum(v["visitors"] for v in variants), sum(v["conversions"] for v in variants), value


def eventually(check: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}; {check.__doc__ or ''}")
        time.sleep(0.1)


def open_page(world: dict[str, Any], name: str, visitor: str | None = None) -> Any:
    context = world["browser"].new_context(user_agent=USER_AGENT)
    if visitor is not None:
        context.add_cookies([{"name": "abconv_visitor", "value": visitor,
                              "url": world["site"]}])  # fmt: skip
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(error))
    page.goto(f"{world['site']}/{name}")
    return page


def expected_variant(world: dict[str, Any], visitor: str) -> str:
    experiment = load_experiment_file(world["folder"] / "experiments" / "hero.toml")
    return assign(experiment, visitor).variant.key


def shown_variant(page: Any) -> str:
    page.wait_for_selector("#hero[data-abconv-variant]")
    return str(page.get_attribute("#hero", "data-abconv-variant"))


def test_the_visitor_sees_their_variant_and_keeps_it_after_a_reload(world: dict[str, Any]) -> None:
    page = open_page(world, "index.html")
    variant = shown_variant(page)
    text = page.inner_text("#hero")
    assert text == {"plain": "Plain headline", "bold": "Bold <b>headline</b>"}[variant]
    assert page.locator("#hero b").count() == 0  # text, never HTML
    for unsafe in ("onclick", "href", "srcdoc"):  # event handlers, script URLs, HTML
        assert page.get_attribute("#hero", unsafe) is None
    if variant == "bold":
        assert page.get_attribute("#hero", "title") == "bold one"
    else:
        assert page.get_attribute("#hero", "class") == "chosen plain"
    assert page.eval_on_selector("#hero", "el => el.style.visibility") == ""
    assert page.evaluate("abconv.variant('hero')") == variant
    cookie = next(c for c in page.context.cookies() if c["name"] == "abconv_visitor")
    assert cookie["sameSite"] == "Lax" and cookie["expires"] > time.time() + 360 * 86400
    assert expected_variant(world, cookie["value"]) == variant
    page.screenshot(path=str(ARTIFACTS / "embed-variant.png"))
    for _ in range(2):
        page.reload()
        assert shown_variant(page) == variant
    assert page.errors == []
    page.context.close()


def test_a_fresh_context_gets_its_own_deterministic_variant(world: dict[str, Any]) -> None:
    seen = set()
    for visitor in ("fresh-1", "fresh-2", "fresh-3", "fresh-4", "fresh-5", "fresh-6"):
        page = open_page(world, "index.html", visitor)
        variant = shown_variant(page)
        assert variant == expected_variant(world, visitor)
        seen.add(variant)
        page.context.close()
    assert seen == {"plain", "bold"}


def test_a_goal_click_a_form_submit_and_track_are_recorded_exactly_once(
    world: dict[str, Any],
) -> None:
    before = {goal: totals(world, goal) for goal in ("signup", "contact", "purchase")}
    page = open_page(world, "index.html", "buyer")
    shown_variant(page)
    page.click("#signup")
    page.fill("#email", "a@example.com")
    page.click("#send")  # submits: the page navigates, the beacon still goes
    page.wait_for_url("**#sent")
    shown_variant(page)
    page.click("#buy")
    page.click("#buy")  # the same event_id twice: counted once
    for goal, value in (("signup", 1), ("contact", 1), ("purchase", 49.5)):
        _, conversions, total = before[goal]
        eventually(lambda g=goal, n=conversions: totals(world, g)[1] == n + 1, f"{goal} recorded")
        assert totals(world, goal)[2] == pytest.approx(total + value), goal  # not twice
    assert page.errors == []
    page.screenshot(path=str(ARTIFACTS / "embed-goals.png"))
    page.context.close()


def test_consent_wait_records_nothing_and_sets_no_cookie_until_granted(
    world: dict[str, Any],
) -> None:
    page = open_page(world, "consent.html")
    calls: list[str] = []
    page.on("request", lambda r: calls.append(r.url) if "/api/" in r.url else None)
    page.click("#signup")
    page.evaluate("abconv.track('purchase', {value: 3})")
    assert page.inner_text("#hero") == "Original headline"
    assert page.eval_on_selector("#hero", "el => el.style.visibility") != "hidden"
    assert page.evaluate("abconv.variant('hero')") is None
    assert calls == [] and page.context.cookies() == []
    page.screenshot(path=str(ARTIFACTS / "embed-consent-waiting.png"))
    page.click("#grant")
    variant = shown_variant(page)
    assert [c["name"] for c in page.context.cookies()] == ["abconv_visitor"]
    assert any("/api/assign" in url for url in calls)
    page.evaluate("abconv.consent(false)")
    assert page.context.cookies() == []
    assert variant in ("plain", "bold") and page.errors == []
    page.context.close()


def bounces(world: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Per variant, (visitors, bounces) of the results document's ``bounce``."""
    bounce = results_document(world)["bounce"]
    return {v["key"]: (v["visitors"], v["bounces"]) for v in bounce["variants"]}


def test_a_visitor_who_only_loads_bounces_and_one_who_scrolls_engages(
    world: dict[str, Any],
) -> None:
    before = bounces(world)
    _, engaged_before, _ = totals(world, "engaged")
    idle = open_page(world, "index.html", "only-looks")
    shown_variant(idle)
    idle.context.close()  # left within a second: a bounce
    reader = open_page(world, "index.html", "reads-on")
    shown_variant(reader)
    reader.mouse.wheel(0, 3000)
    eventually(lambda: totals(world, "engaged")[1] == engaged_before + 1, "engaged recorded")
    reader.mouse.wheel(0, 500)  # once a page view
    reader.context.close()
    assert totals(world, "engaged")[1] == engaged_before + 1
    # Read through the bounce figures: the one who only looked is one more visitor and one
    # more bounce of their variant; the one who scrolled is one more visitor, no more bounces.
    expected = dict(before)
    for visitor, bounced in (("only-looks", 1), ("reads-on", 0)):
        variant = expected_variant(world, visitor)
        visitors, counted = expected[variant]
        expected[variant] = (visitors + 1, counted + bounced)
    assert bounces(world) == expected


def test_a_landing_page_reports_engagement_for_its_experiment(world: dict[str, Any]) -> None:
    visitor = next(f"lp-{n}" for n in range(100) if in_traffic("pricing-page", f"lp-{n}", 0.5))

    def engaged() -> int:
        variants = results(world, "pricing-page")["engaged"].values()
        return sum(int(v["conversions"]) for v in variants)

    before = engaged()
    context = world["browser"].new_context(user_agent=USER_AGENT)
    context.add_cookies([{"name": "abconv_visitor", "value": visitor, "url": world["server"]}])
    page = context.new_page()
    page.goto(world["server"] + "/lp/pricing-page")
    assert page.get_attribute("script[src='/abconv.js']", "data-engagement") == "1"
    page.wait_for_function("window.abconv && !Array.isArray(window.abconv)")
    page.mouse.wheel(0, 2000)
    eventually(lambda: engaged() == before + 1, "engaged recorded from /lp/")
    context.close()


def test_a_slow_server_leaves_the_original_after_the_timeout(world: dict[str, Any]) -> None:
    context = world["browser"].new_context(user_agent=USER_AGENT)
    page = context.new_page()
    errors: list[Any] = []
    page.on("pageerror", lambda error: errors.append(error))
    with page.expect_event("requestfailed", timeout=20_000) as failed:
        page.goto(f"{world['site']}/slow.html")
    assert "/slow/api/assign" in failed.value.url  # aborted at the timeout
    assert page.inner_text("#hero") == "Original headline"
    assert page.eval_on_selector("#hero", "el => el.style.visibility") == ""
    assert page.evaluate("abconv.variant('hero')") is None
    assert page.evaluate("abconv.track('signup')") is False  # nothing sent from this view
    page.screenshot(path=str(ARTIFACTS / "embed-timeout.png"))
    assert errors == []
    context.close()


# axe-core's own rules (the copy bundled in axe-playwright-python, installed with the test
# extras), run in the page as served: no violation at all, whatever its impact. Rules axe
# could not decide ("incomplete": contrast over an image, ...) go to the artifact for a person.
PAGES = [
    ("/demo", "demo"),
    ("/lp/pricing-page?force=three-plans", "lp-pricing-page-three-plans"),
    ("/lp/pricing-page?force=one-plan", "lp-pricing-page-one-plan"),
    ("/lp/no-such-page", "lp-no-such-page"),
    ("/", "dashboard"),
    ("/experiments/hero", "results-hero"),
]
FLAWED = (
    "<!doctype html><html><head><title>flawed</title></head><body><main>"
    "<img src='x.png'><input><a href='#'></a></main></body></html>"
)


def axe(page: Any) -> dict[str, Any]:
    """axe-core's violations and undecided rules on the page: rule id, impact, where."""
    response = Axe().run(page, options={"resultTypes": ["violations", "incomplete"]}).response

    def brief(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
                 "nodes": [n["target"] for n in v["nodes"]]} for v in found]  # fmt: skip

    return {
        "engine": response["testEngine"],
        "violations": brief(response["violations"]),
        "incomplete": brief(response["incomplete"]),
        "passes": len(response["passes"]),
    }


def test_axe_core_runs_and_finds_what_is_wrong(world: dict[str, Any]) -> None:
    """The check below means something: on a flawed page axe names the flaws."""
    page = world["browser"].new_context().new_page()
    page.set_content(FLAWED)
    found = axe(page)
    assert found["engine"]["name"] == "axe-core" and found["passes"] > 0
    rules = {v["id"]: v["impact"] for v in found["violations"]}
    assert rules["image-alt"] == rules["label"] == "critical" and "link-name" in rules
    page.context.close()


@pytest.mark.parametrize(("path", "name"), PAGES)
def test_the_served_pages_look_finished_and_pass_axe_core(
    world: dict[str, Any], path: str, name: str
) -> None:
    headers = (
        {"Authorization": f"Bearer {PASSWORD}"} if not path.startswith(("/lp", "/demo")) else {}
    )
    context = world["browser"].new_context(user_agent=USER_AGENT, extra_http_headers=headers)
    page = context.new_page()
    errors: list[Any] = []
    page.on("pageerror", lambda error: errors.append(error))
    page.goto(world["server"] + path)
    page.wait_for_load_state("load")
    if path.startswith(("/lp/pricing", "/demo")):  # the snippet has shown the variant
        page.wait_for_function("window.abconv && !Array.isArray(window.abconv)")
    found = axe(page)
    (ARTIFACTS / f"axe-{name}.json").write_text(json.dumps(found, indent=1))
    assert found["passes"] > 10 and found["violations"] == [], path
    assert page.evaluate("getComputedStyle(document.body).fontFamily").startswith("system-ui")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert errors == []
    context.close()


def test_the_demo_shop_runs_the_whole_loop(world: dict[str, Any]) -> None:
    page = world["browser"].new_context(user_agent=USER_AGENT).new_page()
    page.goto(world["server"] + "/demo")
    page.wait_for_selector("[data-abconv=homepage-cta][data-abconv-variant]")
    text = page.inner_text("[data-abconv=homepage-cta]")
    assert text in ("Start free trial", "Get my free guide")
    page.click("text=Buy now for $49")

    def purchases() -> float:
        variants = results(world, "homepage-cta")["purchase"].values()
        return float(sum(v["value"]["sum"] for v in variants))

    eventually(lambda: purchases() == 49.0, "the demo purchase recorded")
    page.screenshot(path=str(ARTIFACTS / "demo-after-purchase.png"), full_page=True)
    page.context.close()


def test_a_failing_server_leaves_the_original_at_once(world: dict[str, Any]) -> None:
    page = open_page(world, "down.html")
    assert page.evaluate("abconv.variant('hero')") is None  # settled: the original shows
    assert page.inner_text("#hero") == "Original headline"
    assert page.eval_on_selector("#hero", "el => el.style.visibility") == ""
    page.click("#signup")
    assert page.errors == []
    page.context.close()


def test_with_the_server_stopped_the_page_works_unchanged(world: dict[str, Any]) -> None:
    """Last: it stops the module's server."""
    process = world["process"]
    process.terminate()
    process.wait(timeout=30)
    page = open_page(world, "index.html")
    page.wait_for_load_state("load")
    assert page.inner_text("#hero") == "Original headline"
    assert page.eval_on_selector("#hero", "el => el.style.visibility") == ""
    page.click("#signup")
    page.screenshot(path=str(ARTIFACTS / "embed-server-down.png"))
    assert page.errors == []
    page.context.close()

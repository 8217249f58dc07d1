"""Phases (README, "Phases"): an edit of weights, traffic or variants of a
running experiment starts a numbered phase; visitors keep their variant and
count in the phase they were first exposed in; results are per phase."""

from __future__ import annotations

import csv
import io
import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from scipy import stats

from abconv import create_app
from abconv.cli import cli
from abconv.experiments import ExperimentRegistry, load_experiment_file, phases
from abconv.store import Store
from tests.conftest import admin_client, assert_error, experiment_toml, write_experiment

THREE_ARMS = experiment_toml().replace(
    '[[goals]]\nkey = "purchase"',
    '[[variants]]\nkey = "video"\nweight = 1\ncontent = { text = "Watch" }\n\n'
    '[[goals]]\nkey = "purchase"',
)


def rewrite(path: Path, text: str) -> None:
    """Write ``path`` and move its mtime on, so that the registry sees a change."""
    path.write_text(text)
    stamp = path.stat().st_mtime_ns + 2_000_000_000
    os.utime(path, ns=(stamp, stamp))


def assign(client: FlaskClient, visitor: str) -> dict[str, Any]:
    reply = client.get(f"/api/assign?visitor={visitor}&experiment=shop")
    assert reply.status_code == 200
    return reply.get_json()["assignments"][0]  # type: ignore[no-any-return]


def reload(app: Flask) -> None:
    app.extensions["abconv"].experiments.refresh()


def results(client: FlaskClient, phase: int | None = None) -> dict[str, Any]:
    query = "" if phase is None else f"?phase={phase}"
    reply = client.get(f"/api/experiments/shop/results{query}")
    assert reply.status_code == 200
    return reply.get_json()  # type: ignore[no-any-return]


def visitors(document: dict[str, Any]) -> dict[str, int]:
    return {v["key"]: v["visitors"] for v in document["goals"][0]["variants"]}


def buyers(document: dict[str, Any]) -> dict[str, int]:
    return {v["key"]: v["conversions"] for v in document["goals"][0]["variants"]}


def buy(client: FlaskClient, visitor: str) -> list[dict[str, Any]]:
    reply = client.post("/api/convert", json={"visitor": visitor, "goal": "purchase", "value": 5})
    assert reply.status_code == 200
    return reply.get_json()["recorded"]  # type: ignore[no-any-return]


def test_a_weight_change_starts_phase_2_and_results_are_per_phase(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    old = {f"old{i}": assign(client, f"old{i}")["variant"] for i in range(40)}
    buy(client, "old0")
    first = results(client)
    assert first["phase"] == 1 and [p["number"] for p in first["phases"]] == [1]

    write_experiment(experiments_dir, weight_trial=7, weight_guide=3)
    reload(app)
    # Old visitors keep their variant; their later conversions count in phase 1.
    assert {v: assign(client, v)["variant"] for v in old} == old
    assert buy(client, "old1")[0]["variant"] == old["old1"]
    new = {f"new{i}": assign(client, f"new{i}")["variant"] for i in range(200)}
    buy(client, "new0")

    current, before = results(client), results(client, 1)
    assert current["phase"] == 2 and before["phase"] == 1
    assert [p["definition"] for p in current["phases"]] == [
        {"traffic": 1.0, "variants": [{"key": "trial", "weight": 1.0},
                                      {"key": "guide", "weight": 1.0}]},
        {"traffic": 1.0, "variants": [{"key": "trial", "weight": 7.0},
                                      {"key": "guide", "weight": 3.0}]},
    ]  # fmt: skip
    assert current["phases"][0]["started_at"] <= current["phases"][1]["started_at"]
    assert visitors(before) == {k: list(old.values()).count(k) for k in ("trial", "guide")}
    assert visitors(current) == {k: list(new.values()).count(k) for k in ("trial", "guide")}
    assert sum(buyers(before).values()) == 2 and sum(buyers(current).values()) == 1
    # SRM per phase, against the weights that phase ran with.
    for document, shares in ((before, (0.5, 0.5)), (current, (0.7, 0.3))):
        seen = list(visitors(document).values())
        expected = [share * sum(seen) for share in shares]
        assert document["srm"]["p_value"] == pytest.approx(
            stats.chisquare(seen, expected).pvalue, rel=1e-9
        )
    # The CSV picks a phase too.
    reply = client.get("/api/experiments/shop/results.csv?phase=1")
    rows = [r for r in csv.DictReader(io.StringIO(reply.get_data(as_text=True)))]
    assert {
        r["variant"]: int(r["visitors"])
        for r in rows
        if r["row"] == "goal" and r["goal"] == "purchase"
    } == (visitors(before))
    assert {r["phase"] for r in rows if r["row"] != "excluded"} == {"1"}
    # Every look of a phase starts on or after its start.
    for document in (before, current):
        days = [look["day"] for look in document["timeline"]["days"]]
        assert days and all(day >= document["phases"][document["phase"] - 1]["started_at"][:10]
                            for day in days)  # fmt: skip


@pytest.mark.parametrize("asked", ["3", "0", "two", "-1", "1.0"])
def test_an_unknown_phase_is_a_404_naming_the_phases(client: FlaskClient, asked: str) -> None:
    for route in ("results", "results.csv"):
        body = assert_error(
            client.get(f"/api/experiments/shop/{route}?phase={asked}"), 404, "unknown_phase"
        )
        assert "(it has 1)" in body["message"]


def test_other_edits_start_no_phase(app: Flask, client: FlaskClient, experiments_dir: Path) -> None:
    assign(client, "alice")
    edited = experiment_toml().replace('name = "Shop CTA"', 'name = "Shop, renamed"')
    edited = edited.replace('"Start free trial"', '"Try it free"')
    edited += "\n[analysis]\nalpha = 0.1\n"
    rewrite(experiments_dir / "shop.toml", edited)
    reload(app)
    assign(client, "bob")
    assert [p["number"] for p in results(client)["phases"]] == [1]
    write_experiment(experiments_dir, traffic=0.5)
    reload(app)
    assign(client, "carol")
    assert [p["number"] for p in results(client)["phases"]] == [1, 2]


def test_a_dropped_arm_sees_the_control_then_the_fallback_and_counts_in_its_phase_only(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    rewrite(experiments_dir / "shop.toml", THREE_ARMS)
    reload(app)
    seen = {f"v{i}": assign(client, f"v{i}")["variant"] for i in range(30)}
    watchers = [v for v, variant in seen.items() if variant == "video"]
    assert watchers
    write_experiment(experiments_dir)  # video dropped
    reload(app)
    served = assign(client, watchers[0])
    assert (served["variant"], served["enrolled"]) == ("trial", False)
    # Their conversion still counts, in phase 1, for the arm they saw.
    assert buy(client, watchers[0]) == [
        {"experiment": "shop", "variant": "video", "kind": "hard", "value": 5.0}
    ]
    assert buyers(results(client, 1))["video"] == 1
    assert "video" not in visitors(results(client)) and results(client)["phase"] == 2
    assert sum(visitors(results(client)).values()) == 0

    rewrite(experiments_dir / "shop.toml", 'fallback = "guide"\n' + experiment_toml())
    reload(app)
    assert assign(client, watchers[0])["variant"] == "guide"
    assert [p["number"] for p in results(client)["phases"]] == [1, 2]  # fallback: no phase


def test_two_servers_on_one_database_start_one_phase_2(
    environ: dict[str, str], experiments_dir: Path
) -> None:
    apps = [create_app(environ) for _ in range(2)]
    clients = [admin_client(app) for app in apps]
    try:
        for n, client in enumerate(clients):
            assign(client, f"before{n}")
        write_experiment(experiments_dir, weight_trial=3)
        for app in apps:
            reload(app)
        for n, client in enumerate(clients):
            assign(client, f"after{n}")
        for client in clients:
            document = results(client)
            assert [p["number"] for p in document["phases"]] == [1, 2]
            assert sum(visitors(document).values()) == 2
            assert sum(visitors(results(client, 1)).values()) == 2
    finally:
        for app in apps:
            app.extensions["abconv"].store.dispose()


def test_servers_starting_a_phase_at_once_make_one(database_url: str) -> None:
    stores = [Store(database_url) for _ in range(4)]
    stores[0].ensure_schema()
    old = {"traffic": 1.0, "variants": [{"key": "a", "weight": 1.0}, {"key": "b", "weight": 1.0}]}
    new = {**old, "traffic": 0.5}
    assert stores[0].current_phase("shop", old).number == 1
    start = threading.Barrier(len(stores))
    numbers: list[int] = []

    def start_phase(store: Store) -> None:
        start.wait()
        numbers.append(store.current_phase("shop", new).number)

    threads = [threading.Thread(target=start_phase, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert numbers == [2, 2, 2, 2]
        assert [(p.number, p.definition) for p in stores[0].phases_of("shop")] == [
            (1, old), (2, new)
        ]  # fmt: skip
    finally:
        for store in stores:
            store.dispose()


def check(environ: dict[str, str]) -> Any:
    return CliRunner().invoke(cli, ["check"], env=environ)


def test_check_warns_of_an_edit_that_would_start_a_phase(
    client: FlaskClient, environ: dict[str, str], experiments_dir: Path
) -> None:
    assign(client, "alice")  # phase 1, weights 1/1
    write_experiment(experiments_dir, weight_trial=7, weight_guide=3, traffic=0.5)
    result = check(environ)
    assert result.exit_code == 0, result.output
    assert "warning: shop.toml: weights 50/50 -> 70/30, traffic 1 -> 0.5 starts phase 2 " \
        "when loaded" in result.output  # fmt: skip
    rewrite(experiments_dir / "shop.toml", THREE_ARMS)
    assert "variants trial, guide -> trial, guide, video starts phase 2" in check(environ).output
    rewrite(experiments_dir / "shop.toml", experiment_toml().replace("Shop CTA", "Shop"))
    result = check(environ)
    assert result.exit_code == 0 and "warning" not in result.output


def test_check_says_when_it_cannot_compare(tmp_path: Path, experiments_dir: Path) -> None:
    environ = {
        "ABCONV_EXPERIMENTS_DIR": str(experiments_dir),
        "ABCONV_DATABASE_URL": f"sqlite:///{tmp_path / 'none.sqlite3'}",
    }
    result = check(environ)
    assert result.exit_code == 0
    assert "warning: cannot compare with the stored phases: no database at" in result.output
    assert not (tmp_path / "none.sqlite3").exists()


def test_check_refuses_a_fallback_that_names_no_variant(experiments_dir: Path) -> None:
    rewrite(experiments_dir / "shop.toml", 'fallback = "video"\n' + experiment_toml())
    result = CliRunner().invoke(cli, ["check", str(experiments_dir)])
    assert result.exit_code == 1
    assert f'{experiments_dir / "shop.toml"}:1: fallback "video" names no variant' in (
        result.output
    )


def test_a_file_saved_unchanged_serves_the_same_experiment(experiments_dir: Path) -> None:
    """The service knows an experiment's phase by the object the registry serves:
    a save that changes nothing keeps it, so no phase is looked up again."""
    registry = ExperimentRegistry(experiments_dir)
    served = registry.get("shop")
    write_experiment(experiments_dir)  # same content, a new modification time
    registry.refresh()
    assert registry.get("shop") is served
    write_experiment(experiments_dir, weight_trial=2)
    registry.refresh()
    assert registry.get("shop") is not served


def test_an_experiment_as_a_past_phase_ran_it(experiments_dir: Path) -> None:
    current = load_experiment_file(write_experiment(experiments_dir, weight_trial=3))
    before = {"traffic": 0.5, "variants": [{"key": "trial", "weight": 1}, {"key": "guide",
              "weight": 1}, {"key": "video", "weight": 2}]}  # fmt: skip
    past = phases.as_in_phase(current, before)
    assert [(v.key, v.weight) for v in past.variants] == [
        ("trial", 1.0), ("guide", 1.0), ("video", 2.0)
    ]  # fmt: skip
    assert past.traffic == 0.5 and past.variant("video").content is None  # type: ignore[union-attr]
    assert past.variant("trial") == replace(current.variants[0], weight=1.0)
    assert phases.summary(before) == "trial 25 % · guide 25 % · video 50 % · traffic 50 %"
    assert phases.changes(before, phases.definition(current)) == [
        "variants trial, guide, video -> trial, guide", "traffic 0.5 -> 1"
    ]  # fmt: skip
    assert phases.changes(phases.definition(current), phases.definition(current)) == []


def test_batch_exposures_are_in_the_current_phase_and_pages_pick_phases(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    assign(client, "alice")
    write_experiment(experiments_dir, weight_guide=4)
    reload(app)
    events = [
        {"type": "exposure", "visitor": "bob", "experiment": "shop", "variant": "guide"},
        {"type": "conversion", "visitor": "bob", "goal": "purchase", "value": 3},
    ]
    assert client.post("/api/events", json={"events": events}).status_code == 200
    assert visitors(results(client)) == {"trial": 0, "guide": 1}
    assert buyers(results(client)) == {"trial": 0, "guide": 1}
    assert sum(visitors(results(client, 1)).values()) == 1
    page = client.get("/experiments/shop?phase=1").get_data(as_text=True)
    assert 'aria-current="page" title="trial 50 % · guide 50 % · traffic 100 %">1<' in page
    assert client.get("/experiments/shop?phase=7").status_code == 404

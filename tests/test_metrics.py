"""/metrics: what it counts, that its labels stay bounded, that it needs the admin."""

from __future__ import annotations

import os
import random
import signal
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from abconv import create_app
from tests.conftest import assert_error, write_experiment
from tests.test_concurrency import free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, keyed by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client: FlaskClient, **headers: str) -> Samples:
    reply = client.get("/metrics", headers=headers)
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert reply.content_type.startswith("text/plain; version=0.0.4")
    return parse(reply.get_data(as_text=True))


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests(samples: Samples, endpoint: str, status: str) -> float:
    return value(samples, "abconv_http_requests_total", endpoint=endpoint, status=status)


def events(samples: Samples, kind: str, outcome: str) -> float:
    return value(samples, "abconv_events_total", type=kind, outcome=outcome)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(labels)[label] for sample, labels in samples if sample == name}


def test_requests_are_counted_by_endpoint_and_status(client: FlaskClient) -> None:
    before = scrape(client)
    for visitor in ("alice", "bob", "carol"):
        assert client.get(f"/api/assign?visitor={visitor}").status_code == 200
    assert client.get("/api/assign?visitor=a%20b").status_code == 400
    after = scrape(client)
    assert requests(after, "api.assign", "200") - requests(before, "api.assign", "200") == 3
    assert requests(after, "api.assign", "400") - requests(before, "api.assign", "400") == 1
    assert requests(after, "metrics", "200") == requests(before, "metrics", "200") + 1


def test_latency_is_a_histogram_per_endpoint(client: FlaskClient) -> None:
    for _ in range(4):
        client.get("/healthz")
    samples = scrape(client)
    count = value(samples, "abconv_http_request_duration_seconds_count", endpoint="api.healthz")
    assert count == 4
    assert 0 < value(samples, "abconv_http_request_duration_seconds_sum", endpoint="api.healthz")
    top = value(samples, "abconv_http_request_duration_seconds_bucket", endpoint="api.healthz",
                le="+Inf")  # fmt: skip
    assert top == 4


def test_events_recorded_and_duplicates(client: FlaskClient) -> None:
    client.get("/api/assign?visitor=alice")
    client.get("/api/assign?visitor=alice")  # returning: nothing new
    order = {"visitor": "alice", "goal": "purchase", "value": 30, "event_id": "order-1"}
    assert client.post("/api/convert", json=order).get_json()["duplicate"] is False
    assert client.post("/api/convert", json=order).get_json()["duplicate"] is True
    batch = {"events": [
        {"type": "exposure", "visitor": "bob", "experiment": "shop", "variant": "trial"},
        {"type": "conversion", "visitor": "bob", "goal": "newsletter", "event_id": "n-1"},
        {"type": "conversion", "visitor": "bob", "goal": "newsletter", "event_id": "n-1"},
    ]}  # fmt: skip
    assert client.post("/api/events", json=batch).status_code == 200
    samples = scrape(client)
    assert events(samples, "exposure", "recorded") == 2  # alice's assignment, bob's batch
    assert events(samples, "conversion", "recorded") == 2  # alice's order, bob's newsletter
    assert events(samples, "conversion", "duplicate") == 2  # the order again, n-1 again


def test_refusals_are_counted_by_error_code(client: FlaskClient) -> None:
    client.get("/api/assign?visitor=a%20b")
    client.post("/api/convert", json={"visitor": "alice", "goal": "nope"})
    client.post("/api/convert", json={"visitor": "alice", "goal": "purchase", "value": -1})
    client.post("/api/events", json={"events": [{"type": "exposure"}]})
    samples = scrape(client)
    name = "abconv_error_replies_total"
    assert value(samples, name, endpoint="api.assign", code="bad_visitor") == 1
    assert value(samples, name, endpoint="api.convert", code="unknown_goal") == 1
    assert value(samples, name, endpoint="api.convert", code="bad_value") == 1
    assert value(samples, name, endpoint="api.events", code="invalid_events") == 1
    assert events(samples, "conversion", "recorded") == 0


def test_unknown_paths_and_methods_add_no_label_values(client: FlaskClient) -> None:
    rng = random.Random(13)
    for _ in range(100):
        path = "".join("/" + "".join(rng.choices(string.ascii_lowercase, k=6)) for _ in range(2))
        client.get(path)
        client.open("/api" + path, method=rng.choice(["PURGE", "BREW", "DELETE", "X" * 20]))
    samples = scrape(client)
    endpoints = label_values(samples, "abconv_http_requests_total", "endpoint")
    assert endpoints <= {"none", "api.assign", "api.convert", "metrics"}, endpoints
    assert label_values(samples, "abconv_http_requests_total", "status") <= {"404", "405", "200"}
    assert len(label_values(samples, "abconv_error_replies_total", "code")) <= 2
    assert requests(samples, "none", "404") + requests(samples, "none", "405") == 200
    assert len(samples) < 100  # every sample of the scrape, not one per path


def test_experiment_files_loaded_and_failed(client: FlaskClient, experiments_dir: Path) -> None:
    write_experiment(experiments_dir, "second")
    (experiments_dir / "broken.toml").write_text('key = "broken"\nname = [')
    client.application.extensions["abconv"].experiments.refresh()
    samples = scrape(client)
    assert value(samples, "abconv_experiment_files", state="loaded") == 2
    assert value(samples, "abconv_experiment_files", state="failed") == 1
    assert value(samples, "abconv_experiments_running") == 2
    second = experiments_dir / "second.toml"
    second.write_text(second.read_text().replace('status = "running"', "status = 1"))
    stamp = second.stat().st_mtime_ns + 2_000_000_000
    os.utime(second, ns=(stamp, stamp))
    client.application.extensions["abconv"].experiments.refresh()
    samples = scrape(client)  # "second" keeps its last good version, but its file failed
    assert value(samples, "abconv_experiment_files", state="loaded") == 1
    assert value(samples, "abconv_experiment_files", state="failed") == 2
    assert value(samples, "abconv_experiments_running") == 2


@pytest.fixture
def guarded(environ: dict[str, str]) -> Iterator[FlaskClient]:
    app = create_app({**environ, "ABCONV_ADMIN_PASSWORD": "s3cret"})
    yield app.test_client()
    app.extensions["abconv"].store.dispose()


def test_metrics_needs_the_admin_password(guarded: FlaskClient) -> None:
    assert_error(guarded.get("/metrics"), 401, "unauthorized")
    assert_error(guarded.get("/metrics", headers={"Authorization": "Bearer nope"}), 401,
                 "unauthorized")  # fmt: skip
    samples = scrape(guarded, Authorization="Bearer s3cret")
    assert value(samples, "abconv_error_replies_total", endpoint="metrics",
                 code="unauthorized") == 2  # fmt: skip


def get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(base + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def assigns_per_worker(folder: Path) -> dict[str, float]:
    """Successful assignments each worker counted, read from its own file."""
    counts = {}
    for path in folder.glob("counter_*.db"):
        [family] = [m for m in MultiProcessCollector.merge([str(path)])
                    if m.name == "abconv_http_requests"] or [None]  # fmt: skip
        samples = family.samples if family else []
        counts[path.stem] = sum(
            s.value for s in samples
            if s.labels == {"endpoint": "api.assign", "status": "200"}
        )  # fmt: skip
    return counts


@pytest.mark.slow
def test_two_gunicorn_workers_add_up_in_one_scrape(tmp_path: Path, experiments_dir: Path) -> None:
    port, base = free_port(), ""
    temp = tmp_path / "tmp"
    temp.mkdir()
    log = tmp_path / "serve.log"
    env = {**os.environ, "ABCONV_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}",
           "ABCONV_EXPERIMENTS_DIR": str(experiments_dir), "ABCONV_ADMIN_PASSWORD": "s3cret",
           "TMPDIR": str(temp)}  # fmt: skip
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "abconv", "serve", "--port", str(port), "--workers", "2"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process, log)
        [folder] = temp.glob("abconv-metrics-*")
        sent = 0
        while sent < 400:  # until each worker has served some (the kernel spreads them)
            with ThreadPoolExecutor(10) as pool:
                paths = [f"/api/assign?visitor=v{sent + i}&experiment=shop" for i in range(10)]
                assert {s for s, _ in pool.map(lambda p: get(base, p), paths)} == {200}
            sent += 10
            per_worker = assigns_per_worker(folder)
            if sent >= 20 and sum(1 for n in per_worker.values() if n) >= 2:
                break
        status, text = get(base, "/metrics", {"Authorization": "Bearer s3cret"})
        assert status == 200
        # A worker killed keeps its counts: they stay in its file.
        os.kill(int(max(per_worker, key=per_worker.__getitem__).split("_")[1]), signal.SIGKILL)
        status, after_kill = get(base, "/metrics", {"Authorization": "Bearer s3cret"})
        assert status == 200
        get(base, "/healthz", {"X-Request-Id": "only-one-line-1"})
    finally:
        process.terminate()
        process.wait(timeout=30)
    samples = parse(text)
    print(f"\n{sent} assignments; per worker {sorted(per_worker.values())}; "
          f"scrape: {requests(samples, 'api.assign', '200'):.0f}")  # fmt: skip
    assert sum(1 for n in per_worker.values() if n) == 2
    assert sum(per_worker.values()) == sent
    assert requests(samples, "api.assign", "200") == sent
    assert events(samples, "exposure", "recorded") == sent
    assert requests(parse(after_kill), "api.assign", "200") == sent
    output = log.read_text()
    assert sum("only-one-line-1" in line for line in output.splitlines()) == 1
    assert not folder.exists()  # removed when the server stopped


def wait_until_up(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if get(base, "/healthz")[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("abconv serve did not start: " + log.read_text()[-2000:])
        time.sleep(0.2)

"""``GET /metrics``: requests, latencies, events and experiment files for Prometheus.

Admin-only, like the dashboard. Under ``abconv serve`` every gunicorn
worker writes its counts to files in ``PROMETHEUS_MULTIPROC_DIR``, and a
scrape, whichever worker answers it, adds up every worker's, including
workers since replaced (prometheus_client's multiprocess mode). Without
that variable (tests, ``--dev``, a bare ``gunicorn wsgi:app``) each app
counts on its own.

Labels only take values from closed sets: the endpoint name (never the raw
path, which any caller can make up, so unknown routes all count as
``none``), the status, the error code, the event type. No method label:
werkzeug accepts any method name a client sends.

Where the counts come from: requests and latencies from this module's
request hooks; error replies from ``web/errors.py``, the one place that
renders them; events from the replies of ``/api/convert`` and
``/api/events``, and from the services' hook for the exposures
``/api/assign`` records (its reply cannot say which enrolments are new);
experiment files from the registry at scrape time.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, current_app
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from abconv.experiments import ExperimentRegistry
from abconv.logs import endpoint_name, request_seconds
from abconv.vocabulary import Status
from abconv.web.auth import admin_required

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """The app's metrics, in ``app.extensions["metrics"]``."""

    def __init__(self, experiments: ExperimentRegistry) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "abconv_http_requests", "HTTP requests by endpoint and status",
            ["endpoint", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "abconv_http_request_duration_seconds", "Time to answer, by endpoint",
            ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.errors = Counter(
            "abconv_error_replies", "Error replies by endpoint and error code",
            ["endpoint", "code"], registry=self.registry,
        )  # fmt: skip
        self.events = Counter(
            "abconv_events", "Event rows stored (recorded) or already stored (duplicate)",
            ["type", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.files = ExperimentFiles(experiments)
        self.registry.register(self.files)
        # The labelled children met so far: ``labels()`` checks and locks on each
        # call, and the label values come from closed sets, so these stay small.
        self._children: dict[tuple[Any, ...], Any] = {}

    def child(self, metric: Counter | Histogram, *values: str) -> Any:
        """``metric.labels(*values)``, looked up once per process."""
        key = (metric, *values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def exposition(self) -> bytes:
        """The text a scrape gets: every worker's counts in multiprocess mode."""
        if MULTIPROCESS_ENV not in os.environ:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(self.files)
        return generate_latest(registry)

    def exposures_recorded(self, count: int) -> None:
        self.child(self.events, "exposure", "recorded").inc(count)


class ExperimentFiles:
    """Gauges read from the experiments registry when scraped (every worker
    watches the same folder, so the answering worker's view is the server's)."""

    def __init__(self, experiments: ExperimentRegistry) -> None:
        self.experiments = experiments

    def collect(self) -> Iterable[Metric]:
        served = self.experiments.all()  # also looks at the folder when due
        failed = {problem.path for problem in self.experiments.problems()}
        files = GaugeMetricFamily(
            "abconv_experiment_files",
            "Experiment files whose current content is valid (loaded) or not (failed)",
            labels=["state"],
        )
        files.add_metric(["loaded"], sum(1 for e in served.values() if e.path not in failed))
        files.add_metric(["failed"], len(failed))
        yield files
        running = sum(1 for e in served.values() if e.status is Status.RUNNING)
        yield GaugeMetricFamily("abconv_experiments_running", "Running experiments", running)


def init_app(app: Flask) -> None:
    """Count every request from here on and serve ``/metrics``."""
    metrics = Metrics(app.extensions["abconv"].experiments)
    app.extensions["metrics"] = metrics
    app.extensions["abconv"] = dataclasses.replace(
        app.extensions["abconv"], exposures_recorded=metrics.exposures_recorded
    )
    app.after_request(_observe)
    app.add_url_rule("/metrics", "metrics", admin_required(_scrape))


def count_error(code: str) -> None:
    """Count an error reply; ``web/errors.py`` calls it for each one it renders.
    Never fails: an error must be answered even by an app without metrics."""
    metrics = current_app.extensions.get("metrics")
    if metrics is not None:
        metrics.child(metrics.errors, endpoint_name(), code).inc()


def _metrics() -> Metrics:
    return current_app.extensions["metrics"]  # type: ignore[no-any-return]


def _scrape() -> Response:
    return Response(_metrics().exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)


def _observe(response: Response) -> Response:
    endpoint, status = endpoint_name(), response.status_code
    reply = None
    if status == 200 and endpoint in EVENT_ENDPOINTS:
        try:  # a jsonify reply: its bytes, without get_json's checks of the mimetype
            reply = json.loads(response.get_data())
        except ValueError:
            reply = None
    observe(_metrics(), endpoint, status, request_seconds(), reply)
    return response


# The endpoints whose replies say how many events were stored.
EVENT_ENDPOINTS = ("api.convert", "api.events")


def observe(
    metrics: Metrics, endpoint: str, status: int, seconds: float | None, reply: Any = None
) -> None:
    """Count a request, its latency and, for a 200 of :data:`EVENT_ENDPOINTS`,
    the events its JSON ``reply`` says were stored."""
    metrics.child(metrics.requests, endpoint, str(status)).inc()
    if seconds is not None:
        metrics.child(metrics.latency, endpoint).observe(seconds)
    if status == 200 and endpoint in EVENT_ENDPOINTS:
        _count_events(metrics, endpoint, reply)


def _count_events(metrics: Metrics, endpoint: str, reply: Any) -> None:
    """Stored and duplicate rows, as the reply of ``endpoint`` tells them."""
    if not isinstance(reply, dict):
        return
    conversions = metrics.child(metrics.events, "conversion", "recorded")
    duplicates = metrics.child(metrics.events, "conversion", "duplicate")
    if endpoint == "api.convert":
        rows = len(reply.get("recorded") or [])
        if reply.get("duplicate"):
            duplicates.inc(max(rows, 1))
        else:
            conversions.inc(rows)
        return
    exposures = reply.get("exposures") or {}
    batch = reply.get("conversions") or {}
    metrics.exposures_recorded(exposures.get("recorded", 0))
    conversions.inc(batch.get("recorded", 0))
    duplicates.inc(batch.get("duplicates", 0))

"""Fuzzing the HTTP API: over 10,000 generated requests, hostile ones included.

Every route gets requests built from the experiments' vocabulary and from
the OpenAPI document (schemathesis), then mutated (``tests/fuzz_requests.py``).
Every reply must be a non-5xx that the OpenAPI document allows (so every
error is the JSON envelope with a 4xx, unknown routes and wrong methods
under ``/api/`` included), no request may take a second, and afterwards the
database may hold only rows that the experiment files and the input rules
allow. Problems are collected, not raised at the first, so one run prints
every kind of failure with an example and the counts.

Generation is derandomized: the same requests every run, in CI too.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from abconv import create_app
from tests.fuzz_requests import LOCAL, PASSWORD, FuzzRequest, fuzz_request
from tests.openapi_contract import ContractViolation, check_reply

EXPERIMENTS_DIR = Path(__file__).parent / "fuzz_experiments"
IDENTIFIER_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-")
MAX_EVENT_VALUE = 1e9
SLOW = 1.0  # seconds: the bound for any one request
BATCH = 5  # requests per hypothesis example
EXAMPLES = {"sqlite": 2_100, "postgresql": 400}
SCHEMATHESIS_CASES = {"sqlite": 300, "postgresql": 100}


@dataclass
class Tally:
    requests: int = 0
    server_errors: int = 0
    retimed: int = 0  # requests over a second once, sent again
    slowest: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    problems: dict[str, list[str]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)

    def problem(self, kind: str, example: str) -> None:
        """Count a problem; keep up to five examples that do not start alike."""
        self.counts[kind] += 1
        examples = self.problems.setdefault(kind, [])
        if len(examples) < 5 and not any(e[:90] == example[:90] for e in examples):
            examples.append(example)

    def report(self, name: str) -> str:
        lines = [
            f"fuzz[{name}]: {self.requests} requests, {self.server_errors} with a 5xx, "
            f"slowest {self.slowest:.3f} s ({self.retimed} timed again), "
            f"statuses {dict(sorted(self.statuses.items()))}"
        ]
        for kind, examples in sorted(self.problems.items()):
            lines.append(f"  PROBLEM ({self.counts[kind]} times) {kind}")
            lines.extend(f"    e.g. {example}" for example in examples)
        return "\n".join(lines)


def send(client: FlaskClient, url_map: Any, request: FuzzRequest, tally: Tally) -> None:
    tally.requests += 1
    try:
        reply, elapsed = _timed(client, request)
        if elapsed >= SLOW:  # timed again: a stall of this busy machine is not the app's
            tally.retimed += 1
            elapsed = min(elapsed, _timed(client, request)[1])
    except Exception as error:  # an exception that escaped the app's error handlers
        tally.problem(
            f"raised {type(error).__name__}: {request.method} {request.path[:60]}", str(request)
        )
        return
    tally.statuses[reply.status_code] += 1
    tally.slowest = max(tally.slowest, elapsed)
    where = f"{request.method} {request.path[:60]} -> {reply.status_code} {_error_code(reply)}"
    if elapsed >= SLOW:
        tally.problem(f"slower than {SLOW} s (twice): {where}", f"{elapsed:.2f} s: {request}")
    if reply.status_code >= 500:
        tally.server_errors += 1
        tally.problem(f"5xx: {where}", str(request))
        return  # a 5xx is a problem whatever the document says
    try:
        check_reply(url_map, reply)
    except ContractViolation as violation:
        tally.problem(
            f"breaks the OpenAPI document: {where}", f"{violation}"[:300] + f" <- {request}"
        )


def _timed(client: FlaskClient, request: FuzzRequest) -> tuple[TestResponse, float]:
    started = time.perf_counter()
    reply = client.open(
        request.path,
        method=request.method,
        query_string=request.query or None,
        headers=request.headers,
        data=request.body,
        environ_base={"REMOTE_ADDR": request.remote_addr},
    )
    return reply, time.perf_counter() - started


def _error_code(reply: Any) -> str:
    try:
        return str(json.loads(reply.get_data())["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""


@pytest.fixture
def fuzz_app(database_url: str) -> Iterator[Flask]:
    app = create_app(
        {
            "ABCONV_DATABASE_URL": database_url,
            "ABCONV_EXPERIMENTS_DIR": str(EXPERIMENTS_DIR),
            "ABCONV_ADMIN_PASSWORD": PASSWORD,
            "ABCONV_ALLOWED_ORIGINS": "https://shop.example.com",
        }
    )
    # Thousands of refused requests: the tally reports them. The logger is
    # shared by every app of the process, so it is switched back on after.
    app.logger.disabled = True
    try:
        yield app
    finally:
        app.logger.disabled = False
        app.extensions["abconv"].store.dispose()


def test_fuzzed_requests_get_4xx_json_errors_and_leave_only_valid_rows(
    fuzz_app: Flask, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    client = FlaskClient(fuzz_app, fuzz_app.response_class)  # checked here, not by conftest
    tally = Tally()

    @settings(
        max_examples=EXAMPLES[name],
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(fuzz_request(), min_size=BATCH, max_size=BATCH))
    def hostile(requests: list[FuzzRequest]) -> None:
        for request in requests:
            send(client, fuzz_app.url_map, request, tally)

    started = time.perf_counter()
    hostile()
    _schemathesis_cases(fuzz_app, client, SCHEMATHESIS_CASES[name], tally)
    rows = _check_stored_rows(fuzz_app, tally)
    with capsys.disabled():  # the figures show in every run, as the README quotes them
        print(f"\n{tally.report(name)}\n  in {time.perf_counter() - started:.0f} s; stored {rows}")
    assert tally.server_errors == 0 and not tally.problems, tally.report(name)
    assert tally.requests >= {"sqlite": 10_000, "postgresql": 2_000}[name]
    assert rows["exposure"] >= 50 and rows["conversion"] >= 20, "the fuzz stored too little"


def _schemathesis_cases(app: Flask, client: FlaskClient, count: int, tally: Tally) -> None:
    """Requests generated from the document itself, valid and invalid (schemathesis)."""
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    cases = st.one_of(
        [
            result.ok().as_strategy(generation_mode=mode)
            for result in schema.get_all_operations()
            for mode in modes
        ]
    )

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(cases)
    def from_the_document(case: Any) -> None:
        send(client, app.url_map, _as_fuzz_request(case), tally)

    from_the_document()


def _as_fuzz_request(case: Any) -> FuzzRequest:
    sent = case.as_transport_kwargs()
    headers = {k: v for k, v in sent.get("headers", {}).items() if not k.startswith("X-")}
    if "security" in case.operation.definition.raw:
        headers["Authorization"] = f"Bearer {PASSWORD}"
    body = sent.get("data", sent.get("body"))
    if "json" in sent:
        body = json.dumps(sent["json"], allow_nan=True).encode()
    elif isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    fields = sent.get("query_string") or sent.get("params") or {}
    query = urlencode({k: str(v) for k, v in fields.items()}, errors="surrogatepass")
    return FuzzRequest(sent["method"], sent["path"], query, headers, body, LOCAL)


def _check_stored_rows(app: Flask, tally: Tally) -> dict[str, int]:
    """Every stored row follows the files' vocabulary and the input rules."""
    experiments = app.extensions["abconv"].experiments.all()
    store = app.extensions["abconv"].store
    with store.engine.connect() as conn:
        exposures, conversions = (
            conn.execute(sa.select(sa.Table(name, sa.MetaData(), autoload_with=conn)))
            .mappings()
            .all()
            for name in ("exposure", "conversion")
        )
    seen = {(row["experiment"], row["visitor"]): row["variant"] for row in exposures}
    for row in exposures:
        experiment = experiments.get(row["experiment"])
        bad = _identifier_problem(row["visitor"]) or _time_problem(row["created_at"])
        if experiment is None or experiment.variant(row["variant"]) is None:
            bad = bad or "experiment or variant outside the files"
        if bad:
            tally.problem(f"stored exposure: {bad}", repr(dict(row))[:300])
    for row in conversions:
        bad = _conversion_problem(experiments, seen, row)
        if bad:
            tally.problem(f"stored conversion: {bad}", repr(dict(row))[:300])
    return {"exposure": len(exposures), "conversion": len(conversions)}


def _conversion_problem(experiments: dict[str, Any], seen: dict[Any, str], row: Any) -> str:
    experiment = experiments.get(row["experiment"])
    goal = experiment.goal(row["goal"]) if experiment else None
    if experiment is None or goal is None or experiment.variant(row["variant"]) is None:
        return "experiment, variant or goal outside the files"
    if row["kind"] not in ("hard", "soft") or row["kind"] != str(goal.kind):
        return f"kind {row['kind']!r} is not the goal's"
    if seen.get((row["experiment"], row["visitor"])) != row["variant"]:
        return "not the variant the visitor was exposed to"
    value = row["value"]
    if value is not None:
        if not goal.value:
            return "a value on a goal without value = true"
        if not math.isfinite(value) or not 0 <= value <= MAX_EVENT_VALUE:
            return f"value {value!r} is not finite, >= 0 and <= {MAX_EVENT_VALUE:g}"
        cap = getattr(goal, "max_value", None)
        if cap is not None and value > cap:
            return f"value {value!r} over the goal's max_value {cap!r}"
    return (
        _identifier_problem(row["visitor"])
        or (row["event_id"] is not None and _identifier_problem(row["event_id"]))
        or _time_problem(row["created_at"])
    )


def _identifier_problem(text: Any) -> str:
    if not isinstance(text, str) or not 1 <= len(text) <= 128 or set(text) - IDENTIFIER_CHARS:
        return f"identifier {str(text)[:40]!r} breaks the rule"
    return ""


def _time_problem(moment: datetime) -> str:
    """Times are after the Unix epoch and not in the future (5 minutes of clock skew)."""
    latest = datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=5)
    if not datetime(1970, 1, 1) <= moment <= latest:
        return f"time {moment} out of range"
    return ""

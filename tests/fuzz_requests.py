"""Requests a hostile client could send, as hypothesis strategies.

Built from the vocabulary of ``tests/fuzz_experiments`` (so many requests
reach the code behind the checks) and the routes of the OpenAPI document,
then mutated: wrong types, huge and non-finite numbers (``NaN`` and
``Infinity`` literals, 400-digit integers), deep nesting, long and odd
unicode strings, broken and oversized bodies, odd Content-Types, wrong
methods, unknown routes under ``/api/``, and wrong passwords.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import strategies as st

PASSWORD = "fuzz-secret"
LOCAL = "127.0.0.1"
ATTACKER = "203.0.113.66"
"""Wrong passwords come from here, so a lock-out never spares nor blocks the rest."""

EXPERIMENTS = ("shop-cta", "pricing-page", "signup-redirect", "old-banner", "paused-hero",
               "draft-footer")  # fmt: skip
VARIANTS = ("trial", "guide", "three-plans", "one-plan", "short-form", "guided-tour", "video",
            "red", "blue", "calm", "bold", "plain", "bright")  # fmt: skip
GOALS = ("purchase", "newsletter", "plan-compare", "deal", "signup", "contact")
VISITORS = tuple(f"visitor-{i}" for i in range(60)) + ("alice", "bob", "A.b:c_d-1")
EVENT_IDS = tuple(f"order-{i}" for i in range(40))
NOW = datetime.now(UTC).replace(microsecond=0)

HOSTILE: tuple[Any, ...] = (
    None, True, False, 0, -1, -0.0, 0.5, 1e9, 1e9 + 1, 1.1e50, 1e308, -1e308, 2**63, -(2**63) - 1,
    10**400, float("nan"), float("inf"), float("-inf"), 9007199254740993, 5e-324,
    "", " ", "a" * 129, "a" * 10_000, "ünïcødé", "日本語", "\u0000", "\ud800", "\U0001f600",
    "<script>alert(1)</script>", "=HYPERLINK(\"http://evil\")", "+1", "-1", "@SUM(1)", "\t\r\n",
    "../../etc/passwd", "1e400", "NaN", "Infinity", "null", "true", "%00", "' OR 1=1 --",
    [], {}, [1, 2], {"a": 1}, [[[]]], {"$gt": ""},
)  # fmt: skip
HOSTILE_TIMES: tuple[Any, ...] = (
    "0001-01-01T00:00:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-13-45T99:00:00",
    "1970-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "yesterday", "", 0, -1, -62135596800,
    253402300800, 1e20, -1e20, float("nan"), 10**400, "2026-11-20T09:00:00+25:00",
    (NOW + timedelta(days=1)).isoformat(), (NOW + timedelta(minutes=4)).timestamp(),
)  # fmt: skip
CONTENT_TYPES = (
    None, "application/json", "application/json", "text/plain", "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz",
    "application/json; charset=utf-16", "application/xml", "garbage/", "*/*",
)  # fmt: skip
USER_AGENTS = (
    None, "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0", "Googlebot/2.1 (+http://www.google.com/bot.html)",
    "curl/8.4.0", "UptimeRobot/2.0", "x" * 5000, "",
)  # fmt: skip
ORIGINS = (None, None, None, "https://evil.example", "null", "https://shop.example.com")
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
UNKNOWN_API = (
    "/api", "/api/", "/api/nope", "/api/assign/", "/api/assign/x", "/api/convert/1",
    "/api/experiments/", "/api/experiments/shop-cta/results.json",
    "/api/experiments/shop-cta/results/extra", "/api/%2e%2e/healthz", "/api/%00", "/api/%ff",
    "/api/events/../events", "/api/Assign", "/api/openapi.yaml",
)  # fmt: skip
DEEP = (64, 300, 1000, 10_000, 100_000)
OVERSIZED = b'{"visitor": "' + b"a" * (1 << 20) + b'"}'
CONVERSION_PREFIX = b'{"visitor": "alice", "goal": "purchase", "value": '


@dataclass(frozen=True)
class FuzzRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes | None
    remote_addr: str

    def __str__(self) -> str:
        body = repr(self.body[:160]) + ("..." if len(self.body) > 160 else "") if self.body else ""
        headers = {name: value[:40] for name, value in self.headers.items()}
        return f"{self.method} {self.path[:120]} ?{self.query[:160]} {body} {headers}"


RECENT = st.integers(min_value=0, max_value=30 * 86400).map(lambda s: NOW - timedelta(seconds=s))
# A past time mostly keeps a conversion from counting (it precedes the exposure): keep it rare.
CLEAN_TIME = st.one_of(st.none(), st.none(), st.none(), RECENT.map(lambda t: t.timestamp()))
CLEAN_VALUE = st.one_of(st.none(), st.floats(min_value=0, max_value=1e4), st.integers(0, 10**6))
VISITOR, EVENT_ID = map(st.sampled_from, (VISITORS, EVENT_IDS))
GOAL = st.sampled_from(GOALS + ("purchase", "deal") * 2)  # value goals more often
EXPERIMENT, VARIANT = map(st.sampled_from, (EXPERIMENTS, VARIANTS))

CONVERSION = st.fixed_dictionaries(
    {"visitor": VISITOR, "goal": GOAL},
    optional={"value": CLEAN_VALUE, "event_id": EVENT_ID, "time": CLEAN_TIME,
              "experiment": st.one_of(st.none(), st.none(), EXPERIMENT)},
)  # fmt: skip
EXPOSURE = st.fixed_dictionaries(
    {"type": st.just("exposure"), "visitor": VISITOR, "experiment": EXPERIMENT},
    optional={"variant": VARIANT, "time": CLEAN_TIME},
)
BATCH = st.fixed_dictionaries(
    {
        "events": st.lists(
            EXPOSURE | EXPOSURE | CONVERSION.map(lambda c: {"type": "conversion", **c}), max_size=12
        )
    }
)
ASSIGN = st.fixed_dictionaries(
    {"visitor": VISITOR},
    optional={"experiment": EXPERIMENT, "user_agent": st.sampled_from(USER_AGENTS[:3])},
)
BODIES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "/api/convert": CONVERSION,
    "/api/events": BATCH,
    "/api/assign": ASSIGN,
}

JSON_ANY: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=20),
        st.sampled_from(HOSTILE),
    ),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)
ANY_HOSTILE = st.sampled_from(HOSTILE) | st.sampled_from(HOSTILE) | st.text(max_size=30) | JSON_ANY
# Squares beyond 1e100 (the analysis limit) once broke every later results page.
VALUE_ATTACKS = (10**400, 1.1e50, 1e308, 1e200, 3e60, float("nan"), float("inf"), -1, 1e9 + 1,
                 2**63, -0.0, True)  # fmt: skip
HOSTILE_FOR = {
    "value": st.sampled_from(VALUE_ATTACKS)
    | st.sampled_from(VALUE_ATTACKS)
    | st.floats()
    | st.sampled_from(HOSTILE),
    "time": st.sampled_from(HOSTILE_TIMES) | st.sampled_from(HOSTILE),
    "events": st.lists(JSON_ANY, max_size=4)
    | JSON_ANY
    | st.just([{"type": "exposure", "visitor": "v", "experiment": "shop-cta"}] * 1001),
}
FIELDS = ("visitor", "goal", "value", "event_id", "experiment", "time", "variant", "type", "force",
          "user_agent", "events", "extra")  # fmt: skip
FIRST_FIELDS = {  # what a first corruption hits in each kind of body
    "conversion": ("value", "value", "value", "time", "time", "visitor", "goal", "event_id",
                   "experiment", "type"),
    "exposure": ("time", "time", "visitor", "experiment", "variant", "variant", "type", "value"),
    "assign": ("visitor", "experiment", "force", "force", "user_agent"),
    "events": ("events",),
}  # fmt: skip


def _corrupted(draw: st.DrawFn, fields: dict[str, Any]) -> dict[str, Any]:
    """The fields with one of them replaced by a hostile value (or removed), sometimes
    more; in a batch, mostly inside one of its events."""
    events = fields.get("events")
    if events and draw(st.integers(0, 3)):
        index = draw(st.integers(0, len(events) - 1))
        events[index] = _corrupted(draw, dict(events[index]))
        return fields
    kind = fields.get("type") or ("events" if "events" in fields else None)
    kind = kind if kind in FIRST_FIELDS else ("conversion" if "goal" in fields else "assign")
    names = [draw(st.sampled_from(FIRST_FIELDS[kind]))]
    while draw(st.integers(0, 3)) == 0:
        names.append(draw(st.sampled_from(FIELDS)))
    for name in names:
        if draw(st.integers(0, 7)) == 0:
            fields.pop(name, None)
        else:
            fields[name] = draw(HOSTILE_FOR.get(name, ANY_HOSTILE))
    return fields


ODD_BODIES = (b"", b"[]", b"null", b"1", b'"text"', b"{", b"\xff\xfe{}", b'{"visitor": "\xff"}',
              b"NaN", b"{}{}")  # fmt: skip


def _json_text(value: Any) -> bytes:
    """JSON as a careless or hostile client writes it: ``NaN``, ``Infinity``, huge integers."""
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


def _mutated(draw: st.DrawFn, body: bytes) -> bytes:
    """The body as sent: mostly as is, else broken one way or another."""
    how = draw(st.integers(min_value=0, max_value=15)) - 10
    depth = draw(st.sampled_from(DEEP))
    if how < 0:
        return body
    if how == 0:
        return CONVERSION_PREFIX + b"[" * depth + b"]" * depth + b"}"
    if how == 1:
        return b'{"a": ' * depth + b"1" + b"}" * depth
    if how == 2:
        return b'{"events": ' + b"[" * depth + b"]" * depth + b"}"
    if how == 3:
        return body[: draw(st.integers(min_value=0, max_value=max(0, len(body) - 1)))]
    if how == 4:
        return draw(st.sampled_from(ODD_BODIES)) if depth > 64 else draw(st.binary(max_size=64))
    return OVERSIZED if depth == DEEP[-1] else body + b"\x00garbage"


def _as_query(fields: dict[str, Any]) -> str:
    strings = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
    return urlencode(strings, errors="surrogatepass")


RAW_QUERY = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789=&%+;._-[]", max_size=80)
HOSTILE_KEY = st.one_of(EXPERIMENT, st.sampled_from(HOSTILE).map(str), st.text(max_size=80)).map(
    lambda key: quote(key, safe="", errors="surrogatepass") or "x"
)


ROUTES: tuple[tuple[str, str, bool], ...] = (
    # method, path (KEY replaced), admin
    ("GET", "/api/assign", False),
    ("POST", "/api/assign", False),
    ("POST", "/api/convert", False),
    ("POST", "/api/events", True),
    ("GET", "/api/experiments", True),
    ("GET", "/api/experiments/KEY", True),
    ("GET", "/api/experiments/KEY/results", True),
    ("GET", "/api/experiments/KEY/results.csv", True),
    ("GET", "/healthz", False),
    ("GET", "/api/openapi.json", False),
    ("GET", "/", True),
    ("GET", "/metrics", True),  # Prometheus text, when the app serves it
)


CLEAN_CONTENT_TYPES = ("application/json", "application/json", "text/plain;charset=UTF-8", None)
ROUTE = st.sampled_from(ROUTES)
SHARE_CLEAN = 6  # of 10 requests use only the vocabulary, unbroken


@st.composite
def fuzz_request(draw: st.DrawFn) -> FuzzRequest:
    """One request: a route of the app (sometimes an unknown one under /api/),
    mostly its own method; either clean (vocabulary only, right password),
    so that the code behind the checks runs and stores rows, or hostile."""
    clean = draw(st.integers(0, 9)) < SHARE_CLEAN
    method, path, admin = draw(ROUTE)
    if not clean and draw(st.integers(0, 9)) == 0:
        path = draw(st.sampled_from(UNKNOWN_API))
    path = path.replace("KEY", draw(EXPERIMENT if clean else HOSTILE_KEY))
    if not clean and draw(st.integers(0, 4)) == 0:
        method = draw(st.sampled_from(METHODS))
    query = ""
    if path == "/api/assign" and method != "POST":
        fields = draw(ASSIGN)
        query = _as_query(fields if clean else _corrupted(draw, fields))
        if not clean and draw(st.integers(0, 4)) == 0:
            query = draw(RAW_QUERY) if draw(st.integers(0, 19)) else "visitor=" + "a" * 9000
    body: bytes | None = None
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        fields = draw(BODIES.get(path, ASSIGN))
        body = _json_text(fields if clean else _corrupted(draw, fields))
        body = body if clean else _mutated(draw, body)
    headers = {}
    content_types = CLEAN_CONTENT_TYPES if clean else CONTENT_TYPES
    for name, choices in (
        ("Content-Type", content_types if body is not None else (None,)),
        ("User-Agent", USER_AGENTS[:3] if clean else USER_AGENTS),
        ("Origin", (None,) if clean else ORIGINS),
    ):
        chosen = draw(st.sampled_from(choices))
        if chosen is not None:
            headers[name] = chosen
    remote = LOCAL
    credentials = draw(st.integers(0, 2 if clean else 4)) if admin else None
    if credentials in (0, 1):
        headers["Authorization"] = f"Bearer {PASSWORD}"
    elif credentials == 2:
        headers["Authorization"] = "Basic " + _b64(f"admin:{PASSWORD}")
    elif credentials is not None:
        remote = ATTACKER
        headers["Authorization"] = draw(st.sampled_from(WRONG_CREDENTIALS))
    return FuzzRequest(method, path, query, headers, body, remote)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


WRONG_CREDENTIALS = ("Bearer wrong", "Basic " + _b64("admin:wrong"), "Basic !!!", "Token", "")

"""Use cases: assign, convert, ingest. The glue between files, hashing and storage.

Routes and the CLI call these; they take plain values, raise
:class:`AbconvError` for bad input and return JSON-able dicts.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from abconv.assignment import Assignment, Reason, assign, is_bot, outside_layer
from abconv.errors import AbconvError
from abconv.experiments import Experiment, ExperimentRegistry, Layer, Variant, phases
from abconv.inputs import (
    EventInput,
    check_goal_value,
    conversion_input,
    optional_time,
    require_experiment_key,
    require_object,
    require_variant_key,
    require_visitor,
)
from abconv.results.excluded import REASON_NAMES
from abconv.store import UNAVAILABLE, NewConversion, Store, StoredExposure, StoredPhase, utcnow
from abconv.vocabulary import Status

logger = logging.getLogger(__name__)

# The "degraded" sentence of /api/assign while the database is unavailable.
DEGRADED = "database unavailable: variants come from the hash and nothing was recorded"


class CurrentPhases:
    """The phase each running experiment is in, as this process knows it
    (README, "Phases"): asked of the store (which starts a phase when the
    definition changed) when the registry serves a new :class:`Experiment`
    object, which it does only for a file whose content changed; else from
    memory, so serving costs no query."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._known: dict[str, tuple[Experiment, int]] = {}

    def of(self, experiment: Experiment) -> int:
        known = self._known.get(experiment.key)
        if known is not None and known[0] is experiment:
            return known[1]
        number = self.store.current_phase(experiment.key, phases.definition(experiment)).number
        self._known[experiment.key] = (experiment, number)
        return number


@dataclass(frozen=True)
class Services:
    """What every use case needs; one per app, kept in ``app.extensions``."""

    store: Store
    experiments: ExperimentRegistry
    # Told how many exposures an assignment stored, for /metrics (the reply
    # cannot say which enrolments are new).
    exposures_recorded: Callable[[int], None] = lambda count: None
    phases: CurrentPhases = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "phases", CurrentPhases(self.store))

    def experiment(self, key: Any, field: str = "experiment") -> Experiment:
        """The experiment called ``key``; 404 naming ``field`` when there is none."""
        experiment = self.experiments.get(require_experiment_key(key, field))
        if experiment is None:
            raise AbconvError("unknown_experiment", f"{field}: no experiment {key!r}", 404)
        return experiment


def assign_visitor(
    services: Services,
    visitor: str,
    experiment_key: str | None = None,
    force: str | None = None,
    user_agent: str | None = None,
    experiment_keys: Sequence[str] | None = None,
    record: bool = True,
) -> dict[str, Any]:
    """The variants a visitor sees, recording first exposures.

    ``experiment_keys`` (the snippet's one request for a page) names several
    experiments; keys that name no experiment are left out of the reply, so
    a page that outlives an experiment file keeps its other tests.
    ``record=False`` serves like a bot: the variants, and nothing stored.

    A returning visitor costs no write (and no query once this worker has
    seen them): their recorded variant wins over the hash (sticky, whatever
    weights or traffic say now). While the database is unavailable the page
    still gets its content: the hash's variant, ``enrolled`` false, and a
    top-level ``degraded`` sentence (present only then).
    """
    if experiment_key is None and force is not None:
        raise AbconvError("bad_request", "force needs experiment: force=VARIANT&experiment=KEY")
    if experiment_keys is not None:
        if experiment_key is not None:
            raise AbconvError("bad_request", "give experiment or experiments, not both")
        known = (services.experiments.get(key) for key in experiment_keys)
        experiments = [e for e in known if e is not None]
    elif experiment_key is None:
        experiments = services.experiments.running()
    else:
        experiments = [services.experiment(experiment_key)]
    if force is not None and experiments[0].variant(require_variant_key(force, "force")) is None:
        raise AbconvError(
            "unknown_variant", f"experiment {experiments[0].key!r} has no variant {force!r}"
        )
    bot = is_bot(user_agent) or not record
    decisions = {
        e.key: assign(e, visitor, force=force, bot=bot, layer=_layer(services, e))
        for e in experiments
    }
    try:
        decisions = _one_experiment_per_layer(services, visitor, experiments, decisions)
        enrolled, dropped = _enrol(services, visitor, experiments, decisions)
    except UNAVAILABLE as error:
        logger.warning("assignment without the database, nothing recorded: %s", error)
        return {
            "visitor": visitor,
            "assignments": [
                _assignment_json(e, decisions[e.key].variant, False) for e in experiments
            ],
            "degraded": DEGRADED,
        }
    count_excluded(services, decisions, enrolled)
    return {
        "visitor": visitor,
        "assignments": [
            _assignment_json(
                e,
                enrolled.get(e.key) or dropped.get(e.key) or decisions[e.key].variant,
                e.key in enrolled,
            )
            for e in experiments
        ],
    }


def _enrol(
    services: Services,
    visitor: str,
    experiments: Sequence[Experiment],
    decisions: dict[str, Assignment],
) -> tuple[dict[str, Variant], dict[str, Variant]]:
    """Stored or newly recorded variants of the experiments the visitor is in,
    new ones in the experiment's current phase; and, apart, what a visitor
    whose stored variant the file dropped sees instead (not enrolled: they
    count in the phase they were first exposed in, never in a later one)."""
    store = services.store
    candidates = [
        e.key
        for e in experiments
        if decisions[e.key].reason in (Reason.ASSIGNED, Reason.EXCLUDED, Reason.LAYER)
    ]
    if not candidates:
        return {}, {}
    stored = store.known_exposures(visitor, candidates)
    if stored is None:
        # Insert first where that is cheaper: the insert keeps the stored rows
        # and answers with them. A candidate that is not recorded needs the read.
        inserting = store.inserts_first and all(decisions[key].record for key in candidates)
        stored = {} if inserting else store.exposures_of(visitor, candidates)
    to_record = {
        key: decisions[key].variant.key
        for key in candidates
        if key not in stored and decisions[key].record
    }
    by_key = {e.key: e for e in experiments}
    in_phase = {key: services.phases.of(by_key[key]) for key in to_record}
    variant_keys = {key: exposure.variant for key, exposure in stored.items()}
    recorded, new = store.record_exposures_counted(visitor, to_record, phases=in_phase)
    variant_keys.update(recorded)
    if new:
        services.exposures_recorded(new)
    enrolled, dropped = {}, {}
    for key, variant_key in variant_keys.items():
        variant = by_key[key].variant(variant_key)
        if variant is None:  # an arm dropped from the file
            dropped[key] = by_key[key].fallback_variant
        else:
            enrolled[key] = variant
    return enrolled, dropped


def _layer(services: Services, experiment: Experiment) -> Layer | None:
    """The layer ``experiment`` shares (README, "Layers"), if it is in one."""
    return None if experiment.layer is None else services.experiments.layer(experiment.layer)


def _one_experiment_per_layer(
    services: Services,
    visitor: str,
    experiments: Sequence[Experiment],
    decisions: dict[str, Assignment],
) -> dict[str, Assignment]:
    """``decisions``, where a visitor the hash would enrol in an experiment of a
    layer is kept out (the control, not recorded) when they have a stored
    exposure in another experiment of that layer: once enrolled in one, a
    visitor stays there whatever the shares say now (a slot inserted, a share
    resized). The hash alone already puts a visitor in at most one share.
    Costs one read when the hash would enrol the visitor in a layered
    experiment (the store's cache keeps no absences)."""
    layers = {
        e.key: services.experiments.layer(e.layer)
        for e in experiments
        if e.layer is not None and decisions[e.key].record
    }
    others = {key: [m for m in layer.members if m != key] for key, layer in layers.items()}
    wanted = sorted({member for members in others.values() for member in members})
    if not wanted:
        return decisions
    stored = services.store.exposures_of(visitor, wanted)
    kept_out = {
        e.key: outside_layer(e)
        for e in experiments
        if any(member in stored for member in others.get(e.key, ()))
    }
    return {**decisions, **kept_out}


def _assignment_json(experiment: Experiment, variant: Variant, enrolled: bool) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "experiment": experiment.key,
        "variant": variant.key,
        "kind": str(experiment.kind),
        "enrolled": enrolled,
    }
    for field in ("content", "url", "template"):
        if getattr(variant, field) is not None:
            reply[field] = getattr(variant, field)
    if experiment.engagement and enrolled:
        reply["engagement"] = True  # the snippet reports "engaged" for this page view
    return reply


def health(services: Services) -> tuple[bool, dict[str, str | int]]:
    """Whether the server can do its work, and which part cannot: the database
    (``unreachable``, or ``read_only`` for a SQLite file that cannot be
    written) or the experiments folder (``unreadable``)."""
    try:
        services.store.ping()
        database = "ok" if services.store.writable() else "read_only"
    except UNAVAILABLE as error:
        logger.warning("health check: database unreachable: %s", error)
        database = "unreachable"
    experiments = "ok" if services.experiments.directory.is_dir() else "unreadable"
    ok = database == experiments == "ok"
    return ok, {
        "status": "ok" if ok else "unavailable",
        "database": database,
        "experiments": experiments,
        "experiments_loaded": len(services.experiments.all()),
    }


def convert_visitor(services: Services, event: EventInput) -> dict[str, Any]:
    """Record a conversion for every running experiment the visitor was exposed to
    before it and that counts this goal. A visitor's repeated ``event_id`` changes
    nothing; another visitor's use of the same id is another event."""
    candidates = _experiments_counting(services, event)
    exposures = services.store.exposures_of(event.visitor, [e.key for e in candidates])
    rows = _credited(
        event, candidates, {(event.visitor, key): e for key, e in exposures.items()}, utcnow()
    )
    earlier, inserted = services.store.convert(event.visitor, event.event_id, rows)
    if earlier:
        return _conversion_reply(event, earlier, duplicate=True)
    recorded = [row for row, new in zip(rows, inserted, strict=True) if new]
    return _conversion_reply(event, recorded, duplicate=bool(rows) and not recorded)


def _experiments_counting(
    services: Services,
    event: EventInput,
    field: str = "value",
    known: dict[tuple[str | None, str], tuple[list[Experiment], list[Experiment]]] | None = None,
) -> list[Experiment]:
    """Running experiments that count ``event.goal``; the goal must exist somewhere,
    and the value suit it (judged by the running ones, or all when none runs).
    ``known``: the experiments found for earlier events of a batch, by
    (experiment, goal), reused rather than looked for again."""
    key = (event.experiment, event.goal)
    found = None if known is None else known.get(key)
    if found is None:
        if event.experiment is not None:
            pool = [services.experiment(event.experiment)]
        else:
            pool = list(services.experiments.all().values())
        defining = [e for e in pool if e.goal(event.goal)]
        if not defining:
            where = f"experiment {event.experiment!r}" if event.experiment else "any experiment"
            raise AbconvError("unknown_goal", f"goal {event.goal!r} is not defined in {where}")
        found = (defining, [e for e in defining if e.status is Status.RUNNING])
        if known is not None:
            known[key] = found
    defining, counting = found
    check_goal_value(event, counting or defining, field)
    return counting


def _credited(
    event: EventInput,
    candidates: Sequence[Experiment],
    exposures: dict[tuple[str, str], StoredExposure],
    now: datetime,
) -> list[NewConversion]:
    """Conversion rows for the candidates the visitor was exposed to before the event.

    ``exposures`` is keyed by (visitor, experiment)."""
    at = event.time or now
    rows = []
    for experiment in candidates:
        exposure = exposures.get((event.visitor, experiment.key))
        goal = experiment.goal(event.goal)
        if exposure is None or exposure.created_at > at or goal is None:
            continue
        rows.append(
            NewConversion(
                experiment=experiment.key,
                variant=exposure.variant,
                visitor=event.visitor,
                goal=goal.key,
                kind=str(goal.kind),
                value=event.value if goal.value else None,
                event_id=event.event_id,
                created_at=at,
                phase=exposure.phase,
            )
        )
    return rows


def _conversion_reply(
    event: EventInput, rows: Sequence[NewConversion], *, duplicate: bool
) -> dict[str, Any]:
    return {
        "visitor": event.visitor,
        "goal": event.goal,
        "event_id": event.event_id,
        "duplicate": duplicate,
        "recorded": [
            {
                "experiment": row.experiment,
                "variant": row.variant,
                "kind": row.kind,
                "value": row.value,
            }
            for row in rows
        ],
    }


MAX_BATCH = 1000


def ingest_events(services: Services, body: Any) -> dict[str, Any]:
    """Record a batch of exposures and conversions, all or nothing.

    Every event is checked first; one bad event rejects the batch with a
    line per problem, and nothing is stored. Exposures are stored before
    conversions, so a batch may carry a visitor's exposure and their later
    conversion together.
    """
    events = require_object(body).get("events")
    if not isinstance(events, list) or not events:
        raise AbconvError("bad_request", "events must be a non-empty list")
    if len(events) > MAX_BATCH:
        raise AbconvError(
            "too_many_events", f"at most {MAX_BATCH} events a batch, got {len(events)}"
        )
    exposures: list[dict[str, Any]] = []
    conversions: list[tuple[EventInput, list[Experiment]]] = []  # with the experiments counting it
    problems: list[str] = []
    known: dict[tuple[str | None, str], tuple[list[Experiment], list[Experiment]]] = {}
    for index, event in enumerate(events):
        try:
            _parse_event(services, event, f"events[{index}].", exposures, conversions, known)
        except AbconvError as error:
            problems.append(error.message)
    if problems:
        raise AbconvError(
            "invalid_events",
            f"{len(problems)} of {len(events)} events are invalid; nothing was recorded: "
            + problems[0],
            details=problems,
        )
    now = utcnow()

    def credit(stored: dict[tuple[str, str], StoredExposure]) -> list[NewConversion]:
        return [
            row for c, candidates in conversions for row in _credited(c, candidates, stored, now)
        ]

    new_exposures, rows, inserted = services.store.ingest(
        exposures, {c.visitor for c, _ in conversions}, credit
    )
    new_conversions = sum(inserted)
    return {
        "exposures": {"received": len(exposures), "recorded": new_exposures},
        "conversions": {
            "received": len(conversions),
            "recorded": new_conversions,
            "duplicates": len(rows) - new_conversions,
        },
    }


def _parse_event(
    services: Services,
    event: Any,
    prefix: str,
    exposures: list[dict[str, Any]],
    conversions: list[tuple[EventInput, list[Experiment]]],
    known: dict[tuple[str | None, str], tuple[list[Experiment], list[Experiment]]],
) -> None:
    require_object(event, prefix.rstrip("."))
    kind = event.get("type")
    if kind == "conversion":
        conversion = conversion_input(event, prefix)
        # Also checks the goal and the value; kept so that storing need not look again.
        counting = _experiments_counting(services, conversion, prefix + "value", known)
        conversions.append((conversion, counting))
    elif kind == "exposure":
        exposures.extend(_exposure_row(services, event, prefix))
    else:
        raise AbconvError("bad_request", f'{prefix}type must be "exposure" or "conversion"')


def _exposure_row(services: Services, event: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """The exposure row of a batch event; none for a visitor outside ``traffic``."""
    visitor = require_visitor(event.get("visitor"), prefix + "visitor")
    experiment = services.experiment(event.get("experiment"), prefix + "experiment")
    if experiment.status is not Status.RUNNING:
        raise AbconvError(
            "not_running",
            f"{prefix}experiment {experiment.key!r} is {experiment.status}; "
            "exposures are recorded only while it runs",
        )
    at = optional_time(event.get("time"), prefix + "time") or utcnow()
    if event.get("variant") is None:
        decision = assign(experiment, visitor, layer=_layer(services, experiment))
        if not decision.record:
            return []
        variant = decision.variant.key
    else:
        variant = require_variant_key(event.get("variant"), prefix + "variant")
        if experiment.variant(variant) is None:
            raise AbconvError(
                "unknown_variant",
                f"{prefix}variant: experiment {experiment.key!r} has no {variant!r}",
            )
    return [
        {"experiment": experiment.key, "visitor": visitor, "variant": variant, "created_at": at,
         "phase": services.phases.of(experiment)}
    ]  # fmt: skip


def results_phase(
    services: Services, experiment: Experiment, asked: str | None
) -> tuple[StoredPhase, list[StoredPhase]]:
    """The phase whose results to show, ``asked`` (``?phase=N``) or the current
    one, and all the experiment's phases. A running experiment's current
    phase is made now if it has none yet; one that never ran has phase 1."""
    if experiment.status is Status.RUNNING:
        services.phases.of(experiment)
    stored = services.store.phases_of(experiment.key) or [
        StoredPhase(1, utcnow(), phases.definition(experiment))
    ]
    if asked is None:
        return stored[-1], stored
    chosen = next((p for p in stored if asked.isdigit() and str(p.number) == asked), None)
    if chosen is None:
        numbers = ", ".join(str(p.number) for p in stored)
        raise AbconvError(
            "unknown_phase",
            f"phase: experiment {experiment.key!r} has no phase {asked[:20]!r} (it has {numbers})",
            404,
        )
    return chosen, stored


def count_excluded(
    services: Services, decisions: dict[str, Assignment], enrolled: dict[str, Variant]
) -> None:
    """Count the experiments of an assignment that served without recording
    (README, "Excluded requests"): one write, none when all were recorded.

    Never fails the request: a counter the database cannot take (down,
    read-only, hanging) is logged and lost."""
    reasons = {
        key: REASON_NAMES[decision.reason]
        for key, decision in decisions.items()
        if key not in enrolled and decision.reason in REASON_NAMES
    }
    if not reasons:
        return
    try:
        services.store.count_excluded(reasons, utcnow().date())
    except Exception as error:  # whatever it is, the visitor still gets their page
        logger.warning("excluded requests not counted (%s): %s", reasons, error)

"""The writes of PostgreSQL's hot path (:mod:`abconv.store.postgres`): what
:class:`~abconv.store.events.Events` groups into one transaction.

Each function takes a :class:`~abconv.store.postgres.Pipeline` (its statements are
sent together until one needs an answer) and several requests' payloads,
and answers each. Rows go in key order, so that two workers' transactions
lock them in one order; rollups are what
:func:`~abconv.store.rollups.conversion_changes` computes, as on every path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from abconv.store.postgres import (
    INSERT_CONVERSIONS,
    INSERT_EXPOSURES,
    INSERT_EXPOSURES_SEEN,
    LOCK_VISITORS,
    SELECT_EXPOSURES_OF_MANY,
    SELECT_STATES,
    UPSERT_ROLLUPS,
    Pipeline,
    as_json,
)
from abconv.store.rollups import VisitorGoal, conversion_changes
from abconv.store.tables import (
    NewConversion,
    StoredExposure,
    first_of_each_event,
    joined,
    split,
)

Converted = tuple[
    list[NewConversion], bool
]  # a request's rows, and whether its event id is checked
Batch = tuple[
    list[dict[str, Any]],
    list[str],
    Callable[[dict[tuple[str, str], StoredExposure]], list[NewConversion]],
]
Ingested = tuple[int, list[NewConversion], list[bool]]


def exposures_written(pipeline: Pipeline, payloads: list[list[dict[str, Any]]]) -> list[int]:
    """Several requests' exposures and their rollup in one statement; how many
    of each request's rows were new (a row two requests share counts for the first)."""
    first, sent = _first_in_key_order(payloads)
    counts = [0] * len(payloads)
    for visitor, experiment in pipeline.rows(pipeline.send(INSERT_EXPOSURES, as_json(sent))):
        counts[first[(experiment, visitor)]] += 1
    return counts


def exposures_recorded(
    pipeline: Pipeline, payloads: list[list[dict[str, Any]]]
) -> list[tuple[int, list[StoredExposure]]]:
    """:func:`exposures_written` for requests of one visitor each, with the
    exposures each visitor had before (the statement's snapshot): a visitor
    whose exposure was stored already costs no read to learn it."""
    first, sent = _first_in_key_order(payloads)
    counts = [0] * len(payloads)
    before: dict[str, list[StoredExposure]] = {}
    found = pipeline.rows(pipeline.send(INSERT_EXPOSURES_SEEN, as_json(sent)))
    for new, visitor, experiment, variant, at, phase in found:
        if new:
            counts[first[(experiment, visitor)]] += 1
        else:
            before.setdefault(visitor, []).append(StoredExposure(experiment, variant, at, phase))
    return [
        (count, before.get(rows[0]["visitor"], []) if rows else [])
        for count, rows in zip(counts, payloads, strict=True)
    ]


def _first_in_key_order(
    payloads: list[list[dict[str, Any]]],
) -> tuple[dict[tuple[str, str], int], list[dict[str, Any]]]:
    """The payload each (experiment, visitor) is first asked by, and the rows to
    send: one per (experiment, visitor), the first asked, in key order, so that
    two workers lock them in one order."""
    first: dict[tuple[str, str], int] = {}
    for number, rows in enumerate(payloads):
        for row in rows:
            first.setdefault((row["experiment"], row["visitor"]), number)
    sent = sorted(
        (row for number, rows in enumerate(payloads) for row in rows
         if first[(row["experiment"], row["visitor"])] == number),
        key=lambda row: (row["experiment"], row["visitor"]),
    )  # fmt: skip
    return first, sent


def converted(
    pipeline: Pipeline, payloads: list[Converted]
) -> list[tuple[list[NewConversion], list[bool]]]:
    """:meth:`~abconv.store.events.Events.convert` for several requests in one
    transaction: a request whose (visitor, event_id) has rows already gets
    them back, and writes nothing."""
    events = sorted({(rows[0].visitor, rows[0].event_id) for rows, checked in payloads if checked})
    batch = [rows for rows, _ in payloads]
    earlier, new = in_key_order(pipeline, batch, events)
    answers = []
    for (rows, checked), flags in zip(payloads, new, strict=True):
        found = earlier.get((rows[0].visitor, rows[0].event_id), []) if checked else []
        answers.append((found, flags))
    return answers


def conversions_written(
    pipeline: Pipeline, payloads: list[list[NewConversion]]
) -> list[list[bool]]:
    """Several requests' conversions as one batch, inside a shared transaction."""
    return in_key_order(pipeline, payloads, [])[1]


def in_key_order(
    pipeline: Pipeline,
    payloads: list[list[NewConversion]],
    events: list[tuple[str, str | None]],
) -> tuple[dict[tuple[str, str | None], list[NewConversion]], list[list[bool]]]:
    """:func:`insert_conversions` of all ``payloads``' rows, in key
    order (stable: the first of two alike stays first), so that two workers'
    transactions holding one event each wait in one order."""
    rows = joined(payloads)
    order = sorted(
        range(len(rows)),
        key=lambda i: (rows[i].visitor, rows[i].event_id or "", rows[i].experiment),
    )
    earlier, stored = insert_conversions(pipeline, [rows[i] for i in order], events)
    new = [False] * len(rows)
    for position, i in enumerate(order):
        new[i] = stored[position]
    return earlier, split(new, payloads)


def insert_conversions(
    pipeline: Pipeline,
    rows: Sequence[NewConversion],
    events: Sequence[tuple[str, str | None]] = (),
) -> tuple[dict[tuple[str, str | None], list[NewConversion]], list[bool]]:
    """Insert conversions and their rollups inside the caller's transaction;
    True where a row was new. With ``events`` ((visitor, event_id) pairs), also
    the rows those events stored earlier, and none of their ``rows`` is written.

    One round trip for the look-up, the insert, the caps, the lock on the
    visitors' exposure rows and the read of their states (after the lock);
    the upserts go with the caller's commit. As row by row, the first of the
    rows with one (visitor, event_id, experiment) is the one that counts."""
    first = first_of_each_event(rows)
    sent = [row.__dict__ for row, is_first in zip(rows, first, strict=True) if is_first]
    pairs = as_json(sorted({(row.experiment, row.visitor) for row in rows}))
    inserted = pipeline.send(
        INSERT_CONVERSIONS,
        as_json(events),
        as_json(sent),
        as_json(sorted({row.experiment for row in rows})),
    )
    pipeline.send(LOCK_VISITORS, pairs)
    states = pipeline.send(SELECT_STATES, pairs)
    earlier: dict[tuple[str, str | None], list[NewConversion]] = {}
    stored: set[tuple[str, str | None, str]] = set()
    caps: dict[tuple[str, str], float] = {}
    for part, experiment, variant, visitor, goal, kind, value, event_id, at, phase in pipeline.rows(
        inserted
    ):
        if part == 0:
            earlier.setdefault((visitor, event_id), []).append(
                NewConversion(experiment, variant, visitor, goal, kind, value, event_id, at, phase)
            )
        elif part == 1:
            stored.add((visitor, event_id, experiment))
        else:
            caps[(experiment, goal)] = value
    new = [
        is_first and (row.event_id is None or (row.visitor, row.event_id, row.experiment) in stored)
        for row, is_first in zip(rows, first, strict=True)
    ]
    added = [row for row, is_new in zip(rows, new, strict=True) if is_new]
    if added:
        known = {
            (experiment, visitor, goal): VisitorGoal(goal, *state)
            for experiment, visitor, goal, *state in pipeline.rows(states)
        }
        changed = dict(conversion_changes(added, known, caps))
        pipeline.send(UPSERT_ROLLUPS, as_json(changed))
    return earlier, new


def ingested(pipeline: Pipeline, batches: list[Batch]) -> list[Ingested]:
    """:meth:`~abconv.store.events.Events.ingest` on PostgreSQL's hot path, three
    round trips a batch: the exposures and the read of the visitors' exposures
    (which sees them: a later statement of the same transaction); the
    conversions and the reads for their rollups; the upserts with the commit."""
    done = []
    for exposures, visitors, credit in batches:
        first, sent = _first_in_key_order([exposures])
        inserted = pipeline.send(INSERT_EXPOSURES, as_json(sent)) if sent else None
        found = pipeline.send(SELECT_EXPOSURES_OF_MANY, as_json(sorted(set(visitors))))
        stored = {
            (visitor, experiment): StoredExposure(experiment, variant, at, phase)
            for visitor, experiment, variant, at, phase in pipeline.rows(found)
        }  # fmt: skip
        new_exposures = 0 if inserted is None else len(pipeline.rows(inserted))
        rows = credit(stored)
        new = insert_conversions(pipeline, rows)[1] if rows else []
        done.append((new_exposures, rows, new))
    return done

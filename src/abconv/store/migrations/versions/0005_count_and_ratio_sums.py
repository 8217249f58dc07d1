"""Count and ratio metrics: two more per-visitor sums in ``rollup_goal``.

``events_sum_squares`` (Σ of each visitor's event count, squared) and
``value_events_sum`` (Σ of each visitor's capped total times their event
count), filled for the rollups already kept from ``rollup_visitor_goal``
and the recorded caps: no scan of events.

A database from before rollups has nothing to fill here: 0006, which
changes the rollup tables last, builds them from the raw rows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_SUMS = ("events_sum_squares", "value_events_sum")

_FILL = """
UPDATE rollup_goal SET
  events_sum_squares = COALESCE((
    SELECT SUM(v.events * v.events) FROM rollup_visitor_goal v
    WHERE v.experiment = rollup_goal.experiment AND v.variant = rollup_goal.variant
      AND v.goal = rollup_goal.goal), 0),
  value_events_sum = COALESCE((
    SELECT SUM(CASE WHEN c.cap IS NOT NULL AND v.total > c.cap THEN c.cap ELSE v.total END
               * v.events)
    FROM rollup_visitor_goal v
    LEFT JOIN rollup_cap c ON c.experiment = v.experiment AND c.goal = v.goal
    WHERE v.experiment = rollup_goal.experiment AND v.variant = rollup_goal.variant
      AND v.goal = rollup_goal.goal), 0)
"""


def upgrade() -> None:
    with op.batch_alter_table("rollup_goal") as table:
        for name in _SUMS:
            table.add_column(sa.Column(name, sa.Float(), nullable=False, server_default="0"))
    op.execute(_FILL)
    with op.batch_alter_table("rollup_goal") as table:
        for name in _SUMS:
            table.alter_column(name, server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("rollup_goal") as table:
        for name in _SUMS:
            table.drop_column(name)

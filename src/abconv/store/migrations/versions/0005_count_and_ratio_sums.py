"""Count and ratio metrics: two more per-visitor sums in ``rollup_goal``.

``events_sum_squares`` (Σ of each visitor's event count, squared) and
``value_events_sum`` (Σ of each visitor's capped total times their event
count), filled for the rollups already kept from ``rollup_visitor_goal``
and the recorded caps: no scan of events.

The rebuild from raw rows that 0003 ran (for databases from before
rollups) runs here now, after the new columns exist, for the experiments
with exposures but no rollups: it writes the tables of the newest code, so a
later revision that changes them must move this call into itself.

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

_NOT_ROLLED_UP = """
SELECT DISTINCT e.experiment FROM exposure e
WHERE NOT EXISTS (SELECT 1 FROM rollup_exposure r WHERE r.experiment = e.experiment)
ORDER BY e.experiment
"""


def upgrade() -> None:
    with op.batch_alter_table("rollup_goal") as table:
        for name in _SUMS:
            table.add_column(sa.Column(name, sa.Float(), nullable=False, server_default="0"))
    op.execute(_FILL)
    with op.batch_alter_table("rollup_goal") as table:
        for name in _SUMS:
            table.alter_column(name, server_default=None)
    from abconv.store.rollup_rebuild import rebuild

    conn = op.get_bind()
    for (experiment,) in conn.execute(sa.text(_NOT_ROLLED_UP)).all():
        rebuild(conn, experiment)


def downgrade() -> None:
    with op.batch_alter_table("rollup_goal") as table:
        for name in _SUMS:
            table.drop_column(name)

"""Rollups: counters kept as events arrive, built here from the rows already stored.

Tables as in :mod:`abconv.store.tables` at this revision. They were filled
here by :func:`abconv.store.rollup_rebuild.rebuild` (no caps recorded: the
first read of an experiment whose goals have a cap applies them); that
function writes the tables of the newest code, so the call moved to 0005,
which changes them (an upgrade from before 0003 rebuilds there).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _key(*names: str) -> list[sa.Column[str]]:
    return [sa.Column(name, sa.String(64), primary_key=True) for name in names]


def upgrade() -> None:
    op.create_table(
        "rollup_exposure",
        *_key("experiment", "variant"),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("visitors", sa.Integer(), nullable=False),
    )
    op.create_table(
        "rollup_goal",
        *_key("experiment", "variant", "goal"),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("converting", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("value_sum", sa.Float(), nullable=False),
        sa.Column("value_sum_squares", sa.Float(), nullable=False),
        sa.Column("value_sum_cubes", sa.Float(), nullable=False),
        sa.Column("capped_visitors", sa.Integer(), nullable=False),
    )
    op.create_table(
        "rollup_goal_day",
        *_key("experiment", "variant", "goal"),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("converting", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
    )
    op.create_table(
        "rollup_pair",
        *_key("experiment", "variant", "first_goal", "then_goal"),
        sa.Column("both", sa.Integer(), nullable=False),
        sa.Column("then_after_first", sa.Integer(), nullable=False),
    )
    op.create_table(
        "rollup_visitor_goal",
        *_key("experiment"),
        sa.Column("visitor", sa.String(128), primary_key=True),
        *_key("goal"),
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("first_at", sa.DateTime(), nullable=False),
        sa.Column("last_at", sa.DateTime(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
    )
    op.create_table(
        "rollup_cap",
        *_key("experiment", "goal"),
        sa.Column("cap", sa.Float(), nullable=False),
    )
    # Filled from the rows stored by 0005, once the tables are those of the code.


def downgrade() -> None:
    for table in (
        "rollup_cap", "rollup_visitor_goal", "rollup_pair", "rollup_goal_day", "rollup_goal",
        "rollup_exposure",
    ):  # fmt: skip
        op.drop_table(table)

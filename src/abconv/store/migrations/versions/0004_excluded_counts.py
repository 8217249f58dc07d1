"""Excluded requests: a counter per experiment, reason and UTC day.

Requests served without being recorded (bots, ``force``, an experiment not
running, outside ``traffic``, another experiment of the layer, concluded)
are counted here (:mod:`abconv.store.excluded`). Nothing existing changes;
the table starts empty, since nothing before this revision counted them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "excluded_count",
        sa.Column("experiment", sa.String(64), primary_key=True),
        sa.Column("reason", sa.String(64), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("requests", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("excluded_count")

"""Baseline: the tables as the releases before migrations created them.

A database made by such a release (tables, no ``alembic_version``) is
stamped at this revision and upgraded from here; see
:func:`abconv.store.schema.upgrade`.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exposure",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("experiment", sa.String(64), nullable=False),
        sa.Column("visitor", sa.String(128), nullable=False),
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("visitor", "experiment", name="uq_exposure"),
    )
    op.create_table(
        "conversion",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("experiment", sa.String(64), nullable=False),
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("visitor", sa.String(128), nullable=False),
        sa.Column("goal", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("event_id", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("event_id", "experiment", name="uq_conversion_event"),
    )
    op.create_index("ix_conversion_experiment", "conversion", ["experiment"])


def downgrade() -> None:
    op.drop_index("ix_conversion_experiment", table_name="conversion")
    op.drop_table("conversion")
    op.drop_table("exposure")

"""Event ids per visitor: unique (visitor, event_id, experiment).

Before, an event id was unique per experiment across all visitors, so one
visitor could see another's conversions by reusing their id. On SQLite the
batch rebuilds the table (rows and ids kept); PostgreSQL alters it in place.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversion") as batch:
        batch.drop_constraint("uq_conversion_event", type_="unique")
        batch.create_unique_constraint(
            "uq_conversion_visitor_event", ["visitor", "event_id", "experiment"]
        )


def downgrade() -> None:
    """Fails when two visitors have used the same event id since the upgrade."""
    with op.batch_alter_table("conversion") as batch:
        batch.drop_constraint("uq_conversion_visitor_event", type_="unique")
        batch.create_unique_constraint("uq_conversion_event", ["event_id", "experiment"])

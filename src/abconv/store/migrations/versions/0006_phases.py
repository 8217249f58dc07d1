"""Phases: a ``phase`` table, the phase of each exposure and conversion, and
rollups kept per phase (README, "Phases").

Every experiment with exposures gets phase 1, starting at its first
exposure, its definition unknown (NULL) until the first server that serves
the experiment fills it in from the file; every stored exposure and
conversion is in phase 1. The rollups gain ``phase`` in their key and are
rebuilt from the events here (the rebuild of 0003 moved to this revision:
it writes the tables of the newest code).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Each rollup's primary key with phase (dropped by the downgrade).
KEYS = {
    "rollup_exposure": ["experiment", "variant", "phase", "day"],
    "rollup_goal": ["experiment", "variant", "goal", "phase"],
    "rollup_goal_day": ["experiment", "variant", "goal", "phase", "day"],
    "rollup_pair": ["experiment", "variant", "first_goal", "then_goal", "phase"],
}


def _phase_column(primary_key: bool) -> sa.Column[int]:
    return sa.Column(
        "phase", sa.Integer(), nullable=False, server_default="1", primary_key=primary_key
    )


def upgrade() -> None:
    op.create_table(
        "phase",
        sa.Column("experiment", sa.String(64), primary_key=True),
        sa.Column("number", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("definition", sa.Text(), nullable=True),
    )
    op.execute(
        "INSERT INTO phase (experiment, number, started_at, definition) "
        "SELECT experiment, 1, MIN(created_at), NULL FROM exposure GROUP BY experiment"
    )
    for table in ("exposure", "conversion"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(_phase_column(False))
    for table, key in KEYS.items():
        _rekey(table, key)
    with op.batch_alter_table("rollup_visitor_goal") as batch:
        batch.add_column(_phase_column(False))
    from abconv.store.rollup_rebuild import rebuild

    rebuild(op.get_bind())


def _rekey(table: str, key: list[str]) -> None:
    """Create ``table`` anew, empty (the rebuild fills it), with primary key ``key``:
    its other columns as they are, ``phase`` added when ``key`` has it, else dropped."""
    old = sa.Table(table, sa.MetaData(), autoload_with=op.get_bind())
    columns = [
        sa.Column(
            column.name,
            column.type,
            nullable=column.nullable,
            primary_key=column.name in key,
            autoincrement=False,
            server_default=_default(column),
        )
        for column in old.columns
        if column.name != "phase"
    ]
    if "phase" in key:
        position = key.index("phase")
        after = columns.index(next(c for c in columns if c.name == key[position - 1]))
        columns.insert(after + 1, sa.Column("phase", sa.Integer(), primary_key=True,
                                            autoincrement=False))  # fmt: skip
    op.drop_table(table)
    op.create_table(table, *columns)


def _default(column: sa.Column[object]) -> sa.TextClause | None:
    """A reflected column's server default, for a new column (a later revision's
    column added with one keeps it)."""
    default = column.server_default
    if isinstance(default, sa.DefaultClause):
        return sa.text(str(getattr(default.arg, "text", default.arg)))
    return None


def downgrade() -> None:
    with op.batch_alter_table("rollup_visitor_goal") as batch:
        batch.drop_column("phase")
    for table, key in KEYS.items():
        _rekey(table, [name for name in key if name != "phase"])
    for table in ("conversion", "exposure"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("phase")
    op.drop_table("phase")

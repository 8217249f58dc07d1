"""Schema migrations: the Alembic revisions of ``migrations/``, run on a given connection.

The caller (:meth:`abconv.store.Store.upgrade_schema`) holds the migration
lock and the transaction; everything here runs inside it, so a migration
interrupted half-way leaves the schema as it was (both SQLite and PostgreSQL
have transactional DDL).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).parent / "migrations"
# The revision that describes the tables of the releases before migrations.
BASELINE = "0001"
_OLD_TABLES = {"exposure", "conversion"}


@dataclass(frozen=True)
class Upgrade:
    """What :func:`upgrade` did: ``before`` is None for an empty database."""

    before: str | None
    after: str
    stamped: bool  # made by a release before migrations, stamped at the baseline


def head() -> str:
    """The newest revision shipped with this version."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None, "no migration in the package"  # a packaging error
    return revision


def current(connection: Connection) -> str | None:
    """The database's revision; None when it has none (empty, or made before migrations)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection) -> Upgrade:
    """Bring the schema to :func:`head` inside the caller's transaction.

    A database created by a release before migrations has the tables but no
    ``alembic_version``: it is stamped at :data:`BASELINE` first, so its rows
    are kept and only the later revisions run.
    """
    config = _config(connection)
    before = current(connection)
    stamped = before is None and _OLD_TABLES <= set(sa.inspect(connection).get_table_names())
    if stamped:
        command.stamp(config, BASELINE)
        before = BASELINE
    command.upgrade(config, "head")
    after = current(connection)
    assert after is not None, "alembic left no revision"
    return Upgrade(before=before, after=after, stamped=stamped)


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config

"""Alembic's entry point: run the revisions on the connection abconv hands over.

:mod:`abconv.store.schema` passes an open connection (inside the
transaction that holds the migration lock) as ``config.attributes
["connection"]``. Without one, as when a developer runs ``alembic`` with the
checkout's ``alembic.ini``, the URL of the configuration is used.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import abconv.store.tables  # noqa: F401 - the tables, for --autogenerate
from abconv.store.connections import normalise_url

config = context.config


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():  # alembic upgrade --sql: print the statements
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=SQLModel.metadata,
        render_as_batch=True,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
elif (given := config.attributes.get("connection")) is not None:
    run_on(given)
else:
    engine = sa.create_engine(normalise_url(config.get_main_option("sqlalchemy.url") or ""))
    with engine.connect() as own:
        run_on(own)
    engine.dispose()

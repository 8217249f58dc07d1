"""Alembic revisions of the store's schema; run by :mod:`abconv.store.schema`.

Each revision names its constraints and indexes explicitly and alters
tables in batch mode, so the same file runs on SQLite (which rebuilds the
table) and PostgreSQL (which alters it in place).
"""

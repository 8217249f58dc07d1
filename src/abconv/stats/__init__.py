"""Pure statistics: numpy and scipy only, no Flask and no database.

A test imports this package in a fresh interpreter and fails if flask,
sqlmodel or sqlalchemy appear in ``sys.modules``.
"""

from abconv.stats.analysis import analyze

__all__ = ["analyze"]

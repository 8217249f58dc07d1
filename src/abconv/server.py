"""``abconv serve``: gunicorn running the app factory with sensible defaults."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Each worker builds its own app (no preload): engines, pools and the
        # SQLite writer lock must never be shared across a fork.
        from abconv import create_app

        return create_app()


def run_gunicorn(bind: str, workers: int) -> None:
    _Gunicorn(
        {
            "bind": bind,
            "workers": workers,
            "worker_class": "sync",
            "timeout": 30,
            "graceful_timeout": 10,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "info",
            "proc_name": "abconv",
        }
    ).run()

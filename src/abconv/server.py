"""``abconv serve``: gunicorn running the app factory with sensible defaults."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
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
            **prometheus_multiprocess(),
        }
    ).run()


def prometheus_multiprocess() -> dict[str, Any]:
    """gunicorn settings that make ``/metrics`` add up every worker's counts.

    Names a fresh folder in ``PROMETHEUS_MULTIPROC_DIR`` before any worker
    starts: prometheus_client reads the variable once, when first imported
    (in a worker: the master never imports it), and each worker then keeps
    its counts in files there. A worker that exits is marked dead. The
    folder goes when this process exits, even when gunicorn could not bind
    (only a SIGKILL leaves it behind, never to be read again: each start has
    its own); forked workers inherit the exit hook, so it checks who exits.
    """
    folder = tempfile.mkdtemp(prefix="abconv-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    master = os.getpid()

    def remove_folder() -> None:
        if os.getpid() == master:
            shutil.rmtree(folder, ignore_errors=True)

    atexit.register(remove_folder)

    def child_exit(server: Any, worker: Any) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, folder)  # type: ignore[no-untyped-call]

    return {"child_exit": child_exit}

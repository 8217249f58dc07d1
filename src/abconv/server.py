"""``abconv serve``: gunicorn running the app factory, set up to face the internet.

The options gunicorn receives are made in one place, :func:`gunicorn_options`;
gunicorn's hooks are the named functions after it. README "Deployment" says
why each value.
"""

from __future__ import annotations

import atexit
import ctypes
import errno
import gc
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from typing import Any

from gunicorn.app.base import BaseApplication

# After a crash the old workers may still hold the port for a moment.
PORT_WAIT_SECONDS = 15.0
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def gunicorn_options(bind: str, workers: int, threads: int) -> dict[str, Any]:
    """gunicorn's settings for ``abconv serve``."""
    return {
        "bind": bind,
        "workers": workers,
        # gthread with a read timeout and JSON refusals (see gunicorn_worker):
        # a client that stalls mid-request holds one thread, not a process.
        "worker_class": "abconv.gunicorn_worker.AbconvWorker",
        "threads": threads,
        "keepalive": 5,  # seconds an idle connection stays open, without a thread
        "timeout": 30,  # a worker whose main loop is silent this long is restarted
        "graceful_timeout": 10,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "abconv",
        "control_socket_disable": True,  # one per host by default; abconv needs none
        "post_fork": post_fork,
        "post_worker_init": freeze_startup_objects,
    }


def post_fork(server: Any, worker: Any) -> None:
    """A worker dies with its master: after a ``kill -9`` of the master, the
    orphaned workers would otherwise keep the port until they notice and
    finish their requests (15 s was seen), and a restarted server could not
    bind it."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            server.log.warning("prctl: %s", os.strerror(ctypes.get_errno()))
    if os.getppid() != worker.ppid:  # the master died before prctl took effect
        os._exit(1)


def freeze_startup_objects(worker: Any) -> None:
    """Keep what the worker built at startup (modules, the app, its engines) out
    of the garbage collector's full collections, which every request of the
    worker waits through: they took 80-140 ms each, the slowest 1 % of requests
    under load. Start-up's garbage is collected first: frozen, it would never be."""
    gc.collect()
    gc.freeze()


class AbconvGunicorn(BaseApplication):  # type: ignore[misc]
    """gunicorn with options from a dict and the app from ``create_app``."""

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


def run_gunicorn(host: str, port: int, workers: int, threads: int) -> None:
    wait_for_port(host, port)
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    AbconvGunicorn({**gunicorn_options(bind, workers, threads), **prometheus_multiprocess()}).run()


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


def wait_for_port(host: str, port: int, seconds: float = PORT_WAIT_SECONDS) -> None:
    """Wait until ``host:port`` can be bound, for at most ``seconds``.

    Workers of a server that just crashed may still be closing the port;
    gunicorn itself retries for 5 s only. Any other problem, or a port still
    taken at the end, is left for gunicorn to report.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError:
        return
    deadline = time.monotonic() + seconds
    waiting = False
    while True:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn
                probe.bind(address)
            return
        except OSError as error:
            if error.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                return
        if not waiting:
            print(f"abconv: {host}:{port} in use; waiting up to {seconds:.0f} s", file=sys.stderr)
            waiting = True
        time.sleep(0.2)

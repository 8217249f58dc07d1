"""gunicorn settings for the benchmarks: those of ``abconv serve``, the
metrics in prometheus_client's multiprocess mode included
(``BENCH_WORKER=abconv``, the default; ``BENCH_WORKERS`` processes, 2 unless
set, of ``BENCH_THREADS`` threads, 8 unless set) or the former 2 sync
workers (``BENCH_WORKER=sync``); used as ``gunicorn -c python:gunicorn_settings``."""

import os

from abconv.server import gunicorn_options, prometheus_multiprocess

_threads = int(os.environ.get("BENCH_THREADS", "8"))
_workers = int(os.environ.get("BENCH_WORKERS", "2"))
_options = gunicorn_options("127.0.0.1:8000", workers=_workers, threads=_threads)
_options.update(prometheus_multiprocess())  # the metrics as abconv serve keeps them
del _options["bind"]  # the benchmark passes -b
if os.environ.get("BENCH_WORKER") == "sync":
    _options.update(worker_class="sync", threads=1)
globals().update(_options)

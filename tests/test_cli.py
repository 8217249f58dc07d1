"""The abconv command: check, simulate, serve."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from abconv import server
from abconv.cli import cli
from abconv.gunicorn_worker import AbconvWorker
from abconv.store import CONVERSION, Store
from tests.conftest import write_experiment
from tests.test_concurrency import ROOT
from tests.test_server import ASSIGN


def test_check_passes_the_examples() -> None:
    result = CliRunner().invoke(cli, ["check", str(ROOT / "experiments")])
    assert result.exit_code == 0, result.output
    assert "3 experiment file(s)" in result.output


def test_check_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    write_experiment(tmp_path, "good")
    write_experiment(tmp_path, "weights", weight_guide=0)
    (tmp_path / "broken.toml").write_text('key = "broken"\nname = [\n')
    result = CliRunner().invoke(cli, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'weights.toml'}:" in result.output and "weight" in result.output
    assert f"{tmp_path / 'broken.toml'}:" in result.output
    assert "good.toml" not in result.output


def test_check_reads_the_folder_from_the_environment(tmp_path: Path) -> None:
    write_experiment(tmp_path, "weights", weight_guide=-1)
    result = CliRunner().invoke(cli, ["check"], env={"ABCONV_EXPERIMENTS_DIR": str(tmp_path)})
    assert result.exit_code == 1 and "weights.toml" in result.output


def test_check_of_a_missing_folder_fails(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["check", str(tmp_path / "nope")])
    assert result.exit_code == 1


def test_simulate_stores_traffic_through_the_api(tmp_path: Path, experiments_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sim.sqlite3'}"
    env = {"ABCONV_DATABASE_URL": url, "ABCONV_EXPERIMENTS_DIR": str(experiments_dir)}
    args = ["simulate", "shop", "--visitors", "400", "--seed", "3", "--base-rate", "0.1"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert "Simulated 400 visitors of 'shop'" in result.output
    store = Store(url)
    try:
        assert store.count_rows("exposure", "shop") == 400
        first = store.count_rows("conversion", "shop")
        assert first > 0
        # Soft conversions raise the chance of a hard one, as in a real funnel.
        with store.engine.connect() as conn:
            goals = conn.execute(sa.select(CONVERSION.c.visitor, CONVERSION.c.goal)).all()
        soft = {visitor for visitor, goal in goals if goal == "newsletter"}
        hard = {visitor for visitor, goal in goals if goal == "purchase"}
        assert len(hard & soft) / len(soft) > 2 * len(hard - soft) / (400 - len(soft))
        rerun = CliRunner().invoke(cli, args, env=env)
        assert rerun.exit_code == 0
        assert store.count_rows("conversion", "shop") == first  # same seed: nothing doubled
    finally:
        store.dispose()


def test_simulate_an_unknown_experiment_fails_clearly(
    tmp_path: Path, experiments_dir: Path
) -> None:
    env = {"ABCONV_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}",
           "ABCONV_EXPERIMENTS_DIR": str(experiments_dir)}  # fmt: skip
    result = CliRunner().invoke(cli, ["simulate", "nope"], env=env)
    assert result.exit_code == 1 and "no experiment 'nope'" in result.output


def test_serve_gives_gunicorn_the_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(server, "wait_for_port", lambda host, port: seen.update(port=(host, port)))
    monkeypatch.setattr(server.AbconvGunicorn, "run", lambda self: seen.update(cfg=self.cfg))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # serve sets it; restored afterwards
    env = {"ABCONV_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}",
           "ABCONV_INSTANCE_DIR": str(tmp_path / "instance")}  # fmt: skip
    result = CliRunner().invoke(cli, ["serve"], env=env)
    assert result.exit_code == 0, result.output
    cfg = seen["cfg"]  # what gunicorn itself holds, after its own validation
    assert seen["port"] == ("127.0.0.1", 8000)
    assert cfg.bind == ["127.0.0.1:8000"]
    assert (cfg.workers, cfg.threads) == (2, 8)
    assert cfg.worker_class_str == "abconv.gunicorn_worker.AbconvWorker"
    assert cfg.worker_class is AbconvWorker
    assert (cfg.keepalive, cfg.timeout, cfg.graceful_timeout) == (5, 30, 10)
    assert cfg.post_fork is server.post_fork
    assert cfg.post_worker_init is server.freeze_startup_objects
    assert cfg.child_exit.__qualname__.startswith("prometheus_multiprocess")
    assert cfg.control_socket_disable is True


def test_a_worker_keeps_its_startup_objects_out_of_full_collections() -> None:
    """What a worker built before its first request (modules, the app) is frozen:
    full collections, which pause every request, no longer walk it."""
    script = (
        "import gc\nfrom abconv import server\n"
        "before = len(gc.get_objects())\n"
        "server.freeze_startup_objects(None)\n"
        "print(before, gc.get_freeze_count(), len(gc.get_objects()))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    before, frozen, after = map(int, out.stdout.split())
    assert before > 10_000 and frozen > before // 2
    assert after < 1_000


def test_serve_with_no_options_answers_on_127_0_0_1_port_8000(tmp_path: Path) -> None:
    """A real run of the bare command, in a network namespace of its own so
    that port 8000 is free whatever else runs on this machine."""
    isolated = shutil.which("unshare") and shutil.which("ip")
    if not isolated or subprocess.run(["unshare", "-n", "true"]).returncode:
        pytest.skip("needs unshare -n (root) and ip for a private port 8000")
    poll = (
        "import time, urllib.request\n"
        "for _ in range(300):\n"
        "    try:\n"
        f"        print(urllib.request.urlopen('http://127.0.0.1:8000{ASSIGN}').read().decode())\n"
        "        break\n"
        "    except OSError:\n"
        "        time.sleep(0.2)\n"
    )
    script = (
        f"ip link set lo up && {{ {sys.executable} -m abconv serve & }} && "
        f'{sys.executable} -c "$POLL"; kill -TERM $! && wait'
    )
    env = {**os.environ, "ABCONV_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}",
           "ABCONV_INSTANCE_DIR": str(tmp_path / "instance"), "POLL": poll}  # fmt: skip
    env.pop("ABCONV_EXPERIMENTS_DIR", None)  # the default: ./experiments
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", script],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert '"variant"' in done.stdout, done.stdout + done.stderr
    assert "Listening at: http://127.0.0.1:8000" in done.stderr
    assert "Using worker: abconv.gunicorn_worker.AbconvWorker" in done.stderr


@pytest.mark.parametrize("value", ["mysql://x", "nonsense"])
def test_serve_rejects_a_bad_database_url(value: str) -> None:
    result = CliRunner().invoke(cli, ["serve"], env={"ABCONV_DATABASE_URL": value})
    assert result.exit_code == 1 and "ABCONV_DATABASE_URL" in result.output


def test_serve_says_where_the_admin_password_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[str] = []
    monkeypatch.setattr(
        "abconv.server.run_gunicorn",
        lambda host, port, workers, threads: started.append(f"{host}:{port}"),
    )
    instance = tmp_path / "instance"
    env = {"ABCONV_INSTANCE_DIR": str(instance),
           "ABCONV_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}"}  # fmt: skip
    result = CliRunner().invoke(cli, ["serve"], env=env)
    assert result.exit_code == 0 and started == ["127.0.0.1:8000"], result.output
    path = instance.resolve() / "admin-password"
    assert f"admin password in {path}" in result.output and path.read_text().strip()
    with_one = CliRunner().invoke(cli, ["serve"], env={**env, "ABCONV_ADMIN_PASSWORD": "s3cret"})
    assert "admin routes need ABCONV_ADMIN_PASSWORD" in with_one.output
    assert "s3cret" not in with_one.output

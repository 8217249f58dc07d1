"""``abconv simulate``: in-process, or over HTTP to a running server, with a summary
that counts what was sent against what was recorded."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from werkzeug.serving import make_server

from abconv.cli import cli
from tests.conftest import ADMIN_PASSWORD, write_experiment


@pytest.fixture
def running_server(app: Flask) -> Iterator[str]:
    """The test's app served over real HTTP on a free local port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def test_simulate_url_fills_a_running_servers_database(app: Flask, running_server: str) -> None:
    args = ["simulate", "shop", "--visitors", "60", "--seed", "5", "--url", running_server,
            "--password", ADMIN_PASSWORD, "--base-rate", "0.3"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert f"Simulated 60 visitors of 'shop' (over HTTP, to {running_server}):" in result.output
    assert "60 took part (traffic 1); 0 saw the control unrecorded" in result.output
    store = app.extensions["abconv"].store
    assert store.count_rows("exposure", "shop") == 60
    stored = store.count_rows("conversion", "shop")
    assert stored > 0
    assert f"{stored} conversion events sent: {stored} recorded, 0 already stored" in result.output
    again = CliRunner().invoke(cli, args)
    assert f"{stored} conversion events sent: 0 recorded, {stored} already stored" in again.output
    assert store.count_rows("conversion", "shop") == stored


def test_simulate_url_without_the_password_says_why(running_server: str) -> None:
    result = CliRunner().invoke(cli, ["simulate", "shop", "--url", running_server])
    assert result.exit_code == 1 and "password" in result.output.lower()


def test_simulate_url_of_no_server_fails_clearly() -> None:
    result = CliRunner().invoke(
        cli, ["simulate", "shop", "--url", "http://127.0.0.1:9", "--password", "x"]
    )
    assert result.exit_code == 1 and "did not answer" in result.output


def test_the_summary_counts_every_visitor_sent_whatever_the_traffic_share(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "experiments"
    folder.mkdir()
    write_experiment(folder, "half", traffic=0.5)
    env = {"ABCONV_DATABASE_URL": f"sqlite:///{tmp_path / 'sim.sqlite3'}",
           "ABCONV_EXPERIMENTS_DIR": str(folder)}  # fmt: skip
    result = CliRunner().invoke(cli, ["simulate", "half", "--visitors", "300"], env=env)
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()
    summary = next(line for line in first if line.startswith("Simulated"))
    assert (
        summary
        == "Simulated 300 visitors of 'half' (in-process, into the database of this environment):"
    )
    took_part = next(line for line in first if "took part" in line)
    enrolled = int(took_part.split()[0])
    assert 100 < enrolled < 200
    assert took_part.strip() == (
        f"{enrolled} took part (traffic 0.5); {300 - enrolled} saw the control unrecorded"
    )


def test_check_names_the_key_a_file_must_have(tmp_path: Path) -> None:
    write_experiment(tmp_path, "demo")
    (tmp_path / "demo.toml").write_text(
        (tmp_path / "demo.toml").read_text().replace('key = "demo"', 'key = "other"')
    )
    result = CliRunner().invoke(cli, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert 'key "other" must be "demo", the file name without .toml' in result.output


def test_check_lists_the_valid_experiments(tmp_path: Path) -> None:
    write_experiment(tmp_path, "alpha")
    write_experiment(tmp_path, "beta")
    result = CliRunner().invoke(cli, ["check", str(tmp_path)])
    assert result.exit_code == 0 and result.stdout.strip().endswith("are valid: alpha, beta")

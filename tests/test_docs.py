"""The README keeps up with the code: variables, routes, commands, error codes, set-up."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from abconv import create_app
from abconv.cli import cli
from abconv.web.errors import HTTP_CODES

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
SOURCE = "\n".join(p.read_text() for p in (ROOT / "src" / "abconv").rglob("*.py"))


def test_readme_names_every_environment_variable() -> None:
    variables = set(re.findall(r"ABCONV_[A-Z_]+", SOURCE))
    variables |= set(re.findall(r"ABCONV_[A-Z_]+", (ROOT / "tests" / "conftest.py").read_text()))
    assert variables, "no ABCONV_ variable found in the source"
    assert sorted(v for v in variables if f"`{v}`" not in README) == []


def test_readme_names_every_route(tmp_path: Path) -> None:
    app = create_app({"ABCONV_DATABASE_URL": f"sqlite:///{tmp_path / 'docs.sqlite3'}"})
    app.extensions["abconv"].store.dispose()
    routes = {
        re.sub(r"<(\w+)>", lambda m: m.group(1).upper(), rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
    }
    assert sorted(r for r in routes if not re.search(rf"`[A-Z/ ]*{re.escape(r)}`", README)) == []


def test_readme_names_every_command() -> None:
    assert sorted(c for c in cli.commands if f"`abconv {c}" not in README) == []


def test_readme_names_every_error_code() -> None:
    codes = set(re.findall(r'AbconvError\(\s*"([a-z_]+)"', SOURCE))
    codes |= set(re.findall(r'error_reply\(\s*"([a-z_]+)"', SOURCE))
    codes |= set(HTTP_CODES.values()) | {"http_error"}
    assert len(codes) > 15
    assert sorted(c for c in codes if f"`{c}`" not in README) == []


@pytest.mark.parametrize(
    "command",
    [
        "python3 -m pip install . && python3 -m abconv serve",
        "python3 -m pip install -e '.[test]' && python3 -m pytest",
    ],
)
def test_readme_gives_the_two_set_up_commands(command: str) -> None:
    assert f"```sh\n{command}\n```" in README


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\npython3 -m pip install -e '.[test]' && python3 -m pytest\n" in ci


def test_readme_admin_examples_send_the_password() -> None:
    blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.DOTALL)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    admin = [line for line in lines if "curl" in line and re.search(r"/api/(events|exp)", line)]
    assert len(admin) >= 2
    assert [line for line in admin if " -u " not in line and "Bearer" not in line] == []

"""The README keeps up with the code: variables, routes, commands, error codes, set-up."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from abconv import create_app
from abconv.analysis_settings import ANALYSIS_DEFAULTS
from abconv.cli import cli
from abconv.experiments.rules import GOAL_FIELDS, TOP_LEVEL_FIELDS, VARIANT_FIELDS
from abconv.results.csv_export import CSV_COLUMNS
from abconv.web.errors import HTTP_CODES

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
OPENAPI = ROOT / "src" / "abconv" / "web" / "openapi.json"
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


def readme_section(heading: str) -> str:
    """The README from ``heading`` (a whole line) to the next heading of its level."""
    level = heading.split(" ")[0]
    start = README.index(f"\n{heading}\n")
    end = README.find(f"\n{level} ", start + len(heading) + 2)
    return README[start : end if end > 0 else len(README)]


def test_readme_documents_every_experiment_file_field() -> None:
    fields = {*TOP_LEVEL_FIELDS, *VARIANT_FIELDS, *GOAL_FIELDS, *ANALYSIS_DEFAULTS}
    section = readme_section("## Experiment files")
    assert sorted(f for f in fields if f"`{f}`" not in section and f"`{f} =" not in section) == []


def properties_under(schema: dict[str, Any], schemas: dict[str, Any]) -> set[str]:
    """Every property name reachable from ``schema`` in the OpenAPI document."""
    found: set[str] = set()
    seen: set[str] = set()
    todo = [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, list):
            todo.extend(node)
        elif isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref not in seen:
                seen.add(ref)
                todo.append(schemas[ref.rsplit("/", 1)[1]])
            properties = node.get("properties")
            if isinstance(properties, dict):
                found.update(properties)
            todo.extend(v for k, v in node.items() if k != "$ref")
    return found


def test_readme_documents_every_results_document_field() -> None:
    schemas = json.loads(OPENAPI.read_text())["components"]["schemas"]
    fields = properties_under(schemas["Results"], schemas)
    assert len(fields) > 40
    section = readme_section("## Analysis")
    paths = re.findall(r"`([\w.\[\]]+)`", section)  # `value.per_visitor_ci`, `looks[]`
    named = {part.removesuffix("[]") for path in paths for part in path.split(".")}
    assert sorted(fields - named) == []


def test_readme_documents_every_csv_column() -> None:
    section = readme_section("#### The CSV")
    assert sorted(c for c in CSV_COLUMNS if f"`{c}`" not in section) == []

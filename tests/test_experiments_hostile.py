"""Hostile experiment files: each is one file's problem, never a crash or an outage.

Too large, too deep, not UTF-8, random bytes, symlinks out of the folder,
files removed or half-written while read, and bugs: ``load_experiment_file``
and ``check_directory`` raise nothing but :class:`ExperimentFileError`, each
problem names its file, ``abconv check`` prints no traceback, and a running
server keeps the last good version of every experiment and shows the broken
file on the dashboard.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import abconv.experiments.files as files_module
from abconv.cli import cli
from abconv.experiments import ExperimentFileError, ExperimentRegistry, check_directory
from abconv.experiments import load_experiment_file as load
from abconv.experiments.files import MAX_PROBLEMS
from abconv.experiments.limits import MAX_CONTENT_DEPTH, MAX_FILE_BYTES, MAX_NESTING
from tests.conftest import experiment_toml
from tests.test_experiments import VALID

TEN_MB = 10 * 1024 * 1024
GOOD_CONTENT = 'content = { text = "A" }'


def deep_array(levels: int) -> str:
    return "[" * levels + "]" * levels


def deep_table(levels: int) -> str:
    return "{ a = " * levels + "1" + " }" * levels


def with_content(content: str) -> str:
    """VALID whose first variant's content (line 9) is ``content``."""
    return VALID.replace('{ text = "A" }', content, 1)


# name -> (bytes of the file, its line of the problem or None, a fragment of the message)
HOSTILE: dict[str, tuple[bytes, int | None, str]] = {
    "array-500-deep": (
        with_content("{ x = " + deep_array(500) + " }").encode(),
        9,
        "file: nested too deeply",
    ),
    "inline-table-500-deep": (with_content(deep_table(500)).encode(), 9, "nested too deeply"),
    "dotted-key-100k-parts": (
        (VALID + "[analysis]\n" + "a." * 100_000 + "b = 1\n").encode(),
        len(VALID.splitlines()) + 2,
        "nested too deeply",
    ),
    "header-and-keys-add-up": (
        (VALID + "[" + ".".join(["t"] * 25) + "]\n" + ".".join(["k"] * 25) + " = 1\n").encode(),
        len(VALID.splitlines()) + 2,
        "nested too deeply",
    ),
    "content-11-deep": (
        with_content(deep_table(MAX_CONTENT_DEPTH + 1)).encode(),
        9,
        f'variant "a": content is nested {MAX_CONTENT_DEPTH + 1} levels deep',
    ),
    "ten-megabytes": (
        (VALID + "# " + "x" * TEN_MB + "\n").encode(),
        None,
        f"file: too large ({len(VALID) + TEN_MB + 3} bytes, limit {MAX_FILE_BYTES} bytes)",
    ),
    "just-over-the-limit": (
        (VALID + "#" * (MAX_FILE_BYTES - len(VALID) + 1)).encode(),
        None,
        "file: too large",
    ),
    "latin-1": (VALID.replace("Demo", "Démo").encode("latin-1"), 2, "not UTF-8 text (byte 0xe9)"),
    "random-bytes": (bytes(range(256)) * 4, 2, "not UTF-8 text (byte 0x80)"),  # after b"\n"
    "nul-bytes": (b"\0" * 1000, 1, "not valid TOML"),
    "bad-toml": (VALID.replace('name = "Demo"', 'name = "Demo').encode(), 2, "not valid TOML"),
    "half-written": (VALID[: len(VALID) // 2].encode(), None, "missing required field 'goals'"),
    "wrong-types": (
        VALID.replace("weight = 1", 'weight = "heavy"', 1).encode(),
        8,
        'weight must be a number, got "heavy"',
    ),
    "huge-unknown-key": (
        (VALID + "z" * 200_000 + " = 1\n").encode(),
        len(VALID.splitlines()) + 1,
        "unknown field 'zzzz",
    ),
}


def write_bytes(folder: Path, data: bytes, key: str = "demo") -> Path:
    path = folder / f"{key}.toml"
    path.write_bytes(data)
    stamp = time.time_ns() + 1_000_000_000  # a new signature, whatever the clock's tick
    os.utime(path, ns=(stamp, stamp))
    return path


def assert_problems_name_the_file(error: ExperimentFileError, path: Path) -> None:
    assert error.problems
    for problem in error.problems:
        assert problem.path == str(path), problem
        assert problem.message and len(problem.message) < 500, problem
        assert problem.line is None or problem.line >= 1, problem


# -- one file at a time ----------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_file_is_a_problem_with_file_and_line(tmp_path: Path, name: str) -> None:
    data, line, fragment = HOSTILE[name]
    path = write_bytes(tmp_path, data)
    started = time.monotonic()
    with pytest.raises(ExperimentFileError) as caught:
        load(path)
    assert time.monotonic() - started < 5  # about 10 ms; a quadratic parse took minutes
    assert_problems_name_the_file(caught.value, path)
    first = caught.value.problems[0]
    assert (first.line, fragment in first.message) == (line, True), caught.value.problems


def test_nesting_within_the_limits_is_fine(tmp_path: Path) -> None:
    content = "{ a = " * (MAX_CONTENT_DEPTH - 1) + "[1.5]" + " }" * (MAX_CONTENT_DEPTH - 1)
    variant = load(write_bytes(tmp_path, with_content(content).encode())).variants[0]
    assert variant.content is not None
    text = with_content('{ text = "[[[[[[[[[[ {{{{{{{{{{{{ a.b.c.d.e.f.g.h.i.j.k.l.m.n" }')
    text += "[analysis]\n# " + "[" * 100 + "\n" + 'method = """' + "[" * 100 + '"""\n'
    with pytest.raises(ExperimentFileError) as caught:  # strings and comments do not nest
        load(write_bytes(tmp_path, text.encode()))
    assert "method must be" in str(caught.value)


def test_a_file_with_many_problems_lists_the_first_ones(tmp_path: Path) -> None:
    text = VALID + "".join(f"unknown{number} = 1\n" for number in range(50))
    with pytest.raises(ExperimentFileError) as caught:
        load(write_bytes(tmp_path, text.encode()))
    found = caught.value.problems
    assert len(found) == MAX_PROBLEMS + 1
    assert found[-1].message == f"... and {50 - MAX_PROBLEMS} more"


def test_long_values_are_shortened_in_messages(tmp_path: Path) -> None:
    text = VALID.replace('key = "a"', f'key = "{"A" * 100_000}"').replace(
        'status = "running"', f'status = "running"\ncontrol = "{"c" * 100_000}"'
    )
    with pytest.raises(ExperimentFileError) as caught:
        load(write_bytes(tmp_path, text.encode()))
    assert all(len(problem.message) < 300 for problem in caught.value.problems)


def test_a_symlink_inside_the_folder_is_followed(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "real.toml").write_text(VALID)
    (tmp_path / "demo.toml").symlink_to(Path("shared") / "real.toml")
    assert load(tmp_path / "demo.toml").key == "demo"


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    folder, outside = tmp_path / "experiments", tmp_path / "secret.toml"
    folder.mkdir()
    outside.write_text(VALID)
    (folder / "demo.toml").symlink_to(outside)
    (folder / "up.toml").symlink_to(Path("..") / "secret.toml")
    found, trouble = check_directory(folder)
    assert found == []
    assert [str(problem) for problem in trouble] == [
        f"{folder / name}: file: symlink to {outside} points outside the folder"
        for name in ("demo.toml", "up.toml")
    ]


def test_a_fifo_neither_blocks_nor_loads(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "demo.toml")
    assert check_directory(tmp_path) == ([], [])  # not a regular file: not listed
    with pytest.raises(ExperimentFileError, match="file: not a regular file"):
        load(tmp_path / "demo.toml")  # if named anyway: refused, without waiting for a writer


def test_a_file_removed_while_being_read_is_simply_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_bytes(tmp_path, VALID.encode())
    real_open = os.open

    def removed_first(name: str, flags: int, *args: int) -> int:
        if name.endswith("demo.toml"):
            path.unlink()
        return real_open(name, flags, *args)

    monkeypatch.setattr(os, "open", removed_first)
    assert check_directory(tmp_path) == ([], [])


def test_an_unexpected_error_is_that_files_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_bytes(tmp_path, VALID.encode())
    monkeypatch.setattr(files_module.tomllib, "loads", broken)
    with pytest.raises(ExperimentFileError) as caught:
        load(path)
    assert [str(problem) for problem in caught.value.problems] == [
        f"{path}: file: could not be read: RuntimeError: a bug"
    ]
    assert isinstance(caught.value.__cause__, RuntimeError)  # for the log's traceback


def broken(text: str) -> object:
    raise RuntimeError("a bug")


# -- generated files ---------------------------------------------------------------

TOML_VALUES = st.one_of(
    st.integers().map(str),
    st.floats().map(repr),
    st.text(max_size=30).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    st.sampled_from(["true", "false", "1979-05-27", "[]", "{}", "[1, 'a']", "{ a = 1 }"]),
    st.integers(1, 3000).map(deep_array),
    st.integers(1, 3000).map(deep_table),
)
KEY_NAMES = st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)
VALUE_LINES = [index for index, line in enumerate(VALID.splitlines()) if " = " in line]


@st.composite
def malformed_files(draw: st.DrawFn) -> bytes:
    """Valid files broken in one of the ways people and attackers break them."""
    lines = VALID.splitlines()
    how = draw(st.sampled_from(["bytes", "text", "cut", "insert", "value", "key", "deep"]))
    if how == "bytes":
        return draw(st.binary(max_size=2000))
    if how == "text":
        return draw(st.text(max_size=2000)).encode("utf-8", "surrogatepass")
    if how == "cut":  # half-written
        return VALID.encode()[: draw(st.integers(0, len(VALID)))]
    if how == "insert":
        at = draw(st.integers(0, len(VALID)))
        return (VALID[:at] + draw(st.text(max_size=50)) + VALID[at:]).encode("utf-8", "replace")
    if how == "value":  # a wrong type or value in any field
        index = draw(st.sampled_from(VALUE_LINES))
        lines[index] = lines[index].split(" = ")[0] + " = " + draw(TOML_VALUES)
    elif how == "key":  # an unknown key
        index = draw(st.integers(0, len(lines)))
        lines.insert(index, f"{draw(KEY_NAMES)} = {draw(TOML_VALUES)}")
    else:  # deep nesting anywhere a value goes
        levels = draw(st.integers(MAX_NESTING - 5, 5000))
        index = draw(st.sampled_from(VALUE_LINES))
        nest = draw(st.sampled_from([deep_array, deep_table]))
        lines[index] = lines[index].split(" = ")[0] + " = " + nest(levels)
    return "\n".join(lines).encode()


HYPOTHESIS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@HYPOTHESIS
@given(data=malformed_files())
def test_generated_files_raise_only_problems_that_name_the_file(
    tmp_path: Path, data: bytes
) -> None:
    path = write_bytes(tmp_path, data)
    try:
        load(path)
    except ExperimentFileError as error:
        assert_problems_name_the_file(error, path)
    found, trouble = check_directory(tmp_path)
    assert len(found) + bool(trouble) == 1
    assert all(problem.path == str(path) for problem in trouble)


@HYPOTHESIS
@given(size=st.integers(MAX_FILE_BYTES - 64, MAX_FILE_BYTES + 64))
def test_the_size_limit_is_exact(tmp_path: Path, size: int) -> None:
    data = VALID.encode() + b"#" * (size - len(VALID))
    path = write_bytes(tmp_path, data)
    if size <= MAX_FILE_BYTES:
        assert load(path).key == "demo"
    else:
        with pytest.raises(ExperimentFileError, match=f"too large \\({size} bytes"):
            load(path)


# -- abconv check --------------------------------------------------------------------


def hostile_folder(folder: Path) -> dict[str, tuple[int | None, str]]:
    """A folder of every hostile file (each named for its form) and one good
    one; returns the expected ``(line, fragment)`` of each hostile file."""
    folder.mkdir(exist_ok=True)
    expected = {}
    for name, (data, line, fragment) in HOSTILE.items():
        text = data.replace(b'"demo"', f'"{name}"'.encode(), 1)
        write_bytes(folder, text, key=name)
        expected[name] = (line, fragment.split(" (")[0])  # sizes differ by the key
    (folder / "good.toml").write_text(VALID.replace('"demo"', '"good"'))
    return expected


def test_check_reports_every_hostile_file_without_a_traceback(tmp_path: Path) -> None:
    expected = hostile_folder(tmp_path / "experiments")
    (tmp_path / "experiments" / "outside.toml").symlink_to(tmp_path / "x.toml")
    (tmp_path / "x.toml").write_text(VALID.replace('"demo"', '"outside"'))
    result = CliRunner().invoke(cli, ["check", str(tmp_path / "experiments")])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.splitlines()
    for name, (line, fragment) in expected.items():
        where = f"{tmp_path / 'experiments' / name}.toml" + (f":{line}: " if line else ": ")
        assert any(out.startswith(where) and fragment in out for out in lines), (name, lines)
    assert any("outside.toml: file: symlink to" in out for out in lines)
    assert "good.toml" not in result.output
    assert max(map(len, lines)) < 600


def test_check_turns_a_bug_into_a_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "demo.toml").write_text(VALID)
    monkeypatch.setattr(files_module.tomllib, "loads", broken)
    result = CliRunner().invoke(cli, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    expected = f"{tmp_path / 'demo.toml'}: file: could not be read: RuntimeError: a bug"
    assert expected in result.output


# -- the registry of a running server ------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE)
def test_registry_keeps_the_last_good_version_of_a_file_turned_hostile(
    tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    write_bytes(tmp_path, VALID.encode())
    write_bytes(tmp_path, VALID.replace('"demo"', '"other"').encode(), key="other")
    registry = ExperimentRegistry(tmp_path, check_interval=0)
    before = registry.all()
    assert sorted(before) == ["demo", "other"] and registry.problems() == []
    path = write_bytes(tmp_path, HOSTILE[name][0])
    assert registry.all() == before  # the hostile demo.toml: the old demo goes on
    problems = registry.problems()
    assert problems and all(problem.path == str(path) for problem in problems)
    write_bytes(tmp_path, VALID.replace('"Demo"', '"Mended"').encode())
    mended = registry.get("demo")
    assert mended is not None and mended.name == "Mended"
    assert registry.get("other") == before["other"] and registry.problems() == []


def test_registry_survives_a_bug_and_logs_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    write_bytes(tmp_path, VALID.encode())
    registry = ExperimentRegistry(tmp_path, check_interval=0)
    good = registry.get("demo")
    monkeypatch.setattr(files_module.tomllib, "loads", broken)
    write_bytes(tmp_path, VALID.replace('"Demo"', '"Other"').encode())
    write_bytes(tmp_path, VALID.replace('"demo"', '"new"').encode(), key="new")
    assert registry.all() == {"demo": good}
    assert [problem.message for problem in registry.problems()] == [
        "file: could not be read: RuntimeError: a bug"
    ] * 2
    [first, _] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert first.exc_info is not None and first.exc_info[0] is RuntimeError


def test_registry_survives_a_bug_outside_the_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_bytes(tmp_path, VALID.encode())
    registry = ExperimentRegistry(tmp_path, check_interval=0)
    good = registry.get("demo")
    monkeypatch.setattr(files_module, "load_experiment_file", broken)
    write_bytes(tmp_path, VALID.replace('"Demo"', '"Other"').encode())
    assert registry.all() == {"demo": good}
    assert "RuntimeError: a bug" in registry.problems()[0].message


def test_registry_treats_a_file_removed_while_read_as_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_bytes(tmp_path, VALID.encode())
    registry = ExperimentRegistry(tmp_path, check_interval=0)
    assert list(registry.all()) == ["demo"]
    real_load = files_module.load_experiment_file

    def removed_meanwhile(file: Path) -> object:
        path.unlink()
        return real_load(file)

    monkeypatch.setattr(files_module, "load_experiment_file", removed_meanwhile)
    write_bytes(tmp_path, VALID.replace('"Demo"', '"Other"').encode())
    assert registry.all() == {} and registry.problems() == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_registry_reports_a_missing_folder_as_a_problem(tmp_path: Path) -> None:
    registry = ExperimentRegistry(tmp_path / "nowhere")
    assert [str(problem) for problem in registry.problems()] == [
        f"{tmp_path / 'nowhere'}: experiments folder: not found"
    ]


# -- the server --------------------------------------------------------------------------

XSS = "<script>alert(1)</script>"


def break_files(app: Flask, experiments_dir: Path) -> None:
    """Turn shop.toml into a 500-deep array, add a huge file and one with a
    script in its problem, and let the server see them."""
    shop = experiment_toml().replace("[[goals]]", f"junk = {deep_array(500)}\n\n[[goals]]", 1)
    write_bytes(experiments_dir, shop.encode(), key="shop")
    big = experiment_toml("big") + "# " + "x" * TEN_MB + "\n"
    write_bytes(experiments_dir, big.encode(), key="big")
    evil = experiment_toml("evil").replace('name = "Shop CTA"', f'name = "x"\n"{XSS}" = 1')
    write_bytes(experiments_dir, evil.encode(), key="evil")
    app.extensions["abconv"].experiments.refresh()


def test_the_server_keeps_serving_after_hostile_files(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    before = client.get("/api/assign?visitor=alice&experiment=shop").get_json()
    break_files(app, experiments_dir)
    assert client.get("/healthz").status_code == 200
    reply = client.get("/api/assign?visitor=alice")
    assert reply.status_code == 200
    [shop] = reply.get_json()["assignments"]  # the last good version of shop
    [old_shop] = before["assignments"]
    assert (shop["variant"], shop["content"]) == (old_shop["variant"], old_shop["content"])
    assert len(reply.get_data()) < 10_000  # the 10 MB file is not served
    assert client.get("/api/experiments/big").status_code == 404
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "3 experiment files could not be loaded" in html
    assert "shop.toml:" in html and "file: nested too deeply" in html
    assert "Visitors still get the last version of this experiment that loaded." in html
    assert "big.toml: file: too large (" in html
    assert "evil.toml:" in html and XSS not in html and "&lt;script&gt;" in html
    assert str(experiments_dir) not in html  # file names, not the server's folders


def test_the_dashboard_has_no_banner_when_every_file_loads(client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)
    assert "could not be loaded" not in html

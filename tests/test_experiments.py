"""Experiment files: every rule, the examples, and the registry that watches a folder."""

from __future__ import annotations

import ast
import json
import logging
import os
import threading
from pathlib import Path

import pytest

import abconv.experiments.files as experiments_module
from abconv.experiments import (
    ANALYSIS_DEFAULTS,
    Experiment,
    ExperimentFileError,
    ExperimentRegistry,
    Problem,
    check_directory,
    load_experiment_file,
)
from abconv.experiments.toml_lines import KeyLines
from abconv.vocabulary import ExperimentKind, GoalKind, Method, Status

REPO = Path(__file__).resolve().parents[1]

# Line numbers matter: the cases below name the line each problem is on.
VALID = """\
key = "demo"
name = "Demo"
status = "running"
kind = "cta"

[[variants]]
key = "a"
weight = 1
content = { text = "A" }

[[variants]]
key = "b"
weight = 1
content = { text = "B" }

[[goals]]
key = "buy"
kind = "hard"
value = true
primary = true

[[goals]]
key = "signup"
kind = "soft"
"""
PAGE = (
    VALID.replace('kind = "cta"', 'kind = "page"')
    .replace('content = { text = "A" }', 'template = "landing/a.html"')
    .replace('content = { text = "B" }', 'template = "landing/b.html"')
)
REDIRECT = (
    VALID.replace('kind = "cta"', 'kind = "redirect"')
    .replace('content = { text = "A" }', 'url = "/signup/a"')
    .replace('content = { text = "B" }', 'url = "https://example.com/b"')
)
SECOND_VARIANT = 'key = "b"\nweight = 1\n'
ONE_GOAL = VALID.split('[[goals]]\nkey = "signup"')[0]
NO_VARIANTS = VALID.split("[[variants]]")[0] + "[[goals]]" + VALID.split("[[goals]]", 1)[1]


def write(folder: Path, text: str, key: str = "demo") -> Path:
    path = folder / f"{key}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def edited(text: str, old: str, new: str) -> str:
    assert old in text, f"test setup: {old!r} is not in the text"
    return text.replace(old, new, 1)


def problems(path: Path) -> list[str]:
    with pytest.raises(ExperimentFileError) as caught:
        load_experiment_file(path)
    assert str(caught.value) == "\n".join(str(p) for p in caught.value.problems)
    return [str(problem) for problem in caught.value.problems]


def assert_one_problem(path: Path, line: int | None, fragment: str) -> None:
    found = problems(path)
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    assert len(found) == 1, found
    assert found[0].startswith(where), found
    assert fragment in found[0], found


# -- valid files and defaults ------------------------------------------------


@pytest.mark.parametrize("text", [VALID, PAGE, REDIRECT], ids=["cta", "page", "redirect"])
def test_valid_file_of_each_kind_loads(tmp_path: Path, text: str) -> None:
    experiment = load_experiment_file(write(tmp_path, text))
    assert experiment.key == "demo"
    assert [variant.key for variant in experiment.variants] == ["a", "b"]
    assert experiment.path == str(tmp_path / "demo.toml")


def test_defaults_are_applied(tmp_path: Path) -> None:
    text = """\
key = "demo"
name = "Demo"
[[variants]]
key = "a"
content = { text = "A" }
[[variants]]
key = "b"
content = { text = "B" }
[[goals]]
key = "buy"
kind = "hard"
"""
    experiment = load_experiment_file(write(tmp_path, text))
    assert experiment.status is Status.DRAFT
    assert experiment.kind is ExperimentKind.CTA
    assert experiment.hypothesis == ""
    assert experiment.traffic == 1.0
    assert experiment.control == "a"  # the first variant
    assert experiment.winner is None
    assert [variant.weight for variant in experiment.variants] == [1.0, 1.0]
    goal = experiment.primary_goal  # a single goal without `primary` is the primary one
    assert (goal.key, goal.kind, goal.value, goal.primary) == ("buy", GoalKind.HARD, False, True)
    assert experiment.analysis.to_dict() == {
        "method": "bayesian",
        "alpha": 0.05,
        "chance_to_win": 0.95,
        "max_expected_loss": 0.001,
        "min_visitors": 100,
        "mde": 0.10,
        "power": 0.8,
        "guardrail_margin": 0.125,
    }
    assert experiment.analysis.method is Method.BAYESIAN
    assert ANALYSIS_DEFAULTS == experiment.analysis.to_dict()


def test_analysis_settings_are_read(tmp_path: Path) -> None:
    text = (
        VALID
        + """
[analysis]
method = "sequential"
alpha = 0.1
chance_to_win = 0.9
max_expected_loss = 0
min_visitors = 0
mde = 0.2
power = 0.9
"""
    )
    analysis = load_experiment_file(write(tmp_path, text)).analysis
    assert analysis.method is Method.SEQUENTIAL
    assert (analysis.alpha, analysis.chance_to_win, analysis.max_expected_loss) == (0.1, 0.9, 0)
    assert (analysis.min_visitors, analysis.mde, analysis.power) == (0, 0.2, 0.9)


def test_lookups_and_definition_document(tmp_path: Path) -> None:
    text = edited(VALID, 'status = "running"', 'status = "concluded"\nwinner = "b"')
    experiment = load_experiment_file(write(tmp_path, text))
    assert experiment.variant("b") is experiment.variants[1]
    assert experiment.variant("zzz") is None
    assert experiment.goal("signup") is experiment.goals[1]
    assert experiment.goal("zzz") is None
    assert experiment.primary_goal.key == "buy"
    document = json.loads(json.dumps(experiment.to_dict(), allow_nan=False))
    assert document["status"] == "concluded" and document["winner"] == "b"
    assert document["kind"] == "cta" and document["control"] == "a"
    assert document["variants"][0] == {
        "key": "a",
        "weight": 1.0,
        "content": {"text": "A"},
        "template": None,
        "url": None,
    }
    assert document["goals"][1] == {
        "key": "signup",
        "kind": "soft",
        "value": False,
        "primary": False,
        "max_value": None,
        "cap": None,
        "guard": False,  # a soft goal never guards
        "count": False,
    }
    assert document["analysis"]["method"] == "bayesian"
    assert document["file"] == "demo.toml"  # the name only, not the server's folders
    experiment.to_dict()["variants"][0]["content"]["text"] = "changed"
    assert experiment.variants[0].content == {"text": "A"}  # a copy


def test_content_may_nest_json_data(tmp_path: Path) -> None:
    text = edited(
        VALID, 'content = { text = "A" }', 'content = { text = "A", classes = ["x", "y"] }'
    )
    variant = load_experiment_file(write(tmp_path, text)).variants[0]
    assert variant.content == {"text": "A", "classes": ["x", "y"]}


def test_page_variants_may_carry_content_for_their_template(tmp_path: Path) -> None:
    text = edited(
        PAGE, 'template = "landing/a.html"', 'template = "landing/a.html"\ncontent = { h = "Hi" }'
    )
    variant = load_experiment_file(write(tmp_path, text)).variants[0]
    assert (variant.template, variant.content) == ("landing/a.html", {"h": "Hi"})


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "demo.toml"
    path.write_bytes(b"\xef\xbb\xbf" + VALID.encode())
    assert load_experiment_file(path).key == "demo"


# -- one rule per case: message names the file, the line and the problem ----

RULES = [
    # (id, base, old, new, line, fragment)
    ("toml-syntax", VALID, 'name = "Demo"', 'name = "Demo', 2, "not valid TOML"),
    ("key-not-file-name", VALID, 'key = "demo"', 'key = "other"', 1,
     'key "other" must be "demo", the file name without .toml'),
    ("missing-key", VALID, 'key = "demo"\n', "", None, "missing required field 'key'"),
    ("missing-name", VALID, 'name = "Demo"\n', "", None, "missing required field 'name'"),
    ("empty-name", VALID, 'name = "Demo"', 'name = "  "', 2, "name must not be empty"),
    ("unknown-field", VALID, 'kind = "cta"', 'kind = "cta"\ntrafic = 0.5', 5,
     "unknown field 'trafic' (did you mean 'traffic'?)"),
    ("traffic-type", VALID, 'kind = "cta"', 'kind = "cta"\ntraffic = "1"', 5,
     'traffic must be a number, got "1" (a string)'),
    ("traffic-zero", VALID, 'kind = "cta"', 'kind = "cta"\ntraffic = 0', 5,
     "traffic must be > 0 and <= 1, got 0"),
    ("traffic-above-one", VALID, 'kind = "cta"', 'kind = "cta"\ntraffic = 1.5', 5,
     "traffic must be > 0 and <= 1, got 1.5"),
    ("status", VALID, 'status = "running"', 'status = "live"', 3,
     'status must be "draft", "running", "paused" or "concluded", got "live"'),
    ("kind", VALID, 'kind = "cta"', 'kind = "popup"', 4,
     'kind must be "cta", "page" or "redirect", got "popup"'),
    ("hypothesis-type", VALID, 'kind = "cta"', 'kind = "cta"\nhypothesis = 3', 5,
     "hypothesis must be a string, got 3 (a number)"),
    ("missing-variants", 'key = "demo"\nname = "D"\n[[goals]]\nkey = "g"\nkind = "soft"\n', "", "",
     None, "missing required field 'variants'"),
    ("no-variants", NO_VARIANTS, 'kind = "cta"', 'kind = "cta"\nvariants = []', 5,
     "needs at least two variants (the control and a challenger), got 0"),
    ("one-variant", VALID, '[[variants]]\nkey = "b"\nweight = 1\ncontent = { text = "B" }\n', "", 6,
     "at least two variants"),
    ("variants-not-tables", NO_VARIANTS, 'kind = "cta"', 'kind = "cta"\nvariants = "a, b"', 5,
     'variants must be an array of tables, got "a, b" (a string)'),
    ("weight-zero", VALID, SECOND_VARIANT, 'key = "b"\nweight = 0\n', 13,
     'variant "b": weight must be > 0, got 0'),
    ("weight-negative", VALID, SECOND_VARIANT, 'key = "b"\nweight = -2.5\n', 13,
     "weight must be > 0, got -2.5"),
    ("weight-not-a-number", VALID, SECOND_VARIANT, 'key = "b"\nweight = "heavy"\n', 13,
     'variant "b": weight must be a number, got "heavy" (a string)'),
    ("weight-boolean", VALID, SECOND_VARIANT, 'key = "b"\nweight = true\n', 13,
     "weight must be a number, got true (a boolean)"),
    ("weight-infinite", VALID, SECOND_VARIANT, 'key = "b"\nweight = inf\n', 13,
     "weight must be a finite number, got inf"),
    ("variant-key-format", VALID, 'key = "b"', 'key = "Big B"', 12,
     'variant "Big B": key must be 1 to 64 lowercase letters, digits, _ and -, got "Big B"'),
    ("variant-key-length", VALID, 'key = "b"', f'key = "{"b" * 65}"', 12, "key must be 1 to 64"),
    ("variant-key-missing", VALID, 'key = "b"\n', "", 11,
     "variant #2: missing required field 'key'"),
    ("variant-duplicate", VALID, 'key = "b"', 'key = "a"', 12,
     'duplicate variant key "a" (also variant #1)'),
    ("variant-unknown-field", VALID, SECOND_VARIANT, SECOND_VARIANT + "wieght = 2\n", 14,
     "variant \"b\": unknown field 'wieght' (did you mean 'weight'?)"),
    ("variant-not-a-table", NO_VARIANTS, 'kind = "cta"',
     'kind = "cta"\nvariants = [1, { key = "b", content = { t = "B" } }]', 5,
     "variant #1: must be a table, got 1 (a number)"),
    ("cta-needs-content", VALID, 'content = { text = "B" }\n', "", 11,
     'variant "b": kind = "cta" needs content = {'),
    ("content-not-a-table", VALID, 'content = { text = "B" }', 'content = "B"', 14,
     'variant "b": content must be a table, got "B" (a string)'),
    ("content-not-json", VALID, 'content = { text = "B" }', "content = { when = 2024-05-01 }", 14,
     "content.when must be text, a finite number, a boolean, an array or a table"),
    ("content-nan", VALID, 'content = { text = "B" }', "content = { xs = [1, nan] }", 14,
     "content.xs[1] must be text, a finite number"),
    ("cta-with-url", VALID, 'content = { text = "B" }', 'content = { text = "B" }\nurl = "/b"', 15,
     'variant "b": url is not used by kind = "cta"'),
    ("page-needs-template", PAGE, 'template = "landing/b.html"\n', "", 11,
     'variant "b": kind = "page" needs template = "landing/pricing-a.html"'),
    ("template-parent", PAGE, '"landing/b.html"', '"../secrets.html"', 14,
     'template must be a path under templates/ ending in .html, without ".."'),
    ("template-absolute", PAGE, '"landing/b.html"', '"/etc/b.html"', 14, "template must be a path"),
    ("template-not-html", PAGE, '"landing/b.html"', '"landing/b.txt"', 14, "ending in .html"),
    ("redirect-needs-url", REDIRECT, 'url = "https://example.com/b"\n', "", 11,
     'variant "b": kind = "redirect" needs url = "https://example.com/a"'),
    ("url-scheme", REDIRECT, '"https://example.com/b"', '"ftp://example.com/b"', 14,
     'url must start with "http://", "https://" or a single "/"'),
    ("url-relative", REDIRECT, '"https://example.com/b"', '"example.com/b"', 14, "url must start"),
    ("url-protocol-relative", REDIRECT, '"https://example.com/b"', '"//evil.example/b"', 14,
     "url must start"),
    ("url-space", REDIRECT, '"https://example.com/b"', '"/sign up"', 14, "contain no spaces"),
    ("redirect-with-template", REDIRECT, 'url = "/signup/a"',
     'url = "/signup/a"\ntemplate = "x.html"', 10,
     'variant "a": template is not used by kind = "redirect"'),
    ("control-unknown", VALID, 'kind = "cta"', 'kind = "cta"\ncontrol = "c"', 5,
     'control "c" names no variant ("a", "b")'),
    ("winner-unknown", VALID, 'status = "running"', 'status = "concluded"\nwinner = "c"', 4,
     'winner "c" names no variant ("a", "b")'),
    ("concluded-without-winner", VALID, 'status = "running"', 'status = "concluded"', 3,
     'status = "concluded" needs winner = "VARIANT"'),
    ("winner-while-running", VALID, 'kind = "cta"', 'kind = "cta"\nwinner = "b"', 5,
     'winner is only allowed with status = "concluded", not "running"'),
    ("missing-goals", VALID.split("[[goals]]")[0], "", "", None, "missing required field 'goals'"),
    ("goal-duplicate", VALID, 'key = "signup"', 'key = "buy"', 23,
     'duplicate goal key "buy" (also goal #1)'),
    ("goal-kind", VALID, 'kind = "soft"', 'kind = "medium"', 24,
     'goal "signup": kind must be "hard" or "soft", got "medium"'),
    ("goal-kind-missing", VALID, 'kind = "soft"\n', "", 22,
     "goal \"signup\": missing required field 'kind'"),
    ("goal-value-type", VALID, "value = true", 'value = "yes"', 19,
     'goal "buy": value must be true or false, got "yes" (a string)'),
    ("goal-count-type", VALID, "value = true", 'value = true\ncount = "yes"', 20,
     'goal "buy": count must be true or false, got "yes" (a string)'),
    ("goal-key-format", VALID, 'key = "signup"', 'key = "sign up"', 23, 'got "sign up"'),
    ("goal-unknown-field", VALID, 'kind = "soft"', 'kind = "soft"\nprimay = true', 25,
     "goal \"signup\": unknown field 'primay' (did you mean 'primary'?)"),
    ("no-primary-goal", VALID, "primary = true\n", "", 16,
     "no primary goal: mark exactly one goal with primary = true"),
    ("single-goal-not-primary", ONE_GOAL, "primary = true", "primary = false", 16,
     "no primary goal"),
    ("two-primary-goals", VALID, 'kind = "soft"', 'kind = "soft"\nprimary = true', 25,
     'only one goal may be primary, got "buy", "signup"'),
    ("analysis-not-a-table", VALID, 'kind = "cta"', 'kind = "cta"\nanalysis = "fast"', 5,
     'analysis must be a table, got "fast" (a string)'),
    ("analysis-unknown", VALID + "[analysis]\naplha = 0.1\n", "", "", 26,
     "unknown field 'analysis.aplha' (did you mean 'alpha'?)"),
    ("analysis-method", VALID + "[analysis]\nmethod = \"magic\"\n", "", "", 26,
     'analysis.method must be "bayesian", "frequentist" or "sequential", got "magic"'),
    ("alpha-zero", VALID + "[analysis]\nalpha = 0\n", "", "", 26,
     "analysis.alpha must be > 0 and < 1, got 0"),
    ("alpha-one", VALID + "[analysis]\nalpha = 1\n", "", "", 26,
     "analysis.alpha must be > 0 and < 1"),
    ("chance-to-win-low", VALID + "[analysis]\nchance_to_win = 0.4\n", "", "", 26,
     "analysis.chance_to_win must be >= 0.5 and < 1, got 0.4"),
    ("chance-to-win-one", VALID + "[analysis]\nchance_to_win = 1.0\n", "", "", 26,
     "analysis.chance_to_win must be >= 0.5 and < 1, got 1.0"),
    ("max-expected-loss", VALID + "[analysis]\nmax_expected_loss = -0.01\n", "", "", 26,
     "analysis.max_expected_loss must be >= 0, got -0.01"),
    ("min-visitors-negative", VALID + "[analysis]\nmin_visitors = -1\n", "", "", 26,
     "analysis.min_visitors must be >= 0, got -1"),
    ("min-visitors-fraction", VALID + "[analysis]\nmin_visitors = 10.5\n", "", "", 26,
     "analysis.min_visitors must be a whole number, got 10.5 (a number)"),
    ("mde", VALID + "[analysis]\nmde = 0\n", "", "", 26, "analysis.mde must be > 0, got 0"),
    ("power", VALID + "[analysis]\npower = 1\n", "", "", 26,
     "analysis.power must be > 0 and < 1, got 1"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("base", "old", "new", "line", "fragment"),
    [case[1:] for case in RULES],
    ids=[case[0] for case in RULES],
)
def test_rule_is_reported_with_file_and_line(
    tmp_path: Path, base: str, old: str, new: str, line: int | None, fragment: str
) -> None:
    text = edited(base, old, new) if old else base
    assert_one_problem(write(tmp_path, text), line, fragment)


def test_experiment_key_format(tmp_path: Path) -> None:
    path = write(tmp_path, edited(VALID, 'key = "demo"', 'key = "Demo_1"'), key="Demo_1")
    assert_one_problem(path, 1, 'key must be 1 to 64 lowercase letters, digits and -, got "Demo_1"')


def test_toml_error_at_end_of_document_names_the_last_line(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + 'note = """never closed\n')
    assert_one_problem(path, 25, "not valid TOML: Unterminated string")


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    text = edited(VALID, 'kind = "cta"', 'kind = "cta"\ntrafic = 2')
    text = edited(text, SECOND_VARIANT, 'key = "b"\nweight = 0\n')
    text = edited(text, 'kind = "soft"', 'kind = "medium"')
    text = edited(text, 'status = "running"', 'status = "concluded"')  # reported late, line 3
    text = edited(text, 'name = "Demo"\n', "")  # no line
    with pytest.raises(ExperimentFileError) as caught:
        load_experiment_file(write(tmp_path, text))
    found = caught.value.problems
    assert [problem.line for problem in found] == [None, 2, 4, 13, 24], found  # in file order
    assert "missing required field 'name'" in found[0].message


def test_unreadable_files_are_problems(tmp_path: Path) -> None:
    path = tmp_path / "demo.toml"
    path.write_bytes(b'name = "Demo"\nkey = "d\xe9mo"\n')
    assert_one_problem(path, 2, "file: not UTF-8 text (byte 0xe9)")
    assert_one_problem(tmp_path / "gone.toml", None, "cannot read")


def test_problem_text_leaves_out_an_unknown_line() -> None:
    assert str(Problem("experiments/x.toml", 12, "weight must be > 0, got 0")) == (
        "experiments/x.toml:12: weight must be > 0, got 0"
    )
    assert str(Problem("experiments/x.toml", None, "not UTF-8 text")) == (
        "experiments/x.toml: not UTF-8 text"
    )


# -- where problems are placed ----------------------------------------------


def test_key_lines_follow_tables_arrays_and_dotted_keys() -> None:
    text = """\
key = "x"
hypothesis = '''
weight = 0 inside a string
'''
[[variants]]
key = "a"
[variants.content]
text = "A"
[[variants]]
"key" = "b"
content.text = "B"
goals = [{ key = "g", kind = "soft" }]
tags = [
  "a]", # ] in a comment
  "b",
]
weight = 3
"""
    lines = KeyLines(text)
    assert lines.line_of(("key",)) == 1
    assert lines.line_of(("weight",)) is None  # the string's content is no key
    assert lines.line_of(("variants", 0)) == 5
    assert lines.line_of(("variants", 0, "content", "text")) == 8
    assert lines.line_of(("variants", 1, "key")) == 10
    assert lines.line_of(("variants", 1, "content", "text")) == 11
    assert lines.line_of(("variants", 1, "name")) == 9  # falls back to the table
    assert lines.line_of(("variants", 1, "goals", 0, "kind")) == 12  # inline: the array's line
    assert lines.line_of(("variants", 1, "weight")) == 17  # after the multi-line array


def test_inline_variants_are_placed_on_their_array(tmp_path: Path) -> None:
    inline = """\
variants = [
  { key = "a", content = { t = "A" } },
  { key = "b", weight = 0, content = { t = "B" } },
]
"""
    text = edited(NO_VARIANTS, 'kind = "cta"\n', 'kind = "cta"\n' + inline)
    assert_one_problem(write(tmp_path, text), 7, 'variant "b": weight must be > 0, got 0')


# -- folders -------------------------------------------------------------------


def test_examples_in_the_repository_are_valid() -> None:
    found, trouble = check_directory(REPO / "experiments")
    assert trouble == []
    assert {e.kind for e in found} == set(ExperimentKind)
    for experiment in found:
        assert experiment.status is Status.RUNNING
        assert {goal.kind for goal in experiment.goals} == {GoalKind.HARD, GoalKind.SOFT}
        for variant in experiment.variants:
            if variant.template is not None:
                assert (REPO / "templates" / variant.template).is_file()


def test_landing_templates_render_with_the_page_context() -> None:
    jinja2 = pytest.importorskip("jinja2")
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(REPO / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    experiment = load_experiment_file(REPO / "experiments" / "pricing-page.toml")
    for variant in experiment.variants:
        assert variant.template is not None and variant.content is not None
        page = environment.get_template(variant.template).render(
            experiment=experiment, variant=variant, visitor="v-1"
        )
        assert f"<h1>{variant.content['headline']}</h1>" in page
        assert 'data-abconv-goal="purchase"' in page


def test_check_directory_reports_each_bad_file_and_skips_other_files(tmp_path: Path) -> None:
    write(tmp_path, VALID)
    write(tmp_path, edited(VALID, 'key = "demo"', 'key = "other"'), key="zeta")
    write(tmp_path, VALID.replace('"demo"', '"alpha"'), key="alpha")
    (tmp_path / "notes.txt").write_text("not an experiment")
    (tmp_path / ".#demo.toml").write_text("editor lock file")
    (tmp_path / "folder.toml").mkdir()
    found, trouble = check_directory(tmp_path)
    assert [experiment.key for experiment in found] == ["alpha", "demo"]
    assert [str(problem) for problem in trouble] == [
        f'{tmp_path / "zeta.toml"}:1: key "other" must be "zeta", the file name without .toml'
    ]


def test_check_directory_reports_a_missing_folder(tmp_path: Path) -> None:
    found, trouble = check_directory(tmp_path / "nowhere")
    assert found == []
    assert [str(problem) for problem in trouble] == [
        f"{tmp_path / 'nowhere'}: experiments folder: not found"
    ]


# -- the registry ----------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="abconv.experiments")
    return caplog


def warnings_in(log: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in log.records if record.levelno == logging.WARNING]


def age(path: Path, seconds: float = 60) -> None:
    """Date the file back, out of the window in which files are always re-read."""
    stamp = path.stat().st_mtime_ns - int(seconds * 1e9)
    os.utime(path, ns=(stamp, stamp))


def test_registry_serves_the_valid_experiments(tmp_path: Path) -> None:
    write(tmp_path, VALID)
    write(tmp_path, VALID.replace('"demo"', '"alpha"'), key="alpha")
    write(
        tmp_path,
        VALID.replace('"demo"', '"draft-one"').replace('"running"', '"draft"'),
        key="draft-one",
    )
    registry = ExperimentRegistry(tmp_path)
    assert sorted(registry.all()) == ["alpha", "demo", "draft-one"]
    assert [experiment.key for experiment in registry.running()] == ["alpha", "demo"]
    demo = registry.get("demo")
    assert isinstance(demo, Experiment) and demo.name == "Demo"
    assert registry.get("nope") is None
    registry.all().clear()  # a copy: callers cannot break the registry
    assert len(registry.all()) == 3


def test_registry_picks_up_added_changed_and_removed_files(
    tmp_path: Path, log: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    registry = ExperimentRegistry(tmp_path, check_interval=5, clock=clock)
    assert registry.all() == {}
    path = write(tmp_path, VALID)
    clock.now = 4.9
    assert registry.all() == {}  # not looked at again before the interval
    clock.now = 5
    assert list(registry.all()) == ["demo"]
    write(tmp_path, edited(VALID, 'name = "Demo"', 'name = "Renamed"'))
    clock.now = 10
    demo = registry.get("demo")
    assert demo is not None and demo.name == "Renamed"
    path.unlink()
    clock.now = 15
    assert registry.all() == {}
    messages = [record.getMessage() for record in log.records]
    assert any("demo loaded" in message for message in messages)
    assert any("demo reloaded" in message for message in messages)
    assert any("removed" in message for message in messages)


def test_refresh_looks_at_once(tmp_path: Path) -> None:
    registry = ExperimentRegistry(tmp_path, check_interval=3600)
    assert registry.all() == {}
    write(tmp_path, VALID)
    registry.refresh()
    assert list(registry.all()) == ["demo"]


def test_a_broken_edit_keeps_the_last_good_version_and_logs_once(
    tmp_path: Path, log: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, VALID)
    registry = ExperimentRegistry(tmp_path, check_interval=0)
    good = registry.get("demo")
    assert good is not None
    write(tmp_path, edited(VALID, SECOND_VARIANT, 'key = "b"\nweight = 0\n'))
    for _ in range(3):
        assert registry.get("demo") == good
    warnings = warnings_in(log)
    assert len(warnings) == 1, warnings
    assert "keeping its last good version" in warnings[0]
    assert f'{path}:13: variant "b": weight must be > 0, got 0' in warnings[0]
    write(tmp_path, VALID)
    assert registry.get("demo") == good
    assert any("valid again" in record.getMessage() for record in log.records)


def test_a_file_invalid_from_the_start_is_not_served(
    tmp_path: Path, log: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, edited(VALID, 'status = "running"', 'status = "live"'))
    registry = ExperimentRegistry(tmp_path, check_interval=0)
    assert registry.all() == {}
    assert registry.running() == []
    warnings = warnings_in(log)
    assert len(warnings) == 1 and "not served" in warnings[0], warnings


def test_a_missing_folder_is_empty_and_logged_once(
    tmp_path: Path, log: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "experiments"
    registry = ExperimentRegistry(folder, check_interval=0)
    assert registry.all() == {}
    assert registry.running() == []
    assert len(warnings_in(log)) == 1
    folder.mkdir()
    write(folder, VALID)
    assert list(registry.all()) == ["demo"]


def test_unchanged_files_are_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, VALID)
    age(path)
    reads: list[Path] = []

    def counting_load(file: str | Path) -> Experiment:
        reads.append(Path(file))
        return load_experiment_file(file)

    monkeypatch.setattr(experiments_module, "load_experiment_file", counting_load)
    registry = ExperimentRegistry(tmp_path, check_interval=0)
    for _ in range(3):
        assert list(registry.all()) == ["demo"]
    assert reads == [path]
    path.write_text(edited(VALID, 'name = "Demo"', 'name = "Longer name"'))
    age(path)  # an old timestamp, but the size changed
    demo = registry.get("demo")
    assert demo is not None and demo.name == "Longer name"
    assert reads == [path, path]


def test_recently_modified_files_are_read_again_within_one_clock_tick(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    registry = ExperimentRegistry(tmp_path, check_interval=0)
    assert registry.get("demo") is not None
    stamp = path.stat().st_mtime_ns
    path.write_text(edited(VALID, 'name = "Demo"', 'name = "Demx"'))  # same size
    os.utime(path, ns=(stamp, stamp))  # and the same timestamp
    demo = registry.get("demo")
    assert demo is not None and demo.name == "Demx"


def test_readers_wait_for_the_first_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, VALID)
    reading, finish = threading.Event(), threading.Event()

    def slow_load(file: str | Path) -> Experiment:
        reading.set()
        finish.wait(5)
        return load_experiment_file(file)

    monkeypatch.setattr(experiments_module, "load_experiment_file", slow_load)
    registry = ExperimentRegistry(tmp_path)
    first = threading.Thread(target=registry.all)
    first.start()
    assert reading.wait(5)
    seen: list[dict[str, Experiment]] = []
    second = threading.Thread(target=lambda: seen.append(registry.all()))
    second.start()
    second.join(0.05)  # give it time to reach the registry while the first scan reads
    finish.set()
    first.join(5)
    second.join(5)
    assert [list(found) for found in seen] == [["demo"]]  # not the empty start


# -- docs ----------------------------------------------------------------------


def test_the_format_reference_names_every_field_and_value() -> None:
    from abconv.experiments.rules import GOAL_FIELDS, TOP_LEVEL_FIELDS, VARIANT_FIELDS

    reference = (REPO / "README.md").read_text().split("## Experiment files")[1].split("\n## ")[0]
    names = [*TOP_LEVEL_FIELDS, *VARIANT_FIELDS, *GOAL_FIELDS, *ANALYSIS_DEFAULTS]
    vocabularies = [*Status, *ExperimentKind, *GoalKind, *Method]
    missing = [name for name in names if f"| `{name}` |" not in reference]
    missing += [str(value) for value in vocabularies if f'"{value}"' not in reference]
    assert not missing


# -- purity --------------------------------------------------------------------


@pytest.mark.parametrize(
    "module", sorted(p.stem for p in (REPO / "src" / "abconv" / "experiments").glob("*.py"))
)
def test_experiment_modules_import_no_web_or_database_code(module: str) -> None:
    source = (REPO / "src" / "abconv" / "experiments" / f"{module}.py").read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    forbidden = {"flask", "sqlmodel", "sqlalchemy", "abconv.store", "abconv.service", "abconv.web"}
    assert not {name for name in imported if name.split(".")[0] in forbidden or name in forbidden}

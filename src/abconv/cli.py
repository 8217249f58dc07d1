"""The ``abconv`` command: serve, check, analyze, simulate."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """abconv: A/B tests for calls to action and landing pages."""


@cli.command()
@click.argument("directory", required=False, type=click.Path(path_type=Path))
def check(directory: Path | None) -> None:
    """Validate experiment files in DIRECTORY (default: ABCONV_EXPERIMENTS_DIR or ./experiments)."""
    from abconv.config import load_config
    from abconv.experiments import check_directory

    folder = directory or load_config().experiments_dir
    experiments, problems = check_directory(folder)
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        click.echo(f"{len(problems)} problem(s) in {folder}", err=True)
        sys.exit(1)
    click.echo(f"{len(experiments)} experiment file(s) in {folder} are valid")


@cli.command()
@click.argument("counts_file", type=click.File("r"))
def analyze(counts_file: click.utils.LazyFile) -> None:
    """Analyse aggregated counts from COUNTS_FILE (or - for stdin); print the results JSON."""
    from abconv.stats import analyze as run_analysis

    try:
        data = json.load(counts_file)
    except json.JSONDecodeError as exc:
        click.echo(f"error: {counts_file.name}: not valid JSON: {exc}", err=True)
        sys.exit(1)
    try:
        document = run_analysis(data)
    except (ValueError, TypeError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(document, indent=2, allow_nan=False))


def main() -> None:
    cli()

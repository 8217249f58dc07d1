"""The ``abconv`` command: serve, check, analyze, simulate, db upgrade, rollups rebuild."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

if TYPE_CHECKING:
    from abconv.config import Settings
    from abconv.experiments import Experiment


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """abconv: A/B tests for calls to action and landing pages."""


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(1, 64),
    help="gunicorn worker processes (about one per core).",
)
@click.option(
    "--threads",
    default=8,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Threads per worker: requests each worker serves at once.",
)
@click.option("--dev", is_flag=True, help="Flask's development server with the reloader.")
def serve(host: str, port: int, workers: int, threads: int, dev: bool) -> None:
    """Run the server: gunicorn, or Flask's reloader with --dev."""
    from abconv.config import load_config
    from abconv.errors import AbconvError

    try:
        settings = load_config()
    except AbconvError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"abconv: experiments from {settings.experiments_dir.resolve()}", err=True)
    click.echo(f"abconv: database {_safe_url(settings.database_url)}", err=True)
    click.echo(f"abconv: {_admin_access(settings)}", err=True)
    if dev:
        from abconv import create_app

        create_app().run(host=host, port=port, debug=True, use_reloader=True)
        return
    from abconv.server import run_gunicorn

    run_gunicorn(host=host, port=port, workers=workers, threads=threads)


def _admin_access(settings: Settings) -> str:
    """Where the admin password is; writes the generated one before workers start."""
    if settings.admin_password is not None:
        return "admin routes need ABCONV_ADMIN_PASSWORD"
    from abconv.errors import AbconvError
    from abconv.web.admin_secret import generated_password, password_file

    try:
        generated_password(settings.instance_dir)
    except (OSError, AbconvError) as error:
        raise click.ClickException(f"cannot write the admin password: {error}") from None
    return (
        f"admin password in {password_file(settings.instance_dir)} "
        "(admin routes answer this machine only; set ABCONV_ADMIN_PASSWORD to change that)"
    )


def _safe_url(url: str) -> str:
    """The database URL without its password, for logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@cli.group()
def db() -> None:
    """The database's schema."""


@db.command()
def upgrade() -> None:
    """Migrate the database of ABCONV_DATABASE_URL to this version's schema.

    The server does the same at start-up; run it yourself to migrate before
    a deploy, or to see what would be done to a database.
    """
    from sqlalchemy.exc import DBAPIError

    from abconv.config import load_config
    from abconv.errors import AbconvError
    from abconv.store import Store

    try:
        url = load_config().database_url
    except AbconvError as error:
        raise click.ClickException(error.message) from None
    store = Store(url)
    try:
        done = store.upgrade_schema()
    except DBAPIError as error:
        reason = str(error.orig or error).strip()
        raise click.ClickException(
            f"database {_safe_url(url)} cannot be reached: {reason}"
        ) from None
    finally:
        store.dispose()
    if done.stamped:
        click.echo(f"database made before migrations: stamped at {done.before}")
    if done.before == done.after:
        click.echo(f"database is up to date ({done.after})")
    elif done.before is None:
        click.echo(f"database created at {done.after}")
    else:
        click.echo(f"database upgraded from {done.before} to {done.after}")


@cli.group()
def rollups() -> None:
    """The counters that results are read from."""


@rollups.command()
@click.argument("key", required=False)
def rebuild(key: str | None) -> None:
    """Recompute the rollups of experiment KEY (default: all) from the raw events.

    One transaction; writers wait meanwhile. Caps come from the experiment
    files of ABCONV_EXPERIMENTS_DIR (an experiment without a valid file keeps
    the caps its rollups were built with).
    """
    from sqlalchemy.exc import DBAPIError

    from abconv.config import load_config
    from abconv.errors import AbconvError
    from abconv.experiments import check_directory
    from abconv.store import Store

    try:
        settings = load_config()
    except AbconvError as error:
        raise click.ClickException(error.message) from None
    experiments, _ = check_directory(settings.experiments_dir)
    caps = {
        e.key: {g.key: g.cap for g in e.goals if g.cap is not None}
        for e in experiments
        if key is None or e.key == key
    }
    store = Store(settings.database_url)
    try:
        done = store.rebuild_rollups(key, caps)
    except DBAPIError as error:
        reason = str(error.orig or error).strip()
        raise click.ClickException(
            f"database {_safe_url(settings.database_url)} cannot be rebuilt: {reason}"
        ) from None
    except ValueError as error:
        raise click.ClickException(f"rollups not rebuilt: {error}") from None
    finally:
        store.dispose()
    click.echo(f"rollups rebuilt for {len(done)} experiment(s): {', '.join(done) or '-'}")


@cli.command()
@click.argument("directory", required=False, type=click.Path(path_type=Path))
def check(directory: Path | None) -> None:
    """Validate experiment files in DIRECTORY (default: ABCONV_EXPERIMENTS_DIR or ./experiments)."""
    from abconv.config import load_config
    from abconv.errors import AbconvError
    from abconv.experiments import check_directory

    try:
        folder = directory or load_config().experiments_dir
    except AbconvError as error:
        raise click.ClickException(error.message) from None
    experiments, problems = check_directory(folder)
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        click.echo(f"{len(problems)} problem(s) in {folder}", err=True)
        sys.exit(1)
    keys = ", ".join(sorted(experiment.key for experiment in experiments))
    click.echo(f"{len(experiments)} experiment file(s) in {folder} are valid: {keys}")
    for warning in _phase_warnings(experiments):
        click.echo(f"warning: {warning}", err=True)


def _phase_warnings(experiments: list[Experiment]) -> list[str]:
    """The edits that would start a phase (README, "Phases"), compared with the
    latest phase stored in ABCONV_DATABASE_URL; one line saying why not when
    that database cannot be read."""
    from sqlalchemy.exc import SQLAlchemyError

    from abconv.config import load_config
    from abconv.errors import AbconvError
    from abconv.experiments.phases import edit_warning
    from abconv.store import Store
    from abconv.store.sqlite import database_path

    try:
        url = load_config().database_url
    except AbconvError as error:
        return [f"cannot compare with the stored phases: {error.message}"]
    if url.startswith("sqlite") and not Path(database_path(url) or "-").is_file():
        return [f"cannot compare with the stored phases: no database at {_safe_url(url)}"]
    store = Store(url)
    warnings: list[str] = []
    try:
        for experiment in sorted(experiments, key=lambda e: e.key):
            stored = store.phases_of(experiment.key)
            latest = stored[-1] if stored else None
            if latest is not None and latest.definition is not None:
                said = edit_warning(experiment, latest.number, latest.definition)
                warnings.extend([said] if said else [])
    except SQLAlchemyError as error:  # unreachable, or a schema without phases
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        return [f"cannot compare with the stored phases of {_safe_url(url)}: {reason}"]
    finally:
        store.dispose()
    return warnings


@cli.command()
@click.argument("counts_file")
def analyze(counts_file: str) -> None:
    """Analyse aggregated counts from COUNTS_FILE (or - for stdin); print the results JSON."""
    from abconv.stats import analyze as run_analysis

    try:
        with click.open_file(counts_file, "r", encoding="utf-8") as stream:
            data = json.load(stream)
    except OSError as exc:
        _fail(f"{counts_file}: {exc.strerror or exc}")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        _fail(f"{counts_file}: not valid JSON: {exc}")
    try:
        document = run_analysis(data)
    except (ValueError, TypeError) as exc:
        _fail(str(exc))
    click.echo(json.dumps(document, indent=2, allow_nan=False))


def _fail(reason: str) -> NoReturn:
    click.echo(f"error: {reason}", err=True)
    sys.exit(1)


@cli.command()
@click.argument("experiment")
@click.option("--visitors", default=1000, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--seed", default=1, show_default=True, type=int, help="Same seed, same traffic.")
@click.option(
    "--base-rate",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="True rate of each hard goal in the control.",
)
@click.option(
    "--lift",
    default=0.2,
    show_default=True,
    type=float,
    help="Relative lift of each further variant over the one before, on hard goals.",
)
@click.option(
    "--url",
    default=None,
    help="A running server (http://HOST:PORT) to send the traffic to over HTTP; "
    "without it, the routes run in-process on this environment's database.",
)
@click.option(
    "--password",
    envvar="ABCONV_ADMIN_PASSWORD",
    default=None,
    help="With --url: the admin password, to read the experiment's definition "
    "[default: ABCONV_ADMIN_PASSWORD, else instance/admin-password].",
)
def simulate(
    experiment: str,
    visitors: int,
    seed: int,
    base_rate: float,
    lift: float,
    url: str | None,
    password: str | None,
) -> None:
    """Send synthetic visitors of EXPERIMENT through the API, to see data at once."""
    from abconv.errors import AbconvError
    from abconv.simulation import TrafficModel, simulate_over_http, simulate_traffic

    model = TrafficModel(seed=seed, base_rate=base_rate, lift=lift)
    where = f"over HTTP to {url}" if url else "in-process"
    try:
        with click.progressbar(
            length=visitors, label=f"Simulating {where}", file=sys.stderr
        ) as bar:

            def progress(numbers: Iterable[int]) -> Iterable[int]:
                for number in numbers:
                    yield number
                    bar.update(1)

            if url:
                summary = simulate_over_http(
                    url, experiment, visitors, model, password or _local_password(), progress
                )
            else:
                summary = simulate_traffic(experiment, visitors, model, progress)
    except AbconvError as error:
        raise click.ClickException(error.message) from None
    click.echo(summary)


def _local_password() -> str | None:
    """The generated admin password of a server started in this folder, if any."""
    from abconv.config import load_config
    from abconv.errors import AbconvError
    from abconv.web.admin_secret import password_file

    try:
        return password_file(load_config().instance_dir).read_text().strip() or None
    except (OSError, AbconvError):
        return None


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
